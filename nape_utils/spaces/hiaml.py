"""HiAML (GENNAPE's test family; Mills et al., AAAI 2023): one of 14 residual blocks per stage.

Re-implemented from the authors' code, Ascend-Research/GENNAPE ``model_src/search_space/hiaml_two_path/``
(``constants.py``: the 14 block names; ``arch_samplers.py``: ``sample_hiaml_net_config``, 4 uniform
draws; ``networks_tf.py``: ``HiAMLNet``; ``operations_tf.py``: the blocks). Network (``paper``, CIFAR-10):

- stem: conv 3×3 stride 2 to 64 channels, BN, ReLU;
- 4 stages × 2 blocks, every block of a stage of the stage's type; the first block of stages 1 and 3
  halves the resolution and doubles the channels (64, 128, 128, 256);
- global average pool → linear.

Every block ends in ``ReLU(sum of its branches)``; a branch that reads the block input through a
changed shape gets its own 1×1 conv-BN projection (stride 2). See :data:`BLOCKS` for the 14 graphs.
Conv units are conv-BN-ReLU (``cbr``) or conv-BN (``cb``); ``is`` is the 1×3 → 3×1 spatially separable
conv with ReLU6 (:class:`~nape_utils.spaces.gennape_ops.InceptionS`).

Canonical spec: compact JSON ``{"blocks":["hiaml_a22","hiaml_z","hiaml_src0","hiaml_t31"]}``, the
authors' block names, stage 0 first. Also accepted: the short names (``"a22"``, ``"src0"``: the suffix
the authors use in graph names), the authors' indices 0-13 (``HIAML_OP2IDX``), and a bare JSON list
(the authors' stored ``net_config``).

``zoo``: the same network on 16×16 inputs with every width divided by 4 (stem 16 channels): the stem
stride is kept, so the last stage runs at 2×2. (Widths ÷8, the first zoo's, left seed noise as large as
the family's spread; results/zoo/README.md.)
"""
from __future__ import annotations

import json
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn

from ..checks import is_whole
from .base import ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES, Profile, Space
from .gennape_ops import ClassifierHead, ConvBNAct, InceptionS, divide_width, json_spec

#: the authors' block names in their index order (``HIAML_OPS``)
BLOCK_NAMES: tuple[str, ...] = (
    "hiaml_z", "hiaml_a22", "hiaml_b23", "hiaml_j30", "hiaml_g30", "hiaml_r30", "hiaml_l20",
    "hiaml_t20", "hiaml_t31", "hiaml_src0", "hiaml_src1", "hiaml_src3", "hiaml_src7", "hiaml_src8",
)
SHORT_NAMES: dict[str, str] = {name.split("_", 1)[1]: name for name in BLOCK_NAMES}
NUM_STAGES = 4
BLOCKS_PER_STAGE = 2
REDUCTION_STAGES = (1, 3)

# One block = a list of units and the output sum. A unit is (op, inputs, in-width, out-width, strided):
# op ∈ cbr3 / cbr1 / cb3 / cb1 / is; inputs are summed and are "x" (block input), "P" (a projection of
# the block input, its own 1×1 conv-BN with the block's stride, or the input itself when the shape does not
# change) or k (unit k's output); widths are "in" / "out" (the block's); strided units take the block stride.
_Unit = tuple[str, tuple, str, str, bool]
BLOCKS: dict[str, tuple[tuple[_Unit, ...], tuple]] = {
    # input,conv3x3,conv1x1,conv1x1,output | (0,1),(1,2),(1,4),(2,3),(3,4)
    "hiaml_a22": ((("cbr3", ("x",), "in", "out", True), ("cbr1", (0,), "out", "out", False),
                   ("cb1", (1,), "out", "out", False)), (0, 2)),
    # input,conv3x3,inception_s,output | (0,1),(1,2),(1,3),(2,3)
    "hiaml_z": ((("cbr3", ("x",), "in", "out", True), ("is", (0,), "out", "out", False)), (0, 1)),
    # input,inception_s,inception_s,output | (0,1),(0,3),(1,2),(2,3)
    "hiaml_b23": ((("is", ("x",), "in", "out", True), ("is", (0,), "out", "out", False)), ("P", 1)),
    # input,conv3x3,inception_s,output | (0,1),(0,3),(1,2),(2,3)
    "hiaml_j30": ((("cbr3", ("x",), "in", "out", True), ("is", (0,), "out", "out", False)), ("P", 1)),
    # input,inception_s,inception_s,conv1x1,output | (0,1),(0,2),(1,2),(1,4),(2,3),(3,4)
    "hiaml_g30": ((("is", ("x",), "in", "out", True), ("is", ("P", 0), "out", "out", False),
                   ("cb1", (1,), "out", "out", False)), (0, 2)),
    # input,inception_s,conv1x1,inception_s,output | (0,1),(0,2),(0,4),(1,2),(1,3),(2,4),(3,4)
    "hiaml_r30": ((("is", ("x",), "in", "out", True), ("cb1", ("P", 0), "out", "out", False),
                   ("is", (0,), "out", "out", False)), ("P", 1, 2)),
    # input,conv3x3,conv1x1,output | (0,1),(1,2),(2,3)
    "hiaml_l20": ((("cbr3", ("x",), "in", "out", True), ("cb1", (0,), "out", "out", False)), (1,)),
    # input,conv1x1,inception_s,output | (0,1),(0,2),(1,3),(2,3)
    "hiaml_t20": ((("cb1", ("x",), "in", "out", True), ("is", ("x",), "in", "out", True)), (0, 1)),
    # input,inception_s,conv1x1,inception_s,output | (0,1),(0,3),(0,4),(1,2),(2,3),(2,4),(3,4)
    "hiaml_t31": ((("is", ("x",), "in", "out", True), ("cbr1", (0,), "out", "out", False),
                   ("is", ("P", 1), "out", "out", False)), ("P", 1, 2)),
    # ops [0,2,1,1,8], adj [[0,1,2,1,3],[1,2,3,4,4]]
    "hiaml_src0": ((("cbr1", ("x",), "in", "out", True), ("cbr3", (0,), "out", "out", False),
                    ("cb3", (1,), "out", "out", False)), (0, 2)),
    # ops [0,2,1,1,8], adj [[0,0,2,1,3],[1,2,3,4,4]]
    "hiaml_src1": ((("cbr1", ("x",), "in", "out", True), ("cbr3", ("x",), "in", "in", False),
                    ("cb3", (1,), "in", "out", True)), (0, 2)),
    # ops [0,2,2,1,2,8], adj [[0,0,2,3,4,1],[1,2,3,4,5,5]]
    "hiaml_src3": ((("cb1", ("x",), "in", "out", True), ("cbr1", ("x",), "in", "in", False),
                    ("cbr3", (1,), "in", "out", True), ("cb1", (2,), "out", "out", False)), (0, 3)),
    # ops [0,2,3,3,8], adj [[0,1,1,2,3],[1,4,2,3,4]]
    "hiaml_src7": ((("cb1", ("x",), "in", "out", True), ("is", (0,), "out", "out", False),
                    ("is", (1,), "out", "out", False)), (0, 2)),
    # ops [0,2,3,2,8], adj [[0,1,1,2,3],[1,4,2,3,4]]
    "hiaml_src8": ((("cb1", ("x",), "in", "out", True), ("is", (0,), "out", "out", False),
                    ("cb1", (1,), "out", "out", False)), (0, 2)),
}
assert set(BLOCKS) == set(BLOCK_NAMES)

_FORMATS = ('accepted forms: canonical JSON {"blocks": [b0, b1, b2, b3]} with block names '
            f'{", ".join(BLOCK_NAMES)} (or their short forms {", ".join(SHORT_NAMES)}, or indices 0-13), '
            "or a bare JSON list of the four")


def _unit(op: str, c_in: int, c_out: int, stride: int) -> nn.Module:
    if op == "is":
        return InceptionS(c_in, c_out, 3, stride)
    kernel = int(op[-1])
    return ConvBNAct(c_in, c_out, kernel, stride, "relu" if op.startswith("cbr") else None)


class HiAMLBlock(nn.Module):
    """One HiAML block (see :data:`BLOCKS`), from ``c_in`` to ``c_out`` channels with stride 1 or 2."""

    def __init__(self, name: str, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        units, self.output = BLOCKS[name]
        self.block_type = name
        widths = {"in": c_in, "out": c_out}
        self.units = nn.ModuleList(_unit(op, widths[a], widths[b], stride if strided else 1)
                                   for op, _, a, b, strided in units)
        self.inputs = tuple(inputs for _, inputs, _, _, _ in units)
        reshaped = stride != 1 or c_in != c_out
        n_proj = sum(refs.count("P") for refs in (*self.inputs, self.output))
        self.projections = nn.ModuleList(ConvBNAct(c_in, c_out, 1, stride) for _ in range(n_proj if reshaped else 0))
        self.relu = nn.ReLU(inplace=False)

    def _sum(self, refs: tuple, x: torch.Tensor, outs: list, proj: list) -> torch.Tensor:
        total = None
        for ref in refs:
            if ref == "x":
                t = x
            elif ref == "P":
                t = self.projections[proj[0]](x) if len(self.projections) else x
                proj[0] += 1
            else:
                t = outs[ref]
            total = t if total is None else total + t
        return total

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = []
        proj = [0]
        for unit, refs in zip(self.units, self.inputs):
            outs.append(unit(self._sum(refs, x, outs, proj)))
        return self.relu(self._sum(self.output, x, outs, proj))


class HiAMLNetwork(nn.Module):
    def __init__(self, blocks: Sequence[str], profile: Profile):
        super().__init__()
        div = int(profile["width_divisor"])
        c = divide_width(int(profile["C_init"]), div, "HiAML stem")
        self.stem = ConvBNAct(profile.input_shape[0], c, 3, int(profile["stem_stride"]), "relu")
        layers: list[nn.Module] = []
        for stage, name in enumerate(blocks):
            for b in range(BLOCKS_PER_STAGE):
                if stage in REDUCTION_STAGES and b == 0:
                    layers.append(HiAMLBlock(name, c, 2 * c, 2))
                    c *= 2
                else:
                    layers.append(HiAMLBlock(name, c, c, 1))
        self.blocks = nn.Sequential(*layers)
        self.head = ClassifierHead(c, profile.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


class HiAMLSpace(Space):
    """HiAML: 14 block types × 4 stages = 38,416 networks; see the module docstring."""

    name = "hiaml"
    profiles = {
        "paper": Profile("paper", (3, 32, 32), 10, {"C_init": 64, "stem_stride": 2, "width_divisor": 1}),
        "zoo": Profile("zoo", ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES, {"C_init": 64, "stem_stride": 2, "width_divisor": 4,
                                                          "channels_last": True}),
    }

    def parse(self, text: str) -> tuple[str, ...]:
        obj = json_spec(text, "hiaml", _FORMATS)
        if isinstance(obj, dict):
            unknown = set(obj) - {"blocks"}
            if unknown or "blocks" not in obj:
                raise ValueError(f"a hiaml JSON spec has exactly one key, 'blocks'; got keys {sorted(obj)}; {_FORMATS}")
            obj = obj["blocks"]
        if not isinstance(obj, list):
            raise ValueError(f"hiaml 'blocks' must be a list of {NUM_STAGES} block names; {_FORMATS}")
        if len(obj) != NUM_STAGES:
            raise ValueError(f"a hiaml spec needs exactly {NUM_STAGES} blocks, one per stage, got {len(obj)}")
        return tuple(self._block_name(b, i) for i, b in enumerate(obj))

    @staticmethod
    def _block_name(b, stage: int) -> str:
        if is_whole(b):
            if 0 <= b < len(BLOCK_NAMES):
                return BLOCK_NAMES[b]
            raise ValueError(f"hiaml block index {b} (stage {stage}) out of range 0-{len(BLOCK_NAMES) - 1}")
        if isinstance(b, str):
            if b in BLOCKS:
                return b
            if b in SHORT_NAMES:
                return SHORT_NAMES[b]
        raise ValueError(f"unknown hiaml block {b!r} at stage {stage}; allowed blocks: {', '.join(BLOCK_NAMES)}")

    def format(self, parsed: Sequence[str]) -> str:
        blocks = [self._block_name(b, i) for i, b in enumerate(parsed)]
        if len(blocks) != NUM_STAGES:
            raise ValueError(f"a hiaml spec needs exactly {NUM_STAGES} blocks, one per stage, got {len(blocks)}")
        return json.dumps({"blocks": blocks}, separators=(",", ":"))

    def sample(self, rng: np.random.Generator) -> str:
        """The authors' ``sample_hiaml_net_config``: a uniform block type per stage."""
        return self.format([BLOCK_NAMES[int(i)] for i in rng.integers(len(BLOCK_NAMES), size=NUM_STAGES)])

    def mutate(self, text: str, rng: np.random.Generator) -> str:
        """Another block type at one stage."""
        blocks = list(self.parse(text))
        stage = int(rng.integers(NUM_STAGES))
        choices = [b for b in BLOCK_NAMES if b != blocks[stage]]
        blocks[stage] = choices[int(rng.integers(len(choices)))]
        return self.format(blocks)

    def enumerate(self) -> list[str]:
        """All 14^4 = 38,416 specs."""
        import itertools

        return [self.format(c) for c in itertools.product(BLOCK_NAMES, repeat=NUM_STAGES)]

    def build(self, text: str, profile: str | Profile = "paper") -> nn.Module:
        p = profile if isinstance(profile, Profile) else self.profile(profile)
        return HiAMLNetwork(self.parse(text), p)

    def input_shape(self, profile: str | Profile = "paper") -> tuple[int, int, int, int]:
        p = profile if isinstance(profile, Profile) else self.profile(profile)
        return (1, *p.input_shape)


__all__ = ["BLOCKS", "BLOCK_NAMES", "HiAMLBlock", "HiAMLNetwork", "HiAMLSpace", "SHORT_NAMES"]
