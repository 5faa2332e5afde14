"""Pieces shared by the three Once-for-All families (:mod:`.ofa_mbv3`, :mod:`.ofa_pn`, :mod:`.ofa_resnet`).

Once-for-All (Cai et al., ICLR 2020; reference code mit-han-lab/once-for-all) trains one elastic
super-network per family and lets every sub-network be picked by a small configuration: input
resolution, per-stage depth, per-block kernel size and expand ratio (and, for ResNet-50, width
multipliers). nape writes such a configuration as a compact JSON spec and builds the *sub-network*
OFA would extract from it (``get_active_subnet``), channel for channel.

This file holds: OFA's ``make_divisible``; the layers (conv-BN-activation, squeeze-excite, the MBConv
block) written with plain ``torch.nn`` modules so that torch.fx traces them into vocabulary ops
(``nn.Hardswish``/``nn.Hardsigmoid`` are exactly OFA's ``Hswish``/``Hsigmoid``); spec-parsing helpers;
and :class:`OFASpace`, the base of the three spaces, which adds :meth:`OFASpace.input_shape_of`.
"""
from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from ..checks import is_whole
from .base import Profile, Space

#: input resolutions OFA trains its super-networks on (``MyRandomResizedCrop``: 128–224, step 4)
RESOLUTIONS: tuple[int, ...] = tuple(range(128, 225, 4))
#: OFA's default evaluation resolution, used when a spec does not say
DEFAULT_RESOLUTION = 224


def make_divisible(v: float, divisor: int = 8, min_val: int | None = None) -> int:
    """OFA's (and TF-slim MobileNet's) channel rounding: nearest multiple of ``divisor``, never more
    than 10 % below ``v``. ``divisor=1`` rounds to the nearest integer (used by the zoo profiles)."""
    if min_val is None:
        min_val = divisor
    new_v = max(min_val, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return int(new_v)


# ---------------------------------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------------------------------
def activation(name: str | None) -> nn.Module | None:
    """OFA's activation names → torch modules (OFA's Hswish/Hsigmoid equal nn.Hardswish/nn.Hardsigmoid)."""
    if name is None:
        return None
    table = {"relu": nn.ReLU, "relu6": nn.ReLU6, "h_swish": nn.Hardswish, "h_sigmoid": nn.Hardsigmoid}
    try:
        return table[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; one of {', '.join(table)}") from None


def conv_bn_act(c_in: int, c_out: int, kernel: int = 1, stride: int = 1, *, act: str | None = "relu",
                groups: int = 1, use_bn: bool = True, bias: bool = False, bn_eps: float = 1e-5) -> nn.Sequential:
    """OFA's ``ConvLayer`` (ops order weight → BN → activation, 'same' padding)."""
    layers: list[tuple[str, nn.Module]] = [
        ("conv", nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=bias))]
    if use_bn:
        layers.append(("bn", nn.BatchNorm2d(c_out, eps=bn_eps)))
    act_module = activation(act)
    if act_module is not None:
        layers.append(("act", act_module))
    return nn.Sequential(OrderedDict(layers))


class SqueezeExcite(nn.Module):
    """OFA's ``SEModule``: global average pool → 1×1 conv (bias) → ReLU → 1×1 conv (bias) →
    h-sigmoid, then ``x * w``. The middle width is ``make_divisible(channels // 4, divisor)``."""

    REDUCTION = 4

    def __init__(self, channels: int, divisor: int = 8):
        super().__init__()
        mid = make_divisible(channels // self.REDUCTION, divisor)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, mid, 1, bias=True)
        self.relu = nn.ReLU()
        self.expand = nn.Conv2d(mid, channels, 1, bias=True)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.gate(self.expand(self.relu(self.reduce(self.pool(x)))))
        return x * w


class MBConvBlock(nn.Module):
    """OFA's ``MBConvLayer`` inside a ``ResidualBlock``: [1×1 expand conv-BN-act] → k×k depthwise
    conv-BN-act [→ SE] → 1×1 project conv-BN, plus the input when ``shortcut``.

    ``mid`` is the expanded width; OFA's sub-networks use ``make_divisible(round(c_in * e), 8)``.
    Expand ratio 1 drops the expand conv (the depthwise conv then runs on ``c_in`` channels)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int, mid: int, *,
                 act: str, use_se: bool, shortcut: bool, divisor: int = 8, bn_eps: float = 1e-5):
        super().__init__()
        self.kernel, self.stride, self.expand_ratio, self.use_se = kernel, stride, expand, use_se
        if expand == 1:
            mid = c_in
            self.inverted_bottleneck = None
        else:
            self.inverted_bottleneck = conv_bn_act(c_in, mid, 1, act=act, bn_eps=bn_eps)
        depth = conv_bn_act(mid, mid, kernel, stride, act=act, groups=mid, bn_eps=bn_eps)
        if use_se:
            depth.add_module("se", SqueezeExcite(mid, divisor))
        self.depth_conv = depth
        self.point_linear = conv_bn_act(mid, c_out, 1, act=None, bn_eps=bn_eps)
        self.shortcut = shortcut

    @property
    def residual_bn(self) -> nn.BatchNorm2d | None:
        """The BatchNorm that ends the residual branch (None without a shortcut)."""
        return self.point_linear.bn if self.shortcut else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.inverted_bottleneck is None else self.inverted_bottleneck(x)
        out = self.point_linear(self.depth_conv(out))
        if self.shortcut:
            out = out + x
        return out


def finish_zoo_init(net: nn.Module, profile: Profile) -> nn.Module:
    """Apply the profile's ``"zero_init_residual"``: every residual branch's last BatchNorm scale starts
    at 0, so each residual block starts as the identity (Goyal et al. 2017; torchvision's
    ``zero_init_residual``). At zoo size the deep OFA networks otherwise sit near ln 10 for most of the
    budget, and where they end is luck: OFA-MobileNetV3's seed noise fell from 10.9 to 3.1 points
    (results/zoo/README.md)."""
    if profile.options.get("zero_init_residual"):
        for module in net.modules():
            bn = getattr(module, "residual_bn", None)
            if bn is not None:
                nn.init.zeros_(bn.weight)
    return net


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------------
# spec helpers
# ---------------------------------------------------------------------------------------------------
def load_json_object(text: Any, family: str, allowed_keys: Sequence[str]) -> dict:
    """The spec as a dict: a JSON object string (or a dict already), with no unknown keys."""
    if isinstance(text, dict):
        obj = dict(text)
    else:
        text = str(text).strip()
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"malformed JSON in {family} spec {text[:80]!r}: {err.msg} at char {err.pos}; "
                             f"expected an object with keys {', '.join(allowed_keys)}") from None
        if not isinstance(obj, dict):
            raise ValueError(f"a {family} spec is a JSON object with keys {', '.join(allowed_keys)}, "
                             f"got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(allowed_keys))
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown))} in {family} spec; "
                         f"allowed keys: {', '.join(allowed_keys)}")
    return obj


def is_int(x: Any) -> bool:
    return is_whole(x) or (isinstance(x, float) and x.is_integer())


def int_list(obj: dict, key: str, length: int | Sequence[int], family: str) -> list[int | None]:
    """``obj[key]`` as a list of ints (``None`` kept), checking its length."""
    if key not in obj:
        raise ValueError(f"{family} spec misses key {key!r}")
    value = obj[key]
    lengths = (length,) if isinstance(length, int) else tuple(length)
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{family} spec key {key!r} must be a list of {' or '.join(map(str, lengths))} "
                         f"integers, got {value!r}")
    if len(value) not in lengths:
        raise ValueError(f"wrong list length: {family} spec key {key!r} must have "
                         f"{' or '.join(map(str, lengths))} entries, got {len(value)}")
    out: list[int | None] = []
    for i, v in enumerate(value):
        if v is None:
            out.append(None)
        elif is_int(v):
            out.append(int(v))
        else:
            raise ValueError(f"{family} spec {key}[{i}] must be an integer, got {v!r}")
    return out


def parse_resolution(obj: dict, family: str, keys: Sequence[str] = ("r", "image_size")) -> int:
    """The input resolution: ``r`` (an int, or OFA's one-element list ``[r]``) or ``image_size``;
    224 when absent. Must be in 128..224 and a multiple of 4 (OFA's training resolutions)."""
    given = [k for k in keys if k in obj]
    if len(given) > 1:
        raise ValueError(f"{family} spec gives the resolution twice ({' and '.join(given)}); give one")
    if not given:
        return DEFAULT_RESOLUTION
    value = obj[given[0]]
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if not is_int(value):
        raise ValueError(f"{family} spec resolution {given[0]!r} must be an integer, got {value!r}")
    r = int(value)
    if not RESOLUTIONS[0] <= r <= RESOLUTIONS[-1]:
        raise ValueError(f"resolution out of range: {r} is not in {RESOLUTIONS[0]}..{RESOLUTIONS[-1]} "
                         "(OFA's training resolutions)")
    if r % 4:
        raise ValueError(f"resolution {r} is not a multiple of 4 (OFA's resolutions are 128, 132, ..., 224)")
    return r


def dumps(obj: dict) -> str:
    """Compact JSON, keys in the given order (the canonical spec string)."""
    return json.dumps(obj, separators=(",", ":"))


class OFASpace(Space):
    """Base of the OFA spaces: the paper input size depends on the spec's resolution.

    ``input_shape(profile)`` (the :class:`Space` contract) returns the profile's largest input,
    (1, 3, 224, 224) for ``paper``; :meth:`input_shape_of` returns the input a given spec's network
    expects: (1, 3, r, r) at ``paper``; at ``zoo`` r is scaled by the profile's
    ``resolution_scale`` (16/224), so r = 128…224 gives 9…16 pixels."""

    def resolution_of(self, parsed: Any) -> int:
        return parsed.r

    def input_shape_of(self, text: str, profile: str | Profile = "paper") -> tuple[int, int, int, int]:
        p = profile if isinstance(profile, Profile) else self.profile(profile)
        c = p.input_shape[0]
        r = self.resolution_of(self.parse(text))
        if "resolution_scale" in p.options:  # zoo: OFA's 128..224 mapped onto the task's canvas
            r = round(r * p.options["resolution_scale"])
        return (1, c, r, r)

    def _profile(self, profile: str | Profile) -> Profile:
        return profile if isinstance(profile, Profile) else self.profile(profile)


def feature_size(size: int, strides: Sequence[int]) -> int:
    """Spatial size after 'same'-padded convs with these strides (ceil division each time)."""
    for s in strides:
        size = math.ceil(size / s)
    return size


# ---------------------------------------------------------------------------------------------------
# the elastic-MBConv spec shared by OFA-MobileNetV3 and OFA-ProxylessNAS
# ---------------------------------------------------------------------------------------------------
KERNELS: tuple[int, ...] = (3, 5, 7)
EXPANDS: tuple[int, ...] = (3, 4, 6)
DEPTHS: tuple[int, ...] = (2, 3, 4)


@dataclass(frozen=True)
class MBConfig:
    """A parsed elastic-MBConv spec: resolution, per-stage depth, per-slot kernel and expand ratio
    (slots of blocks a stage does not use hold 0)."""

    r: int
    d: tuple[int, ...]
    ks: tuple[int, ...]
    e: tuple[int, ...]


class ElasticMBSpace(OFASpace):
    """OFA's elastic MBConv spaces. Stage ``i`` owns ``stage_slots[i]`` consecutive block slots of the
    ``ks``/``e`` lists (OFA's block order); its first ``d[i]`` slots are used. A stage with one slot is
    fixed (ProxylessNAS' last stage): its depth is always 1."""

    #: block slots per stage (the stage's largest depth)
    stage_slots: tuple[int, ...] = (4, 4, 4, 4, 4)

    @property
    def n_slots(self) -> int:
        return sum(self.stage_slots)

    @property
    def slot_offsets(self) -> tuple[int, ...]:
        out, acc = [], 0
        for n in self.stage_slots:
            out.append(acc)
            acc += n
        return tuple(out)

    def _elastic(self, stage: int) -> bool:
        return self.stage_slots[stage] > 1

    def active_slots(self, d: Sequence[int]) -> list[int]:
        return [off + b for off, depth in zip(self.slot_offsets, d) for b in range(depth)]

    # -- parse / format -----------------------------------------------------------------------------
    def parse(self, text: Any) -> MBConfig:
        family = self.name
        obj = load_json_object(text, family, ("r", "image_size", "d", "ks", "k", "e", "wid"))
        if obj.get("wid") is not None:
            raise ValueError(f"{family} has no elastic width: key 'wid' must be null or absent, got {obj['wid']!r}")
        r = parse_resolution(obj, family)
        n_stages = len(self.stage_slots)
        n_elastic = sum(self._elastic(i) for i in range(n_stages))
        lengths = (n_stages,) if n_elastic == n_stages else (n_stages, n_elastic)
        d_in = int_list(obj, "d", lengths, family)
        if len(d_in) < n_stages:  # fixed stages may be left out
            d_in = d_in + [1] * (n_stages - len(d_in))
        d: list[int] = []
        for i, v in enumerate(d_in):
            if self._elastic(i):
                if v not in DEPTHS:
                    raise ValueError(f"depth out of range: d[{i}] = {v!r}; stage {i} has {DEPTHS[0]}-{DEPTHS[-1]} "
                                     f"blocks (one of {', '.join(map(str, DEPTHS))})")
                d.append(v)
            else:  # OFA clips the fixed stage's depth to its single block
                if v not in (1, *DEPTHS):
                    raise ValueError(f"depth out of range: d[{i}] = {v!r}; stage {i} is fixed at 1 block "
                                     f"(OFA accepts any of 1, {', '.join(map(str, DEPTHS))} and uses 1)")
                d.append(1)
        if "ks" in obj and "k" in obj:
            raise ValueError(f"{family} spec gives the kernels twice ('ks' and 'k'); give one")
        ks_key = "k" if "k" in obj else "ks"
        ks_in = int_list(obj, ks_key, self.n_slots, family)
        e_in = int_list(obj, "e", self.n_slots, family)
        active = set(self.active_slots(d))
        ks = [self._check_choice(ks_key, j, v, KERNELS, j in active, "kernel not in {3,5,7}")
              for j, v in enumerate(ks_in)]
        e = [self._check_choice("e", j, v, EXPANDS, j in active, "expand ratio not allowed")
             for j, v in enumerate(e_in)]
        return MBConfig(r, tuple(d), tuple(ks), tuple(e))

    def _where(self, slot: int) -> str:
        for stage, (off, n) in enumerate(zip(self.slot_offsets, self.stage_slots)):
            if off <= slot < off + n:
                return f"stage {stage} block {slot - off}"
        return f"slot {slot}"

    def _check_choice(self, key: str, slot: int, v: int | None, allowed: tuple[int, ...], active: bool,
                      rule: str) -> int:
        if v in allowed:
            return int(v) if active else 0
        if not active and v in (None, 0):
            return 0
        what = "used" if active else "unused (0 allowed)"
        raise ValueError(f"{rule}: {key}[{slot}] = {v!r} ({self._where(slot)}, {what}); "
                         f"allowed: {', '.join(map(str, allowed))}")

    def format(self, cfg: MBConfig) -> str:
        return dumps({"r": cfg.r, "d": list(cfg.d), "ks": list(cfg.ks), "e": list(cfg.e)})

    # -- search -------------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> str:
        r = int(rng.choice(RESOLUTIONS))
        d = [int(rng.choice(DEPTHS)) if self._elastic(i) else 1 for i in range(len(self.stage_slots))]
        ks = [int(k) for k in rng.choice(KERNELS, size=self.n_slots)]
        e = [int(x) for x in rng.choice(EXPANDS, size=self.n_slots)]
        return self.canonical(dumps({"r": r, "d": d, "ks": ks, "e": e}))

    def choices(self, cfg: MBConfig) -> list[tuple[str, int]]:
        """The spec's free choices: resolution, each elastic depth, kernel and expand of each used block."""
        out: list[tuple[str, int]] = [("r", 0)]
        out += [("d", i) for i in range(len(self.stage_slots)) if self._elastic(i)]
        for j in self.active_slots(cfg.d):
            out += [("ks", j), ("e", j)]
        return out

    def mutate(self, text: str, rng: np.random.Generator) -> str:
        cfg = self.parse(text)
        r, d, ks, e = cfg.r, list(cfg.d), list(cfg.ks), list(cfg.e)
        options = self.choices(cfg)
        key, i = options[int(rng.integers(len(options)))]
        if key == "r":
            r = int(rng.choice([x for x in RESOLUTIONS if x != r]))
        elif key == "d":
            d[i] = int(rng.choice([x for x in DEPTHS if x != d[i]]))
            for j in self.active_slots(d):  # blocks that become used draw their choices
                if ks[j] == 0:
                    ks[j] = int(rng.choice(KERNELS))
                    e[j] = int(rng.choice(EXPANDS))
        elif key == "ks":
            ks[i] = int(rng.choice([x for x in KERNELS if x != ks[i]]))
        else:
            e[i] = int(rng.choice([x for x in EXPANDS if x != e[i]]))
        return self.canonical(dumps({"r": r, "d": d, "ks": ks, "e": e}))

    def to_ofa(self, text: str) -> dict:
        """The arch dict OFA's ``set_active_subnet(**dict)`` takes (plus ``r``; unused slots hold 0)."""
        cfg = self.parse(text)
        return {"ks": list(cfg.ks), "e": list(cfg.e), "d": list(cfg.d), "r": cfg.r}
