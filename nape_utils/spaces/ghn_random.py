"""DeepNets-1M: random DARTS-like networks (Knyazev et al., NeurIPS 2021, "Parameter Prediction for
Unseen Deep Architectures"; reference code ``facebookresearch/ppuda``: ``ppuda/deepnets1m/genotypes.py``
(``sample_genotype``, the 15 ops), ``ppuda/deepnets1m/net.py`` (``Network``, ``Cell``),
``ppuda/deepnets1m/ops.py`` and the generator ``experiments/net_generator.py``).

A spec is a genotype plus the network arguments the generator draws. The genotype has a normal and a
reduction cell with the same number of summation nodes (1–4); node ``k`` sums two ops applied to two
distinct earlier states (0, 1 = the cell inputs, ``j + 2`` = node ``j < k``); the cell output
concatenates the states in its ``concat`` list. Ops (15): none, max_pool_3x3, avg_pool_3x3,
skip_connect, sep_conv_3x3/5x5, dil_conv_3x3/5x5, conv_1x1, conv_7x1_1x7, conv_3x3/5x5/7x7, msa
(multi-head self-attention over spatial positions, as in ViT) and cse (channel squeeze-excite).

Canonical spec string: compact JSON, every node's two pairs sorted by (input, op), concat sorted::

    {"normal":[["conv_3x3",0],["msa",1],...],"normal_concat":[2,3],"reduce":[...],"reduce_concat":[2,3],
     "n_cells":8,"C_mult":2,"ks":3,"stem_type":0,"stem_pool":false,"norm":"bnorm","preproc":true,
     "fc_layers":1,"glob_avg":true}

Keys are the reference's ``net_args`` (the entries of ``deepnets1m_*_meta.json``); that form, with the
genotype nested under ``"genotype"`` and ``fc_dim``/``num_nodes``/``num_params`` keys, is accepted too.
Missing keys default to the plain configuration (concat = all nodes, C_mult 1, ks 3, stem_type 0, no
stem pool, bnorm, preproc, one fc layer, global pooling). ``n_cells`` ∈ [4, 18]; ``C_mult`` ∈ {1, 2}
(channels double at the two reduction cells); ``ks`` ∈ {3, 5, 7} is the first stem conv's kernel;
``stem_type`` 0 (conv-BN[-maxpool]) or 1 (DARTS' ImageNet stem); ``norm`` "bnorm" or null (no BN);
``preproc``: 1×1 ReLU-conv-BN on the cell inputs; ``fc_layers`` 1 or 2 (fc_dim 256); ``glob_avg``:
global average pooling, else the feature map is flattened. A network with an msa op is a "ViT": its stem
is a 3×3 stride-3 patch conv plus a learned position encoding and it never reduces spatially.

Network semantics follow ``Network``/``Cell`` exactly, including their handling of ``none``: a ``none``
op is *skipped* (not added as zeros), a node whose ops are all skipped or read missing states is
missing, missing states in the concat become zeros shaped like the first present one, a cell whose
concat states are all missing is missing. A spec whose network output is missing is invalid.
Differences from the reference, deliberate:

- ops, nodes, preprocessing and whole cells whose result never reaches the output are not built
  (the reference builds them but their parameters get no gradient; GHN's graphs, walked back from the
  output, leave them out too). :func:`reference_num_params` counts them as the reference does;
  ``flags(spec)["has_dead_ops"]`` says whether a spec has any;
- dropout with p = 0 and ``nn.Identity`` placeholders are left out; msa's einops/einsum are written as
  reshape/matmul (the same arithmetic) so that torch.fx can trace it;
- ``cse`` gates with Hardswish, as the reference does (its ``self.sigmoid = nn.Hardswish()``).

The reference normalises with ``BatchNorm2d(track_running_stats=False)`` ("bnorm" has no "track"):
batch statistics also in eval mode. The ``paper`` profile keeps that; the ``zoo`` profile tracks
running statistics so that evaluation is per example.

:meth:`GHNRandomSpace.sample` follows ``net_generator.py`` (train split): cells 4–18, nodes 1–4 (≤ 2
for deeper nets), ``none`` only with > 1 node, pooling-only reduction cells half of the time, random
concat drops, the rejection rules (cse without conv, > 1 cse or > 1 dense 5×5/7×7 conv in a cell, no
learnable op, > 10M parameters at CIFAR or ImageNet size, missing output) and the conditional choices
of preproc, glob_avg, norm, stem and fc layers. ``flags(spec)["in_generator_support"]`` tells whether
the generator could have produced a spec; sample and mutate only produce such specs.

Profiles: ``paper`` is the reference's CIFAR-10 network (C = 32, fc_dim 256, 32×32 input; every cell
count 4–18 builds and runs on CPU, no cap needed); ``zoo`` is C = 4, fc_dim 32, 2 attention heads on
16×16 input.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from ..checks import is_whole
from .base import ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES, Profile, Space
from .nb301 import DilConv, FactorizedReduce, SepConv, make_op
from .ops import ReLUConvBN, Zero

#: ``PRIMITIVES_DARTS_EXT`` of ``ppuda/deepnets1m/genotypes.py``, in its order.
OPS: tuple[str, ...] = (
    "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
    "dil_conv_3x3", "dil_conv_5x5", "conv_1x1", "conv_7x1_1x7", "conv_3x3", "conv_5x5", "conv_7x7",
    "msa", "cse",
)
#: ops allowed in a reduction cell drawn with ``only_pool`` (the first four; ``none`` needs > 1 node)
POOL_OPS = OPS[:4]
MIN_STEPS, MAX_STEPS = 1, 4
MIN_CELLS, MAX_CELLS = 4, 18
MAX_PARAMS = 10**7
CELLS = ("normal", "reduce")

Pair = tuple[str, int]


@dataclass(frozen=True)
class GHNSpec:
    """Parsed spec: the genotype (pairs in canonical order, sorted concat lists) and network arguments."""

    normal: tuple[Pair, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Pair, ...]
    reduce_concat: tuple[int, ...]
    n_cells: int = 8
    C_mult: int = 1
    ks: int = 3
    stem_type: int = 0
    stem_pool: bool = False
    norm: bool = True
    preproc: bool = True
    fc_layers: int = 1
    glob_avg: bool = True

    @property
    def steps(self) -> int:
        return len(self.normal) // 2

    def cell(self, kind: str) -> tuple[tuple[Pair, ...], tuple[int, ...]]:
        return (self.normal, self.normal_concat) if kind == "normal" else (self.reduce, self.reduce_concat)

    @property
    def is_vit(self) -> bool:
        return any(op == "msa" for op, _ in self.normal + self.reduce)


# ---------------------------------------------------------------------------------------------------
# parsing and validation
# ---------------------------------------------------------------------------------------------------
_FORMATS = ('accepted forms: canonical JSON {"normal": [[op, input], ...], "normal_concat": [...], '
            '"reduce": [...], "reduce_concat": [...], "n_cells": n, "C_mult": 1|2, "ks": 3|5|7, '
            '"stem_type": 0|1, "stem_pool": bool, "norm": "bnorm"|null, "preproc": bool, "fc_layers": 1|2, '
            '"glob_avg": bool}, or a DeepNets-1M meta entry {"genotype": {...}, "n_cells": ..., ...}')
_ARG_KEYS = ("n_cells", "C_mult", "ks", "stem_type", "stem_pool", "norm", "preproc", "fc_layers", "glob_avg")
_DEFAULTS = GHNSpec((), (), (), ())


def _check_pairs(kind: str, pairs: Any) -> tuple[Pair, ...]:
    if not isinstance(pairs, (list, tuple)) or not pairs:
        raise ValueError(f"{kind} cell must be a non-empty list of (op, input) pairs, got {pairs!r}")
    if len(pairs) % 2 or not MIN_STEPS <= len(pairs) // 2 <= MAX_STEPS:
        raise ValueError(f"{kind} cell must have 2 (op, input) pairs per summation node and "
                         f"{MIN_STEPS}-{MAX_STEPS} nodes, got {len(pairs)} pairs")
    out: list[Pair] = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"{kind} cell pair {i} must be an (op, input) pair, got {pair!r}")
        op, inp = pair
        if not isinstance(op, str) or op not in OPS:
            raise ValueError(f"unknown op {op!r} in {kind} cell pair {i}; allowed ops: {', '.join(OPS)}")
        if not is_whole(inp):
            raise ValueError(f"{kind} cell pair {i}: input must be an integer state index, got {inp!r}")
        node = i // 2
        if not 0 <= inp < node + 2:
            raise ValueError(f"{kind} cell pair {i}: input {inp} out of range for summation node {node}; "
                             f"node {node} takes inputs from 0..{node + 1} (0, 1 = cell inputs, 2.. = earlier nodes)")
        out.append((op, int(inp)))
    for node in range(len(out) // 2):
        a, b = out[2 * node], out[2 * node + 1]
        if a[1] == b[1]:
            raise ValueError(f"{kind} cell node {node}: both pairs take input {a[1]}; the two inputs of a node "
                             "must be distinct (the generator keeps the top-2 edges from distinct states)")
        out[2 * node], out[2 * node + 1] = sorted((a, b), key=lambda p: (p[1], p[0]))
    return tuple(out)


def _check_concat(kind: str, concat: Any, steps: int) -> tuple[int, ...]:
    if not isinstance(concat, (list, tuple, range)) or not concat or not all(is_whole(c) for c in concat):
        raise ValueError(f"{kind}_concat must be a non-empty list of node states, got {concat!r}")
    values = sorted(int(c) for c in concat)
    if len(set(values)) != len(values):
        raise ValueError(f"{kind}_concat lists a state twice: {list(concat)}")
    if values[0] < 2 or values[-1] > steps + 1:
        raise ValueError(f"{kind}_concat may only list summation nodes 2..{steps + 1}, got {list(concat)}")
    return tuple(values)


def _choice(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    ok = (value in allowed and is_whole(value)) if all(isinstance(a, int) for a in allowed) else value in allowed
    if not ok:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
    return int(value) if is_whole(value) else value


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be true or false, got {value!r}")
    return bool(value)


def _validate(s: GHNSpec) -> GHNSpec:
    """Check every rule, return the canonical parsed spec."""
    normal = _check_pairs("normal", s.normal)
    reduce = _check_pairs("reduce", s.reduce)
    if len(normal) != len(reduce):
        raise ValueError(f"normal and reduce cells must have the same number of summation nodes, got "
                         f"{len(normal) // 2} and {len(reduce) // 2}")
    steps = len(normal) // 2
    nc = _check_concat("normal", s.normal_concat, steps)
    rc = _check_concat("reduce", s.reduce_concat, steps)
    if not is_whole(s.n_cells) or not MIN_CELLS <= s.n_cells <= MAX_CELLS:
        raise ValueError(f"n_cells must be an integer in [{MIN_CELLS}, {MAX_CELLS}], got {s.n_cells!r}")
    out = GHNSpec(
        normal=normal, normal_concat=nc, reduce=reduce, reduce_concat=rc, n_cells=int(s.n_cells),
        C_mult=_choice("C_mult", s.C_mult, (1, 2)), ks=_choice("ks", s.ks, (3, 5, 7)),
        stem_type=_choice("stem_type", s.stem_type, (0, 1)), stem_pool=_check_bool("stem_pool", s.stem_pool),
        norm=_check_bool("norm", s.norm), preproc=_check_bool("preproc", s.preproc),
        fc_layers=_choice("fc_layers", s.fc_layers, (1, 2)), glob_avg=_check_bool("glob_avg", s.glob_avg),
    )
    if out.stem_pool and out.stem_type != 0:
        raise ValueError("stem_pool applies to the simple stem (stem_type 0) only")
    if not out.preproc and (len(nc) > 1 or len(rc) > 1 or out.C_mult > 1):
        raise ValueError("preproc must be true when a cell concatenates more than one node or C_mult > 1 "
                         "(the 1x1 preprocessing convs match the channels of the cell inputs)")
    if out.is_vit and not out.glob_avg:
        raise ValueError("a network with an msa op needs glob_avg: the reference's flattening head assumes "
                         "a CNN's spatial size")
    if _plan(out).output_missing:
        raise ValueError("the network output is missing: every path from the input to the output passes "
                         "through 'none' ops (the reference raises 'the network has invalid configuration')")
    return out


def _norm_value(value: Any) -> bool:
    if value is None or value in ("", "none"):
        return False
    if value == "bnorm":
        return True
    raise ValueError(f"norm must be \"bnorm\" or null, got {value!r}")


def _from_obj(obj: Any) -> GHNSpec:
    if not isinstance(obj, dict):
        raise ValueError(f"a ghn_random spec must be a JSON object; {_FORMATS}")
    obj = dict(obj)
    if "genotype" in obj:  # DeepNets-1M meta entry
        geno = obj.pop("genotype")
        if not isinstance(geno, dict):
            raise ValueError(f"genotype must be an object with normal, normal_concat, reduce, reduce_concat; {_FORMATS}")
        clash = set(geno) & set(obj)
        if clash:
            raise ValueError(f"keys {sorted(clash)} given both inside and outside genotype")
        obj.update(geno)
        fc_dim = obj.pop("fc_dim", 256)
        if fc_dim != 256:
            raise ValueError(f"fc_dim must be 256 (the generator's value; the width is set by the profile), got {fc_dim!r}")
        obj.pop("num_nodes", None)
        obj.pop("num_params", None)
    allowed = {"normal", "normal_concat", "reduce", "reduce_concat", *_ARG_KEYS}
    unknown = set(obj) - allowed
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)} in ghn_random spec; allowed keys: {sorted(allowed)}")
    missing = [k for k in ("normal", "reduce", "n_cells") if k not in obj]
    if missing:
        raise ValueError(f"ghn_random spec is missing {missing}; {_FORMATS}")
    normal, reduce = obj["normal"], obj["reduce"]
    steps = len(normal) // 2 if isinstance(normal, (list, tuple)) else 0
    every = list(range(2, steps + 2))
    args = {k: obj.get(k, getattr(_DEFAULTS, k)) for k in _ARG_KEYS}
    args["norm"] = _norm_value(obj["norm"]) if "norm" in obj else True
    return _validate(GHNSpec(normal=normal, normal_concat=obj.get("normal_concat", every), reduce=reduce,
                             reduce_concat=obj.get("reduce_concat", every), **args))


def _format(s: GHNSpec) -> str:
    s = _validate(s)
    obj = {
        "normal": [list(p) for p in s.normal], "normal_concat": list(s.normal_concat),
        "reduce": [list(p) for p in s.reduce], "reduce_concat": list(s.reduce_concat),
        "n_cells": s.n_cells, "C_mult": s.C_mult, "ks": s.ks, "stem_type": s.stem_type,
        "stem_pool": s.stem_pool, "norm": "bnorm" if s.norm else None, "preproc": s.preproc,
        "fc_layers": s.fc_layers, "glob_avg": s.glob_avg,
    }
    return json.dumps(obj, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------------
# static analysis: which states exist (the reference's None handling) and which reach the output
# ---------------------------------------------------------------------------------------------------
def is_reduction(cell: int, n_cells: int) -> bool:
    """The reference's reduction cells: ``n // 3`` and ``2n // 3`` (never cell 0)."""
    return cell in (n_cells // 3, 2 * n_cells // 3) and cell > 0


@dataclass(frozen=True)
class CellPlan:
    """One cell: present states, the pairs that run, what the output concatenates."""

    kind: str
    present: tuple[bool, ...]            # per state (0, 1, nodes): not None in the reference
    live_pairs: tuple[int, ...]          # pair indices whose result reaches the output
    live_nodes: tuple[int, ...]          # node states (2..) computed
    reads: tuple[bool, bool]             # whether cell inputs 0 and 1 are used
    concat: tuple[int, ...]              # states concatenated; -1 = zeros (a missing state)
    dummy: int                           # state the zeros are shaped like (-1: none needed)


@dataclass(frozen=True)
class NetPlan:
    cells: tuple[CellPlan | None, ...]   # None: the cell's output never reaches the network output
    present: tuple[bool, ...]            # per cell: its output exists
    stem_used: tuple[bool, bool]         # stem outputs s0 (index -2) and s1 (index -1) used
    output_missing: bool
    dead: bool                           # some op / preprocessing / cell is built by the reference but unused


def _cell_present(pairs: Sequence[Pair], concat: Sequence[int], a0: bool, a1: bool) -> tuple[list[bool], bool]:
    present = [a0, a1]
    for k in range(len(pairs) // 2):
        present.append(any(op != "none" and present[i] for op, i in pairs[2 * k:2 * k + 2]))
    return present, any(present[i] for i in concat)


def _cell_live(kind: str, pairs: Sequence[Pair], concat: Sequence[int], present: list[bool],
               preproc: bool = True) -> tuple[CellPlan, bool]:
    live = [False] * len(present)
    for i in concat:
        live[i] = present[i]
    live_pairs = []
    for k in reversed(range(len(pairs) // 2)):
        if not live[k + 2]:
            continue
        for j in (2 * k, 2 * k + 1):
            op, i = pairs[j]
            if op != "none" and present[i]:
                live_pairs.append(j)
                live[i] = True
    first = next((i for i in concat if present[i]), -1)
    missing = any(not present[i] for i in concat)
    plan = CellPlan(kind=kind, present=tuple(present), live_pairs=tuple(sorted(live_pairs)),
                    live_nodes=tuple(i for i in range(2, len(present)) if live[i]),
                    reads=(live[0], live[1]), concat=tuple(i if present[i] else -1 for i in concat),
                    dummy=first if missing else -1)
    built_by_reference = sum(1 for op, _ in pairs if op != "none")
    dead = len(live_pairs) < built_by_reference or (preproc and not (live[0] and live[1]))
    return plan, dead


def _plan(s: GHNSpec) -> NetPlan:
    n = s.n_cells
    pres: dict[int, bool] = {-2: True, -1: True}
    for c in range(n):
        pairs, concat = s.cell("reduce" if is_reduction(c, n) else "normal")
        _, pres[c] = _cell_present(pairs, concat, pres[c - 2], pres[c - 1])
    if not pres[n - 1]:
        return NetPlan((), tuple(pres[c] for c in range(n)), (False, False), True, True)
    needed = {n - 1}
    plans: dict[int, CellPlan] = {}
    dead = False
    for c in reversed(range(n)):
        kind = "reduce" if is_reduction(c, n) else "normal"
        pairs, concat = s.cell(kind)
        if c not in needed:
            dead = True
            continue
        present, _ = _cell_present(pairs, concat, pres[c - 2], pres[c - 1])
        plan, cell_dead = _cell_live(kind, pairs, concat, present, s.preproc)
        dead = dead or cell_dead
        plans[c] = plan
        if plan.reads[0]:
            needed.add(c - 2)
        if plan.reads[1]:
            needed.add(c - 1)
    stem_used = (-2 in needed, -1 in needed)
    if s.stem_type == 1 and not s.is_vit and stem_used != (True, True):
        # stem1 reads stem0; the reference builds both
        dead = dead or not stem_used[1]
    return NetPlan(tuple(plans.get(c) for c in range(n)), tuple(pres[c] for c in range(n)), stem_used,
                   False, dead)


# ---------------------------------------------------------------------------------------------------
# operations
# ---------------------------------------------------------------------------------------------------
def _set_norm(seq: nn.Sequential, norm: bool, track: bool) -> nn.Sequential:
    """The reference's ``get_norm_layer``: drop BatchNorms (norm None) or make them batch-statistics only."""
    kept = []
    for m in seq:
        if isinstance(m, nn.BatchNorm2d):
            if not norm:
                continue
            if not track:
                m = nn.BatchNorm2d(m.num_features, track_running_stats=False)
        kept.append(m)
    out = nn.Sequential.__new__(type(seq))
    nn.Sequential.__init__(out, *kept)
    return out


def _bn(c: int, norm: bool, track: bool) -> list[nn.Module]:
    return [nn.BatchNorm2d(c, track_running_stats=track)] if norm else []


class FactorizedReduceN(FactorizedReduce):
    """nb301's :class:`FactorizedReduce` with the reference's optional / non-tracking BatchNorm."""

    def __init__(self, c_in: int, c_out: int, norm: bool = True, track: bool = True):
        super().__init__(c_in, c_out)
        self.bn = nn.BatchNorm2d(c_out, track_running_stats=track) if norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        out = torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1)
        return out if self.bn is None else self.bn(out)


class Stride(nn.Module):
    """Spatial subsampling ``x[:, :, ::s, ::s]`` (cell input after a reduction, without preprocessing)."""

    def __init__(self, stride: int = 2):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :: self.stride, :: self.stride]


class MSA(nn.Module):
    """The reference's ``Transformer`` op (ViT block over the H·W positions): LayerNorm → multi-head
    self-attention → linear, residual; LayerNorm → Linear-GELU-Linear, residual; optional stride."""

    def __init__(self, dim: int, dim_out: int, heads: int = 8, stride: int = 1):
        super().__init__()
        if dim != dim_out:
            raise ValueError(f"msa keeps the channel count, got {dim} -> {dim_out}")
        dim_head = dim // heads
        if dim_head < 1:
            raise ValueError(f"msa with {heads} heads needs at least {heads} channels, got {dim}")
        self.heads, self.dim_head, self.stride = heads, dim_head, stride
        self.scale = dim_head ** -0.5
        inner = dim_head * heads
        self.ln1 = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_out = nn.Linear(inner, dim_out)
        self.ln2 = nn.LayerNorm(dim_out)
        self.ff = nn.Sequential(nn.Linear(dim, dim_out), nn.GELU(), nn.Linear(dim_out, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.size(0), x.size(1), x.size(2), x.size(3)
        t = x.flatten(2).transpose(1, 2)                                    # B, N, C
        qkv = self.to_qkv(self.ln1(t)).chunk(3, dim=-1)
        q = qkv[0].reshape(b, -1, self.heads, self.dim_head).transpose(1, 2)  # B, heads, N, d
        k = qkv[1].reshape(b, -1, self.heads, self.dim_head).transpose(1, 2)
        v = qkv[2].reshape(b, -1, self.heads, self.dim_head).transpose(1, 2)
        attn = (torch.matmul(q, k.transpose(-1, -2)) * self.scale).softmax(dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, -1, self.heads * self.dim_head)
        out = self.to_out(out) + t
        out = self.ff(self.ln2(out)) + out
        out = out.transpose(1, 2).reshape(b, c, h, w)
        if self.stride > 1:
            out = out[:, :, :: self.stride, :: self.stride]
        return out


class ChannelSE(nn.Module):
    """The reference's ``ChannelSELayer``: channel means → Linear(C, C/2) → ReLU → Linear(C/2, C) →
    Hardswish (sic) → scale the channels; optional stride."""

    def __init__(self, c: int, c_out: int, stride: int = 1, reduction: int = 2):
        super().__init__()
        if c != c_out:
            raise ValueError(f"cse keeps the channel count, got {c} -> {c_out}")
        self.stride = stride
        self.fc1 = nn.Linear(c, c // reduction)
        self.fc2 = nn.Linear(c // reduction, c)
        self.relu = nn.ReLU()
        self.gate = nn.Hardswish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.gate(self.fc2(self.relu(self.fc1(x.mean((2, 3))))))
        out = x * s.reshape(s.size(0), s.size(1), 1, 1)
        if self.stride > 1:
            out = out[:, :, :: self.stride, :: self.stride]
        return out


class PosEnc(nn.Module):
    """Learned position encoding added to the ViT stem output (``torch.randn`` initialised)."""

    def __init__(self, c: int, size: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, c, size, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight


def make_ghn_op(name: str, c_in: int, c_out: int, stride: int, norm: bool = True, track: bool = True,
                heads: int = 8) -> nn.Module:
    """One op of the reference's ``OPS`` table (``none`` is never built: it is skipped)."""
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        return make_op(name, c_in, stride)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduceN(c_in, c_out, norm, track)
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        return _set_norm(SepConv(c_in, c_out, int(name[-1]), stride), norm, track)
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        return _set_norm(DilConv(c_in, c_out, int(name[-1]), stride), norm, track)
    if name in ("conv_1x1", "conv_3x3", "conv_5x5", "conv_7x7"):
        k = int(name[-1])
        return _set_norm(ReLUConvBN(c_in, c_out, k, stride, k // 2), norm, track)
    if name == "conv_7x1_1x7":
        return nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, (1, 7), stride=(1, stride), padding=(0, 3), bias=False),
            nn.Conv2d(c_in, c_out, (7, 1), stride=(stride, 1), padding=(3, 0), bias=False),
            *_bn(c_out, norm, track),
        )
    if name == "msa":
        return MSA(c_in, c_out, heads=heads, stride=stride)
    if name == "cse":
        return ChannelSE(c_in, c_out, stride=stride)
    raise ValueError(f"unknown op {name!r}; allowed ops: {', '.join(OPS[1:])}")


# ---------------------------------------------------------------------------------------------------
# network
# ---------------------------------------------------------------------------------------------------
class GHNCell(nn.Module):
    """One cell of the reference's ``Network``, with only its live parts built (``prune=False``:
    everything the reference builds, unused parts idle)."""

    def __init__(self, plan: CellPlan, pairs: Sequence[Pair], c_prev_prev: int, c_prev: int, c_in: int,
                 c_out: int, reduction: bool, reduction_prev: bool, *, preproc: bool, is_vit: bool,
                 norm: bool, track: bool, heads: int, prune: bool = True):
        super().__init__()
        self.reduction = reduction
        want0 = plan.reads[0] or not prune
        want1 = plan.reads[1] or not prune
        if preproc:
            if reduction_prev and not is_vit:
                pre0 = FactorizedReduceN(c_prev_prev, c_out, norm, track) if want0 else None
            else:
                pre0 = _set_norm(ReLUConvBN(c_prev_prev, c_out, 1, 1, 0), norm, track) if want0 else None
            pre1 = _set_norm(ReLUConvBN(c_prev, c_out, 1, 1, 0), norm, track) if want1 else None
        else:
            pre0 = Stride(2) if (reduction_prev and not is_vit and want0) else None
            pre1 = None
        self.preprocess0, self.preprocess1 = pre0, pre1
        built = [j for j, (op, _) in enumerate(pairs) if op != "none" and (j in plan.live_pairs or not prune)]
        self.ops = nn.ModuleList(
            make_ghn_op(pairs[j][0], c_in if pairs[j][1] <= 1 else c_out, c_out,
                        2 if (reduction and pairs[j][1] < 2 and not is_vit) else 1, norm, track, heads)
            for j in built
        )
        slot = {j: k for k, j in enumerate(built)}
        steps = len(pairs) // 2
        # per node: (op slot, input state) of the pairs that run, in the reference's order
        self.terms: tuple[tuple[tuple[int, int], ...], ...] = tuple(
            tuple((slot[j], pairs[j][1]) for j in (2 * k, 2 * k + 1) if j in plan.live_pairs)
            for k in range(steps)
        )
        self.reads = plan.reads
        self.concat = plan.concat
        self.dummy = plan.dummy
        self.zero = Zero(1) if plan.dummy >= 0 else None
        self.multiplier = len(plan.concat)

    def forward(self, s0: torch.Tensor | None, s1: torch.Tensor | None) -> torch.Tensor:
        states: list[torch.Tensor | None] = [None] * (2 + len(self.terms))
        if self.reads[0]:
            states[0] = s0 if self.preprocess0 is None else self.preprocess0(s0)
        if self.reads[1]:
            states[1] = s1 if self.preprocess1 is None else self.preprocess1(s1)
        for k, terms in enumerate(self.terms):
            if terms:
                out = self.ops[terms[0][0]](states[terms[0][1]])
                for j, i in terms[1:]:
                    out = out + self.ops[j](states[i])
                states[k + 2] = out
        zeros = self.zero(states[self.dummy]) if self.zero is not None else None
        return torch.cat([states[i] if i >= 0 else zeros for i in self.concat], dim=1)


def _spatial_after(size: int, stride: int) -> int:
    return -(-size // stride)


@dataclass(frozen=True)
class CellLayout:
    """Channels and sizes of one cell, by the reference's bookkeeping in ``Network.__init__``."""

    c_prev_prev: int
    c_prev: int
    c_in: int          # channels of the ops reading the cell inputs
    c_out: int         # channels of the other ops and of every node
    reduction: bool
    reduction_prev: bool
    size_in: int       # spatial size of the cell input s1


@dataclass(frozen=True)
class Layout:
    C_stem: int
    stem_sizes: tuple[int, int]      # spatial sizes of s0, s1 after the stem
    pos_size: int                    # ViT position-encoding size (0 without msa)
    cells: tuple[CellLayout, ...]
    features: int                    # classifier input
    final_size: int


def layout(s: GHNSpec, C: int = 32, input_size: int = 32, is_imagenet_input: bool = False) -> Layout:
    """The reference's channel and size bookkeeping for a spec."""
    n, is_vit, preproc = s.n_cells, s.is_vit, s.preproc
    C_prev_prev = C_prev = C_curr = C_stem = C
    pos = 0
    if is_vit:
        k = 16 if is_imagenet_input else 3
        pos = (input_size + 2 * int(k < 4) - k) // k + 1
        sizes = (pos, pos)
    elif s.stem_type == 0:
        C_stem = C * (3 if (preproc and not is_imagenet_input) else 1)
        stride = 4 if is_imagenet_input else 1
        size = (input_size + 2 * (s.ks // 2) - s.ks) // stride + 1
        if s.stem_pool:
            size = _spatial_after(size, 2)
        sizes = (size, size)
        C_prev_prev = C_prev = C_stem
    else:
        stride = 2 if is_imagenet_input else 1
        size = _spatial_after((input_size + 2 * (s.ks // 2) - s.ks) // stride + 1, stride)
        sizes = (size, _spatial_after(size, 2))
    steps = len(s.normal_concat)
    cells = []
    size = sizes[1]
    reduction_prev = s.stem_type == 1
    for c in range(n):
        reduction = is_reduction(c, n)
        if reduction:
            C_curr *= s.C_mult
        reduction_next = is_reduction(c + 1, n)
        concat = s.reduce_concat if reduction else s.normal_concat
        cells.append(CellLayout(C_prev_prev, C_prev, C_curr if preproc else C_prev,
                                C_curr * (s.C_mult if reduction_next and steps == 1 and not preproc else 1),
                                reduction, reduction_prev, size))
        size = _spatial_after(size, 2) if (reduction and not is_vit) else size
        reduction_prev = reduction
        C_prev_prev, C_prev = C_prev, len(concat) * C_curr
    features = C_prev if s.glob_avg else C_prev * size ** 2
    return Layout(C_stem, sizes, pos, tuple(cells), features, size)


class GHNNetwork(nn.Module):
    """The reference's ``Network`` (``is_imagenet_input`` selects its ImageNet stems), no auxiliary head,
    no drop-path. ``prune=False`` also builds the parts that never reach the output, as the reference."""

    def __init__(self, s: GHNSpec, C: int = 32, num_classes: int = 10, input_size: int = 32,
                 in_channels: int = 3, fc_dim: int = 256, track: bool = False, heads: int = 8,
                 is_imagenet_input: bool = False, prune: bool = True):
        super().__init__()
        plan = _plan(s)
        if plan.output_missing:
            raise ValueError("the network output is missing (every path passes through 'none' ops)")
        lay = layout(s, C, input_size, is_imagenet_input)
        is_vit, norm, preproc, n = s.is_vit, s.norm, s.preproc, s.n_cells
        self.stem = self.stem0 = self.stem1 = self.pos_enc = None
        if is_vit:
            k = 16 if is_imagenet_input else 3
            self.stem0 = nn.Conv2d(in_channels, C, k, stride=k, bias=False, padding=int(k < 4))
            self.pos_enc = PosEnc(C, lay.pos_size)
        elif s.stem_type == 0:
            layers = [nn.Conv2d(in_channels, lay.C_stem, s.ks, stride=4 if is_imagenet_input else 1,
                                padding=s.ks // 2, bias=False), *_bn(lay.C_stem, norm, track)]
            if s.stem_pool:
                layers.append(nn.MaxPool2d(3, stride=2, padding=1))
            self.stem = nn.Sequential(*layers)
        else:
            stride = 2 if is_imagenet_input else 1
            self.stem0 = nn.Sequential(
                nn.Conv2d(in_channels, C // 2, s.ks, stride=stride, padding=s.ks // 2, bias=False),
                *_bn(C // 2, norm, track), nn.ReLU(inplace=False),
                nn.Conv2d(C // 2, C, 3, stride=stride, padding=1, bias=False), *_bn(C, norm, track),
            )
            if plan.stem_used[1] or not prune:
                self.stem1 = nn.Sequential(nn.ReLU(inplace=False), nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False),
                                           *_bn(C, norm, track))
        self.stem_type = -1 if is_vit else s.stem_type

        cells: dict[str, nn.Module] = {}
        for c, cl in enumerate(lay.cells):
            kind = "reduce" if cl.reduction else "normal"
            pairs, concat = s.cell(kind)
            cplan = plan.cells[c]
            if cplan is None:
                if prune:
                    continue
                present, _ = _cell_present(pairs, concat, plan.present[c - 2] if c >= 2 else True,
                                           plan.present[c - 1] if c >= 1 else True)
                cplan = replace(_cell_live(kind, pairs, concat, present)[0], reads=(False, False))
            if cl.size_in % 2 and cl.reduction and not is_vit:
                raise ValueError(f"cell {c} reduces an odd spatial size {cl.size_in}; use a larger input")
            cells[str(c)] = GHNCell(cplan, pairs, cl.c_prev_prev, cl.c_prev, c_in=cl.c_in, c_out=cl.c_out,
                                    reduction=cl.reduction, reduction_prev=cl.reduction_prev, preproc=preproc,
                                    is_vit=is_vit, norm=norm, track=track, heads=heads, prune=prune)
        self.cells = nn.ModuleDict(cells)
        self.live = tuple(c for c in range(n) if plan.cells[c] is not None)
        self.n_cells = n

        self.global_pooling = nn.AdaptiveAvgPool2d(1) if s.glob_avg else None
        fc: list[nn.Module] = [nn.Linear(lay.features, fc_dim if s.fc_layers > 1 else num_classes)]
        for i in range(s.fc_layers - 1):
            fc += [nn.ReLU(inplace=False), nn.Dropout(p=0.5),
                   nn.Linear(fc_dim, fc_dim if i < s.fc_layers - 2 else num_classes)]
        self.classifier = nn.Sequential(*fc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stem_type == -1:
            s0 = s1 = self.pos_enc(self.stem0(x))
        elif self.stem_type == 0:
            s0 = s1 = self.stem(x)
        else:
            s0 = self.stem0(x)
            s1 = self.stem1(s0) if self.stem1 is not None else None
        outs: dict[int, torch.Tensor | None] = {-2: s0, -1: s1}
        for c in self.live:
            outs[c] = self.cells[str(c)](outs.get(c - 2), outs.get(c - 1))
        out = outs[self.n_cells - 1]
        out = self.global_pooling(out) if self.global_pooling is not None else out
        return self.classifier(torch.flatten(out, 1))


def _op_params(name: str, c_in: int, c_out: int, stride: int, norm: bool, heads: int) -> int:
    bn = (lambda c: 2 * c) if norm else (lambda c: 0)
    if name in ("none", "max_pool_3x3", "avg_pool_3x3") or (name == "skip_connect" and stride == 1):
        return 0
    if name == "skip_connect":
        return 2 * c_in * (c_out // 2) + bn(c_out)
    if name.startswith("sep_conv"):
        k = int(name[-1])
        return 2 * c_in * k * k + c_in * c_in + bn(c_in) + c_in * c_out + bn(c_out)
    if name.startswith("dil_conv"):
        k = int(name[-1])
        return c_in * k * k + c_in * c_out + bn(c_out)
    if name == "conv_7x1_1x7":
        return 7 * c_in * c_in + 7 * c_in * c_out + bn(c_out)
    if name.startswith("conv"):
        k = int(name[-1])
        return c_in * c_out * k * k + bn(c_out)
    if name == "msa":
        inner = (c_in // heads) * heads
        return (2 * c_in + 3 * c_in * inner + inner * c_out + c_out + 2 * c_out
                + c_in * c_out + c_out + c_out * c_in + c_in)
    if name == "cse":
        r = c_in // 2
        return c_in * r + r + r * c_in + c_in
    raise ValueError(f"unknown op {name!r}")


def _reference_num_params(s: GHNSpec, is_imagenet_input: bool = False, C: int = 32, num_classes: int = 10,
                          fc_dim: int = 256, heads: int = 8, in_channels: int = 3) -> int:
    """Arithmetic count of the reference network's parameters (everything it builds)."""
    input_size = 224 if is_imagenet_input else 32
    lay = layout(s, C, input_size, is_imagenet_input)
    bn = (lambda c: 2 * c) if s.norm else (lambda c: 0)
    if s.is_vit:
        k = 16 if is_imagenet_input else 3
        total = in_channels * C * k * k + C * lay.pos_size ** 2
    elif s.stem_type == 0:
        total = in_channels * lay.C_stem * s.ks ** 2 + bn(lay.C_stem)
    else:
        total = (in_channels * (C // 2) * s.ks ** 2 + bn(C // 2) + (C // 2) * C * 9 + bn(C)
                 + C * C * 9 + bn(C))
    for cl in lay.cells:
        pairs = s.reduce if cl.reduction else s.normal
        if s.preproc:
            if cl.reduction_prev and not s.is_vit:
                total += 2 * cl.c_prev_prev * (cl.c_out // 2) + bn(cl.c_out)
            else:
                total += cl.c_prev_prev * cl.c_out + bn(cl.c_out)
            total += cl.c_prev * cl.c_out + bn(cl.c_out)
        for op, i in pairs:
            stride = 2 if (cl.reduction and i < 2 and not s.is_vit) else 1
            total += _op_params(op, cl.c_in if i <= 1 else cl.c_out, cl.c_out, stride, s.norm, heads)
    out1 = fc_dim if s.fc_layers > 1 else num_classes
    total += lay.features * out1 + out1
    if s.fc_layers > 1:
        total += fc_dim * num_classes + num_classes
    return total


def reference_num_params(text: str, is_imagenet_input: bool = False) -> int:
    """Parameters of the reference's ``Network(C=32, num_classes=10, fc_dim=256, ...)`` for a spec at
    CIFAR (or ImageNet) input, counting the parts that never reach the output, as the generator's
    ``capacity(model)`` does."""
    return _reference_num_params(GHNRandomSpace().parse(text), is_imagenet_input)


# ---------------------------------------------------------------------------------------------------
# the generator's distribution
# ---------------------------------------------------------------------------------------------------
def _generator_rejects(s: GHNSpec) -> str:
    """Why ``net_generator.py`` (train split) would never produce ``s`` ('' if it could)."""
    ops = [op for op, _ in s.normal + s.reduce]
    steps = s.steps
    if s.n_cells > 10 and steps > 2:
        return "more than 2 nodes needs n_cells <= 10 (deep_layers)"
    if steps == 1 and "none" in ops:
        return "'none' needs more than one node"
    if s.normal_concat != s.reduce_concat:
        return "the generator uses one concat list for both cells"
    if s.normal_concat[-1] != steps + 1:
        return "the generator always concatenates the last node"
    is_vit = "msa" in ops
    is_cse = "cse" in ops
    is_conv = any("conv" in op for op in ops)
    if is_cse and not is_conv:
        return "cse without a conv op"
    if any(sum(op == "cse" for op, _ in cell) > 1 for cell in (s.normal, s.reduce)):
        return "more than one cse in a cell"
    if any(sum(op in ("conv_5x5", "conv_7x7") for op, _ in cell) > 1 for cell in (s.normal, s.reduce)):
        return "more than one conv_5x5/conv_7x7 in a cell"
    if not (is_cse or is_vit or is_conv):
        return "no learnable op"
    if not s.preproc and (steps > 1 or s.C_mult > 1):
        return "preproc is always on with more than one node or C_mult 2"
    if not s.glob_avg and (is_vit or s.n_cells > 10):
        return "glob_avg is forced for msa networks and n_cells > 10"
    if not s.norm and not (s.n_cells <= 5 and steps <= 2):
        return "no BN only for n_cells <= 5 and <= 2 nodes"
    for imagenet in (False, True):
        if _reference_num_params(s, imagenet) > MAX_PARAMS:
            return f"more than {MAX_PARAMS:,} parameters at {'ImageNet' if imagenet else 'CIFAR'} size"
    return ""


def _sample_genotype(rng: np.random.Generator, steps: int, only_pool: bool, allow_none: bool,
                     drop_concat: bool) -> tuple[list[Pair], list[Pair], list[int]]:
    """``sample_genotype``: per node two distinct inputs uniformly, ops uniformly over the allowed ones
    (argmax of i.i.d. random logits is uniform; ranking rows by their max picks a uniform pair)."""
    def cell(allowed: Sequence[str]) -> list[Pair]:
        pairs: list[Pair] = []
        for i in range(steps):
            for j in sorted(rng.choice(i + 2, size=2, replace=False).tolist()):
                pairs.append((allowed[int(rng.integers(len(allowed)))], int(j)))
        return pairs
    ops = OPS if allow_none else OPS[1:]
    normal = cell(ops)
    reduce = cell([op for op in POOL_OPS if allow_none or op != "none"] if only_pool else ops)
    if drop_concat:
        concat = [i for i in range(2, steps + 2) if i == steps + 1 or rng.random() > 0.5]
    else:
        concat = list(range(2, steps + 2))
    return normal, reduce, concat


# ---------------------------------------------------------------------------------------------------
# the space
# ---------------------------------------------------------------------------------------------------
class GHNRandomSpace(Space):
    """DeepNets-1M random networks; see the module docstring for the spec string."""

    name = "ghn_random"
    profiles = {
        "paper": Profile("paper", (3, 32, 32), 10,
                         {"C": 32, "fc_dim": 256, "track_running_stats": False, "msa_heads": 8}),
        "zoo": Profile("zoo", ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES,
                       {"C": 4, "fc_dim": 32, "track_running_stats": True, "msa_heads": 2}),
    }

    # -- spec strings -----------------------------------------------------------------------------
    def parse(self, text: str) -> GHNSpec:
        if isinstance(text, GHNSpec):
            return _validate(text)
        if isinstance(text, dict):
            return _from_obj(text)
        if not isinstance(text, str):
            raise ValueError(f"a ghn_random spec must be a string, got {type(text).__name__}; {_FORMATS}")
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"malformed JSON spec for ghn_random: {e}; {_FORMATS}") from None
        return _from_obj(obj)

    def format(self, parsed: GHNSpec) -> str:
        return _format(parsed)

    def flags(self, text: str) -> dict[str, bool]:
        s = self.parse(text)
        ops = [op for op, _ in s.normal + s.reduce]
        return {"is_vit": s.is_vit, "has_none": "none" in ops, "has_dead_ops": _plan(s).dead,
                "in_generator_support": _generator_rejects(s) == ""}

    def generator_rejects(self, text: str) -> str:
        """Why the reference generator could not have produced ``text`` ('' if it could)."""
        return _generator_rejects(self.parse(text))

    # -- search -----------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> str:
        """One network of ``net_generator.py``'s train split (see the module docstring)."""
        while True:
            layers = int(rng.integers(MIN_CELLS, MAX_CELLS + 1))
            deep_layers = int(rng.choice([7, 8, 9, 10]))
            steps = int(rng.integers(1, (MAX_STEPS if layers <= deep_layers else 2) + 1))
            only_pool = bool(rng.random() > 0.5)
            drop_concat = bool(rng.random() > 0.5) if steps > 1 else False
            normal, reduce, concat = _sample_genotype(rng, steps, only_pool, steps > 1, drop_concat)
            ks = int(rng.choice([3, 5, 7]))
            ops = [op for op, _ in normal + reduce]
            is_vit, is_cse = "msa" in ops, "cse" in ops
            is_conv = any("conv" in op for op in ops)
            is_cse2 = any(sum(op == "cse" for op, _ in cell) > 1 for cell in (normal, reduce))
            is_conv_large = any(sum(op in ("conv_5x5", "conv_7x7") for op, _ in cell) > 1 for cell in (normal, reduce))
            if (is_cse and not is_conv) or is_cse2 or is_conv_large or not (is_cse or is_vit or is_conv):
                continue
            c_mult = int(rng.choice([1, 2]))
            preproc = True if (steps > 1 or c_mult > 1) else bool(not is_vit or rng.random() > 0.8)
            glob_avg = bool(is_vit or layers > deep_layers or rng.random() > 0.1)
            norm = bool(rng.choice([True, False])) if (layers <= MIN_CELLS + 1 and steps <= 2) else True
            stem_type = int(rng.choice([0, 1]))
            stem_pool = bool(stem_type == 0 and rng.random() > 0.5)
            fc_layers = int(rng.integers(1, 3))
            s = GHNSpec(tuple(normal), tuple(concat), tuple(reduce), tuple(concat), n_cells=layers,
                        C_mult=c_mult, ks=ks, stem_type=stem_type, stem_pool=stem_pool, norm=norm,
                        preproc=preproc, fc_layers=fc_layers, glob_avg=glob_avg)
            try:
                s = _validate(s)
            except ValueError:  # missing output: the reference fails to build its graph and skips it
                continue
            if any(_reference_num_params(s, imagenet) > MAX_PARAMS for imagenet in (False, True)):
                continue
            return _format(s)

    def mutate(self, text: str, rng: np.random.Generator) -> str:
        """One local change that stays in the generator's support: an op or an input of one pair, a
        concat member, one node more or less (both cells), n_cells ± 1, or one network argument."""
        s = self.parse(text)
        old = _format(s)
        for _ in range(1000):
            child = self._mutation(s, rng)
            if child is None:
                continue
            try:
                child = _validate(child)
            except ValueError:
                continue
            out = _format(child)
            if out != old and _generator_rejects(child) == "":
                return out
        raise ValueError(f"no valid mutation of {old} found in 1000 draws")

    @staticmethod
    def _mutation(s: GHNSpec, rng: np.random.Generator) -> GHNSpec | None:
        kind = CELLS[int(rng.integers(2))]
        pairs = list(s.cell(kind)[0])
        steps = s.steps
        what = int(rng.integers(12))
        if what == 0:  # op of one pair
            j = int(rng.integers(len(pairs)))
            choices = [o for o in OPS if o != pairs[j][0]]
            pairs[j] = (choices[int(rng.integers(len(choices)))], pairs[j][1])
            return replace(s, **{kind: tuple(pairs)})
        if what == 1:  # input of one pair
            j = int(rng.integers(len(pairs)))
            taken = {pairs[j][1], pairs[j ^ 1][1]}
            choices = [i for i in range(j // 2 + 2) if i not in taken]
            if not choices:
                return None
            pairs[j] = (pairs[j][0], choices[int(rng.integers(len(choices)))])
            return replace(s, **{kind: tuple(pairs)})
        if what == 2:  # concat membership of a node other than the last (both cells)
            if steps < 2:
                return None
            node = int(rng.integers(2, steps + 1))
            concat = set(s.normal_concat) ^ {node}
            return replace(s, normal_concat=tuple(sorted(concat)), reduce_concat=tuple(sorted(concat)))
        if what == 3:  # one node more or less (both cells)
            if rng.random() < 0.5:
                if steps >= MAX_STEPS:
                    return None
                new = {}
                for k in CELLS:
                    inputs = sorted(rng.choice(steps + 2, size=2, replace=False).tolist())
                    new[k] = s.cell(k)[0] + tuple((OPS[int(rng.integers(len(OPS)))], int(i)) for i in inputs)
                concat = tuple(sorted(set(s.normal_concat) | {steps + 2}))
                return replace(s, normal=new["normal"], reduce=new["reduce"], normal_concat=concat,
                               reduce_concat=concat)
            if steps <= MIN_STEPS:
                return None
            concat = tuple(sorted((set(s.normal_concat) - {steps + 1}) | {steps}))
            return replace(s, normal=s.normal[:-2], reduce=s.reduce[:-2], normal_concat=concat,
                           reduce_concat=concat)
        if what == 4:
            return replace(s, n_cells=s.n_cells + int(rng.choice([-1, 1])))
        if what == 5:
            return replace(s, C_mult=3 - s.C_mult)
        if what == 6:
            return replace(s, ks=int(rng.choice([k for k in (3, 5, 7) if k != s.ks])))
        if what == 7:
            return replace(s, stem_type=1 - s.stem_type, stem_pool=False)
        if what == 8:
            return replace(s, stem_pool=not s.stem_pool)
        if what == 9:
            return replace(s, norm=not s.norm)
        if what == 10:
            return replace(s, preproc=not s.preproc) if rng.random() < 0.5 else replace(s, fc_layers=3 - s.fc_layers)
        return replace(s, glob_avg=not s.glob_avg)

    # -- networks ---------------------------------------------------------------------------------
    def build(self, text: str, profile: str | Profile = "paper") -> nn.Module:
        """The reference network of a spec at a profile (a name or a :class:`Profile` with options
        ``C``, ``fc_dim``, ``track_running_stats``, ``msa_heads``)."""
        s = self.parse(text)
        p = profile if isinstance(profile, Profile) else self.profile(profile)
        c, h, w = p.input_shape
        if h != w:
            raise ValueError(f"ghn_random needs a square input, got {h}×{w}")
        return GHNNetwork(s, C=int(p["C"]), num_classes=p.num_classes, input_size=h, in_channels=c,
                          fc_dim=int(p.options.get("fc_dim", 256)),
                          track=bool(p.options.get("track_running_stats", False)),
                          heads=int(p.options.get("msa_heads", 8)))

    def input_shape(self, profile: str | Profile = "paper") -> tuple[int, int, int, int]:
        p = profile if isinstance(profile, Profile) else self.profile(profile)
        return (1, *p.input_shape)


__all__ = ["OPS", "ChannelSE", "GHNCell", "GHNNetwork", "GHNRandomSpace", "GHNSpec", "MSA", "PosEnc",
           "Stride", "make_ghn_op", "reference_num_params"]
