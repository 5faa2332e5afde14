"""The 13 zero-cost proxies (Abdelfattah et al. 2021; NAS-Bench-Suite-Zero, Krishnakumar et al. 2022).

Each proxy scores an ``nn.Module`` from one batch ``(x, y)`` without training it. Shared rules:

- every proxy sees the caller's module as a fresh ``copy.deepcopy`` would be, in train mode (the
  references' set-up), and the caller's weights, buffers and mode are never touched (see *Shared work*);
- torch's global RNG is forked and seeded with ``seed`` before each proxy (Zen's re-initialisation,
  dropout), so a score is a function of (module, batch, seed) and the caller's RNG state is unchanged;
- "weights" are the ``weight`` tensors of the conv (1d/2d/3d) and linear layers, and per-weight scores
  are summed over all of them (the references use ``Conv2d`` and ``Linear``);
- L is the mean cross-entropy of the logits (the first output when the module returns a tuple);
- a NaN or ±inf score, and any exception inside a proxy, becomes NaN with a :class:`ProxyWarning`,
  so a batch run over many networks never stops; a module whose parameters or buffers are not finite
  gets NaN for every proxy but ``params`` and ``flops``.

Shared work. The proxies that change neither the weights nor the module's structure (l2_norm, nwot, jacov,
epe_nas, grad_norm, snip, plain, fisher) run on ONE deep copy: they remove their hooks, every loss backward
starts from ``zero_grad(set_to_none=True)``, and train-mode batch norm normalises with the batch's statistics,
so the running statistics their passes update are never read. Proxies that mutate the network (synflow: BN off,
absolute values, float64; zen: re-initialisation, and it reads the running variance; grasp: replaces
Hardsigmoid/Hardswish forwards) get their own copy, except that grasp, or else synflow, runs last on the
shared copy (neither reads running statistics). grad_norm, snip, plain and fisher share one forward and
backward of L (fisher's hooks only read activations and gradients), jacov and epe_nas one input Jacobian,
params and flops one traced graph. :func:`score_specs` builds each network itself, so the shared work runs on
that network and no copy is made. Every score is bit-identical to running each proxy alone on its own copy
(``tests/test_proxies.py`` checks every space and proxy against that path); ``<proxy>_seconds`` splits
shared work equally among the proxies that used it, so the seconds still sum to the real cost. Measured
(:func:`score_specs`, 50 NB-201 cells at ``zoo``, batch 64, one thread, interleaved with the one-copy-per-proxy
code on the loaded 2-core machine, two runs): flops, params, nwot, jacov, synflow, l2_norm and grad_norm
159–175 → 99–119 ms a cell (1.5× faster), all 13 proxies 546–637 → 319–359 ms (1.75×).

Entry points: :func:`compute_proxies` (any module, one batch), :func:`score_specs` (a space's specs,
a DataFrame), :func:`make_batch` (the deterministic batch of nape's offline task).
"""
from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["PROXY_NAMES", "ProxyWarning", "compute_proxies", "make_batch", "score_specs"]

_EPS = 1e-5  # the references' k in log(v + k), 1 / (v + k), log(|corr| + k)
_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
_GLOBAL_POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
                 nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)


class ProxyWarning(RuntimeWarning):
    """A proxy gave NaN: a non-finite value, an undefined case (no ReLU, one class) or an error."""


class _Undefined(Exception):
    """Raised inside a proxy when its value is undefined for this network or batch (→ NaN)."""


_REGISTRY: dict[str, Callable[[nn.Module, torch.Tensor, torch.Tensor], float]] = {}


def _proxy(func):
    _REGISTRY[func.__name__] = func
    return func


class _Session:
    """The work that the proxies of one :func:`compute_proxies` call share: each named piece (the shared
    copy of the network, the loss backward, the input Jacobian, the traced graph) is computed once, by its
    first user, and its seconds are split equally among the proxies that used it."""

    def __init__(self, seed: int, fisher: bool):
        self.seed, self.fisher = seed, fisher
        self.user = ""
        self.values: dict[str, tuple[bool, object]] = {}
        self.seconds: dict[str, float] = {}
        self.users: dict[str, list[str]] = {}
        self.inside = 0.0  # seconds of shared work computed during the current proxy

    def get(self, key: str, compute: Callable[[], object]):
        users = self.users.setdefault(key, [])
        if self.user not in users:
            users.append(self.user)
        if key not in self.values:
            start = time.perf_counter()
            torch.manual_seed(self.seed)  # as its first user would have seeded it, whoever that is
            try:
                self.values[key] = (True, compute())
            except Exception as err:  # noqa: BLE001 - every user of failed work fails the same way
                self.values[key] = (False, err)
            self.seconds[key] = time.perf_counter() - start
            self.inside += self.seconds[key]
        ok, value = self.values[key]
        if not ok:
            raise value
        return value

    def share(self, name: str) -> float:
        """``name``'s equal share of the seconds of the shared work it used."""
        return sum(self.seconds[key] / len(users) for key, users in self.users.items()
                   if name in users and key in self.seconds)


_SESSION: ContextVar[_Session | None] = ContextVar("nape_proxy_session", default=None)


# -- shared helpers ---------------------------------------------------------------------------------
def _weighted_layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, _WEIGHTED)]


def _logits(output) -> torch.Tensor:
    """The prediction tensor of a forward pass (the first element of a tuple or list)."""
    while isinstance(output, (tuple, list)):
        output = output[0]
    return output


def _backward_loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """One forward pass and ``L.backward()``, with L the cross-entropy; gradients land in ``.grad``."""
    net.zero_grad(set_to_none=True)
    F.cross_entropy(_logits(net(x)), y).backward()


def _weight_grads(net: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(W, ∂/∂W) of the conv/linear layers in module order; layers with no gradient are left out."""
    return [(layer.weight.detach(), layer.weight.grad.detach()) for layer in _weighted_layers(net)
            if layer.weight.grad is not None]


def _sum_over_weights(pairs: list[tuple[torch.Tensor, torch.Tensor]],
                      score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> float:
    """Σ over (W, ∂/∂W) pairs (:func:`_weight_grads`) of ``score(W, ∂/∂W)``, layer by layer in float64."""
    total = 0.0
    for w, g in pairs:
        total += float(score(w, g))
    return total


class _LossGradients:
    """One forward and backward of L: the (W, ∂L/∂W) pairs and, when asked for, fisher's per-layer sums."""

    def __init__(self, pairs: list, fisher: dict | None):
        self.pairs, self.fisher = pairs, fisher


def _fisher_hooks(net: nn.Module, per_layer: dict) -> list:
    """Forward hooks on the conv/linear layers that add fisher's per-channel terms to ``per_layer`` during
    the backward (they read activations and gradients and change neither); returns the handles."""

    def capture(module, inputs, output):
        if not output.requires_grad:
            return
        act = output.detach()

        def on_grad(grad):
            a, g = act, grad.detach()
            if isinstance(module, nn.Linear) and a.dim() > 2:
                a, g = a.movedim(-1, 1), g.movedim(-1, 1)
            g_nk = (a * g).sum(dim=tuple(range(2, a.dim()))) if a.dim() > 2 else a * g
            value = 0.5 * g_nk.pow(2).mean(dim=0)
            per_layer[module] = per_layer.get(module, 0) + value

        output.register_hook(on_grad)

    return [layer.register_forward_hook(capture) for layer in _weighted_layers(net)]


def _backward_of_loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor, fisher: bool) -> _LossGradients:
    per_layer: dict | None = {} if fisher else None
    handles = _fisher_hooks(net, per_layer) if fisher else []
    try:
        _backward_loss(net, x, y)
    finally:
        for h in handles:
            h.remove()
    pairs = _weight_grads(net)
    net.zero_grad(set_to_none=True)  # later backward passes on a shared copy allocate new gradients
    return _LossGradients(pairs, per_layer)


def _loss_gradients(net: nn.Module, x: torch.Tensor, y: torch.Tensor, fisher: bool = False) -> _LossGradients:
    """:func:`_backward_of_loss`, once per :func:`compute_proxies` call (with fisher's hooks when fisher runs)."""
    session = _SESSION.get()
    if session is None:
        return _backward_of_loss(net, x, y, fisher)
    return session.get("loss", lambda: _backward_of_loss(net, x, y, fisher or session.fisher))


def _jacobian_of_input(net: nn.Module, x: torch.Tensor) -> tuple[np.ndarray, int]:
    x = x.detach().clone().requires_grad_(True)
    out = _logits(net(x))
    # only ∂/∂x: the weights' gradients, which out.backward() would also build, are not needed
    grad = torch.autograd.grad(out, x, torch.ones_like(out), allow_unused=True)[0]
    return grad.detach().reshape(len(x), -1).double().cpu().numpy(), out.shape[-1]


def _input_jacobian(net: nn.Module, x: torch.Tensor) -> tuple[np.ndarray, int]:
    """J[n] = ∂(Σ outputs)/∂x[n], flattened: one row per image, float64 [N, C·H·W]; and the number of
    outputs (the logits' last dimension). Once per :func:`compute_proxies` call."""
    session = _SESSION.get()
    if session is None:
        return _jacobian_of_input(net, x)
    return session.get("jacobian", lambda: _jacobian_of_input(net, x))


def _disable_batchnorm(net: nn.Module) -> None:
    """Replace every batch-norm's forward by the identity, as the references' ``bn=False`` copy does."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.forward = lambda x: x


def _hard_sigmoid(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x + 3.0, 0.0, 6.0) / 6.0


def _twice_differentiable(net: nn.Module) -> None:
    """Give ``Hardsigmoid``/``Hardswish`` modules an equal forward built from ops that torch can
    differentiate twice (its own kernels have no double backward): clamp(x + 3, 0, 6) / 6 and x times it."""
    for m in net.modules():
        if isinstance(m, nn.Hardsigmoid):
            m.forward = _hard_sigmoid
        elif isinstance(m, nn.Hardswish):
            m.forward = lambda x: x * _hard_sigmoid(x)


# -- proxies that need no gradient of a loss -------------------------------------------------------
@_proxy
def params(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Number of parameters: Σ over parameters of numel (the computation graph's count)."""
    return float(_graph(net, x).params)


@_proxy
def flops(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """FLOPs of one image, as ``torch.utils.flop_counter.FlopCounterMode`` counts them (2 per MAC)."""
    return float(_graph(net, x).flops)


class _Counts:
    def __init__(self, params: int, flops: int):
        self.params, self.flops = params, flops


def _graph(net: nn.Module, x: torch.Tensor):
    """params/flops of ``net`` for one image: the traced computation graph, or a direct count when
    ``torch.fx`` cannot trace the module (all parameters; FlopCounterMode on an eval-mode pass).
    Once per :func:`compute_proxies` call."""
    session = _SESSION.get()
    if session is None:
        return _count(net, x)
    return session.get("graph", lambda: _count(net, x))


def _count(net: nn.Module, x: torch.Tensor):
    from torch.utils.flop_counter import FlopCounterMode

    from ..graphs import from_module

    shape = (1, *x.shape[1:])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return from_module(net, shape)
    except Exception:  # noqa: BLE001 - any tracing failure falls back to counting directly
        net.eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(torch.zeros(shape, dtype=x.dtype, device=x.device))
        return _Counts(sum(p.numel() for p in net.parameters()), counter.get_total_flops())


@_proxy
def l2_norm(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Σ over conv/linear layers of ‖W‖_F (no data)."""
    return float(sum(float(layer.weight.detach().norm()) for layer in _weighted_layers(net)))


@_proxy
def synflow(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Synaptic flow (Tanaka et al. 2020) as in zero-cost-nas.

    Batch norm off (each BN's forward becomes the identity), every parameter and buffer replaced by its
    absolute value, float64, input 𝟙 of shape [1, C, H, W]; R = Σ f(𝟙); score Σ_W Σ |θ ⊙ ∂R/∂θ|.
    No data, no labels."""
    _disable_batchnorm(net)
    net.double()
    with torch.no_grad():
        for tensor in [*net.parameters(), *net.buffers()]:
            if tensor.is_floating_point():
                tensor.abs_()
    net.zero_grad(set_to_none=True)
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    _logits(net(ones)).sum().backward()
    return _sum_over_weights(_weight_grads(net), lambda w, g: (w * g).abs().sum())


@_proxy
def nwot(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """NASWOT (Mellor et al. 2021, second version): log |det K| of the ReLU codes.

    For every leaf module whose class name contains ``ReLU`` (ReLU, ReLU6, LeakyReLU, …; containers
    such as ``ReLUConvBN`` are not activations and are skipped, as NASLib skips its own), the code of
    image n is c_n = 1[input > 0] (flattened); K = Σ_ReLUs [C Cᵀ + (1 − C)(1 − C)ᵀ] (N × N, N images),
    i.e. N_units minus the Hamming distances. Score ``slogdet(K)[1]``. ReLUs applied functionally
    (``F.relu``) are not seen; a network without ReLU modules is undefined (NaN), and a singular K
    (e.g. identical images) gives −inf, hence NaN."""
    n = len(x)
    kernel = torch.zeros((n, n), dtype=torch.float64)

    def count(module, inputs):
        # C Cᵀ + (1 − C)(1 − C)ᵀ = m − s_i − s_j + 2 C Cᵀ (m units, s the codes' row sums): every term is
        # a whole number below 2⁵³ (C Cᵀ in float32 below 2²⁴), so this is exact: the float64 products' bits
        codes = inputs[0].detach().reshape(n, -1) > 0
        units = codes.shape[1]
        c = codes.to(torch.float32 if units < 2 ** 24 else torch.float64)
        s = codes.sum(dim=1, dtype=torch.float64)
        kernel.add_((c @ c.T).double().mul_(2).sub_(s[:, None]).sub_(s[None, :]).add_(units).cpu())

    relus = [m for m in net.modules() if "relu" in type(m).__name__.lower() and not any(m.children())]
    if not relus:
        raise _Undefined("the network has no ReLU-type module")
    handles = [m.register_forward_pre_hook(count) for m in relus]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    return float(torch.linalg.slogdet(kernel).logabsdet)


@_proxy
def zen(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Zen-score (Lin et al. 2021) as in ZenNAS / NASLib.

    Re-initialise: conv/linear weights ~ N(0, 1) and biases 0; batch-norm γ = 1, β = 0. Draw Gaussian
    inputs x, ε of the batch's shape; f = the features before global pooling (the input of the last
    call of a global pooling module, ``AdaptiveAvg/MaxPool`` with output size 1; without one, the
    network's output, with a warning). Two train-mode passes, then
    Δ = mean_n ‖f(x)_n − f(x + 0.01 ε)_n‖₁ and score = log Δ + Σ_BN log √(mean running variance)."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, _WEIGHTED):
                nn.init.normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)) and m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        x1 = torch.randn(x.shape, dtype=x.dtype, device=x.device)
        x2 = torch.randn(x.shape, dtype=x.dtype, device=x.device)
        delta = (_pre_pool_features(net, x1) - _pre_pool_features(net, x1 + 0.01 * x2)).abs()
        delta = delta.reshape(len(x), -1).sum(dim=1).mean()
        bn_term = sum(float(torch.log(torch.sqrt(m.running_var.mean()))) for m in net.modules()
                      if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_var is not None)
    return float(torch.log(delta)) + bn_term


def _pre_pool_features(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The input of the last global-pooling call of ``net(x)``; the output itself if there is none."""
    seen: list[torch.Tensor] = []

    def grab(module, inputs, output):
        if output.dim() >= 3 and all(s == 1 for s in output.shape[2:]):
            seen.append(inputs[0])

    handles = [m.register_forward_hook(grab) for m in net.modules() if isinstance(m, _GLOBAL_POOLS)]
    try:
        out = _logits(net(x))
    finally:
        for h in handles:
            h.remove()
    if seen:
        return seen[-1]
    warnings.warn("zen: no global pooling module found; using the network's output as its features",
                  ProxyWarning, stacklevel=3)
    return out


# -- proxies from the gradient of the loss ---------------------------------------------------------
@_proxy
def grad_norm(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Σ over conv/linear layers of ‖∂L/∂W‖_F."""
    return _sum_over_weights(_loss_gradients(net, x, y).pairs, lambda w, g: g.norm())


@_proxy
def snip(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """SNIP (Lee et al. 2019): Σ |W ⊙ ∂L/∂W| (the gradient of L w.r.t. a multiplicative mask of ones)."""
    return _sum_over_weights(_loss_gradients(net, x, y).pairs, lambda w, g: (w * g).abs().sum())


@_proxy
def plain(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Σ (∂L/∂W ⊙ W), signed, no absolute value: zero-cost-nas' and NASLib's ``plain``, checked term by term.

    Expect a noisy ranking: a conv followed by train-mode batch norm leaves L invariant to its weights'
    scale, so its term Σ W ⊙ ∂L/∂W = dL(αW)/dα at α = 1 is zero; only the classifier and convs without
    a batch norm after them (NB-201's residual shortcuts) contribute, a sum of both signs that hinges on
    the initialisation and the batch (on NB-201 it ranks cells differently under another seed)."""
    return _sum_over_weights(_loss_gradients(net, x, y).pairs, lambda w, g: (w * g).sum())


@_proxy
def grasp(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """GraSP (Wang et al. 2020) as in zero-cost-nas: g = ∂L/∂W from a first pass (held constant);
    a second pass builds ∂L/∂W with its graph, z = Σ g ⊙ ∂L/∂W, and ∂z/∂W = H g (Hessian-gradient
    product); score Σ (−W ⊙ H g). Hardsigmoid/Hardswish get a twice-differentiable forward first."""
    _twice_differentiable(net)
    weights = [layer.weight for layer in _weighted_layers(net)]
    if not weights:
        return 0.0
    net.zero_grad(set_to_none=True)
    first = torch.autograd.grad(F.cross_entropy(_logits(net(x)), y), weights, allow_unused=True)
    second = torch.autograd.grad(F.cross_entropy(_logits(net(x)), y), weights, allow_unused=True,
                                 create_graph=True)
    pairs = [(g.detach(), h) for g, h in zip(first, second) if g is not None and h is not None]
    if not pairs:
        return 0.0
    z = sum((g * h).sum() for g, h in pairs)
    hg = torch.autograd.grad(z, weights, allow_unused=True)
    return float(sum((-w.detach() * v).sum() for w, v in zip(weights, hg) if v is not None))


@_proxy
def fisher(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fisher (Theis et al. 2018; Turner et al. 2020) per channel, as in zero-cost-nas.

    For each conv/linear output a (channels on dim 1; a linear layer's last dim) and its gradient ∂L/∂a:
    F_k = 0.5 · mean_n (Σ_spatial a_nk · ∂L/∂a_nk)², summed over the calls of the layer. Each channel's
    value is spread to its weights, so score = Σ_layers Σ_k F_k · numel(W) / out_channels."""
    per_layer = _loss_gradients(net, x, y, fisher=True).fisher
    return float(sum(float(value.sum()) * layer.weight[0].numel() for layer, value in per_layer.items()))


# -- proxies from the input Jacobian ---------------------------------------------------------------
@_proxy
def jacov(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Jacobian covariance (Mellor et al. 2021, first version; NASLib's variant).

    J = ∂(Σ outputs)/∂x per image, flattened; C = corrcoef(J) (N × N); v its eigenvalues;
    score = −Σ_i [log(v_i + 10⁻⁵) + 1 / (v_i + 10⁻⁵)]."""
    with np.errstate(all="ignore"):
        corr = np.corrcoef(_input_jacobian(net, x)[0])
    if not np.all(np.isfinite(corr)):
        raise _Undefined("the Jacobian correlation is not finite (an image's Jacobian is constant)")
    v = np.linalg.eigvalsh(corr)
    return float(-np.sum(np.log(v + _EPS) + 1.0 / (v + _EPS)))


@_proxy
def epe_nas(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """EPE-NAS (Lopes et al. 2021): Jacobians (as jacov) grouped by label.

    Per class c with at least 2 images: s_c = Σ_ij log(|corr(J_c)_ij| + 10⁻⁵). Score Σ_c |s_c| when the
    network has at most 100 outputs; otherwise (s_c / n_c) and Σ_c Σ_c' |s_c − s_c'| / #classes, as the
    authors do for ImageNet-size label sets. A batch with fewer than 2 classes is undefined (NaN)."""
    labels = y.detach().cpu().numpy()
    if len(np.unique(labels)) < 2:
        raise _Undefined(f"the batch has {len(np.unique(labels))} class(es); epe_nas needs at least 2")
    jac, outputs = _input_jacobian(net, x)
    many = outputs > 100
    scores = []
    for c in np.unique(labels):
        rows = jac[labels == c]
        if len(rows) < 2:
            continue  # one image: corrcoef is the scalar 1, log(1 + k) ≈ 0 (the authors' code skips or adds ~0)
        with np.errstate(all="ignore"):
            s = float(np.sum(np.log(np.abs(np.corrcoef(rows)) + _EPS)))
        scores.append(s / len(rows) if many else s)
    if not scores:
        raise _Undefined("no class has 2 or more images in the batch")
    s = np.array(scores)
    if many:
        return float(np.abs(s[:, None] - s[None, :]).sum() / len(s))
    return float(np.abs(s).sum())


PROXY_NAMES: tuple[str, ...] = tuple(sorted(_REGISTRY))


# -- the API ------------------------------------------------------------------------------------------
def _resolve(proxies: str | Iterable[str] | None) -> list[str]:
    if proxies is None:
        return list(PROXY_NAMES)
    names = [p.strip() for p in proxies.split(",")] if isinstance(proxies, str) else [str(p) for p in proxies]
    names = [p for p in names if p]
    unknown = [p for p in names if p not in _REGISTRY]
    if unknown:
        raise ValueError(f"unknown proxy {', '.join(map(repr, unknown))}; known proxies: {', '.join(PROXY_NAMES)}")
    if not names:
        raise ValueError(f"no proxies given; known proxies: {', '.join(PROXY_NAMES)}")
    return list(dict.fromkeys(names))


def _finite_state(module: nn.Module) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in [*module.parameters(), *module.buffers()]
               if t.is_floating_point())


# proxies that run on the one shared copy: they change neither the weights nor the module's structure,
# remove their hooks, start every loss backward from zero_grad, and read no running statistics
_SHARES_COPY = frozenset({"l2_norm", "nwot", "jacov", "epe_nas", "grad_norm", "snip", "plain", "fisher"})
# proxies that mutate their network; the first of these that is asked for runs last on the shared copy
# (synflow turns batch norm off, grasp keeps it in train mode: neither reads running statistics; zen does)
_LAST_ON_SHARED = ("grasp", "synflow")
_COUNTS = ("params", "flops")


def _run_one(name: str, net_of: Callable[[], nn.Module], x: torch.Tensor, y: torch.Tensor, seed: int,
             label: str) -> float:
    """One proxy on the network ``net_of()`` gives (in train mode), seeded; NaN with a warning on failure."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            net = net_of()
            value = float(_REGISTRY[name](net, x, y))
        except _Undefined as err:
            warnings.warn(f"{name}{label}: NaN: {err}", ProxyWarning, stacklevel=4)
            return float("nan")
        except Exception as err:  # noqa: BLE001 - one failing proxy must not stop a batch run
            warnings.warn(f"{name}{label}: NaN: {type(err).__name__}: {err}", ProxyWarning, stacklevel=4)
            return float("nan")
    if not np.isfinite(value):
        warnings.warn(f"{name}{label}: NaN: the score is {value}", ProxyWarning, stacklevel=4)
        return float("nan")
    return value


def _check_batch(inputs, targets) -> torch.Tensor:
    if not torch.is_tensor(inputs) or inputs.dim() < 2 or len(inputs) < 1:
        raise ValueError("inputs must be a tensor [N, …] with at least one example")
    targets = torch.as_tensor(targets)
    if targets.shape != (len(inputs),):
        raise ValueError(f"targets must have shape [{len(inputs)}], got {list(targets.shape)}")
    return targets.long()


def compute_proxies(module: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                    proxies: str | Sequence[str] | None = None, seed: int = 0, *, graph=None,
                    label: str = "", _reference: bool = False) -> dict[str, float]:
    """Zero-cost proxies of ``module`` on one batch.

    Parameters: ``inputs`` float [N, C, H, W]; ``targets`` int64 class labels [N]; ``proxies`` a list
    of names or a comma-separated string (default: all of :data:`PROXY_NAMES`); ``seed`` seeds torch
    before each proxy; ``graph`` (optional) a ComputationGraph of the module whose ``params``/``flops``
    are used instead of tracing it; ``label`` names the network in warnings. ``_reference`` (tests only)
    runs every proxy alone on its own deep copy, sharing nothing: the scores are the same, bit for bit.

    Returns a flat dict: ``{proxy: score, …, proxy + "_seconds": wall time, …}``, proxies first in the
    order asked. Scores are floats, NaN (with a :class:`ProxyWarning`) where undefined or non-finite.
    Work shared by several proxies (the copy of the network, the loss backward, the input Jacobian, the
    traced graph; see the module docstring) is timed once and its seconds split equally among the
    proxies that used it, so the ``_seconds`` still sum to the call's cost.
    """
    names = _resolve(proxies)
    targets = _check_batch(inputs, targets)
    return _compute(module, inputs, targets, names, seed, graph, label, owned=False, reference=_reference)


def _compute(module: nn.Module, x: torch.Tensor, y: torch.Tensor, names: list[str], seed: int, graph,
             label: str, *, owned: bool, reference: bool = False) -> dict[str, float]:
    """:func:`compute_proxies` after checking; ``owned``: the module is the caller's to give away (a network
    :func:`score_specs` built), so the shared work runs on it instead of on a copy."""
    label = f" ({label})" if label else ""
    finite = _finite_state(module)
    if not finite:
        warnings.warn(f"module{label} has NaN or inf weights: every proxy but params and flops is NaN",
                      ProxyWarning, stacklevel=3)
    scores, seconds, run = {}, {}, []
    for name in names:
        start = time.perf_counter()
        if graph is not None and name in _COUNTS:
            scores[name] = float(getattr(graph, name))
        elif not finite and name not in _COUNTS:
            scores[name] = float("nan")
        else:
            run.append(name)
        seconds[name] = time.perf_counter() - start

    def fresh_copy() -> nn.Module:
        return copy.deepcopy(module).train()

    if reference:
        for name in run:
            start = time.perf_counter()
            scores[name] = _run_one(name, fresh_copy, x, y, seed, label)
            seconds[name] += time.perf_counter() - start
        return {**{n: scores[n] for n in names}, **{f"{n}_seconds": seconds[n] for n in names}}

    shared = [n for n in run if n in _SHARES_COPY]
    mutators = [n for n in run if n not in _SHARES_COPY and n not in _COUNTS]
    last = None
    if shared or owned:  # one mutator may use up the shared network (or, owned, the module) at the end
        last = next((n for n in (_LAST_ON_SHARED if shared else mutators) if n in mutators), None)
    # copies first, while the module is untouched; then the shared network; last the one that uses it up
    order = ([n for n in run if n in _COUNTS] + [n for n in mutators if n != last] + shared
             + ([last] if last else []))
    session = _Session(seed, fisher="fisher" in shared)

    def shared_net() -> nn.Module:
        return session.get("network", (lambda: module.train()) if owned else fresh_copy)

    def counted_net() -> nn.Module:
        return session.get("network to count", fresh_copy)

    token = _SESSION.set(session)
    try:
        for name in order:
            session.user, session.inside = name, 0.0
            net_of = (counted_net if name in _COUNTS else shared_net if name in shared or name == last
                      else fresh_copy)
            start = time.perf_counter()
            scores[name] = _run_one(name, net_of, x, y, seed, label)
            seconds[name] += time.perf_counter() - start - session.inside
    finally:
        _SESSION.reset(token)
    for name in run:
        seconds[name] += session.share(name)
    return {**{n: scores[n] for n in names}, **{f"{n}_seconds": seconds[n] for n in names}}


def make_batch(input_shape: Sequence[int], num_classes: int = 10, batch_size: int = 64, seed: int = 0,
               data: str = "task") -> tuple[torch.Tensor, torch.Tensor]:
    """A deterministic batch of nape's offline task (``make_task()``'s train split) for ``input_shape``.

    ``batch_size`` examples are drawn without replacement by ``numpy.random.default_rng(seed)``;
    labels are the task's digits (mod ``num_classes`` when it has fewer than 10). ``data="task"``: the
    task's standardised images, resized bilinearly when ``input_shape`` (C, H, W) is not 3×16×16
    (e.g. 32×32 for the benchmarks' ``paper`` profiles); ``data="gaussian"``: N(0, 1) images of
    ``input_shape`` from the same seed, with the same labels. Returns (x float32, y int64)."""
    from ..data.task import make_task

    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 4:
        shape = shape[1:]
    if data not in ("task", "gaussian"):
        raise ValueError(f"data must be 'task' or 'gaussian', got {data!r}")
    x_all, y_all = make_task()["train"]
    if not 1 <= batch_size <= len(x_all):
        raise ValueError(f"batch_size must be between 1 and {len(x_all)}, got {batch_size}")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(x_all), size=batch_size, replace=False))
    y = torch.from_numpy(y_all[pick] % num_classes).long()
    if data == "gaussian":
        return torch.from_numpy(rng.standard_normal((batch_size, *shape)).astype(np.float32)), y
    x = torch.from_numpy(np.array(x_all[pick]))
    if shape[0] != x.shape[1]:
        raise ValueError(f"the task has {x.shape[1]}-channel images; input shape {shape} needs data='gaussian'")
    if shape[1:] != tuple(x.shape[2:]):  # antialiased when shrinking: what the zoo trainer shows the network
        x = F.interpolate(x, size=shape[1:], mode="bilinear", align_corners=False, antialias=True)
    return x.contiguous(), y


def score_specs(space, specs: Sequence[str], proxies: str | Sequence[str] | None = None, batch_size: int = 64,
                profile: str = "zoo", seed: int = 0, data: str = "task", progress: bool = False):
    """Proxies of each spec of ``space`` at ``profile`` on one shared batch (:func:`make_batch`; one per
    input shape where specs choose their resolution, as OFA's do).

    Returns a pandas DataFrame, one row per spec: ``spec`` (canonical), one column per proxy, then
    ``<proxy>_seconds``. ``params`` and ``flops`` come from ``graph_of(space, spec, profile)``.
    ``progress`` shows a tqdm bar. Raises ValueError for an empty ``specs``, an unknown proxy or profile, or
    a bad spec (naming it)."""
    import pandas as pd
    from tqdm.auto import tqdm

    from ..graphs import graph_of
    from ..spaces import get_space

    space = get_space(space)
    names = _resolve(proxies)
    specs = list(specs)
    if not specs:
        raise ValueError("no specs given: score_specs needs at least one spec")
    prof = space.profile(profile)
    batches: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}
    rows = []
    for i, spec in enumerate(tqdm(specs, desc="proxies", disable=not progress)):
        try:
            canonical = space.canonical(spec)
        except ValueError as err:
            raise ValueError(f"spec {i + 1} ({spec!r}): {err}") from None
        shape = tuple(space.input_shape_of(canonical, profile)[1:])  # OFA specs choose their resolution
        if shape not in batches:
            batches[shape] = make_batch(shape, prof.num_classes, batch_size, seed, data)
        x, y = batches[shape]
        graph = graph_of(space, canonical, profile) if {"params", "flops"} & set(names) else None
        torch.manual_seed(seed)  # each network's initial weights depend on (spec, seed) only, not on its place
        net = space.build(canonical, profile)
        # the network is score_specs' own: the proxies' shared work runs on it, without a copy
        rows.append({"spec": canonical, **_compute(net, x, y.long(), names, seed, graph, canonical, owned=True)})
    columns = ["spec", *names, *(f"{n}_seconds" for n in names)]
    return pd.DataFrame(rows, columns=columns)
