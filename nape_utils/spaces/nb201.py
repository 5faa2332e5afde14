"""NAS-Bench-201 (Dong & Yang, ICLR 2020): one cell with 4 nodes and an op on each of its 6 edges.

Canonical spec: the benchmark's arch string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``, edge ``op~i`` of
group j feeding node j from node i. The NASLib tuple ``(4, 0, 3, 1, 4, 3)`` is accepted too; its op ids
are 0 skip_connect, 1 none, 2 nor_conv_3x3, 3 nor_conv_1x1, 4 avg_pool_3x3 and its edge order is
(0→1, 0→2, 0→3, 1→2, 1→3, 2→3), not the arch string's.

Network (``paper``, exact to the benchmark's parameter counts): stem conv 3×3 + BN at C=16; three
stages of N=5 cells at C, 2C, 4C joined by residual reduction blocks; BN, ReLU, global average pool
and a linear classifier.
"""
from __future__ import annotations

import re

import numpy as np
import torch
import torch.nn as nn

from .base import ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES, Profile, Space
from .ops import ReLUConvBN, Zero

OP_NAMES = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: NASLib's op ids
NASLIB_OPS = ("skip_connect", "none", "nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3")
#: (source, target) of the 6 edges in arch-string order
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
#: position in the NASLib tuple of each arch-string edge (tuple = (s0, s1, s3, s2, s4, s5))
_NASLIB_ORDER = (0, 1, 3, 2, 4, 5)

_ARCH_RE = re.compile(r"^\|([^|~]+)~0\|\+\|([^|~]+)~0\|([^|~]+)~1\|\+\|([^|~]+)~0\|([^|~]+)~1\|([^|~]+)~2\|$")


def make_op(name: str, channels: int) -> nn.Module:
    """The module of one cell edge at ``channels`` (stride 1: cells never reduce in NB-201)."""
    if name == "none":
        return Zero(1)
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NB-201 op {name!r}; the ops are {', '.join(OP_NAMES)}")


class Cell(nn.Module):
    """Node j = Σ_{i<j} op_ij(node i); the cell's output is node 3."""

    def __init__(self, ops: tuple[str, ...], channels: int):
        super().__init__()
        self.edges = nn.ModuleList(make_op(op, channels) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for target in (1, 2, 3):
            total = None
            for k, (source, dst) in enumerate(EDGES):
                if dst == target:
                    out = self.edges[k](nodes[source])
                    total = out if total is None else total + out
            nodes.append(total)
        return nodes[3]


class ResidualReduction(nn.Module):
    """NB-201's reduction block: a ResNet basic block with stride 2 and an avg-pool + 1×1 shortcut."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class Stem(nn.Sequential):
    def __init__(self, c_in: int, channels: int):
        super().__init__(nn.Conv2d(c_in, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))


class Head(nn.Module):
    """BN → ReLU → global average pool → linear classifier."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.lastact = nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.lastact(x)), 1))


class NB201Network(nn.Module):
    def __init__(self, ops: tuple[str, ...], profile: Profile):
        super().__init__()
        c, n = profile["channels"], profile["cells_per_stage"]
        self.stem = Stem(profile.input_shape[0], c)
        layers: list[nn.Module] = []
        for stage in range(3):
            width = c * 2**stage
            if stage:
                layers.append(ResidualReduction(width // 2, width))
            layers += [Cell(ops, width) for _ in range(n)]
        self.cells = nn.Sequential(*layers)
        self.head = Head(c * 4, profile.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.cells(self.stem(x)))


class NB201Space(Space):
    name = "nb201"
    profiles = {
        "paper": Profile("paper", (3, 32, 32), 10, {"channels": 16, "cells_per_stage": 5}),
        "zoo": Profile("zoo", ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES, {"channels": 8, "cells_per_stage": 1}),
    }

    def parse(self, text: str) -> tuple[str, ...]:
        text = str(text).strip()
        if text.startswith("("):
            return self._parse_naslib(text)
        match = _ARCH_RE.match(text)
        if not match:
            raise ValueError(
                f"malformed NB-201 arch string {text!r}: expected |op~0|+|op~0|op~1|+|op~0|op~1|op~2| "
                "or a NASLib tuple such as (4, 0, 3, 1, 4, 3)")
        ops = match.groups()
        for op in ops:
            if op not in OP_NAMES:
                raise ValueError(f"unknown NB-201 op {op!r} in {text!r}; the ops are {', '.join(OP_NAMES)}")
        return ops

    def _parse_naslib(self, text: str) -> tuple[str, ...]:
        try:
            ids = [int(part) for part in text.strip("() ").split(",") if part.strip()]
        except ValueError:
            raise ValueError(f"malformed NASLib NB-201 tuple {text!r}: expected six integers 0-4") from None
        if len(ids) != 6 or not all(0 <= i < len(NASLIB_OPS) for i in ids):
            raise ValueError(f"a NASLib NB-201 tuple has six op ids in 0-4, got {text!r}")
        return tuple(NASLIB_OPS[ids[_NASLIB_ORDER[k]]] for k in range(6))

    def format(self, ops: tuple[str, ...]) -> str:
        return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)

    def to_naslib(self, text: str) -> str:
        ops = self.parse(text)
        ids = [NASLIB_OPS.index(ops[_NASLIB_ORDER[k]]) for k in range(6)]
        return "(" + ", ".join(map(str, ids)) + ")"

    def flags(self, text: str) -> dict[str, bool]:
        """``output_unreachable``: no non-``none`` path from input to output (the network then
        predicts from the zero tensor). ``dead_ops``: some op's result never reaches the output or
        never receives the input, so zeroing it changes nothing (GRAF calls cells without these valid)."""
        ops = self.parse(text)
        live = [(s, d) for (s, d), op in zip(EDGES, ops) if op != "none"]
        from_input, to_output = {0}, {3}
        for s, d in live:  # edges are in topological order of their targets
            if s in from_input:
                from_input.add(d)
        for s, d in sorted(live, key=lambda e: -e[0]):
            if d in to_output:
                to_output.add(s)
        dead = any(not (s in from_input and d in to_output) for s, d in live)
        return {"output_unreachable": 3 not in from_input, "dead_ops": dead}

    def sample(self, rng: np.random.Generator) -> str:
        return self.format(tuple(OP_NAMES[i] for i in rng.integers(len(OP_NAMES), size=6)))

    def mutate(self, text: str, rng: np.random.Generator) -> str:
        ops = list(self.parse(text))
        edge = int(rng.integers(6))
        ops[edge] = str(rng.choice([op for op in OP_NAMES if op != ops[edge]]))
        return self.format(tuple(ops))

    def enumerate(self) -> list[str]:
        """All 15,625 cells."""
        import itertools

        return [self.format(ops) for ops in itertools.product(OP_NAMES, repeat=6)]

    def build(self, text: str, profile: str = "paper") -> nn.Module:
        return NB201Network(self.parse(text), self.profile(profile))
