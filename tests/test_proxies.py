"""Zero-cost proxies: closed forms on tiny networks, an NB-201 network, bad input and the CLI."""
from __future__ import annotations

import csv
import io
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

from nape_utils.predictors import PROXY_NAMES, ProxyWarning, compute_proxies, make_batch, score_specs
from nape_utils.spaces import get_space

SPEC = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def _score(module, x, y, name, **kw):
    return compute_proxies(module, x, y, [name], **kw)[name]


def _linear_batch(n=8, d=4, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = torch.arange(n) % classes
    return x, y


def _small_cnn(bn=True):
    torch.manual_seed(0)
    layers = [nn.Conv2d(3, 4, 3, padding=1)]
    layers += [nn.BatchNorm2d(4)] if bn else []
    layers += [nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)]
    return nn.Sequential(*layers)


def _softmax_grad(w, b, x, y):
    """∂L/∂W of the mean cross-entropy of x Wᵀ + b, by hand: (softmax − onehot)ᵀ x / N; also ∂L/∂z."""
    z = x @ w.T + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz = (p - np.eye(w.shape[0])[y]) / len(x)
    return dz.T @ x, dz, z


# -- closed forms -----------------------------------------------------------------------------------
def test_synflow_two_layer_linear_closed_form():
    """f(x) = W2 W1 x: R = 1ᵀ|W2||W1|1 and
    Σ|θ ⊙ ∂R/∂θ| = Σ|W1| ⊙ (|W2|ᵀ1)1ᵀ + Σ|W2| ⊙ 1(|W1|1)ᵀ = 2R."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Linear(4, 2, bias=False))
    a1, a2 = (np.abs(m.weight.detach().double().numpy()) for m in net)
    col = a2.sum(axis=0)                    # ∂R/∂|W1|_jk = (1ᵀ|W2|)_j
    row = a1.sum(axis=1)                    # ∂R/∂|W2|_ij = (|W1|1)_j
    by_hand = (a1 * col[:, None]).sum() + (a2 * row[None, :]).sum()
    r = np.ones(2) @ a2 @ a1 @ np.ones(3)
    x, y = _linear_batch(d=3, classes=2)
    assert _score(net, x, y, "synflow") == pytest.approx(by_hand, rel=1e-12)
    assert by_hand == pytest.approx(2 * r, rel=1e-12)


def test_synflow_turns_batchnorm_off():
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Linear(4, 2, bias=False))
    with_bn = nn.Sequential(plain[0], nn.BatchNorm1d(4), plain[1])
    with torch.no_grad():
        with_bn[1].weight.fill_(-3.0)
        with_bn[1].running_var.fill_(9.0)
    x, y = _linear_batch(d=3, classes=2)
    assert _score(with_bn, x, y, "synflow") == pytest.approx(_score(plain, x, y, "synflow"), rel=1e-12)


def test_params_and_flops_exact_small_cnn():
    net = _small_cnn(bn=False)
    x = torch.randn(2, 3, 8, 8)
    out = compute_proxies(net, x, torch.tensor([0, 1]), ["params", "flops"])
    assert out["params"] == 3 * 4 * 9 + 4 + 4 * 5 + 5
    assert out["flops"] == 2 * (4 * 8 * 8) * (3 * 9) + 2 * 4 * 5   # 2 per MAC: conv + linear


def test_l2_norm_closed_form():
    net = _small_cnn(bn=True)
    by_hand = sum(np.linalg.norm(m.weight.detach().numpy()) for m in (net[0], net[5]))  # BN γ not counted
    score = _score(net, torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3]), "l2_norm")
    assert score == pytest.approx(by_hand, rel=1e-6)


def test_grad_norm_snip_plain_against_hand_gradient():
    torch.manual_seed(0)
    net = nn.Linear(4, 3)
    x, y = _linear_batch()
    w, b = net.weight.detach().double().numpy(), net.bias.detach().double().numpy()
    grad, _, _ = _softmax_grad(w, b, x.double().numpy(), y.numpy())
    out = compute_proxies(net, x, y, "grad_norm,snip,plain")
    assert out["grad_norm"] == pytest.approx(np.linalg.norm(grad), rel=1e-5)
    assert out["snip"] == pytest.approx(np.abs(w * grad).sum(), rel=1e-5)
    assert out["plain"] == pytest.approx((w * grad).sum(), rel=1e-4, abs=1e-7)


def test_fisher_single_linear_layer_by_hand():
    """a = z = xWᵀ + b, ∂L/∂a = dz: F_k = ½ mean_n (a_nk dz_nk)², spread over the k-th row's 4 weights."""
    torch.manual_seed(1)
    net = nn.Linear(4, 3)
    x, y = _linear_batch()
    w, b = net.weight.detach().double().numpy(), net.bias.detach().double().numpy()
    _, dz, z = _softmax_grad(w, b, x.double().numpy(), y.numpy())
    by_hand = (0.5 * ((z * dz) ** 2).mean(axis=0)).sum() * 4
    assert _score(net, x, y, "fisher") == pytest.approx(by_hand, rel=1e-4)


def test_grasp_against_autograd_hessian():
    torch.manual_seed(2)
    net = nn.Linear(4, 3)
    x, y = _linear_batch()
    b = net.bias.detach()

    def loss(w_flat):
        return nn.functional.cross_entropy(x @ w_flat.view(3, 4).T + b, y)

    w = net.weight.detach().flatten().clone()
    g = torch.autograd.grad(loss(w.requires_grad_(True)), w)[0]
    hessian = torch.autograd.functional.hessian(loss, w.detach())
    by_hand = float(-(w.detach() * (hessian @ g)).sum())
    assert _score(net, x, y, "grasp") == pytest.approx(by_hand, rel=1e-4, abs=1e-9)


def test_grasp_through_hard_activations():
    """torch has no double backward for hardsigmoid/hardswish; grasp swaps in an equal forward."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(4, 6), nn.Hardswish(), nn.Linear(6, 3), nn.Hardsigmoid())
    x, y = _linear_batch()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProxyWarning)
        assert np.isfinite(_score(net, x, y, "grasp"))


class ReLUBlock(nn.Sequential):
    """A container whose name says ReLU: nwot must count its ReLU child once, not the container."""


def test_nwot_known_codes():
    net = nn.Sequential(nn.Linear(2, 2, bias=False), ReLUBlock(nn.ReLU()))
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(2))
    x = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]])
    codes = (x.numpy() > 0).astype(float)           # [1,0], [0,1], [1,1]
    k = codes @ codes.T + (1 - codes) @ (1 - codes).T  # [[2,0,1],[0,2,1],[1,1,2]], det 4
    assert np.linalg.det(k) == pytest.approx(4.0)
    assert _score(net, x, torch.tensor([0, 1, 0]), "nwot") == pytest.approx(math.log(4.0))


def test_nwot_identical_inputs_and_no_relu_give_nan_with_warning():
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    x = torch.ones(4, 2)
    with pytest.warns(ProxyWarning, match="nwot"):
        assert math.isnan(_score(net, x, torch.tensor([0, 1, 0, 1]), "nwot"))
    with pytest.warns(ProxyWarning, match="no ReLU"):
        assert math.isnan(_score(nn.Sequential(nn.Linear(2, 2), nn.Tanh()), torch.randn(4, 2),
                                 torch.tensor([0, 1, 0, 1]), "nwot"))


def test_jacov_and_epe_nas_closed_form_on_linear_net():
    """f = Wx: every image has the same Jacobian 1ᵀW, so corr = 𝟙𝟙ᵀ with eigenvalues n and 0 (n−1 times);
    EPE: each class's corr is all ones, s_c = n_c² log(1 + 10⁻⁵)."""
    torch.manual_seed(0)
    net = nn.Linear(4, 3, bias=False)
    x, y = _linear_batch(n=6, classes=3)
    n, k = 6, 1e-5
    jacov = -(math.log(n + k) + 1 / (n + k)) - (n - 1) * (math.log(k) + 1 / k)
    epe = 3 * 2 ** 2 * math.log(1 + k)
    out = compute_proxies(net, x, y, "jacov,epe_nas")
    assert out["jacov"] == pytest.approx(jacov, rel=1e-6)
    assert out["epe_nas"] == pytest.approx(epe, rel=1e-6)


def test_jacov_epe_nas_zen_finite_on_small_cnn():
    net = _small_cnn()
    x, y = torch.randn(8, 3, 8, 8), torch.arange(8) % 4
    out = compute_proxies(net, x, y, "jacov,epe_nas,zen")
    assert all(np.isfinite(out[p]) for p in ("jacov", "epe_nas", "zen"))


def test_zen_seed_deterministic_and_fallback_features():
    net = _small_cnn()
    x, y = torch.randn(8, 3, 8, 8), torch.arange(8) % 4
    a, b, c = (_score(net, x, y, "zen", seed=s) for s in (0, 0, 1))
    assert a == b and a != c
    no_pool = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 5))
    with pytest.warns(ProxyWarning, match="no global pooling"):
        assert np.isfinite(_score(no_pool, x, y, "zen"))


# -- an NB-201 network --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nb201_case():
    net = get_space("nb201").build(SPEC, "zoo")
    x, y = make_batch(get_space("nb201").input_shape("zoo"), 10, batch_size=32, seed=0)
    return net, x, y


def test_every_proxy_on_nb201_finite_deterministic_and_caller_untouched(nb201_case):
    net, x, y = nb201_case
    net.eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng_before = torch.get_rng_state()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProxyWarning)
        first = compute_proxies(net, x, y, seed=3)
        second = compute_proxies(net, x, y, seed=3)
    assert list(first) == [*PROXY_NAMES, *(f"{p}_seconds" for p in PROXY_NAMES)]
    assert all(np.isfinite(first[p]) for p in PROXY_NAMES), first
    assert all(first[p] == second[p] for p in PROXY_NAMES)
    assert all(first[f"{p}_seconds"] >= 0 for p in PROXY_NAMES)
    after = net.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert not net.training and torch.equal(rng_before, torch.get_rng_state())
    assert first["params"] == sum(p.numel() for p in net.parameters())


def test_score_specs_frame_and_nan_row_does_not_stop_the_run():
    with pytest.warns(ProxyWarning, match="jacov"):
        frame = score_specs("nb201", [ALL_NONE, SPEC], proxies=["jacov", "params", "synflow"], batch_size=16)
    assert list(frame.columns) == ["spec", "jacov", "params", "synflow", "jacov_seconds", "params_seconds",
                                   "synflow_seconds"]
    assert math.isnan(frame.loc[0, "jacov"]) and np.isfinite(frame.loc[1, "jacov"])  # output ignores input
    assert frame.loc[1, "params"] == sum(p.numel() for p in get_space("nb201").build(SPEC, "zoo").parameters())


def test_make_batch_deterministic_and_paper_shape():
    a, b = make_batch((3, 16, 16), seed=5), make_batch((3, 16, 16), seed=5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[0].shape == (64, 3, 16, 16)
    x, y = make_batch(get_space("nb201").input_shape("paper"), 10, batch_size=8)
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    g, gy = make_batch((3, 32, 32), 10, batch_size=8, data="gaussian")
    assert g.shape == (8, 3, 32, 32) and torch.equal(gy, y)


# -- bad input ----------------------------------------------------------------------------------------
def test_unknown_proxy_lists_the_known_ones():
    with pytest.raises(ValueError, match="known proxies: epe_nas, fisher"):
        compute_proxies(nn.Linear(2, 2), torch.randn(2, 2), torch.tensor([0, 1]), ["snip", "magic"])


def test_one_class_batch_epe_nas_nan_with_warning():
    net, x = _small_cnn(), torch.randn(6, 3, 8, 8)
    with pytest.warns(ProxyWarning, match="1 class"):
        out = compute_proxies(net, x, torch.zeros(6, dtype=torch.long), "epe_nas,snip")
    assert math.isnan(out["epe_nas"]) and np.isfinite(out["snip"])


def test_nan_weights_give_nan_with_warning_but_counts_stay():
    net = _small_cnn()
    with torch.no_grad():
        net[0].weight[0, 0, 0, 0] = float("nan")
    with pytest.warns(ProxyWarning, match="NaN or inf weights"):
        out = compute_proxies(net, torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3]))
    assert all(math.isnan(out[p]) for p in PROXY_NAMES if p not in ("params", "flops"))
    assert out["params"] == sum(p.numel() for p in net.parameters()) and out["flops"] > 0


def test_bad_batch_and_empty_specs():
    with pytest.raises(ValueError, match="targets must have shape"):
        compute_proxies(nn.Linear(2, 2), torch.randn(3, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="no specs"):
        score_specs("nb201", [])
    with pytest.raises(ValueError, match="batch_size"):
        make_batch((3, 16, 16), batch_size=0)


# -- the CLI ------------------------------------------------------------------------------------------
def test_cli_proxies_from_stdin(monkeypatch, capsys):
    from nape_utils.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO(f"{SPEC}\n{get_space('nb201').sample_many(1, seed=1)[0]}\n"))
    assert main(["proxies", "nb201", "--archs", "-", "--out", "-", "--batch-size", "16"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 2 and rows[0]["spec"] == SPEC
    assert list(rows[0]) == ["spec", *PROXY_NAMES, *(f"{p}_seconds" for p in PROXY_NAMES)]
    assert np.isfinite(float(rows[0]["synflow"]))


def test_cli_proxies_unknown_name_exits_2(monkeypatch, capsys):
    from nape_utils.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO(SPEC + "\n"))
    assert main(["proxies", "nb201", "--archs", "-", "--proxies", "nope"]) == 2
    assert "known proxies" in capsys.readouterr().err


def test_score_specs_is_repeatable_and_independent_of_order():
    specs = get_space("nb201").sample_many(3, seed=4)
    one = score_specs("nb201", specs, ["synflow", "snip"], batch_size=16).set_index("spec")
    two = score_specs("nb201", specs[::-1], ["synflow", "snip"], batch_size=16).set_index("spec")
    assert np.allclose(one.loc[specs, ["synflow", "snip"]], two.loc[specs, ["synflow", "snip"]])


# -- shared work is bit-identical to one copy per proxy -----------------------------------------------
# sample_many(6, seed=0) index of a small network for the spaces whose first sample is slow to score
_CHEAP = {"nb301": 4, "ofa_mbv3": 0, "ofa_pn": 0, "inception": 2, "nago": 4, "ghn_random": 3, "mnasnet": 1}
_TWO = {"nb101", "nb201", "ghn_random", "tnb101_micro", "tnb101_macro", "macro"}  # cheap: two specs


def _same(a: dict, b: dict) -> bool:
    """Equal keys in equal order and bit-equal scores (NaN == NaN); the seconds are not compared."""
    return list(a) == list(b) and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k]))
                                      for k in a if not k.endswith("_seconds"))


def _state(net):
    return ({k: v.clone() for k, v in net.state_dict().items()}, [m.training for m in net.modules()],
            [None if p.grad is None else p.grad.clone() for p in net.parameters()])


def _untouched(before, net) -> bool:
    sd, modes, grads = _state(net)
    return (sd.keys() == before[0].keys() and all(torch.equal(sd[k], before[0][k]) for k in sd)
            and modes == before[1] and all((g is None and h is None) or (g is not None and h is not None and
                                                                           torch.equal(g, h))
                                           for g, h in zip(grads, before[2])))


@pytest.mark.parametrize("space_name", __import__("nape_utils.spaces", fromlist=["space_names"]).space_names())
def test_shared_work_is_bit_identical_to_one_copy_per_proxy(space_name):
    """All 13 proxies on small zoo networks of every space: compute_proxies (one shared copy, shared loss
    backward and Jacobian) and the owned path score_specs uses (no copy) equal the reference path (a deep
    copy per proxy, nothing shared) bit for bit, and the caller's module is untouched."""
    from nape_utils.predictors.proxies import _compute

    space = get_space(space_name)
    samples = space.sample_many(6, seed=0)
    first = _CHEAP.get(space_name, 0)
    specs = [space.canonical(s) for s in samples[first:first + (2 if space_name in _TWO else 1)]]
    for i, spec in enumerate(specs):
        seed = i + 1
        x, y = make_batch(tuple(space.input_shape_of(spec, "zoo")[1:]), space.profile("zoo").num_classes,
                          batch_size=8, seed=seed)
        torch.manual_seed(seed)
        net = space.build(spec, "zoo").eval()
        before = _state(net)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ProxyWarning)
            reference = compute_proxies(net, x, y, seed=seed, _reference=True)
            shared = compute_proxies(net, x, y, seed=seed)
            torch.manual_seed(seed)
            owned = _compute(space.build(spec, "zoo"), x, y, list(PROXY_NAMES), seed, None, spec, owned=True)
        assert _untouched(before, net), spec
        assert _same(shared, reference), (spec, {k: (shared[k], reference[k]) for k in PROXY_NAMES})
        assert _same(owned, reference), (spec, {k: (owned[k], reference[k]) for k in PROXY_NAMES})


@pytest.mark.parametrize("names", [["grad_norm", "fisher"], ["snip"], ["jacov", "synflow", "plain"],
                                   ["synflow", "zen", "params"], ["zen", "epe_nas", "flops", "l2_norm"],
                                   ["nwot", "grasp", "synflow", "snip"], ["plain", "jacov", "snip"]])
def test_shared_work_bit_identical_for_proxy_subsets(nb201_case, names):
    """Each subset changes which work is shared and which mutating proxy uses the shared copy up; in the
    last, jacov's backward runs between the loss backward and snip, which reads its gradients."""
    net, x, y = nb201_case
    specs = get_space("nb201").sample_many(2, seed=9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProxyWarning)
        assert _same(compute_proxies(net, x, y, names, seed=5),
                     compute_proxies(net, x, y, names, seed=5, _reference=True))
        frame = score_specs("nb201", specs, names, batch_size=16, seed=2)
        for row, spec in zip(frame.to_dict("records"), specs):
            torch.manual_seed(2)
            built = get_space("nb201").build(spec, "zoo")
            batch = make_batch((3, 16, 16), 10, batch_size=16, seed=2)
            reference = compute_proxies(built, *batch, names, seed=2, _reference=True)
            assert all(row[n] == reference[n] or (math.isnan(row[n]) and math.isnan(reference[n])) for n in names)


def test_shared_seconds_add_up_to_at_most_the_call(nb201_case):
    """Shared work is split among its users, never counted twice: the seconds sum to at most the call's time."""
    import time

    net, x, y = nb201_case
    start = time.perf_counter()
    out = compute_proxies(net, x, y, seed=0)
    wall = time.perf_counter() - start
    seconds = [out[f"{p}_seconds"] for p in PROXY_NAMES]
    assert all(s > 0 for s in seconds) and sum(seconds) <= wall
