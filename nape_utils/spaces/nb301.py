"""NAS-Bench-301: the DARTS search space (Liu et al., 2019; Siems et al., 2020).

A spec is a DARTS *genotype*: a normal and a reduction cell, each 8 ``(op, input)`` pairs. Pairs
``2k`` and ``2k+1`` feed intermediate node ``k`` (k = 0..3); an input is 0 or 1 (the outputs of the two
previous cells) or ``j + 2`` (intermediate node ``j < k``); the two inputs of one node are distinct.
The cell output concatenates the four intermediate nodes (``concat = [2, 3, 4, 5]``).

Canonical spec string: compact JSON, the two pairs of every node sorted by input (then op)::

    {"normal":[["sep_conv_3x3",0],["sep_conv_3x3",1],...],"normal_concat":[2,3,4,5],
     "reduce":[["max_pool_3x3",0],...],"reduce_concat":[2,3,4,5]}

Also accepted: NASLib's compact form (keys of ``naslib/data/zc_nasbench301.json``), two lists of 8
``(input, op_id)`` pairs, e.g. ``[[(0, 4), (1, 3), ...], [(0, 3), ...]]`` or the same with tuples,
op ids as in :data:`COMPACT_OPS`; and the ``Genotype(normal=[('sep_conv_3x3', 0), ...],
normal_concat=range(2, 6), reduce=[...], reduce_concat=range(2, 6))`` repr printed by DARTS code.

The ``paper`` profile is DARTS' CIFAR-10 evaluation network ``NetworkCIFAR`` as NAS-Bench-301 trains it
(C=32, 8 cells, no auxiliary head); :data:`DARTS_CIFAR10_PROFILE` is the size of the DARTS paper
(C=36, 20 cells) and :meth:`NB301Space.build` accepts a :class:`~nape_utils.spaces.base.Profile`
directly for such custom sizes.
"""
from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from ..checks import is_whole
from .base import ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES, Profile, Space
from .ops import ReLUConvBN

#: NB-301's operations in NASLib's compact id order (``none`` is not part of NB-301's space).
COMPACT_OPS: tuple[str, ...] = (
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
OPS: frozenset[str] = frozenset(COMPACT_OPS)
NUM_NODES = 4  # intermediate nodes per cell
NUM_PAIRS = 2 * NUM_NODES
CONCAT: tuple[int, ...] = (2, 3, 4, 5)
CELLS = ("normal", "reduce")

#: The published DARTS (second order) genotype, "DARTS_V2" in DARTS' ``cnn/genotypes.py``.
DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=range(2, 6))"
)

#: DARTS' own CIFAR-10 evaluation size (``train.py``: 36 initial channels, 20 cells), no auxiliary head.
DARTS_CIFAR10_PROFILE = Profile(
    "darts_cifar10", (3, 32, 32), 10,
    {"C": 36, "layers": 20, "stem_multiplier": 3, "reduction_cells": (6, 13)},
)

Pair = tuple[str, int]


@dataclass(frozen=True)
class Genotype:
    """Parsed NB-301 spec: per cell 8 ``(op, input)`` pairs in canonical order, and the concat list."""

    normal: tuple[Pair, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Pair, ...]
    reduce_concat: tuple[int, ...]

    def cell(self, kind: str) -> tuple[Pair, ...]:
        return self.normal if kind == "normal" else self.reduce


# ---------------------------------------------------------------------------------------------------
# parsing and validation
# ---------------------------------------------------------------------------------------------------
_FORMATS = (
    "accepted forms: canonical JSON {\"normal\": [[op, input], ...8], \"normal_concat\": [2,3,4,5], "
    "\"reduce\": [...8], \"reduce_concat\": [2,3,4,5]}; NASLib compact [[(input, op_id), ...8], "
    "[...8]]; or a DARTS Genotype(normal=[...], normal_concat=..., reduce=[...], reduce_concat=...) repr"
)


def _check_cell(kind: str, pairs: Any) -> tuple[Pair, ...]:
    """Validate one cell's (op, input) pairs and return them with every node's pair sorted."""
    if not isinstance(pairs, (list, tuple)):
        raise ValueError(f"{kind} cell must be a list of {NUM_PAIRS} (op, input) pairs, got {pairs!r}")
    if len(pairs) != NUM_PAIRS:
        raise ValueError(
            f"{kind} cell must have exactly {NUM_PAIRS} (op, input) pairs (two per intermediate node "
            f"0..{NUM_NODES - 1}), got {len(pairs)}; give pairs 2k and 2k+1 for every node k"
        )
    out: list[Pair] = []
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"{kind} cell pair {i} must be an (op, input) pair, got {pair!r}")
        op, inp = pair
        if not isinstance(op, str):
            raise ValueError(f"{kind} cell pair {i}: op must be a name string, got {op!r}")
        if op not in OPS:
            hint = " ('none' is not in NB-301's space)" if op == "none" else ""
            raise ValueError(
                f"unknown op {op!r} in {kind} cell pair {i}{hint}; allowed ops: {', '.join(COMPACT_OPS)}"
            )
        if not is_whole(inp):
            raise ValueError(f"{kind} cell pair {i}: input must be an integer node index, got {inp!r}")
        node = i // 2
        if not 0 <= inp < node + 2:
            raise ValueError(
                f"{kind} cell pair {i}: input {inp} out of range for intermediate node {node}; "
                f"node {node} (pairs {2 * node}, {2 * node + 1}) takes inputs from 0..{node + 1} "
                f"(0, 1 = cell inputs, 2.. = earlier intermediate nodes)"
            )
        out.append((op, int(inp)))
    for node in range(NUM_NODES):
        a, b = out[2 * node], out[2 * node + 1]
        if a[1] == b[1]:
            raise ValueError(
                f"{kind} cell intermediate node {node}: both pairs ({2 * node}, {2 * node + 1}) take "
                f"input {a[1]}; the two inputs of a node must be distinct (DARTS keeps the top-2 edges "
                f"from distinct predecessors): change one of them"
            )
        out[2 * node], out[2 * node + 1] = sorted((a, b), key=lambda p: (p[1], p[0]))
    return tuple(out)


def _check_concat(kind: str, concat: Any) -> tuple[int, ...]:
    try:
        values = tuple(int(c) if is_whole(c) else c for c in concat)
    except TypeError:
        values = None
    if values != CONCAT:
        raise ValueError(
            f"{kind}_concat must be [2, 3, 4, 5] (every intermediate node is concatenated in NB-301), "
            f"got {concat!r}"
        )
    return CONCAT


def _genotype(normal: Any, normal_concat: Any, reduce: Any, reduce_concat: Any) -> Genotype:
    return Genotype(
        normal=_check_cell("normal", normal),
        normal_concat=_check_concat("normal", normal_concat),
        reduce=_check_cell("reduce", reduce),
        reduce_concat=_check_concat("reduce", reduce_concat),
    )


def _parse_json(text: str) -> Genotype:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"malformed JSON spec for nb301: {e}; {_FORMATS}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"nb301 JSON spec must be an object; {_FORMATS}")
    allowed = {"normal", "normal_concat", "reduce", "reduce_concat"}
    unknown = set(obj) - allowed
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)} in nb301 JSON spec; allowed keys: {sorted(allowed)}")
    missing = {"normal", "reduce"} - set(obj)
    if missing:
        raise ValueError(f"nb301 JSON spec is missing {sorted(missing)}; {_FORMATS}")
    return _genotype(obj["normal"], obj.get("normal_concat", list(CONCAT)),
                     obj["reduce"], obj.get("reduce_concat", list(CONCAT)))


def _literal(node: ast.AST) -> Any:
    """A literal, or ``range(a, b)`` / ``list(range(a, b))`` as a list (DARTS prints concat that way)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        if node.func.id == "range":
            return list(range(*(int(_literal(a)) for a in node.args)))
        if node.func.id == "list" and len(node.args) == 1:
            return list(_literal(node.args[0]))
    return ast.literal_eval(node)


def _parse_genotype_repr(text: str) -> Genotype:
    try:
        call = ast.parse(text, mode="eval").body
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "Genotype"):
            raise ValueError("not a Genotype(...) call")
        fields = ["normal", "normal_concat", "reduce", "reduce_concat"]
        if len(call.args) > len(fields):
            raise ValueError("too many positional fields")
        values = {f: _literal(a) for f, a in zip(fields, call.args)}
        for kw in call.keywords:
            if kw.arg not in fields or kw.arg in values:
                raise ValueError(f"unexpected or repeated field {kw.arg!r}")
            values[kw.arg] = _literal(kw.value)
    except (SyntaxError, ValueError, TypeError) as e:
        raise ValueError(f"malformed DARTS Genotype repr ({e}); {_FORMATS}") from None
    missing = [f for f in ("normal", "reduce") if f not in values]
    if missing:
        raise ValueError(f"DARTS Genotype repr is missing {missing}; {_FORMATS}")
    return _genotype(values["normal"], values.get("normal_concat", list(CONCAT)),
                     values["reduce"], values.get("reduce_concat", list(CONCAT)))


def _parse_compact(text: str) -> Genotype:
    try:
        obj = ast.literal_eval(text)
    except (SyntaxError, ValueError) as e:
        raise ValueError(f"malformed NASLib compact spec ({e}); {_FORMATS}") from None
    if not isinstance(obj, (list, tuple)) or len(obj) != 2:
        raise ValueError(f"NASLib compact spec must be two cells (normal, reduce); {_FORMATS}")
    cells = []
    for kind, cell in zip(CELLS, obj):
        if not isinstance(cell, (list, tuple)):
            raise ValueError(f"NASLib compact {kind} cell must be a list of (input, op_id) pairs")
        pairs = []
        for i, pair in enumerate(cell):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not all(map(is_whole, pair)):
                raise ValueError(f"NASLib compact {kind} cell pair {i} must be (input, op_id) integers, got {pair!r}")
            inp, op_id = pair
            if not 0 <= op_id < len(COMPACT_OPS):
                ids = ", ".join(f"{j}={name}" for j, name in enumerate(COMPACT_OPS))
                raise ValueError(f"unknown op id {op_id} in NASLib compact {kind} cell pair {i}; allowed ops: {ids}")
            pairs.append((COMPACT_OPS[op_id], inp))
        cells.append(pairs)
    return _genotype(cells[0], CONCAT, cells[1], CONCAT)


def _format(g: Genotype) -> str:
    g = _genotype(g.normal, g.normal_concat, g.reduce, g.reduce_concat)  # validates and sorts
    obj = {
        "normal": [list(p) for p in g.normal],
        "normal_concat": list(g.normal_concat),
        "reduce": [list(p) for p in g.reduce],
        "reduce_concat": list(g.reduce_concat),
    }
    return json.dumps(obj, separators=(",", ":"))


def to_compact(text_or_genotype: str | Genotype) -> tuple[tuple[tuple[int, int], ...], ...]:
    """NASLib's compact tuple ``((normal pairs), (reduce pairs))`` of (input, op_id), canonical order."""
    g = NB301Space().parse(text_or_genotype) if isinstance(text_or_genotype, str) else text_or_genotype
    return tuple(tuple((inp, COMPACT_OPS.index(op)) for op, inp in g.cell(kind)) for kind in CELLS)


# ---------------------------------------------------------------------------------------------------
# network
# ---------------------------------------------------------------------------------------------------
class FactorizedReduce(nn.Module):
    """ReLU → two 1×1 stride-2 convs (the second shifted one pixel) → concat → BatchNorm.

    Halves the spatial size; each conv gives ``c_out // 2`` channels (DARTS' skip_connect at stride 2
    and the preprocessing after a reduction cell)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even c_out, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, padding=0, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


class SepConv(nn.Sequential):
    """DARTS separable conv, applied twice: (ReLU → depthwise k×k → 1×1 → BN) × 2; stride on the first."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int):
        pad = kernel // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=pad, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_in, 1, padding=0, bias=False),
            nn.BatchNorm2d(c_in, affine=True),
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=1, padding=pad, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, padding=0, bias=False),
            nn.BatchNorm2d(c_out, affine=True),
        )


class DilConv(nn.Sequential):
    """DARTS dilated separable conv: ReLU → depthwise k×k (dilation 2) → 1×1 → BN."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, dilation: int = 2):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=dilation * (kernel // 2),
                      dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, padding=0, bias=False),
            nn.BatchNorm2d(c_out, affine=True),
        )


def make_op(name: str, c: int, stride: int) -> nn.Module:
    """One DARTS operation on ``c`` channels (``OPS[name](C, stride, affine=True)`` in DARTS)."""
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        return SepConv(c, c, int(name[-1]), stride)
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        return DilConv(c, c, int(name[-1]), stride)
    raise ValueError(f"unknown op {name!r}; allowed ops: {', '.join(COMPACT_OPS)}")


class Cell(nn.Module):
    """A DARTS evaluation cell: preprocess both inputs to ``c`` channels, 4 nodes, concat.

    Node ``k`` = ``op[2k](states[in[2k]]) + op[2k+1](states[in[2k+1]])``; in a reduction cell the ops
    reading the cell inputs (0, 1) have stride 2. Output: ``4 * c`` channels."""

    def __init__(self, pairs: Sequence[Pair], concat: Sequence[int], c_prev_prev: int, c_prev: int,
                 c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(c_prev_prev, c)
        else:
            self.preprocess0 = ReLUConvBN(c_prev_prev, c, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(c_prev, c, 1, 1, 0)
        self.ops = nn.ModuleList(
            make_op(op, c, 2 if reduction and inp < 2 else 1) for op, inp in pairs
        )
        self.indices: tuple[int, ...] = tuple(inp for _, inp in pairs)
        self.concat: tuple[int, ...] = tuple(concat)
        self.multiplier = len(self.concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for k in range(len(self.indices) // 2):
            h1 = self.ops[2 * k](states[self.indices[2 * k]])
            h2 = self.ops[2 * k + 1](states[self.indices[2 * k + 1]])
            states.append(h1 + h2)
        return torch.cat([states[i] for i in self.concat], dim=1)


def reduction_cells(layers: int) -> tuple[int, int]:
    """Indices of the two reduction cells in a DARTS network of ``layers`` cells."""
    return (layers // 3, 2 * layers // 3)


class DARTSNetwork(nn.Module):
    """DARTS ``NetworkCIFAR`` without the auxiliary head (and without drop-path, a training device).

    Stem conv 3×3 to ``stem_multiplier * C`` + BN; ``layers`` cells, channels doubling at the two
    reduction cells (``layers // 3``, ``2 * layers // 3``); global average pool → linear classifier."""

    def __init__(self, genotype: Genotype, C: int, layers: int, num_classes: int,
                 in_channels: int = 3, stem_multiplier: int = 3, stem_stride: int = 1):
        super().__init__()
        c_curr = stem_multiplier * C
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c_curr, 3, stride=stem_stride, padding=1, bias=False),
            nn.BatchNorm2d(c_curr),
        )
        c_prev_prev, c_prev, c_curr = c_curr, c_curr, C
        reductions = reduction_cells(layers)
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c_curr *= 2
            pairs, concat = (genotype.reduce, genotype.reduce_concat) if reduction else (
                genotype.normal, genotype.normal_concat)
            cell = Cell(pairs, concat, c_prev_prev, c_prev, c_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, cell.multiplier * c_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        out = self.global_pooling(s1)
        return self.classifier(torch.flatten(out, 1))


# ---------------------------------------------------------------------------------------------------
# the space
# ---------------------------------------------------------------------------------------------------
class NB301Space(Space):
    """NAS-Bench-301 / DARTS cells; see the module docstring for the spec string."""

    name = "nb301"
    profiles = {
        "paper": Profile(
            "paper", (3, 32, 32), 10,
            {"C": 32, "layers": 8, "stem_multiplier": 3, "reduction_cells": reduction_cells(8)},
        ),
        "zoo": Profile(
            "zoo", ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES,
            {"C": 8, "layers": 5, "stem_multiplier": 3, "reduction_cells": reduction_cells(5), "stem_stride": 2,
             "channels_last": True},
        ),
    }

    # -- spec strings -----------------------------------------------------------------------------
    def parse(self, text: str) -> Genotype:
        if isinstance(text, Genotype):
            return _genotype(text.normal, text.normal_concat, text.reduce, text.reduce_concat)
        if not isinstance(text, str):
            raise ValueError(f"an nb301 spec must be a string, got {type(text).__name__}; {_FORMATS}")
        s = text.strip()
        if s.startswith("{"):
            return _parse_json(s)
        if s.startswith("Genotype"):
            return _parse_genotype_repr(s)
        if s.startswith(("(", "[")):
            return _parse_compact(s)
        raise ValueError(f"unrecognised nb301 spec {text[:60]!r}; {_FORMATS}")

    def format(self, parsed: Genotype) -> str:
        return _format(parsed)

    # -- search -----------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> str:
        """NASLib's sampler: per cell and node k, two distinct inputs from range(k+2), two uniform ops.

        Every canonical genotype has exactly 2^8 orderings of its pairs, so this is uniform over
        canonical specs too."""
        cells: dict[str, list[Pair]] = {}
        for kind in CELLS:
            pairs: list[Pair] = []
            for k in range(NUM_NODES):
                inputs = rng.choice(k + 2, size=2, replace=False)
                ops = rng.integers(0, len(COMPACT_OPS), size=2)
                pairs += [(COMPACT_OPS[int(o)], int(i)) for o, i in zip(ops, inputs)]
            cells[kind] = pairs
        return _format(_genotype(cells["normal"], CONCAT, cells["reduce"], CONCAT))

    def mutate(self, text: str, rng: np.random.Generator) -> str:
        """NASLib-style: pick a cell, one of its 8 edges, and change its op or its input.

        The new op differs from the old; the new input stays in range and distinct from the other
        input of the node. Node 0 has no alternative input, so a draw of an input change there
        (or any impossible draw) is redrawn."""
        g = self.parse(text)
        cells = {kind: list(g.cell(kind)) for kind in CELLS}
        while True:
            kind = CELLS[int(rng.integers(2))]
            edge = int(rng.integers(NUM_PAIRS))
            op, inp = cells[kind][edge]
            if int(rng.integers(2)) == 1:  # change the op
                choices = [o for o in COMPACT_OPS if o != op]
                new = (choices[int(rng.integers(len(choices)))], inp)
            else:  # change the input
                node, sibling = edge // 2, edge ^ 1
                taken = {inp, cells[kind][sibling][1]}
                choices = [i for i in range(node + 2) if i not in taken]
                if not choices:
                    continue
                new = (op, choices[int(rng.integers(len(choices)))])
            cells[kind][edge] = new
            out = _format(_genotype(cells["normal"], CONCAT, cells["reduce"], CONCAT))
            if out != self.format(g):  # always true: one pair of a node changed
                return out
            cells[kind][edge] = (op, inp)

    # -- networks ---------------------------------------------------------------------------------
    def build(self, text: str, profile: str | Profile = "paper") -> nn.Module:
        """The DARTS evaluation network of a spec; ``profile`` is a name or a :class:`Profile`
        with options ``C``, ``layers`` and optionally ``stem_multiplier`` (default 3) and ``stem_stride``
        (default 1; the zoo profile uses 2, which keeps the cells and quarters the training cost)."""
        g = self.parse(text)
        p = profile if isinstance(profile, Profile) else self.profile(profile)
        return DARTSNetwork(g, C=int(p["C"]), layers=int(p["layers"]), num_classes=p.num_classes,
                            in_channels=p.input_shape[0],
                            stem_multiplier=int(p.options.get("stem_multiplier", 3)),
                            stem_stride=int(p.options.get("stem_stride", 1)))

    def input_shape(self, profile: str | Profile = "paper") -> tuple[int, int, int, int]:
        p = profile if isinstance(profile, Profile) else self.profile(profile)
        return (1, *p.input_shape)


__all__ = [
    "COMPACT_OPS", "DARTS_CIFAR10_PROFILE", "DARTS_V2", "DARTSNetwork", "Cell", "DilConv",
    "FactorizedReduce", "Genotype", "NB301Space", "SepConv", "make_op", "reduction_cells", "to_compact",
]
