"""NAGO: hierarchical random-graph networks (Ru et al., NeurIPS 2020, "Neural Architecture Generator
Optimization"; reference code ``huawei-noah/vega``, ``vega/networks/pytorch/customs/nago.py`` with
``utils/logical_graph.py``, ``utils/layer.py``, ``utils/ops.py`` and ``examples/nas/nago/nago.yml``).

A network is drawn from a three-level *generator*:

- the **top** graph (Watts–Strogatz ``N, K, P``) wires cells; its nodes are split into three stages in
  id order (stage ratios 1:1:1) with channel ratios 1, 2, 4;
- the **middle** graph (Erdős–Rényi ``N, P``) wires the nodes of every cell;
- the **bottom** graph (Watts–Strogatz ``N, K, P``) wires the ops of every middle node; every bottom
  node is a ReLU → 3×3 conv (with bias) → BatchNorm triplet.

Every undirected graph is made directed by node index: edges go from low to high ids; a node without
lower-id neighbours is an input (fed by the block input), one without higher-id neighbours an output
(the block output is the mean of the outputs). Several inputs of a node are summed, each first scaled
by ``sigmoid(w)`` (vega's ``BoundedScalarMultiply``), or projected by a 1×1 conv where the channel
counts differ (top level only). A cell first average-pools its inputs to its stage's resolution
(input size × 2^-stage): that is the reduction between stages. The network is vega's ``MasterNetwork``
for small images: stem conv3×3-BN-ReLU-conv3×3-BN, the top graph, the mean of the top outputs (pooled
to the smallest size, 1×1 conv to the last stage's width where needed), ReLU-conv1×1-BN-ReLU to a
1280-wide head, global average pool, dropout 0.2, linear classifier.

Canonical spec string: compact JSON of the generator parameters and a seed::

    {"top":[N,K,P],"mid":[N,P],"bottom":[N,K,P],"seed":0}

N ∈ [3, 10] at every level; K ∈ [2, 5] (stored as ``min(K, N-1)``, vega's rule against K ≥ N);
P ∈ [0.1, 1] top and bottom, [0.2, 1] middle, rounded to two decimals (the rounded value is the one the
generator uses, so the canonical string fully determines the network). The level graph is the first
*connected* graph that networkx draws with seeds ``seed, seed + 1, …`` (vega: seeds 0, 1, …, 29;
``seed = 0`` reproduces vega's network, which fixes its seed to 0). As in vega, all cells share one
middle graph and all middle nodes one bottom graph; a different seed is a different draw from the same
generator. Also accepted: vega's hyper-parameter names, ``{"G1_nodes": …, "G1_K": …, "G1_P": …,
"G2_nodes": …, "G2_P": …, "G3_nodes": …, "G3_K": …, "G3_P": …}`` (seed 0 unless ``"seed"`` is given).

Width: as in vega, ``multiplier = floor(sqrt(n_param_limit / base))`` where ``base`` counts the 3×3
conv weights of the network at channel ratios (1, 2, 4); every width is ``ratio × multiplier``. So the
bottom-level conv weights stay within ``n_param_limit`` (4M in vega's CIFAR-10 config; the stem, head,
biases, BN and 1×1 projections come on top; paper networks have about 3.5–4.3M parameters). The ``zoo``
profile (16×16 input) uses a 300k limit, a 64-wide head and a stride-2 second stem conv (the cells run
at 8×8 and below): multipliers 2-11 among the zoo's planned networks (up to 14 in the whole space). A
zoo run costs what its graph's size says, tens of seconds to minutes on one core, since thousands of tiny ops are overhead-bound; width adds little. (At a
30k limit most networks got multiplier 1, widths 1, 2 and 4, and learned only 17-28 % in the zoo budget;
at 300k the same budget reaches about 70 %.)

Departures from vega, all where vega's code is broken or untraceable (documented, deliberate):

- stage ratios are normalised (1:1:1 = thirds). vega multiplies the *unnormalised* ratios by the node
  count, so with its config (1.0, 1.0, 1.0) every top node lands in stage 0 unless N = 3 (no
  reductions, one width), which contradicts the paper;
- the top-level outputs are taken by node id; vega's ``MasterNetwork._parse_outputs`` picks them by
  position in a dict ordered inputs-first, which selects the wrong nodes when an input node has a
  higher id than a non-input node;
- resizing uses ``AvgPool2d(f, f)`` with the (static) factor f, equal to vega's
  ``adaptive_avg_pool2d`` for these power-of-two sizes; divisions by one output are left out;
- where no connected graph shows up in vega's 30 seeds (possible for ER with small N and P), vega
  builds a broken network; here the search goes on up to 1,000 seeds.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, Sequence

import networkx as nx
import numpy as np
import torch
import torch.nn as nn

from ..checks import is_whole
from .base import ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES, Profile, Space

N_RANGE = (3, 10)
K_RANGE = (2, 5)  # vega's range; networkx's Watts-Strogatz joins K // 2 neighbours a side, so odd K builds
#                   what K - 1 does (kept as vega has it: folding it would rename specs the zoo has trained)
P_RANGE = {"top": (0.1, 1.0), "mid": (0.2, 1.0), "bottom": (0.1, 1.0)}
SEED_MAX = 2**31 - 1
STAGE_RATIOS = (1, 1, 1)
CHANNEL_RATIOS = (1, 2, 4)
#: vega tries seeds 0..29 for a connected graph; beyond that it builds a broken network
VEGA_TRIES = 30
MAX_TRIES = 1000


@dataclass(frozen=True)
class NAGOSpec:
    """Parsed spec: ``top = (N, K, P)``, ``mid = (N, P)``, ``bottom = (N, K, P)``, ``seed``."""

    top: tuple[int, int, float]
    mid: tuple[int, float]
    bottom: tuple[int, int, float]
    seed: int = 0


# ---------------------------------------------------------------------------------------------------
# parsing and validation
# ---------------------------------------------------------------------------------------------------
_FORMATS = ('accepted forms: canonical JSON {"top": [N, K, P], "mid": [N, P], "bottom": [N, K, P], '
            '"seed": S}, or vega\'s {"G1_nodes", "G1_K", "G1_P", "G2_nodes", "G2_P", "G3_nodes", "G3_K", '
            '"G3_P"[, "seed"]}')


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _check_n(level: str, n: Any) -> int:
    if not is_whole(n):
        raise ValueError(f"{level} graph: N (number of nodes) must be an integer, got {n!r}")
    if not N_RANGE[0] <= n <= N_RANGE[1]:
        raise ValueError(f"{level} graph: N must be in [{N_RANGE[0]}, {N_RANGE[1]}], got {n}")
    return int(n)


def _check_k(level: str, k: Any, n: int) -> int:
    if not is_whole(k):
        raise ValueError(f"{level} graph: K (Watts-Strogatz neighbours) must be an integer, got {k!r}")
    if not K_RANGE[0] <= k <= K_RANGE[1]:
        raise ValueError(f"{level} graph: K must be in [{K_RANGE[0]}, {K_RANGE[1]}], got {k}")
    return min(int(k), n - 1)  # vega: K = min(N - 1, K)


def _check_p(level: str, p: Any) -> float:
    if not _is_number(p) or not math.isfinite(float(p)):
        raise ValueError(f"{level} graph: P (probability) must be a number, got {p!r}")
    lo, hi = P_RANGE[level]
    rounded = round(float(p), 2)
    if not lo <= rounded <= hi:
        raise ValueError(f"{level} graph: P must be in [{lo}, {hi}] (after rounding to 2 decimals), got {p!r}")
    return rounded


def _check_seed(seed: Any) -> int:
    if not is_whole(seed) or not 0 <= seed <= SEED_MAX:
        raise ValueError(f"seed must be an integer in [0, {SEED_MAX}], got {seed!r}")
    return int(seed)


def _spec(top: Any, mid: Any, bottom: Any, seed: Any) -> NAGOSpec:
    for level, value, size, what in (("top", top, 3, "[N, K, P]"), ("mid", mid, 2, "[N, P]"),
                                     ("bottom", bottom, 3, "[N, K, P]")):
        if not isinstance(value, (list, tuple)) or len(value) != size:
            raise ValueError(f"{level} graph must be {what} ({'Watts-Strogatz' if size == 3 else 'Erdos-Renyi'}), "
                             f"got {value!r}")
    tn = _check_n("top", top[0])
    mn = _check_n("mid", mid[0])
    bn = _check_n("bottom", bottom[0])
    return NAGOSpec(
        top=(tn, _check_k("top", top[1], tn), _check_p("top", top[2])),
        mid=(mn, _check_p("mid", mid[1])),
        bottom=(bn, _check_k("bottom", bottom[1], bn), _check_p("bottom", bottom[2])),
        seed=_check_seed(seed),
    )


_VEGA_KEYS = ("G1_nodes", "G1_K", "G1_P", "G2_nodes", "G2_P", "G3_nodes", "G3_K", "G3_P")


def _from_obj(obj: Any) -> NAGOSpec:
    if not isinstance(obj, dict):
        raise ValueError(f"a nago spec must be a JSON object; {_FORMATS}")
    if any(k.startswith("G") for k in obj):
        unknown = set(obj) - set(_VEGA_KEYS) - {"seed"}
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)} in vega-style nago spec; allowed: {list(_VEGA_KEYS)} + seed")
        missing = [k for k in _VEGA_KEYS if k not in obj]
        if missing:
            raise ValueError(f"vega-style nago spec is missing {missing}; {_FORMATS}")
        return _spec([obj["G1_nodes"], obj["G1_K"], obj["G1_P"]], [obj["G2_nodes"], obj["G2_P"]],
                     [obj["G3_nodes"], obj["G3_K"], obj["G3_P"]], obj.get("seed", 0))
    allowed = {"top", "mid", "bottom", "seed"}
    unknown = set(obj) - allowed
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)} in nago spec; allowed keys: {sorted(allowed)}")
    missing = [k for k in ("top", "mid", "bottom") if k not in obj]
    if missing:
        raise ValueError(f"nago spec is missing {missing}; {_FORMATS}")
    return _spec(obj["top"], obj["mid"], obj["bottom"], obj.get("seed", 0))


def _format(s: NAGOSpec) -> str:
    s = _spec(s.top, s.mid, s.bottom, s.seed)  # validates and normalises
    obj = {"top": list(s.top), "mid": list(s.mid), "bottom": list(s.bottom), "seed": s.seed}
    return json.dumps(obj, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------------
# the generator: random graphs → logical (channel-ratio) structure
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LevelGraph:
    """A directed level graph: per node its lower-id neighbours (inputs), the input and output nodes."""

    n: int
    inputs: tuple[tuple[int, ...], ...]
    input_nodes: tuple[int, ...]
    output_nodes: tuple[int, ...]
    seed_used: int
    edges: tuple[tuple[int, int], ...]


def _draw(kind: str, params: tuple, seed: int) -> nx.Graph | None:
    if kind == "ER":
        n, p = params
        return nx.erdos_renyi_graph(int(n), float(p), seed=seed)
    n, k, p = params
    try:
        return nx.connected_watts_strogatz_graph(int(n), int(k), float(p), tries=200, seed=seed)
    except nx.NetworkXError:  # no connected graph in 200 tries; vega would crash here
        return None


@lru_cache(maxsize=4096)
def level_graph(kind: str, params: tuple, seed: int) -> LevelGraph:
    """The first connected graph the generator draws with seeds ``seed, seed + 1, …`` (vega's
    ``BasicNode._init_graph`` with its fixed start 0), made directed by node index."""
    for x in range(MAX_TRIES):
        g = _draw(kind, params, seed + x)
        if g is None or not nx.is_connected(g):
            continue
        inputs, ins, outs = [], [], []
        for node in range(g.number_of_nodes()):
            nbrs = sorted(g.neighbors(node))
            if node < nbrs[0]:
                ins.append(node)
            if node > nbrs[-1]:
                outs.append(node)
            inputs.append(tuple(m for m in nbrs if m < node))
        edges = tuple(sorted((min(a, b), max(a, b)) for a, b in g.edges()))
        return LevelGraph(g.number_of_nodes(), tuple(inputs), tuple(ins), tuple(outs), seed + x, edges)
    raise ValueError(f"no connected {kind}{params} graph in seeds {seed}..{seed + MAX_TRIES - 1}; "
                     "choose a larger P or N")


def stage_list(n: int, ratios: Sequence[int] = STAGE_RATIOS) -> list[int]:
    """Stage of each top-level node: vega's ``get_stage_list`` with the ratios normalised to sum 1."""
    if n == 3:
        return [0, 1, 2]
    total = sum(ratios)
    out, stage = [], 0
    threshold = Fraction(ratios[0], total) * n
    for x in range(n):
        if x >= threshold:
            stage += 1
            threshold += Fraction(ratios[stage], total) * n
        out.append(stage)
    return out


@dataclass(frozen=True)
class Logical:
    """The network at channel ratios: the three level graphs and, per top node, stage and planes."""

    top: LevelGraph
    mid: LevelGraph
    bottom: LevelGraph
    stages: tuple[int, ...]
    outplanes: tuple[int, ...]       # per top node (channel ratio of its stage)
    inplanes: tuple[int, ...]        # per top node (vega's compute_input_planes with SUM merging)

    def base_param_count(self) -> int:
        """vega's ``LogicalMasterGraph._get_param_count``: 9·in·out over every bottom 3×3 conv."""
        total = 0
        for cell in range(self.top.n):
            c_in, c_out = self.inplanes[cell], self.outplanes[cell]
            for m in range(self.mid.n):
                m_in = c_in if m in self.mid.input_nodes else c_out
                for b in range(self.bottom.n):
                    total += 9 * (m_in if b in self.bottom.input_nodes else c_out) * c_out
        return total


def logical(spec: NAGOSpec) -> Logical:
    top = level_graph("WS", (spec.top[0], spec.top[1], spec.top[2]), spec.seed)
    mid = level_graph("ER", (spec.mid[0], spec.mid[1]), spec.seed)
    bottom = level_graph("WS", (spec.bottom[0], spec.bottom[1], spec.bottom[2]), spec.seed)
    stages = stage_list(top.n)
    outplanes = [CHANNEL_RATIOS[s] for s in stages]
    inplanes = [CHANNEL_RATIOS[0] if not top.inputs[i] else outplanes[top.inputs[i][-1]] for i in range(top.n)]
    return Logical(top, mid, bottom, tuple(stages), tuple(outplanes), tuple(inplanes))


def width_multiplier(lg: Logical, n_param_limit: float) -> int:
    """vega: ``int(sqrt(n_param_limit / base))`` (at least 1)."""
    return max(1, int(np.sqrt(float(n_param_limit) / lg.base_param_count())))


# ---------------------------------------------------------------------------------------------------
# network
# ---------------------------------------------------------------------------------------------------
class _Gate(nn.Module):
    """``sigmoid(w)`` of one learnable scalar ``w`` (initially 1). An atomic ``sigmoid`` node for the
    graph converter: a leaf for torch.fx, which also keeps tracing linear in the network size (fx looks
    every directly read parameter up among all parameters of the root)."""

    cg_op = "sigmoid"

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))

    def forward(self) -> torch.Tensor:
        return torch.sigmoid(self.weight)


class BoundedScalarMultiply(nn.Module):
    """vega's edge weight: ``sigmoid(w) · x`` with one learnable scalar ``w`` (initially 1)."""

    def __init__(self):
        super().__init__()
        self.gate = _Gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate() * x


def _merger(incoming: int, inplanes: int, multiplier: int) -> nn.Module:
    if incoming == inplanes:
        return BoundedScalarMultiply()
    return nn.Conv2d(incoming * multiplier, inplanes * multiplier, kernel_size=1, padding=0, stride=1)


def _resize(factor: int) -> nn.Module | None:
    return None if factor == 1 else nn.AvgPool2d(factor, factor)


def _chain(*modules: nn.Module | None) -> nn.Module | None:
    present = [m for m in modules if m is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else nn.Sequential(*present)


class _Merge(nn.Module):
    """A node's input: each input through its edge transform (``None``: as is), summed if several."""

    def __init__(self, transforms: Sequence[nn.Module | None]):
        super().__init__()
        self.edges = nn.ModuleList([t for t in transforms if t is not None])
        slots, k = [], 0
        for t in transforms:
            slots.append(-1 if t is None else k)
            k += t is not None
        self.slots: tuple[int, ...] = tuple(slots)  # input i → index into self.edges, -1 for none

    def _edge(self, i: int, x: torch.Tensor) -> torch.Tensor:
        return x if self.slots[i] < 0 else self.edges[self.slots[i]](x)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        out = self._edge(0, inputs[0])
        for i in range(1, len(self.slots)):
            out = out + self._edge(i, inputs[i])
        return out


def _gates(n_inputs: int) -> list[nn.Module | None]:
    """Edge transforms of a merge inside a cell: one gate per input when there are several."""
    return [BoundedScalarMultiply() for _ in range(n_inputs)] if n_inputs > 1 else [None]


class OpNode(nn.Module):
    """A bottom-level node: merge its inputs, then ReLU → conv 3×3 (bias) → BatchNorm (vega's OpNode)."""

    def __init__(self, c_in: int, c_out: int, n_inputs: int):
        super().__init__()
        self.merge = _Merge(_gates(n_inputs))
        self.relu = nn.ReLU(inplace=False)
        self.conv = nn.Conv2d(c_in, c_out, 3, 1, padding=1)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(self.relu(self.merge(*inputs))))


class GraphBlock(nn.Module):
    """One graph of nodes: inputs merged, input nodes fed the merged input, others their lower-id
    neighbours' outputs; the output is the mean of the output nodes (vega's CellGraph / OpGraph)."""

    def __init__(self, merge: _Merge, graph: LevelGraph, children: Sequence[nn.Module]):
        super().__init__()
        self.merge = merge
        self.nodes = nn.ModuleList(children)
        self.node_inputs: tuple[tuple[int, ...], ...] = graph.inputs
        self.outputs: tuple[int, ...] = graph.output_nodes

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        x = self.merge(*inputs)
        results: list[torch.Tensor] = []
        for node, ins in zip(self.nodes, self.node_inputs):
            results.append(node(x) if not ins else node(*[results[j] for j in ins]))
        out = results[self.outputs[0]]
        for j in self.outputs[1:]:
            out = out + results[j]
        if len(self.outputs) > 1:
            out = out / len(self.outputs)
        return out


def _op_graph(lg: Logical, c_in: int, c_out: int, merge: _Merge) -> GraphBlock:
    b = lg.bottom
    children = [OpNode(c_in if not b.inputs[i] else c_out, c_out, max(1, len(b.inputs[i]))) for i in range(b.n)]
    return GraphBlock(merge, b, children)


def _cell(lg: Logical, cell: int, multiplier: int, resize: Sequence[int]) -> GraphBlock:
    """Top node ``cell``: pool its inputs to its stage's size, merge them, run the middle graph."""
    top, mid = lg.top, lg.mid
    c_in, c_out = lg.inplanes[cell] * multiplier, lg.outplanes[cell] * multiplier
    sources = top.inputs[cell]
    if len(sources) > 1:
        transforms = [_chain(_resize(f), _merger(lg.outplanes[j], lg.inplanes[cell], multiplier))
                      for j, f in zip(sources, resize)]
    else:
        transforms = [_resize(resize[0])]
    children = []
    for m in range(mid.n):
        m_in = c_in if not mid.inputs[m] else c_out
        children.append(_op_graph(lg, m_in, c_out, _Merge(_gates(len(mid.inputs[m])))))
    return GraphBlock(_Merge(transforms), mid, children)


class NAGONetwork(nn.Module):
    """vega's ``MasterNetwork`` (small-image branch) for a :class:`Logical` structure and a width multiplier."""

    def __init__(self, lg: Logical, multiplier: int, image_size: int, num_classes: int = 10,
                 in_channels: int = 3, head_channels: int = 1280, dropout: float = 0.2, stem_stride: int = 1):
        super().__init__()
        if image_size >= 40:
            raise ValueError(f"nago builds vega's small-image network (input size < 40), got {image_size}")
        if image_size % 4:
            raise ValueError(f"nago needs an input size divisible by 4 (two reductions), got {image_size}")
        if stem_stride not in (1, 2) or (image_size // stem_stride) % 4:
            raise ValueError(f"nago's stem stride must be 1 or 2 and leave a size divisible by 4, got {stem_stride}")
        image_size //= stem_stride  # the cells see the stem's output
        self.multiplier = multiplier
        c0 = CHANNEL_RATIOS[0] * multiplier
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c0, kernel_size=3, padding=1), nn.BatchNorm2d(c0), nn.ReLU(),
            nn.Conv2d(c0, c0, kernel_size=3, padding=1, stride=stem_stride), nn.BatchNorm2d(c0),
        )
        top = lg.top
        size = [image_size // 2**s for s in lg.stages]
        cells = []
        for i in range(top.n):
            sources = top.inputs[i]
            resize = [image_size // size[i]] if not sources else [size[j] // size[i] for j in sources]
            cells.append(_cell(lg, i, multiplier, resize))
        self.cells = nn.ModuleList(cells)
        self.cell_inputs: tuple[tuple[int, ...], ...] = top.inputs
        self.outputs: tuple[int, ...] = top.output_nodes
        final = lg.outplanes[top.output_nodes[-1]] * multiplier
        ref = min(size[j] for j in self.outputs)
        mergers = []
        for j in self.outputs:
            out_c = lg.outplanes[j] * multiplier
            proj = None if (out_c == final or len(self.outputs) == 1) else nn.Conv2d(out_c, final, 1)
            mergers.append(_chain(_resize(size[j] // ref), proj))
        self.out_merge = _Merge(mergers)
        self.conv_out = nn.Sequential(
            nn.ReLU(), nn.Conv2d(final, head_channels, kernel_size=1), nn.BatchNorm2d(head_channels), nn.ReLU(),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(head_channels, num_classes)
        for m in self.modules():  # vega's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        results: list[torch.Tensor] = []
        for cell, ins in zip(self.cells, self.cell_inputs):
            results.append(cell(x) if not ins else cell(*[results[j] for j in ins]))
        out = self.out_merge(*[results[j] for j in self.outputs])
        if len(self.outputs) > 1:
            out = out / len(self.outputs)
        out = self.avgpool(self.conv_out(out))
        return self.fc(torch.flatten(self.dropout(out), 1))


# ---------------------------------------------------------------------------------------------------
# the space
# ---------------------------------------------------------------------------------------------------
class NAGOSpace(Space):
    """NAGO's hierarchical graph generator; see the module docstring for the spec string."""

    name = "nago"
    profiles = {
        # vega's CIFAR-10 config (examples/nas/nago/nago.yml): 4M parameter limit, 1280-wide head
        "paper": Profile("paper", (3, 32, 32), 10,
                         {"n_param_limit": 4.0e6, "head_channels": 1280, "dropout": 0.2}),
        "zoo": Profile("zoo", ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES,
                       {"n_param_limit": 3.0e5, "head_channels": 64, "dropout": 0.2, "stem_stride": 2}),
    }

    # -- spec strings -----------------------------------------------------------------------------
    def parse(self, text: str) -> NAGOSpec:
        if isinstance(text, NAGOSpec):
            return _spec(text.top, text.mid, text.bottom, text.seed)
        if isinstance(text, dict):
            return _from_obj(text)
        if not isinstance(text, str):
            raise ValueError(f"a nago spec must be a string, got {type(text).__name__}; {_FORMATS}")
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"malformed JSON spec for nago: {e}; {_FORMATS}") from None
        return _from_obj(obj)

    def format(self, parsed: NAGOSpec) -> str:
        return _format(parsed)

    # -- search -----------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> str:
        """vega's search space drawn uniformly: N ∈ [3, 10], K ∈ [2, 5] (then min(K, N-1)), P on the
        0.01 grid of its range, and a seed in [0, 2^31)."""
        def n() -> int:
            return int(rng.integers(N_RANGE[0], N_RANGE[1] + 1))

        def k() -> int:
            return int(rng.integers(K_RANGE[0], K_RANGE[1] + 1))

        def p(level: str) -> float:
            lo, hi = P_RANGE[level]
            return int(rng.integers(round(lo * 100), round(hi * 100) + 1)) / 100

        top = [n(), k(), p("top")]
        mid = [n(), p("mid")]
        bottom = [n(), k(), p("bottom")]
        seed = int(rng.integers(0, SEED_MAX + 1))
        return _format(_spec(top, mid, bottom, seed))

    def mutate(self, text: str, rng: np.random.Generator) -> str:
        """One local change: N or K of one level ±1, P of one level ±0.05 or ±0.1 (clipped), or a new seed,
        redrawn until the generated network changes (networkx's Watts-Strogatz rounds K down to even, and a
        small step of P often rewires no edge, so many such changes would build the same network)."""
        s = self.parse(text)
        old = _format(s)
        parent = self.logical(old)
        fields = [("top", 0), ("top", 1), ("top", 2), ("mid", 0), ("mid", 1),
                  ("bottom", 0), ("bottom", 1), ("bottom", 2), ("seed", 0)]
        while True:
            level, idx = fields[int(rng.integers(len(fields)))]
            values = {"top": list(s.top), "mid": list(s.mid), "bottom": list(s.bottom)}
            seed = s.seed
            if level == "seed":
                seed = int(rng.integers(0, SEED_MAX + 1))
            else:
                v = values[level]
                is_p = idx == len(v) - 1
                if is_p:
                    lo, hi = P_RANGE[level]
                    step = float(rng.choice([-0.1, -0.05, 0.05, 0.1]))
                    v[idx] = round(min(hi, max(lo, v[idx] + step)), 2)
                elif idx == 0:
                    v[0] = int(np.clip(v[0] + rng.choice([-1, 1]), *N_RANGE))
                else:
                    v[1] = int(np.clip(v[1] + rng.choice([-1, 1]), K_RANGE[0], min(K_RANGE[1], v[0] - 1)))
            new = _format(_spec(values["top"], values["mid"], values["bottom"], seed))
            if new != old and self.logical(new) != parent:
                return new

    # -- networks ---------------------------------------------------------------------------------
    def logical(self, text: str) -> Logical:
        """The generated level graphs, stages and channel ratios of a spec (no torch modules)."""
        return logical(self.parse(text))

    def build(self, text: str, profile: str | Profile = "paper") -> nn.Module:
        """vega's NAGO network of a spec; ``profile`` is a name or a :class:`Profile` with options
        ``n_param_limit``, ``head_channels`` (1280 in vega) and ``dropout`` (0.2 in vega)."""
        lg = logical(self.parse(text))
        p = profile if isinstance(profile, Profile) else self.profile(profile)
        c, h, w = p.input_shape
        if h != w:
            raise ValueError(f"nago needs a square input, got {h}×{w}")
        return NAGONetwork(lg, width_multiplier(lg, p["n_param_limit"]), image_size=h,
                           num_classes=p.num_classes, in_channels=c,
                           head_channels=int(p.options.get("head_channels", 1280)),
                           dropout=float(p.options.get("dropout", 0.2)),
                           stem_stride=int(p.options.get("stem_stride", 1)))

    def input_shape(self, profile: str | Profile = "paper") -> tuple[int, int, int, int]:
        p = profile if isinstance(profile, Profile) else self.profile(profile)
        return (1, *p.input_shape)


__all__ = ["NAGONetwork", "NAGOSpace", "NAGOSpec", "LevelGraph", "Logical", "level_graph", "logical",
           "stage_list", "width_multiplier"]
