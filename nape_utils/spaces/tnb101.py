"""TransNAS-Bench-101 (Duan et al., CVPR 2021): the micro (cell) and macro (skeleton) spaces.

Re-implemented from the benchmark's code, yawen-d/TransNASBench ``lib/models/net_infer/net_macro.py``
(``MacroNet``: stem, modules, head), ``lib/models/net_infer/cell_micro.py`` (``MicroCell``,
``ResNetBasicblock``), ``lib/models/net_ops/cell_ops.py`` (the cell ops, ``Zero``,
``FactorizedReduce``), ``lib/models/task_models/{encoder,decoder}.py`` (``FFEncoder`` = MacroNet as a
backbone, ``FFDecoder`` = global average pool + linear) and ``configs/train_from_scratch/*/config.py``
(256×256 inputs; 75 classes for class_object and 47 for class_scene, the benchmark's "final5k" split).

Spec strings
------------
Canonical: the benchmark API's own architecture name ``"<base>-<skeleton>-<cell>"``.

``tnb101_micro`` — ``"64-41414-a_bc_def"``: base width 64, the fixed skeleton 41414, and the cell code
    whose six digits are the ops of the NB-201 cell edges in NB-201's arch-string order
    (0→1 | 0→2, 1→2 | 0→3, 1→3, 2→3), each 0 none, 1 skip_connect, 2 nor_conv_1x1, 3 nor_conv_3x3
    (the README's example ``64-41414-1_02_333``: node1 = skip(node0); node2 = none(node0) +
    conv1x1(node1); node3 = conv3x3 of nodes 0, 1, 2). 4^6 = 4,096 cells. Also accepted: NASLib's
    tuple ``"(a, b, c, d, e, f)"`` — the same six digits in the same order (NASLib queries the
    benchmark with ``'64-41414-{}_{}{}_{}{}{}'.format(*op_indices)``; NASLib's *own* trainable graph
    reads the tuple with another edge order and op ids, which does not matter for the labels) — and
    the NB-201 arch string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` over the four ops.

``tnb101_macro`` — ``"64-<codes>-basic"``: base width 64, 4-6 module codes, the ResNet basic block as
    the cell. Module codes: 1 keeps width and resolution, 2 doubles the channels, 3 halves the
    resolution (stride 2), 4 both. Rules (they give the benchmark's 3,256 networks): 4-6 modules;
    1-4 of them downsample (codes 3, 4); 1-3 of them double the channels (codes 2, 4). Also accepted:
    NASLib's tuple ``"(1, 2, 4, 2)"``, also zero-padded to six as in NASLib's zero-cost files
    (``"(1, 2, 4, 2, 0, 0)"``).

Networks
--------
Encoder (``MacroNet(structure='backbone')``): stem conv 3×3 stride 2 to C/2 + BN, then ReLU-conv
3×3 stride 2 to C + BN (C = 64; 256 → 64 pixels); one module per skeleton code, each 2 cells, the
first carrying the module's stride and channel change. Micro cell: node j = Σ_{i<j} op_ij(node i),
output node 3, no residual; the edges out of node 0 carry the stride and channel change (skip_connect
then becomes a FactorizedReduce, none a zero tensor of the new shape). Macro cell: ResNet basic
block, ReLU-conv-BN twice, with a 1×1 conv + BN shortcut when the shape changes. The benchmark's
Kaiming initialisation is applied to the encoder (convs: fan_out normal; BN: 1, 0).

Head (``paper``): the classification decoder ``FFDecoder`` of task class_object — global average pool
and a linear layer to 75 classes (class_scene's 47: ``Profile("paper-scene", (3, 256, 256), 47,
space.profile("paper").options)``). The decoders of the other five tasks (jigsaw's siamese head,
room_layout's regression head, the generative and segmentation decoders) are not built: nape's
spaces are classifiers.

``zoo``: the same skeletons on 16×16 inputs and 10 classes, base width 4 and one cell per module.
Micro: a stem without strides, so the skeleton's three reductions end at 2×2; every cell ≤ 1.95
MFLOPs, parameters median 9.4k, at most 73k (all nor_conv_3x3). Macro: only the stem's first conv
has stride 2 (8×8 into the modules; 1 reduction ends at 4×4, 3-4 at 1×1), because macro networks
that double their channels before reducing are the costly ones: FLOPs median 0.2M, 98 % of the
3,256 networks ≤ 2 MFLOPs, at most 7.8M; parameters median 19.6k, at most 78.6k (64-222333-basic).

Published counts: the benchmark API file records ``encoder_params``/``model_params`` per network, but
it is not public in a readable form here. NASLib's zero-cost files (``naslib/data/zc_transbench101_*``,
automl/NASLib commit e5a821c) record ``params`` (millions, 6 decimals, i.e. to the parameter) of the
benchmark's encoder plus the linear decoder, built by NASLib's copy of the benchmark code with NASLib's
class counts (class_object 100, class_scene 63); nape's networks match them exactly
(tests/test_space_tnb101.py), which also pins the digit-for-digit reading of NASLib's tuples. Their
``flops`` (MACs at 256×256) agree with nape's conv/linear MACs to about 1 % (the rest is BN and
pooling, counted by NASLib's counter).
"""
from __future__ import annotations

import itertools
import re
from functools import lru_cache

import numpy as np
import torch
import torch.nn as nn

from .base import ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES, Profile, Space
from .nb201 import EDGES, NB201Space
from .ops import ReLUConvBN, Zero

#: TransNAS-Bench-101's micro op codes 0-3
MICRO_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3")
MICRO_SKELETON = "41414"
BASE_CHANNELS = 64
#: macro module codes: 1 keep, 2 double channels, 3 downsample, 4 both
MACRO_CODES = (1, 2, 3, 4)
MACRO_LENGTHS = (4, 5, 6)
MAX_DOWNSAMPLES, MAX_DOUBLINGS = 4, 3

_MICRO_RE = re.compile(r"^(\d+)-(\d+)-(\d)_(\d)(\d)_(\d)(\d)(\d)$")
_MACRO_RE = re.compile(r"^(\d+)-(\d+)-([A-Za-z0-9_]+)$")


def _doubles(code: int) -> bool:
    return code % 2 == 0  # 2, 4 (MacroNet: target_channel = inplanes * 2 if layer_type % 2 == 0)


def _downsamples(code: int) -> bool:
    return code > 2  # 3, 4 (MacroNet: stride = 2 if layer_type > 2)


def _parse_tuple(text: str, family: str, example: str) -> list[int]:
    try:
        return [int(part) for part in text.strip("()[] ").split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"malformed NASLib {family} tuple {text!r}: expected integers such as {example}") from None


# ---------------------------------------------------------------------------------------------------
# network blocks
# ---------------------------------------------------------------------------------------------------
class ZeroReshape(nn.Module):
    """``none`` on an edge that changes the channel count: zeros of shape (N, c_out, ⌈H/s⌉, ⌈W/s⌉).

    The benchmark's ``Zero`` (C_in ≠ C_out) returns ``x.new_zeros`` with ``(H + 1) // stride``; it only
    occurs with stride 2 there, where the two agree."""

    cg_op = "zero"

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.c_in, self.c_out, self.stride = c_in, c_out, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        s = self.stride
        return x.new_zeros((n, self.c_out, (h + s - 1) // s, (w + s - 1) // s))


class FactorizedReduce(nn.Module):
    """TransNAS' skip_connect when the shape changes: ReLU → two 1×1 convs with the stride, the second
    on the input shifted one pixel (zero-padded right and bottom) → concat (c_out//2 + the rest) → BN."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even c_out, got {c_out}")
        self.stride = stride
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=stride, padding=0, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=stride, padding=0, bias=False)
        self.pad = nn.ConstantPad2d((0, 1, 0, 1), 0.0)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        y = self.pad(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(y[:, :, 1:, 1:])], dim=1))


def make_micro_op(name: str, c_in: int, c_out: int, stride: int) -> nn.Module:
    """The module of one micro-cell edge (TransNAS' ``OPS``)."""
    if name == "none":
        return Zero(stride) if c_in == c_out else ZeroReshape(c_in, c_out, stride)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 and c_in == c_out else FactorizedReduce(c_in, c_out, stride)
    if name == "nor_conv_1x1":
        return ReLUConvBN(c_in, c_out, 1, stride, 0)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c_in, c_out, 3, stride, 1)
    raise ValueError(f"unknown TransNAS-Bench-101 micro op {name!r}; the ops are {', '.join(MICRO_OPS)}")


class MicroCell(nn.Module):
    """The NB-201 cell layout; edges leaving node 0 map c_in → c_out with the stride, the others keep
    c_out. The output is node 3 (no residual)."""

    def __init__(self, ops: tuple[str, ...], c_in: int, c_out: int, stride: int):
        super().__init__()
        self.edges = nn.ModuleList(
            make_micro_op(op, c_in, c_out, stride) if src == 0 else make_micro_op(op, c_out, c_out, 1)
            for op, (src, _) in zip(ops, EDGES))

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


class BasicBlock(nn.Module):
    """TransNAS' ``ResNetBasicblock``: (ReLU → conv 3×3 → BN) twice, plus the input or, when the shape
    changes, a 1×1 conv (with the stride) + BN of it."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = (nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
                           if stride != 1 or c_in != c_out else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return residual + self.conv_b(self.conv_a(x))


class TNB101Network(nn.Module):
    """Stem → one module per skeleton code (``blocks_per_module`` cells each) → pool → linear."""

    def __init__(self, skeleton: tuple[int, ...], cell_ops: tuple[str, ...] | None, profile: Profile):
        super().__init__()
        c = profile["base_channels"]
        s1, s2 = profile["stem_strides"]
        self.stem = nn.Sequential(
            nn.Conv2d(profile.input_shape[0], c // 2, 3, stride=s1, padding=1, bias=False),
            nn.BatchNorm2d(c // 2),
            ReLUConvBN(c // 2, c, 3, s2, 1),
        )
        layers: list[nn.Module] = []
        width = c
        for code in skeleton:
            out, stride = width * 2 if _doubles(code) else width, 2 if _downsamples(code) else 1
            blocks = []
            for b in range(profile["blocks_per_module"]):
                c_in, s = (width, stride) if b == 0 else (out, 1)
                blocks.append(BasicBlock(c_in, out, s) if cell_ops is None else MicroCell(cell_ops, c_in, out, s))
            layers.append(nn.Sequential(*blocks))
            width = out
        self.layers = nn.Sequential(*layers)
        self._kaiming_init()  # the benchmark initialises the encoder; the decoder keeps torch's default
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, profile.num_classes)

    def _kaiming_init(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


def _profiles(zoo_stem_strides: tuple[int, int]) -> dict[str, Profile]:
    return {
        "paper": Profile("paper", (3, 256, 256), 75, {"task": "class_object", "base_channels": BASE_CHANNELS,
                                                      "blocks_per_module": 2, "stem_strides": (2, 2)}),
        "zoo": Profile("zoo", ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES, {"task": "class_object", "base_channels": 4,
                                                                 "blocks_per_module": 1,
                                                                 "stem_strides": zoo_stem_strides}),
    }


# ---------------------------------------------------------------------------------------------------
# spaces
# ---------------------------------------------------------------------------------------------------
class TNB101MicroSpace(Space):
    """TransNAS-Bench-101's cell-level space: 4,096 cells on the fixed skeleton 64-41414."""

    name = "tnb101_micro"
    profiles = _profiles((1, 1))

    def parse(self, text: str) -> tuple[str, ...]:
        text = str(text).strip()
        if text.startswith(("(", "[")):
            ids = _parse_tuple(text, "TransNAS-Bench-101 micro", "(1, 0, 2, 3, 1, 3)")
            if len(ids) != 6 or not all(0 <= i < len(MICRO_OPS) for i in ids):
                raise ValueError(f"a NASLib TransNAS-Bench-101 micro tuple has six op ids in 0-3 "
                                 f"(0 none, 1 skip_connect, 2 nor_conv_1x1, 3 nor_conv_3x3), got {text!r}")
            return tuple(MICRO_OPS[i] for i in ids)
        if text.startswith("|"):
            try:
                ops = NB201Space().parse(text)
            except ValueError as err:
                raise ValueError(f"not a TransNAS-Bench-101 micro cell: {err}") from None
            bad = [op for op in ops if op not in MICRO_OPS]
            if bad:
                raise ValueError(f"op {bad[0]!r} is not in the TransNAS-Bench-101 micro space; its ops are "
                                 f"{', '.join(MICRO_OPS)}")
            return ops
        match = _MICRO_RE.match(text)
        if not match:
            raise ValueError(f"malformed TransNAS-Bench-101 micro spec {text!r}: expected the benchmark's "
                             "'64-41414-a_bc_def' (digits 0-3), a NASLib tuple such as (1, 0, 2, 3, 1, 3), "
                             "or an NB-201 arch string")
        base, skeleton, *digits = match.groups()
        if int(base) != BASE_CHANNELS:
            raise ValueError(f"the TransNAS-Bench-101 base width is {BASE_CHANNELS}, got {base} in {text!r}")
        if skeleton != MICRO_SKELETON:
            raise ValueError(f"the micro space's skeleton is fixed to {MICRO_SKELETON}, got {skeleton} in {text!r}")
        if any(int(d) >= len(MICRO_OPS) for d in digits):
            raise ValueError(f"micro op codes are 0-3 (0 none, 1 skip_connect, 2 nor_conv_1x1, 3 nor_conv_3x3), "
                             f"got {text!r}")
        return tuple(MICRO_OPS[int(d)] for d in digits)

    def format(self, ops: tuple[str, ...]) -> str:
        d = [MICRO_OPS.index(op) for op in ops]
        return f"{BASE_CHANNELS}-{MICRO_SKELETON}-{d[0]}_{d[1]}{d[2]}_{d[3]}{d[4]}{d[5]}"

    def to_naslib(self, text: str) -> str:
        """NASLib's op tuple of a spec (the form of NASLib's TransNAS-Bench-101 files)."""
        return "(" + ", ".join(str(MICRO_OPS.index(op)) for op in self.parse(text)) + ")"

    def to_nb201(self, text: str) -> str:
        """The NB-201 arch string of the same cell."""
        return NB201Space().format(self.parse(text))

    def flags(self, text: str) -> dict[str, bool]:
        """NB-201's ``output_unreachable`` and ``dead_ops`` of the cell (see :meth:`NB201Space.flags`)."""
        return NB201Space().flags(self.to_nb201(text))

    def sample(self, rng: np.random.Generator) -> str:
        return self.format(tuple(MICRO_OPS[i] for i in rng.integers(len(MICRO_OPS), size=6)))

    def mutate(self, text: str, rng: np.random.Generator) -> str:
        ops = list(self.parse(text))
        edge = int(rng.integers(6))
        ops[edge] = str(rng.choice([op for op in MICRO_OPS if op != ops[edge]]))
        return self.format(tuple(ops))

    def enumerate(self) -> list[str]:
        """All 4,096 cells."""
        return [self.format(ops) for ops in itertools.product(MICRO_OPS, repeat=6)]

    def build(self, text: str, profile: str = "paper") -> nn.Module:
        return TNB101Network(tuple(int(c) for c in MICRO_SKELETON), self.parse(text), self.profile(profile))


def check_macro(codes: list[int] | tuple[int, ...], text: str = "") -> tuple[int, ...]:
    """``codes`` as a tuple, or ValueError naming the macro rule they break."""
    where = f" in {text!r}" if text else ""
    if len(codes) not in MACRO_LENGTHS:
        raise ValueError(f"a TransNAS-Bench-101 macro network has 4-6 modules, got {len(codes)}{where}")
    if not all(c in MACRO_CODES for c in codes):
        raise ValueError(f"macro module codes are 1-4 (1 keep, 2 double channels, 3 downsample, 4 both), "
                         f"got {list(codes)}{where}")
    down, double = sum(map(_downsamples, codes)), sum(map(_doubles, codes))
    if not 1 <= down <= MAX_DOWNSAMPLES:
        raise ValueError(f"a macro network downsamples 1-{MAX_DOWNSAMPLES} times (codes 3, 4), got {down}{where}")
    if not 1 <= double <= MAX_DOUBLINGS:
        raise ValueError(f"a macro network doubles its channels 1-{MAX_DOUBLINGS} times (codes 2, 4), "
                         f"got {double}{where}")
    return tuple(codes)


@lru_cache(maxsize=1)
def _all_macro() -> tuple[tuple[int, ...], ...]:
    found = []
    for n in MACRO_LENGTHS:
        for codes in itertools.product(MACRO_CODES, repeat=n):
            try:
                found.append(check_macro(codes))
            except ValueError:
                pass
    return tuple(found)


class TNB101MacroSpace(Space):
    """TransNAS-Bench-101's macro-level space: 3,256 skeletons of ResNet basic blocks."""

    name = "tnb101_macro"
    profiles = _profiles((2, 1))

    def parse(self, text: str) -> tuple[int, ...]:
        text = str(text).strip()
        if text.startswith(("(", "[")):
            codes = _parse_tuple(text, "TransNAS-Bench-101 macro", "(1, 2, 4, 2)")
            while len(codes) > 4 and codes[-1] == 0:  # NASLib pads its op_indices with zeros to six
                codes.pop()
            return check_macro(codes, text)
        match = _MACRO_RE.match(text)
        if not match:
            raise ValueError(f"malformed TransNAS-Bench-101 macro spec {text!r}: expected the benchmark's "
                             "'64-<4-6 codes 1-4>-basic' such as 64-1242-basic, or a NASLib tuple such as "
                             "(1, 2, 4, 2)")
        base, skeleton, cell = match.groups()
        if int(base) != BASE_CHANNELS:
            raise ValueError(f"the TransNAS-Bench-101 base width is {BASE_CHANNELS}, got {base} in {text!r}")
        if cell != "basic":
            raise ValueError(f"the macro space's cell is the ResNet basic block ('basic'), got {cell!r} in "
                             f"{text!r} (a micro cell code belongs to tnb101_micro)")
        return check_macro([int(d) for d in skeleton], text)

    def format(self, codes: tuple[int, ...]) -> str:
        return f"{BASE_CHANNELS}-{''.join(map(str, codes))}-basic"

    def to_naslib(self, text: str, pad: bool = False) -> str:
        """NASLib's tuple of a spec; ``pad=True`` zero-pads it to six as NASLib's ``op_indices``."""
        codes = list(self.parse(text))
        if pad:
            codes += [0] * (6 - len(codes))
        return "(" + ", ".join(map(str, codes)) + ")"

    def sample(self, rng: np.random.Generator) -> str:
        archs = _all_macro()
        return self.format(archs[int(rng.integers(len(archs)))])

    def neighbours(self, text: str) -> list[str]:
        """Every valid spec one local change away: one module's code replaced, one module removed, or
        one module inserted."""
        codes = list(self.parse(text))
        out: set[tuple[int, ...]] = set()
        for i in range(len(codes)):
            for c in MACRO_CODES:
                if c != codes[i]:
                    out.add(tuple(codes[:i] + [c] + codes[i + 1:]))
            out.add(tuple(codes[:i] + codes[i + 1:]))
        for i in range(len(codes) + 1):
            for c in MACRO_CODES:
                out.add(tuple(codes[:i] + [c] + codes[i:]))
        valid = set(_all_macro())
        return sorted(self.format(c) for c in out if c in valid and c != tuple(codes))

    def mutate(self, text: str, rng: np.random.Generator) -> str:
        options = self.neighbours(text)
        return options[int(rng.integers(len(options)))]

    def enumerate(self) -> list[str]:
        """All 3,256 networks."""
        return [self.format(c) for c in _all_macro()]

    def build(self, text: str, profile: str = "paper") -> nn.Module:
        return TNB101Network(self.parse(text), None, self.profile(profile))
