"""NAS-Bench-Macro (Su et al., CVPR 2021, "Prioritized Architecture Sampling with Monte-Carlo Tree
Search"): 8 searchable layers of a small MobileNetV2-like CIFAR-10 network, 3 choices each (6,561 keys).

Re-implemented from the benchmark's code, xiusu/NAS-Bench-Macro ``train/model.py`` (``Network``,
``InvertedResidual``, ``Identity``), ``train/utils.py`` (``count_FLOPs``, ``get_real_arch``) and
``train/train.py`` (what ``params`` and ``flops`` count). Network (``paper``, CIFAR-10 32×32):

- stem: conv 3×3 (stride 1, padding 1) to 32 channels, BN, ReLU;
- 3 stages of [2, 3, 3] searchable layers; the first layer of each stage has stride 2 and doubles the
  channels (32 → 64 → 128 → 256; 32×32 → 16 → 8 → 4), every other layer keeps the shape;
- head: conv 1×1 to 1280, BN, ReLU → global average pool → linear (with bias) to the classes.

Layer choices (the digit of the key): ``0`` identity, ``1`` inverted residual k3 expand 3
(``ir_3x3_t3``), ``2`` inverted residual k5 expand 6 (``ir_5x5_t6``). An inverted residual is
conv 1×1 to ``round(c_in · t)``, BN, ReLU → depthwise conv k×k (the layer's stride, padding k//2), BN,
ReLU → conv 1×1 to ``c_out``, BN (no activation); it adds its input when stride is 1 and the width is
kept. *Identity* at a stage's first layer is allowed: the reference makes it a conv 1×1 with stride 2
to the doubled width, then BN (no activation); elsewhere it is the input itself and adds no module.
Every conv has no bias; BN is torch's default (eps 1e-5); activations are ReLU; no squeeze-excite.

The file's ``params`` are all trainable parameters (BN affine and the linear bias included); its
``flops`` are multiply-accumulates of the convs and the linear layer (no bias, BN, add or pool), i.e.
half of what torch's ``FlopCounterMode`` (nape's FLOPs) reports.

Canonical spec: the benchmark's 8-digit key, layer 0 first, e.g. ``"01201120"``. Also accepted: a
JSON list of the 8 digits (``[0, 1, 2, 0, 1, 1, 2, 0]``, the reference's ``decode_arch`` form).

Keys that name one network: after a stage's first layer the identities are no-ops, so only the order
of the non-identity layers matters (``x01`` and ``x10`` in a 3-layer stage are one network). The
benchmark trained one key per network, :meth:`MacroSpace.trained_key` (its ``get_real_arch``: the
identities of each stage moved behind its other layers), and copied the result to every key of the
network. The canonical spec stays the key, as in the benchmark's file (so every one of its 6,561 rows
keeps its own spec); ``build`` builds a key's trained network, so collapsed keys give identical modules
and graphs; ``flags(spec)["duplicate_key"]`` says whether a key is not the one trained.

``zoo``: the same network on 16×16 inputs with every width divided by 4 (stem 8, stages 16 → 32 → 64,
head 320), in channels-last tensors (faster depthwise convs on CPU): the stages end at 2×2.
"""
from __future__ import annotations

import itertools
import json
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn

from ..checks import is_whole
from .base import ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES, Profile, Space
from .gennape_ops import divide_width

#: searchable layers per stage; each stage's first layer has stride 2 and doubles the width
STAGES: tuple[int, ...] = (2, 3, 3)
NUM_LAYERS = sum(STAGES)
#: the reference's names of the choices 0, 1, 2 (``candidate_OP``)
CHOICES: tuple[str, ...] = ("id", "ir_3x3_t3", "ir_5x5_t6")
#: (kernel, expand ratio) of the inverted-residual choices
IR_SETTINGS: dict[int, tuple[int, int]] = {1: (3, 3), 2: (5, 6)}

_FORMATS = ("accepted forms: the benchmark's key, 8 digits 0-2 such as '01201120' (0 identity, 1 inverted "
            "residual k3 expand 3, 2 inverted residual k5 expand 6), or a JSON list of the 8 digits")


def stage_starts() -> tuple[int, ...]:
    """Indices of the layers that open a stage (stride 2, width doubled): (0, 2, 5)."""
    return tuple(int(i) for i in np.cumsum((0,) + STAGES[:-1]))


# ---------------------------------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------------------------------
def conv_bn(c_in: int, c_out: int, kernel: int = 1, stride: int = 1, *, groups: int = 1,
            relu: bool = True) -> list[nn.Module]:
    """Conv (no bias, padding k//2) → BN → [ReLU], as a list of modules."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(c_out)]
    return layers + [nn.ReLU(inplace=False)] if relu else layers


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1×1 expand → k×k depthwise (strided) → 1×1 linear; residual if the shape is kept."""

    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int, expand: int):
        super().__init__()
        hidden = round(c_in * expand)
        self.conv = nn.Sequential(*conv_bn(c_in, hidden), *conv_bn(hidden, hidden, kernel, stride, groups=hidden),
                                  *conv_bn(hidden, c_out, relu=False))
        self.use_shortcut = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + x if self.use_shortcut else self.conv(x)


def make_layer(choice: int, c_in: int, c_out: int, stride: int) -> nn.Module | None:
    """The module of one layer choice; ``None`` for an identity that keeps the shape (no module)."""
    if choice == 0:
        if stride == 1 and c_in == c_out:
            return None
        return nn.Sequential(*conv_bn(c_in, c_out, 1, stride, relu=False))  # the reference's downsample
    kernel, expand = IR_SETTINGS[choice]
    return InvertedResidual(c_in, c_out, stride, kernel, expand)


class MacroNetwork(nn.Module):
    """Stem → the 8 layers (identities that keep the shape omitted) → 1×1 head conv → pool → linear."""

    def __init__(self, layers: Sequence[int], profile: Profile):
        super().__init__()
        div = int(profile["width_divisor"])
        c = divide_width(int(profile["C_init"]), div, "macro stem")
        c_head = divide_width(int(profile["C_head"]), div, "macro head conv")
        self.stem = nn.Sequential(*conv_bn(profile.input_shape[0], c, 3))
        blocks, starts = [], stage_starts()
        for i, choice in enumerate(layers):
            c_out, stride = (2 * c, 2) if i in starts else (c, 1)
            block = make_layer(choice, c, c_out, stride)
            if block is not None:
                blocks.append(block)
            c = c_out
        self.features = nn.Sequential(*blocks)
        self.out = nn.Sequential(*conv_bn(c, c_head), nn.AdaptiveAvgPool2d(1))
        self.classifier = nn.Linear(c_head, profile.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.out(self.features(self.stem(x)))
        return self.classifier(torch.flatten(x, 1))


# ---------------------------------------------------------------------------------------------------
# the space
# ---------------------------------------------------------------------------------------------------
def _digits(obj, text) -> tuple[int, ...]:
    """Checked layer choices out of a key string or a list."""
    if isinstance(obj, str):
        if not obj.isdigit() or not obj.isascii():
            raise ValueError(f"malformed macro spec {text!r}: a key is digits 0-2 only; {_FORMATS}")
        obj = [int(ch) for ch in obj]
    elif not isinstance(obj, list) or not all(is_whole(v) for v in obj):
        raise ValueError(f"malformed macro spec {text!r}: expected a key string or a list of integers; {_FORMATS}")
    if len(obj) != NUM_LAYERS:
        raise ValueError(f"a macro spec has exactly {NUM_LAYERS} layers (stages {list(STAGES)}), got {len(obj)} "
                         f"in {text!r}")
    bad = [(i, v) for i, v in enumerate(obj) if not 0 <= v < len(CHOICES)]
    if bad:
        i, v = bad[0]
        raise ValueError(f"layer {i} of macro spec {text!r} is {v}; each layer is 0 (identity), 1 (inverted "
                         "residual k3 expand 3) or 2 (inverted residual k5 expand 6)")
    return tuple(int(v) for v in obj)


class MacroSpace(Space):
    """NAS-Bench-Macro: 3^8 = 6,561 keys (3,969 distinct networks); see the module docstring."""

    name = "macro"
    profiles = {
        "paper": Profile("paper", (3, 32, 32), 10, {"C_init": 32, "C_head": 1280, "width_divisor": 1}),
        "zoo": Profile("zoo", ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES, {"C_init": 32, "C_head": 1280, "width_divisor": 4,
                                                          "channels_last": True}),
    }

    def parse(self, text: str) -> tuple[int, ...]:
        if not isinstance(text, str):
            raise ValueError(f"a macro spec must be a string, got {type(text).__name__}; {_FORMATS}")
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                return _digits(json.loads(stripped), text)
            except json.JSONDecodeError as err:
                raise ValueError(f"malformed JSON list in macro spec {text!r}: {err}; {_FORMATS}") from None
        return _digits(stripped, text)

    def format(self, parsed: Sequence[int]) -> str:
        return "".join(str(v) for v in _digits(list(parsed), list(parsed)))

    def trained_key(self, text: str) -> str:
        """The key the benchmark trained for this network (its ``get_real_arch``): in each stage the
        first layer stays, then the non-identity layers in order, then the identities."""
        layers, out = self.parse(text), []
        for start, n in zip(stage_starts(), STAGES):
            rest = layers[start + 1:start + n]
            out += [layers[start], *[v for v in rest if v != 0], *[0] * rest.count(0)]
        return self.format(out)

    def flags(self, text: str) -> dict[str, bool]:
        """``duplicate_key``: another key names the same network and was the one trained."""
        return {"duplicate_key": self.trained_key(text) != self.canonical(text)}

    # -- search -----------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> str:
        """A uniform key: each layer's choice uniform over 0-2 (uniform over the 6,561 keys)."""
        return self.format([int(v) for v in rng.integers(len(CHOICES), size=NUM_LAYERS)])

    def mutate(self, text: str, rng: np.random.Generator) -> str:
        """Another choice at one uniformly drawn layer (never a collapsed twin: the layer's stage then
        holds another multiset of choices)."""
        layers = list(self.parse(text))
        i = int(rng.integers(NUM_LAYERS))
        others = [c for c in range(len(CHOICES)) if c != layers[i]]
        layers[i] = others[int(rng.integers(len(others)))]
        return self.format(layers)

    def enumerate(self) -> list[str]:
        """All 3^8 = 6,561 keys, in the benchmark's order (``itertools.product``)."""
        return [self.format(c) for c in itertools.product(range(len(CHOICES)), repeat=NUM_LAYERS)]

    # -- networks ---------------------------------------------------------------------------------
    def build(self, text: str, profile: str | Profile = "paper") -> nn.Module:
        """The network the benchmark trained for this key (collapsed keys give identical modules)."""
        return MacroNetwork(self.parse(self.trained_key(text)), self.profile(profile))


__all__ = ["CHOICES", "IR_SETTINGS", "InvertedResidual", "MacroNetwork", "MacroSpace", "NUM_LAYERS", "STAGES",
           "make_layer", "stage_starts"]
