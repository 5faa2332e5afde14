"""Random-weight evaluation, RWE (Hu et al. 2021): a random network with only its last layer trained.

Every weight of the network stays at its (seeded) random initialisation. The input of the network's
final classifier, an ``nn.Linear``, is computed once on a training subset of nape's offline task; only
that classifier is fitted, in closed form; the score is its validation accuracy.

The method, for a network f = g ∘ φ whose last operation g is the final ``nn.Linear``:

1. φ at initialisation (torch seeded with ``seed``), in eval mode (see *Batch norm* below), gives the
   features H = φ(X) ∈ ℝ^{n×d} of the first ``n_train`` images X of the task's training split.
2. Standardise with the training statistics, Z = (H − 𝟙μᵀ) diag(σ)⁻¹ (a constant feature gets σ = 1),
   and regress the one-hot labels Y ∈ {0, 1}^{n×C} on Z by ridge regression, λ = α·n:

       W = argmin_W ‖Z W − (Y − 𝟙ȳᵀ)‖²_F + λ‖W‖²_F = (ZᵀZ + λI)⁻¹ Zᵀ(Y − 𝟙ȳᵀ)

   (the dual form Zᵀ(ZZᵀ + λI)⁻¹(Y − 𝟙ȳᵀ) when d > n).
3. Write the classifier into g in the raw feature coordinates: weight = (diag(σ)⁻¹ W)ᵀ and
   bias = ȳ − Wᵀ diag(σ)⁻¹ μ, so that g(φ(x)) = ȳ + Wᵀ diag(σ)⁻¹ (φ(x) − μ). Nothing else is touched:
   every other parameter and buffer is bitwise the random initialisation.
4. Score = 100 · mean_i 1[argmax_c f(x_i)_c = y_i] over the task's validation split, computed with the
   network itself, so ``rwe_network(...)`` reproduces the score exactly.

Why ridge regression to one-hot targets and not a multinomial logistic regression: it is closed form
(~1 ms for d = 64 against ~150 ms for scikit-learn's L-BFGS logistic regression), has no solver
tolerance or iteration cap to make scores drift, and on the pilot zoo (``results/zoo/pilot-4ep.sqlite``,
5 families × 30 networks, features on the cluttered task it was trained on) it ranked networks at least
as well as the logistic regression did (mean Spearman over families 0.41 against 0.18 for C = 1, at
n_train = 1000). α = 10⁻² was the best of 10⁻³…1 there, averaged with the current default task.

Batch norm. ``bn="eval"`` (default) runs the random network as it is, in eval mode: a batch norm at
initialisation uses its running statistics (mean 0, variance 1) and is the identity up to
1/√(1 + ε); dropout is off. ``bn="batch"`` normalises with the statistics of each chunk of ``chunk``
images instead (train-mode batch norm with ``track_running_stats`` switched off for the pass, so no
running statistic or counter changes); a network's features then depend on the chunk, and on the pilot
zoo this ranked worse (mean Spearman 0.18 against 0.41 on the cluttered task, 0.08 against 0.33 on the
current default task), hence the default. Either way the buffers are
never written, and the network's own mode flags are restored afterwards.

The final ``nn.Linear`` is found generically: the last ``nn.Linear`` module called during a forward
pass, whose output must be the network's output and whose input must be [N, d]. Entry points:
:class:`RWE` (the estimator: ``score``, ``network``, ``score_specs``), :func:`rwe_score`,
:func:`rwe_scores` (a DataFrame with a tqdm progress bar), :func:`rwe_network`, and for any module
:func:`fit_last_layer` and :func:`final_linear`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn

from ..checks import is_whole, whole_number

__all__ = ["RWE", "RWEWarning", "final_linear", "fit_last_layer", "rwe_network", "rwe_score", "rwe_scores"]

BN_MODES = ("eval", "batch")
_STD_FLOOR = 1e-12  # a feature whose std is below this is constant: σ = 1 so it stays 0 after centring


class RWEWarning(RuntimeWarning):
    """A network's random features are not finite (overflow): its RWE score is NaN."""


# -- finding the classifier ------------------------------------------------------------------------
def _logits(output) -> torch.Tensor:
    while isinstance(output, (tuple, list)):
        output = output[0]
    return output


class _LastLinear:
    """Forward hooks on every ``nn.Linear``: remembers the last call's module, input and output."""

    def __init__(self, module: nn.Module):
        self.names = {m: name for name, m in module.named_modules() if isinstance(m, nn.Linear)}
        self.layer = self.input = self.output = None
        self._handles = [m.register_forward_hook(self._grab) for m in self.names]

    def _grab(self, layer, inputs, output):
        self.layer, self.input, self.output = layer, inputs[0], output

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def _check_final(module: nn.Module, hooks: _LastLinear, output) -> tuple[str, nn.Linear]:
    """The final Linear seen by ``hooks`` in a forward pass that returned ``output``; ValueError if the
    network has none, if it is not the network's last operation or if its input is not [N, d]."""
    kind = type(module).__name__
    if not hooks.names:
        raise ValueError(f"{kind} has no nn.Linear module: RWE fits the network's final nn.Linear classifier, "
                         "so give a network that ends in one (e.g. global pooling, flatten, nn.Linear)")
    if hooks.layer is None:
        raise ValueError(f"{kind} has nn.Linear modules but none ran in the forward pass; RWE needs a "
                         "network whose last operation is an nn.Linear classifier")
    name = hooks.names[hooks.layer]
    out = _logits(output)
    if not (out is hooks.output or (torch.is_tensor(out) and out.shape == hooks.output.shape
                                    and torch.equal(out, hooks.output))):
        raise ValueError(f"{kind}'s last nn.Linear ({name!r}) is not its last operation (its output is not the "
                         "network's output), so a classifier written into it would not be the network's "
                         "classifier; RWE needs a network that ends in an nn.Linear")
    if hooks.input.dim() != 2:
        raise ValueError(f"{kind}'s final nn.Linear ({name!r}) gets a {hooks.input.dim()}-D input "
                         f"{list(hooks.input.shape)}; RWE needs [N, features] (a classifier after pooling)")
    return name, hooks.layer


def final_linear(module: nn.Module, x: torch.Tensor) -> tuple[str, nn.Linear]:
    """(qualified name, module) of the final ``nn.Linear`` classifier of ``module``: the last
    ``nn.Linear`` called in a forward pass on ``x`` (eval mode, no gradients; the module's mode flags
    are restored). Raises ValueError when there is none, when it is not the last operation, or when
    its input is not [N, d]."""
    hooks = _LastLinear(module)
    try:
        with _mode(module, "eval"), torch.no_grad():
            output = module(x)
        return _check_final(module, hooks, output)
    finally:
        hooks.remove()


# -- batch-norm modes ------------------------------------------------------------------------------
@contextlib.contextmanager
def _mode(module: nn.Module, bn: str):
    """Eval mode for the pass; ``bn="batch"``: batch norms normalise with batch statistics and write no
    buffer (train mode with ``track_running_stats`` off). Every module's flags come back afterwards."""
    saved = [(m, m.training, getattr(m, "track_running_stats", None)) for m in module.modules()]
    module.eval()
    if bn == "batch":
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.training, m.track_running_stats = True, False
    try:
        yield
    finally:
        for m, training, track in saved:
            m.training = training
            if track is not None:
                m.track_running_stats = track


# -- the fit ---------------------------------------------------------------------------------------
def _ridge(h: np.ndarray, y: np.ndarray, n_classes: int, alpha: float, intercept: bool
           ) -> tuple[np.ndarray, np.ndarray | None]:
    """Ridge regression of one-hot ``y`` on standardised ``h`` (float64), returned in raw coordinates:
    (weight [C, d], bias [C] or None)."""
    n, d = h.shape
    mu = h.mean(axis=0) if intercept else np.zeros(d)
    sigma = (h - mu).std(axis=0) if intercept else np.sqrt((h ** 2).mean(axis=0))  # no bias: scale only
    sigma[sigma < _STD_FLOOR] = 1.0
    z = (h - mu) / sigma
    targets = np.eye(n_classes)[y]
    y_bar = targets.mean(axis=0) if intercept else np.zeros(n_classes)
    targets = targets - y_bar
    lam = alpha * n
    if d <= n:
        w = np.linalg.solve(z.T @ z + lam * np.eye(d), z.T @ targets)
    else:  # dual form: an n × n system instead of d × d
        w = z.T @ np.linalg.solve(z @ z.T + lam * np.eye(n), targets)
    weight = (w / sigma[:, None]).T
    bias = y_bar - mu @ (w / sigma[:, None]) if intercept else None
    return weight, bias


def _forward_chunks(module: nn.Module, x: torch.Tensor, chunk: int, hooks: _LastLinear | None = None):
    """Outputs of ``module`` on ``x`` in chunks (no gradients); with ``hooks``, also the final Linear's
    inputs (the features). The first chunk checks that the final Linear is the last operation."""
    outputs, features = [], []
    with torch.no_grad():
        for i in range(0, len(x), chunk):
            out = module(x[i:i + chunk])
            if hooks is not None:
                if i == 0:
                    _check_final(module, hooks, out)
                features.append(hooks.input.detach())
            outputs.append(_logits(out).detach())
    return outputs, features


def fit_last_layer(module: nn.Module, train: tuple[torch.Tensor, torch.Tensor],
                   val: tuple[torch.Tensor, torch.Tensor], *, alpha: float = 1e-2, bn: str = "eval",
                   chunk: int = 500, label: str = "") -> float:
    """Fit ``module``'s final ``nn.Linear`` on ``train`` = (x, y), in place, and return the module's
    validation accuracy (%) on ``val`` = (x, y) (see the module docstring for the method).

    Only that layer's ``weight`` and ``bias`` are written; every other parameter and buffer is left
    bitwise unchanged, and so are the modules' mode flags. ``alpha`` > 0 scales the ridge penalty
    (λ = α·n); ``bn`` is ``"eval"`` or ``"batch"``; ``chunk`` images go through the network at a time.
    Returns NaN with an :class:`RWEWarning` (the layer untouched) when the random features are not
    finite. Raises ValueError for a network without a final Linear or labels outside its classes."""
    _check_fit_args(alpha, bn, chunk)
    (x_train, y_train), (x_val, y_val) = _check_split("train", train), _check_split("val", val)
    hooks = _LastLinear(module)
    try:
        with _mode(module, bn):
            _, feats = _forward_chunks(module, x_train, chunk, hooks)
    finally:
        hooks.remove()
    layer = hooks.layer
    n_classes = layer.out_features
    labels = np.asarray(y_train, dtype=np.int64)
    if labels.min() < 0 or max(int(labels.max()), int(np.max(np.asarray(y_val)))) >= n_classes:
        raise ValueError(f"labels must lie in 0..{n_classes - 1} (the final nn.Linear has {n_classes} outputs)")
    h = torch.cat(feats).double().numpy()
    if not np.isfinite(h).all():
        where = f" ({label})" if label else ""
        warnings.warn(f"RWE{where}: NaN: the random network's features are not finite", RWEWarning, stacklevel=2)
        return float("nan")
    weight, bias = _ridge(h, labels, n_classes, alpha, intercept=layer.bias is not None)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weight))
        if bias is not None:
            layer.bias.copy_(torch.from_numpy(bias))
    with _mode(module, bn):
        logits, _ = _forward_chunks(module, x_val, chunk)
    correct = (torch.cat(logits).argmax(dim=1) == torch.as_tensor(y_val)).sum().item()
    return 100.0 * correct / len(x_val)


def _check_split(name: str, pair) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) as tensors: x [N, …] float with N ≥ 1, y int64 [N]."""
    try:
        x, y = pair
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (images, labels), got {type(pair).__name__}") from None
    if not torch.is_tensor(x) or x.dim() < 2 or len(x) < 1:
        raise ValueError(f"{name} images must be a tensor [N, ...] with N >= 1")
    y = torch.as_tensor(y)
    if y.shape != (len(x),) or y.is_floating_point():
        raise ValueError(f"{name} labels must be integer class indices of shape [{len(x)}], got "
                         f"{y.dtype} {list(y.shape)}")
    return x, y.long()


def _check_fit_args(alpha: float, bn: str, chunk: int) -> None:
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"alpha must be a finite number > 0 (the ridge penalty per example; it also keeps the "
                         f"system solvable when features are constant), got {alpha!r}")
    if bn not in BN_MODES:
        raise ValueError(f"bn must be one of {', '.join(BN_MODES)} (see the rwe module docstring), got {bn!r}")
    whole_number(chunk, "chunk", 1, "it counts the images per forward pass")


# -- the estimator ---------------------------------------------------------------------------------
class RWE:
    """Random-weight evaluation of a space's specs on nape's offline task.

    Parameters
    ----------
    n_train: training images the classifier is fitted on (the first ``n_train`` of the task's training
        split, which is already in random order), 10 … the split's size (3,000 by default).
    seed: torch seed of the random initialisation (the caller's RNG state is left as it was).
    size: input resolution = the task's canvas size (``TaskConfig.size``, ≥ 12). ``None``: the
        profile's own (16 for ``zoo``). Every zoo family runs at 16, 24 and 32; some (NB-301, NAGO,
        GHN-random) need a multiple of 8.
    profile: the space's profile the networks are built at (``"zoo"`` by default); its class count is
        set to the task's 10 classes.
    alpha, bn, chunk: see :func:`fit_last_layer`.
    task: the offline task (``TaskConfig``; its ``size`` is overridden by ``size`` when given).
    """

    def __init__(self, n_train: int = 1000, seed: int = 0, size: int | None = None, profile: str = "zoo",
                 alpha: float = 1e-2, bn: str = "eval", chunk: int = 500, task=None):
        from ..data.task import TaskConfig

        task = TaskConfig() if task is None else task
        if not isinstance(task, TaskConfig):
            raise ValueError(f"task must be a nape_utils.data.task.TaskConfig, got {type(task).__name__}")
        if not is_whole(n_train) or not 10 <= n_train <= task.n_train:
            raise ValueError(f"n_train must be an integer from 10 to {task.n_train} (the task's training split), "
                             f"got {n_train!r}; for more, pass task=TaskConfig(n_train=...)")
        if not is_whole(seed) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        if size is not None and (not is_whole(size) or size < 12):
            raise ValueError(f"size must be an integer >= 12 (the task's digits are 12×12) or None for the "
                             f"profile's own input size, got {size!r}")
        if not isinstance(profile, str):
            raise ValueError(f"profile must be a profile name such as 'zoo' or 'paper', got {profile!r}")
        _check_fit_args(alpha, bn, chunk)
        self.n_train, self.seed, self.size, self.profile = int(n_train), int(seed), size, profile
        self.alpha, self.bn, self.chunk, self.task = alpha, bn, chunk, task
        self._data: dict[int, tuple] = {}

    def get_params(self) -> dict:
        return {"n_train": self.n_train, "seed": self.seed, "size": self.size, "profile": self.profile,
                "alpha": self.alpha, "bn": self.bn, "chunk": self.chunk, "task": self.task}

    def __repr__(self) -> str:
        return f"RWE({', '.join(f'{k}={v!r}' for k, v in self.get_params().items() if k != 'task')})"

    # -- data and networks ------------------------------------------------------------------------
    def data(self, size: int) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """((x_train, y_train), (x_val, y_val)) at ``size``: the training subset and the validation split,
        as torch tensors (cached per size). Sizes above the task's canvas are rendered on a canvas that
        large; smaller ones (OFA resolutions at zoo size) are the canvas downsampled, as the zoo trainer
        shows them to the network."""
        from ..data.task import make_task, task_tensors

        if size not in self._data:
            task = make_task(dataclasses.replace(self.task, size=max(size, self.task.size)))
            (x_tr, y_tr), val = task_tensors(task, "train", size), task_tensors(task, "val", size)
            self._data[size] = ((x_tr[:self.n_train], y_tr[:self.n_train]), val)
        return self._data[size]

    def _build(self, space, spec: str) -> tuple[nn.Module, int]:
        """(random network at this estimator's profile and size, canvas size)."""
        from ..spaces import ZOO_NUM_CLASSES

        prof = space.profile(self.profile)
        native = space.input_shape_of(spec, prof)
        size = native[-1] if self.size is None else self.size
        if prof.input_shape[1:] != (size, size) or prof.num_classes != ZOO_NUM_CLASSES:
            prof = dataclasses.replace(prof.replace(name=f"{prof.name}@{size}", input_shape=(native[1], size, size)),
                                       num_classes=ZOO_NUM_CLASSES)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = space.build(spec, prof)
        return net, size

    def _fit(self, space, spec: str) -> tuple[nn.Module, float]:
        net, size = self._build(space, spec)
        train, val = self.data(size)
        fmt = space.profile(self.profile).memory_format  # as the zoo trainer runs this family
        if fmt is torch.channels_last:
            net = net.to(memory_format=fmt)
            train, val = ((x.contiguous(memory_format=fmt), y) for x, y in (train, val))
        try:
            score = fit_last_layer(net, train, val, alpha=self.alpha, bn=self.bn, chunk=self.chunk,
                                   label=f"{space.name} {spec}")
        except RuntimeError as err:  # in practice a shape error: the network does not run at this size
            hint = "; choose another size (16, 24 and 32 suit every zoo family)" if self.size is not None else ""
            raise ValueError(f"{space.name} spec {spec!r} failed at {size}×{size} inputs ({err}){hint}") from None
        return net, score

    @staticmethod
    def _canonical(space, spec: str, where: str = "") -> str:
        try:
            return space.canonical(spec)
        except ValueError as err:
            raise ValueError(f"{where}spec {spec!r}: {err}") from None

    # -- public -----------------------------------------------------------------------------------
    def network(self, space, spec: str) -> nn.Module:
        """The random network of ``spec`` with the fitted classifier written into its final
        ``nn.Linear``, in eval mode (with ``bn="eval"``, ``net(x_val)`` reproduces the score)."""
        from ..spaces import get_space

        space = get_space(space)
        net, _ = self._fit(space, self._canonical(space, spec))
        return net.eval()

    def score(self, space, spec: str) -> float:
        """Validation accuracy (%) of ``spec``'s random network with its last layer fitted."""
        from ..spaces import get_space

        space = get_space(space)
        return self._fit(space, self._canonical(space, spec))[1]

    def score_specs(self, space, specs: Sequence[str], progress: bool = True):
        """A pandas DataFrame, one row per spec: ``spec`` (canonical), ``rwe_accuracy`` (%), ``seconds``
        (build, features, fit and validation; the task's one-off rendering excluded). Raises ValueError
        for no specs or a bad spec (naming it)."""
        import pandas as pd
        from tqdm.auto import tqdm

        from ..spaces import get_space

        space = get_space(space)
        specs = [self._canonical(space, s, f"spec {i + 1}: ") for i, s in enumerate(specs)]
        if not specs:
            raise ValueError("no specs given: RWE needs at least one spec")
        rows = []
        for spec in tqdm(specs, desc=f"RWE {space.name}", unit="net", disable=not progress):
            self.data(self._size_of(space, spec))  # render the task outside the timing
            start = time.perf_counter()
            _, score = self._fit(space, spec)
            rows.append({"spec": spec, "rwe_accuracy": score, "seconds": time.perf_counter() - start})
        return pd.DataFrame(rows, columns=["spec", "rwe_accuracy", "seconds"])

    def _size_of(self, space, spec: str) -> int:
        return space.input_shape_of(spec, self.profile)[-1] if self.size is None else self.size


# -- functions ---------------------------------------------------------------------------------------
def rwe_score(space, spec: str, **params) -> float:
    """RWE validation accuracy (%) of one spec; ``params`` are :class:`RWE`'s."""
    return RWE(**params).score(space, spec)


def rwe_scores(space, specs: Sequence[str], progress: bool = True, **params):
    """RWE of many specs, a DataFrame (spec, rwe_accuracy, seconds) with a tqdm progress bar;
    ``params`` are :class:`RWE`'s."""
    return RWE(**params).score_specs(space, specs, progress=progress)


def rwe_network(space, spec: str, **params) -> nn.Module:
    """The random network of one spec with its fitted classifier in its final ``nn.Linear`` (eval mode)."""
    return RWE(**params).network(space, spec)
