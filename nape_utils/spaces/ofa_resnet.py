"""OFA ResNet-50 (Once-for-All, Cai et al., ICLR 2020): the ``ofa_resnet50`` space
(``OFAResNets(depth_list=[0,1,2], expand_ratio_list=[0.2,0.25,0.35], width_mult_list=[0.65,0.8,1.0])``).

Canonical spec: compact JSON ``{"r":R,"d":[5 ints],"e":[18 numbers],"w":[6 ints]}``

- ``r``: input resolution, 128..224 in steps of 4 (OFA's training resolutions).
- ``d``: ``d[0]`` is the input stem's depth, 0 (skip the stem's residual 3×3 conv) or 2 (keep it), as
  OFA's arch encoder writes it; ``d[1..4]`` add 0, 1 or 2 blocks to each stage's base depth
  (2, 2, 4, 2), so stages have 2-4, 2-4, 4-6 and 2-4 bottleneck blocks.
- ``e``: expand ratio (0.2, 0.25, 0.35) of every block *slot* in OFA's block order: stages own
  4, 4, 6 and 4 slots (slots 0-3, 4-7, 8-13, 14-17); a stage uses its first ``base + d`` slots and
  unused slots hold ``0`` (as OFA's arch encoder writes them).
- ``w``: width-multiplier *indices* into (0.65, 0.8, 1.0): ``w[0]`` the stem's first two convs,
  ``w[1]`` the stem's last conv, ``w[2..5]`` the four stages. The stem's first convs have
  ``make_divisible(make_divisible(64 * m) // 2)`` channels: 24, 24, 32, so ``w[0] = 1`` is the same
  network as ``w[0] = 0`` and the canonical string writes 0.

Also accepted: OFA's arch dicts ``{"d": [...], "e": [...], "w": [...]}`` (any allowed values in unused
slots), with ``r`` as an int or ``[r]`` or ``image_size``; ``r`` defaults to 224.

Network (``paper``: exactly OFA's ``get_active_subnet``, 1000 classes, no dropout): ResNet-D stem
(3×3 conv stride 2 → [3×3 conv + identity] → 3×3 conv, each BN + ReLU) → 3×3 max pool stride 2 → four
stages of bottleneck blocks (1×1 → 3×3 with the stride → 1×1, BN, ReLU after the residual add), widths
``make_divisible(256/512/1024/2048 * m)``, strides 1, 2, 2, 2, mid width
``make_divisible(round(width * e))``; shortcut identity where stride 1 and widths match, else OFA's
``avgpool_conv`` (avg pool kernel = stride, ceil mode → 1×1 conv → BN; a kernel-1 pool in the first
block); global average pool; linear classifier.

OFA's space does not contain the standard (torchvision) ResNet-50: its stem is ResNet-D's three 3×3
convs instead of one 7×7 conv. ``{"d":[2,1,2,2,1],"e":[0.25,...],"w":[2,2,2,2,2,2]}`` is ResNet-50-D
(depths 3, 4, 6, 3). :func:`standard_resnet50` builds the standard network from the same blocks.

The ``paper`` input is (3, r, r) with r from the spec: use :meth:`OFAResNetSpace.input_shape_of`;
``input_shape("paper")`` is the largest, (1, 3, 224, 224). The ``zoo`` profile keeps every elastic
choice and the topology rules at small widths (stem 32 and stages 48, 64, 96, 128 before the width
multipliers, twice the first zoo's, results/zoo/README.md; channels rounded to integers rather than multiples of 8), with a stride-1 stem conv and
stage strides 1, 2, 2, 1 for 16×16 inputs (2×2 before the pool; the last stage's first block keeps its
``avgpool_conv`` shortcut, with a kernel-1 pool).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from .base import ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES, Profile
from .ofa_common import (OFASpace, conv_bn_act, dumps, finish_zoo_init, int_list, is_int, load_json_object, make_divisible,
                         parse_resolution, RESOLUTIONS)

BASE_DEPTHS = (2, 2, 4, 2)
DEPTH_ADD = (0, 1, 2)
STEM_DEPTHS = (0, 2)
EXPANDS = (0.2, 0.25, 0.35)
WIDTH_MULTS = (0.65, 0.8, 1.0)
STAGE_SLOTS = tuple(b + max(DEPTH_ADD) for b in BASE_DEPTHS)  # (4, 4, 6, 4)
N_SLOTS = sum(STAGE_SLOTS)
SLOT_OFFSETS = tuple(sum(STAGE_SLOTS[:i]) for i in range(len(STAGE_SLOTS)))


@dataclass(frozen=True)
class ResNetConfig:
    r: int
    d: tuple[int, ...]
    e: tuple[float, ...]
    w: tuple[int, ...]


def stage_widths(profile: Profile, w: tuple[int, ...]) -> tuple[int, int, list[int]]:
    """(stem mid width, stem output width, 4 stage widths) for width indices ``w``."""
    div, mults, base = profile["divisor"], profile["width_mults"], profile["stem_width"]
    stem_mid = make_divisible(make_divisible(base * mults[w[0]], div) // 2, div)
    stem_out = make_divisible(base * mults[w[1]], div)
    stages = [make_divisible(sw * mults[wi], div) for sw, wi in zip(profile["stage_widths"], w[2:])]
    return stem_mid, stem_out, stages


class StemResidual(nn.Module):
    """The input stem's skippable block: 3×3 conv-BN-ReLU plus the identity."""

    def __init__(self, channels: int, bn_eps: float = 1e-5):
        super().__init__()
        self.conv = conv_bn_act(channels, channels, 3, 1, act="relu", bn_eps=bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + x


class Bottleneck(nn.Module):
    """OFA's ``ResNetBottleneckBlock`` (stride on the 3×3 conv)."""

    def __init__(self, c_in: int, c_out: int, mid: int, stride: int, downsample_mode: str = "avgpool_conv",
                 bn_eps: float = 1e-5):
        super().__init__()
        self.conv1 = conv_bn_act(c_in, mid, 1, act="relu", bn_eps=bn_eps)
        self.conv2 = conv_bn_act(mid, mid, 3, stride, act="relu", bn_eps=bn_eps)
        self.conv3 = conv_bn_act(mid, c_out, 1, act=None, bn_eps=bn_eps)
        if stride == 1 and c_in == c_out:
            self.downsample = nn.Identity()
        elif downsample_mode == "avgpool_conv":
            self.downsample = nn.Sequential(
                nn.AvgPool2d(stride, stride, 0, ceil_mode=True),
                nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out, eps=bn_eps))
        elif downsample_mode == "conv":
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                            nn.BatchNorm2d(c_out, eps=bn_eps))
        else:
            raise ValueError(f"unknown downsample mode {downsample_mode!r}; 'avgpool_conv' or 'conv'")
        self.final_act = nn.ReLU()

    @property
    def residual_bn(self) -> nn.BatchNorm2d:
        """The BatchNorm that ends the residual branch."""
        return self.conv3.bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_act(self.conv3(self.conv2(self.conv1(x))) + self.downsample(x))


class OFAResNetNet(nn.Module):
    """One OFA-ResNet-50 sub-network (see the module docstring)."""

    def __init__(self, cfg: ResNetConfig, profile: Profile):
        super().__init__()
        div, eps = profile["divisor"], profile["bn_eps"]
        stem_mid, stem_out, widths = stage_widths(profile, cfg.w)
        stem: list[nn.Module] = [conv_bn_act(profile.input_shape[0], stem_mid, 3, profile["stem_stride"], bn_eps=eps)]
        if cfg.d[0] == max(STEM_DEPTHS):
            stem.append(StemResidual(stem_mid, eps))
        stem.append(conv_bn_act(stem_mid, stem_out, 3, 1, bn_eps=eps))
        self.input_stem = nn.Sequential(*stem)
        self.max_pooling = nn.MaxPool2d(3, 2, 1)
        blocks: list[nn.Module] = []
        c_in = stem_out
        for stage, (width, stride) in enumerate(zip(widths, profile["stage_strides"])):
            for b in range(BASE_DEPTHS[stage] + cfg.d[stage + 1]):
                mid = make_divisible(round(width * cfg.e[SLOT_OFFSETS[stage] + b]), div)
                blocks.append(Bottleneck(c_in, width, mid, stride if b == 0 else 1, bn_eps=eps))
                c_in = width
        self.blocks = nn.Sequential(*blocks)
        self.global_avg_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_in, profile.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.max_pooling(self.input_stem(x)))
        return self.classifier(torch.flatten(self.global_avg_pool(x), 1))


class StandardResNet50(nn.Module):
    """The standard (torchvision, v1.5) ResNet-50 from the same bottleneck blocks: 7×7 stem conv,
    depths 3, 4, 6, 3, expand 0.25, strided 1×1 conv shortcuts. Not in OFA's space (see the module
    docstring); kept to check the blocks against the well-known parameter count, 25,557,032."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.input_stem = conv_bn_act(3, 64, 7, 2)
        self.max_pooling = nn.MaxPool2d(3, 2, 1)
        blocks, c_in = [], 64
        for depth, width, stride in zip((3, 4, 6, 3), (256, 512, 1024, 2048), (1, 2, 2, 2)):
            for b in range(depth):
                blocks.append(Bottleneck(c_in, width, width // 4, stride if b == 0 else 1, "conv"))
                c_in = width
        self.blocks = nn.Sequential(*blocks)
        self.global_avg_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.max_pooling(self.input_stem(x)))
        return self.classifier(torch.flatten(self.global_avg_pool(x), 1))


def standard_resnet50(num_classes: int = 1000) -> nn.Module:
    return StandardResNet50(num_classes)


_PAPER = Profile("paper", (3, 224, 224), 1000, {
    "stem_width": 64, "stage_widths": (256, 512, 1024, 2048), "width_mults": WIDTH_MULTS, "divisor": 8,
    "stem_stride": 2, "stage_strides": (1, 2, 2, 2), "bn_eps": 1e-5})


def _stem_width_canon() -> dict[int, int]:
    """Width index of the stem's first convs → the smallest index giving the same paper network."""
    mids = [stage_widths(_PAPER, (i, 0, 0, 0, 0, 0))[0] for i in range(len(WIDTH_MULTS))]
    return {i: mids.index(m) for i, m in enumerate(mids)}


W0_CANON = _stem_width_canon()  # {0: 0, 1: 0, 2: 2}


class OFAResNetSpace(OFASpace):
    name = "ofa_resnet"
    profiles = {
        "paper": _PAPER,
        "zoo": Profile("zoo", ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES, {
            "stem_width": 32, "stage_widths": (48, 64, 96, 128), "width_mults": WIDTH_MULTS, "divisor": 1,
            "stem_stride": 1, "stage_strides": (1, 2, 2, 1), "bn_eps": 1e-5, "resolution_scale": 16 / 224,
            "channels_last": True, "zero_init_residual": True}),
    }

    # -- parse / format -----------------------------------------------------------------------------
    def parse(self, text: Any) -> ResNetConfig:
        family = self.name
        obj = load_json_object(text, family, ("r", "image_size", "d", "e", "w"))
        r = parse_resolution(obj, family)
        d = int_list(obj, "d", 1 + len(BASE_DEPTHS), family)
        if d[0] not in STEM_DEPTHS:
            raise ValueError(f"depth out of range: d[0] = {d[0]!r} is the input stem's depth, 0 (skip its residual "
                             f"conv) or 2 (keep it)")
        for i in range(1, len(d)):
            if d[i] not in DEPTH_ADD:
                raise ValueError(f"depth out of range: d[{i}] = {d[i]!r} adds 0, 1 or 2 blocks to stage {i - 1}'s "
                                 f"base depth {BASE_DEPTHS[i - 1]}")
        w = int_list(obj, "w", 2 + len(BASE_DEPTHS), family)
        for i, v in enumerate(w):
            if v not in range(len(WIDTH_MULTS)):
                raise ValueError(f"width index out of range: w[{i}] = {v!r} must be 0, 1 or 2 (an index into the "
                                 f"width multipliers {', '.join(map(str, WIDTH_MULTS))})")
        w[0] = W0_CANON[w[0]]
        if "e" not in obj:
            raise ValueError(f"{family} spec misses key 'e'")
        e_in = obj["e"]
        if not isinstance(e_in, (list, tuple)) or len(e_in) != N_SLOTS:
            got = len(e_in) if isinstance(e_in, (list, tuple)) else repr(e_in)
            raise ValueError(f"wrong list length: {family} spec key 'e' must have {N_SLOTS} entries "
                             f"(slots per stage {STAGE_SLOTS}), got {got}")
        active = set(self.active_slots(d))
        e = [self._check_expand(j, v, j in active) for j, v in enumerate(e_in)]
        return ResNetConfig(r, tuple(d), tuple(e), tuple(w))

    @staticmethod
    def active_slots(d) -> list[int]:
        return [off + b for off, base, extra in zip(SLOT_OFFSETS, BASE_DEPTHS, d[1:]) for b in range(base + extra)]

    @staticmethod
    def _check_expand(slot: int, v: Any, active: bool) -> float:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            for x in EXPANDS:
                if abs(v - x) < 1e-9:
                    return x if active else 0
            if v == 0 and not active:
                return 0
        elif v is None and not active:
            return 0
        stage = max(i for i, off in enumerate(SLOT_OFFSETS) if off <= slot)
        what = "used" if active else "unused (0 allowed)"
        block = slot - SLOT_OFFSETS[stage]
        raise ValueError(f"expand ratio not allowed: e[{slot}] = {v!r} (stage {stage} block {block}, "
                         f"{what}); allowed: {', '.join(map(str, EXPANDS))}")

    def format(self, cfg: ResNetConfig) -> str:
        return dumps({"r": cfg.r, "d": list(cfg.d), "e": list(cfg.e), "w": list(cfg.w)})

    # -- search -------------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> str:
        r = int(rng.choice(RESOLUTIONS))
        d = [int(rng.choice(STEM_DEPTHS))] + [int(x) for x in rng.choice(DEPTH_ADD, size=len(BASE_DEPTHS))]
        e = [float(x) for x in rng.choice(EXPANDS, size=N_SLOTS)]
        w = [int(x) for x in rng.integers(len(WIDTH_MULTS), size=2 + len(BASE_DEPTHS))]
        return self.canonical(dumps({"r": r, "d": d, "e": e, "w": w}))

    def choices(self, cfg: ResNetConfig) -> list[tuple[str, int]]:
        """The spec's free choices: resolution, stem and stage depths, width indices, used expands."""
        out = [("r", 0)] + [("d", i) for i in range(len(cfg.d))] + [("w", i) for i in range(len(cfg.w))]
        return out + [("e", j) for j in self.active_slots(cfg.d)]

    def mutate(self, text: str, rng: np.random.Generator) -> str:
        cfg = self.parse(text)
        r, d, e, w = cfg.r, list(cfg.d), list(cfg.e), list(cfg.w)
        options = self.choices(cfg)
        key, i = options[int(rng.integers(len(options)))]
        if key == "r":
            r = int(rng.choice([x for x in RESOLUTIONS if x != r]))
        elif key == "d":
            allowed = STEM_DEPTHS if i == 0 else DEPTH_ADD
            d[i] = int(rng.choice([x for x in allowed if x != d[i]]))
            for j in self.active_slots(d):
                if e[j] == 0:
                    e[j] = float(rng.choice(EXPANDS))
        elif key == "w":
            distinct = sorted(set(W0_CANON.values())) if i == 0 else range(len(WIDTH_MULTS))
            w[i] = int(rng.choice([x for x in distinct if x != w[i]]))
        else:
            e[i] = float(rng.choice([x for x in EXPANDS if x != e[i]]))
        return self.canonical(dumps({"r": r, "d": d, "e": e, "w": w}))

    def to_ofa(self, text: str) -> dict:
        """The arch dict OFA's ``set_active_subnet(**dict)`` takes (plus ``r``; unused slots hold 0)."""
        cfg = self.parse(text)
        return {"d": list(cfg.d), "e": list(cfg.e), "w": list(cfg.w), "r": cfg.r}

    # -- networks -----------------------------------------------------------------------------------
    def build(self, text: str, profile: str | Profile = "paper") -> nn.Module:
        profile = self._profile(profile)
        return finish_zoo_init(OFAResNetNet(self.parse(text), profile), profile)
