"""MnasNet search space of Accel-NASBench (Ahmad et al., 2024; afzalxo/Accel-NASBench, networks built by
afzalxo/ANB-DatasetCollection ``models/accelbenchnet.py``): an EfficientNet-B0-like skeleton of 7 blocks.

Canonical spec: compact JSON ``{"e":[7 ints],"k":[7 ints],"l":[7 ints],"se":[7 bools]}``, one entry per
block (Accel-NASBench's ``blockI_e``, ``blockI_k``, ``blockI_l``, ``blockI_se``):

- ``e``: expansion ratio of the block's MBConv layers, 1, 4 or 6;
- ``k``: depthwise kernel size, 3 or 5;
- ``l``: number of MBConv layers, 1-3 (block 5: 1-4, as in EfficientNet-B0);
- ``se``: squeeze-and-excitation in every layer of the block, ``true``/``false``.

Also accepted: Accel-NASBench's flat configuration dict, as its records' ``architecture`` holds it
(``{"block0_e": 6, "block0_k": 5, "block0_l": 2, "block0_se": false, ...}``, 28 keys), its
``manual_sample`` list ``[[e x7], [k x7], [l x7], [se x7]]``, and ``0``/``1`` for the ``se`` flags.

Network (``paper``: exactly ``AccelNet(design=..., activation_fn="relu")`` of ANB-DatasetCollection,
ImageNet, 1000 classes, 224x224 input): stem conv 3x3 stride 2 (32 channels, BN, ReLU); blocks 0-6 with
output widths 16, 24, 40, 80, 112, 192, 320 and strides 1, 2, 2, 2, 1, 2, 1 (the stride on a block's
first layer; a block's first layer takes the previous block's width, its other layers their own);
each layer an MBConv: 1x1 expand conv-BN-ReLU to ``make_divisible(c_in * e, 8)`` channels (left out
when that equals ``c_in``, i.e. ``e = 1``), kxk depthwise conv-BN-ReLU, optional squeeze-excite
(global average pool, 1x1 conv with bias to ``max(1, c_in // 4)`` channels, ReLU, 1x1 conv with bias,
hard sigmoid, times the input), 1x1 project conv-BN; identity shortcut where the stride is 1 and the
widths match; head conv 1x1 (4 x 320 = 1280 channels, BN, ReLU); global average pool; dropout 0.2;
linear classifier. Convolutions before a BN have no bias; BN eps 1e-5. The initialisation is the
benchmark's: convs Kaiming-normal (fan out), conv biases 0, BN weight 1 and bias 0, the classifier
uniform in +-1/sqrt(classes) with bias 0. The benchmark's stochastic depth (a training regulariser,
the identity in evaluation, no parameters) is left out.

Counts: Accel-NASBench's ``params`` and ``macs`` (millions) are what ``thop.profile`` (0.1.1, pinned by
ANB-DatasetCollection) reports for the network on a (1, 3, 224, 224) input; :func:`thop_counts`
reproduces its conventions (see there). They differ from nape's graph FLOPs, which count 2 per
multiply-add and nothing for BN and pooling.

The ``zoo`` profile keeps every choice and topology rule (expand conv iff ``e > 1``, SE squeeze width
``max(1, c_in // 4)``, the same shortcuts) at small widths: stem 16, blocks 12, 16, 20, 24, 32, 40, 48,
head 4 x 48 = 192, channels rounded to integers, 10 classes, on nape's 16x16 task. Three of the
paper's five halvings remain, leaving 2x2 maps before the pool as in the OFA families' zoo profiles:
the stem has stride 1 (as OFA's zoo stems) and the block strides are the paper's up to block 5,
1, 2, 2, 2, 1, 1, 1 (block 0 at 16x16; block 5 keeps its resolution). Measured on two sampled specs
(one seed, one core, CPU seconds of ``zoo.train_one``, validation accuracy): these strides cost 35 and
24 s for 88 and 85 %; block strides 2, 2, 2, 1, 1, 1, 1 (block 0 halving instead of block 3) 19 and 14 s
for 79 and 78 % (OFA-MobileNetV3's zoo: 17 and 19 s); a stride-2 stem with block strides 1, 2, 2, 1, 1,
1, 1 cost 14 and 10 s for 74 and 73 %. The cheaper 2, 2, 2, 1, … profile was tried first and failed the
zoo's label-quality pilot (10 architectures x 2 seeds: seed-to-seed Spearman -0.04, its networks still
far from fitting after five epochs), these strides reached 0.64 (results/zoo/README.md, session 12).
Every block's first layer still changes width, so no shortcut appears that the paper network lacks.
Channels-last tensors; every residual branch's last BN starts at zero (``zero_init_residual``, as the
OFA zoo profiles); the dropout layer stays (p = 0) so both profiles give graphs of the same shape.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from ..checks import is_whole
from .base import ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES, Profile, Space
from .ofa_common import conv_bn_act, dumps, finish_zoo_init, make_divisible

N_BLOCKS = 7
EXPANDS: tuple[int, ...] = (1, 4, 6)
KERNELS: tuple[int, ...] = (3, 5)
#: layer choices per block: 1-3, block 5 also 4 (Accel-NASBench's ``block5_l``)
LAYERS: tuple[tuple[int, ...], ...] = ((1, 2, 3),) * 5 + ((1, 2, 3, 4),) + ((1, 2, 3),)
SE_FLAGS: tuple[bool, ...] = (False, True)
FIELDS: tuple[str, ...] = ("e", "k", "l", "se")
#: Accel-NASBench's configuration keys: block0_e, block0_k, block0_l, block0_se, block1_e, ...
ANB_KEYS: tuple[str, ...] = tuple(f"block{b}_{f}" for b in range(N_BLOCKS) for f in FIELDS)

#: the benchmark's fixed skeleton (ANB-DatasetCollection ``searchables.Searchables``)
PAPER_WIDTHS = (16, 24, 40, 80, 112, 192, 320)
PAPER_STRIDES = (1, 2, 2, 2, 1, 2, 1)


def choices_of(field: str, block: int) -> tuple:
    """The allowed values of one field of one block."""
    return {"e": EXPANDS, "k": KERNELS, "l": LAYERS[block], "se": SE_FLAGS}[field]


@dataclass(frozen=True)
class MnasConfig:
    """A parsed spec: per block expansion, kernel, layers and squeeze-excite flag."""

    e: tuple[int, ...]
    k: tuple[int, ...]
    l: tuple[int, ...]  # noqa: E741 (the benchmark's name)
    se: tuple[bool, ...]

    def get(self, field: str) -> tuple:
        return getattr(self, field)


# ---------------------------------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------------------------------
class SqueezeExcite(nn.Module):
    """Accel-NASBench's squeeze-excite: pool → 1×1 conv (bias) → ReLU → 1×1 conv (bias) → hard sigmoid,
    times the input. ``squeeze`` is ``max(1, c_in // 4)`` of the MBConv layer's *input* width."""

    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze, 1, bias=True)
        self.relu = nn.ReLU()
        self.expand = nn.Conv2d(squeeze, channels, 1, bias=True)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gate(self.expand(self.relu(self.reduce(self.pool(x))))) * x


class MBConv(nn.Module):
    """One MBConv layer: [1×1 expand conv-BN-ReLU] → k×k depthwise conv-BN-ReLU [→ SE] → 1×1 project
    conv-BN, plus the input when the stride is 1 and the widths match."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int, use_se: bool, divisor: int):
        super().__init__()
        mid = make_divisible(c_in * expand, divisor)
        self.expand_conv = conv_bn_act(c_in, mid, 1) if mid != c_in else None
        self.depthwise = conv_bn_act(mid, mid, kernel, stride, groups=mid)
        self.se = SqueezeExcite(mid, max(1, c_in // 4)) if use_se else None
        self.project = conv_bn_act(mid, c_out, 1, act=None)
        self.shortcut = stride == 1 and c_in == c_out

    @property
    def residual_bn(self) -> nn.BatchNorm2d | None:
        """The BatchNorm that ends the residual branch (None without a shortcut)."""
        return self.project.bn if self.shortcut else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.expand_conv is None else self.expand_conv(x)
        out = self.depthwise(out)
        if self.se is not None:
            out = self.se(out)
        out = self.project(out)
        if self.shortcut:
            out = out + x
        return out


class MnasNet(nn.Module):
    """One Accel-NASBench network (see the module docstring)."""

    def __init__(self, cfg: MnasConfig, profile: Profile):
        super().__init__()
        div = profile["divisor"]
        self.stem = conv_bn_act(profile.input_shape[0], profile["stem"], 3, profile["stem_stride"])
        blocks, c_in = [], profile["stem"]
        for b, (width, stride) in enumerate(zip(profile["widths"], profile["strides"])):
            layers = []
            for i in range(cfg.l[b]):
                layers.append(MBConv(c_in, width, cfg.k[b], stride if i == 0 else 1, cfg.e[b], cfg.se[b], div))
                c_in = width
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.Sequential(*blocks)
        self.head = conv_bn_act(c_in, profile["head"], 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(profile["dropout"])
        self.classifier = nn.Linear(profile["head"], profile.num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """The benchmark's initialisation (``AccelNASBenchNet.__init__``)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.head(self.blocks(self.stem(x))))
        return self.classifier(self.dropout(torch.flatten(x, 1)))


# ---------------------------------------------------------------------------------------------------
# thop's counting conventions
# ---------------------------------------------------------------------------------------------------
def thop_counts(module: nn.Module, input_shape: Sequence[int]) -> tuple[int, int]:
    """``(macs, params)`` of ``module`` on a zero input of ``input_shape`` (batch included) by the rules
    of ``thop.profile`` 0.1.1 (Lyken17/pytorch-OpCounter), which Accel-NASBench's counts come from:

    * conv: output elements × (input channels / groups) × kernel area (a bias adds nothing);
    * batch norm: 2 per input element, doubled when affine (so 4);
    * adaptive average pool: (input area / output area + 1) per output element;
    * linear: input features per output element;
    * ReLU, hard sigmoid, dropout, the SE product and residual additions: 0;
    * params: every parameter of the module (all of them sit in convs, BNs and linears here).

    Any other leaf module with parameters is an error, so the rules are never silently incomplete."""
    total = [0]

    def conv(m: nn.Conv2d, inputs, y):
        total[0] += y.numel() * (inputs[0].shape[1] // m.groups) * math.prod(m.kernel_size)

    def norm(m: nn.BatchNorm2d, inputs, y):
        total[0] += inputs[0].numel() * (4 if m.affine else 2)

    def pool(m: nn.AdaptiveAvgPool2d, inputs, y):
        kernel = math.prod(i / o for i, o in zip(inputs[0].shape[2:], y.shape[2:]))
        total[0] += int((kernel + 1) * y.numel())

    def linear(m: nn.Linear, inputs, y):
        total[0] += m.in_features * y.numel()

    rules = {nn.Conv2d: conv, nn.BatchNorm2d: norm, nn.AdaptiveAvgPool2d: pool, nn.Linear: linear}
    handles = []
    try:
        for m in module.modules():
            rule = rules.get(type(m))
            if rule is not None:
                handles.append(m.register_forward_hook(rule))
            elif not list(m.children()) and any(True for _ in m.parameters(recurse=False)):
                raise ValueError(f"thop_counts has no rule for {type(m).__name__}, a module with parameters")
        training = module.training
        module.eval()
        with torch.no_grad():
            module(torch.zeros(tuple(input_shape)))
        module.train(training)
    finally:
        for h in handles:
            h.remove()
    return total[0], sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------------
# the space
# ---------------------------------------------------------------------------------------------------
class MnasNetSpace(Space):
    name = "mnasnet"
    profiles = {
        "paper": Profile("paper", (3, 224, 224), 1000, {
            "stem": 32, "stem_stride": 2, "widths": PAPER_WIDTHS, "strides": PAPER_STRIDES, "head": 1280,
            "divisor": 8, "dropout": 0.2}),
        "zoo": Profile("zoo", ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES, {
            "stem": 16, "stem_stride": 1, "widths": (12, 16, 20, 24, 32, 40, 48), "strides": (1, 2, 2, 2, 1, 1, 1),
            "head": 192, "divisor": 1, "dropout": 0.0, "channels_last": True, "zero_init_residual": True}),
    }

    # -- parse / format -----------------------------------------------------------------------------
    def parse(self, text: Any) -> MnasConfig:
        obj = self._load(text)
        if isinstance(obj, list):
            obj = self._from_list(obj)
        elif any(str(key).startswith("block") for key in obj):
            obj = self._from_flat(obj)
        unknown = sorted(set(obj) - set(FIELDS), key=str)
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown))} in mnasnet spec; allowed keys: "
                             f"{', '.join(FIELDS)} (or Accel-NASBench's block0_e, block0_k, ..., block6_se)")
        values = {}
        for field in FIELDS:
            if field not in obj:
                raise ValueError(f"mnasnet spec misses key {field!r}; a spec gives {', '.join(FIELDS)}, "
                                 f"{N_BLOCKS} entries each")
            values[field] = self._check_list(field, obj[field])
        return MnasConfig(**values)

    @staticmethod
    def _load(text: Any) -> dict | list:
        if isinstance(text, (dict, list)):
            return text
        text = str(text).strip()
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"malformed JSON in mnasnet spec {text[:80]!r}: {err.msg} at char {err.pos}; "
                             f'expected an object such as {{"e":[7 ints],"k":[7 ints],"l":[7 ints],"se":[7 bools]}}'
                             ) from None
        if not isinstance(obj, (dict, list)):
            raise ValueError(f"a mnasnet spec is a JSON object with keys {', '.join(FIELDS)} "
                             f"(or Accel-NASBench's [[e], [k], [l], [se]] list), got {type(obj).__name__}")
        return obj

    @staticmethod
    def _from_list(obj: list) -> dict:
        if len(obj) != len(FIELDS) or not all(isinstance(v, list) for v in obj):
            raise ValueError(f"a mnasnet spec given as a list must be Accel-NASBench's [[e x7], [k x7], [l x7], "
                             f"[se x7]] (4 lists), got {json.dumps(obj)[:80]}")
        return dict(zip(FIELDS, obj))

    @staticmethod
    def _from_flat(obj: dict) -> dict:
        unknown = sorted(set(obj) - set(ANB_KEYS), key=str)
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown[:5]))} in an Accel-NASBench "
                             "configuration; its keys are block0_e, block0_k, block0_l, block0_se, ..., block6_se")
        missing = [k for k in ANB_KEYS if k not in obj]
        if missing:
            raise ValueError(f"Accel-NASBench configuration misses key(s) {', '.join(missing[:5])}"
                             f"{' ...' if len(missing) > 5 else ''}; it needs all 28 (block0_e ... block6_se)")
        return {f: [obj[f"block{b}_{f}"] for b in range(N_BLOCKS)] for f in FIELDS}

    @staticmethod
    def _check_list(field: str, value: Any) -> tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"mnasnet spec key {field!r} must be a list of {N_BLOCKS} values, got {value!r}")
        if len(value) != N_BLOCKS:
            raise ValueError(f"wrong list length: mnasnet spec key {field!r} must have {N_BLOCKS} entries "
                             f"(one per block), got {len(value)}")
        out = []
        for b, v in enumerate(value):
            allowed = choices_of(field, b)
            if field == "se":
                ok = isinstance(v, bool) or (is_whole(v) and v in (0, 1))
                v_out = bool(v) if ok else None
                shown = "true, false (or 1, 0)"
            else:
                ok = is_whole(v) and v in allowed
                v_out = int(v) if ok else None
                shown = ", ".join(map(str, allowed))
            if not ok:
                what = {"e": "expansion ratio", "k": "kernel size", "l": "layer count", "se": "squeeze-excite flag"}
                raise ValueError(f"{what[field]} not allowed: {field}[{b}] = {v!r} (block {b}); allowed: {shown}")
            out.append(v_out)
        return tuple(out)

    def format(self, cfg: MnasConfig) -> str:
        return dumps({f: list(cfg.get(f)) for f in FIELDS})

    def to_anb(self, text: Any) -> dict:
        """The configuration dict of Accel-NASBench (``block0_e`` ... ``block6_se``, its key order)."""
        cfg = self.parse(text)
        return {f"block{b}_{f}": cfg.get(f)[b] for b in range(N_BLOCKS) for f in FIELDS}

    # -- search -------------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> str:
        values = {f: [choices_of(f, b)[int(rng.integers(len(choices_of(f, b))))] for b in range(N_BLOCKS)]
                  for f in FIELDS}
        return self.format(MnasConfig(**{f: tuple(v) for f, v in values.items()}))

    def mutate(self, text: str, rng: np.random.Generator) -> str:
        cfg = self.parse(text)
        values = {f: list(cfg.get(f)) for f in FIELDS}
        field = FIELDS[int(rng.integers(len(FIELDS)))]
        block = int(rng.integers(N_BLOCKS))
        others = [v for v in choices_of(field, block) if v != values[field][block]]
        values[field][block] = others[int(rng.integers(len(others)))]
        return self.format(MnasConfig(**{f: tuple(v) for f, v in values.items()}))

    # -- networks -----------------------------------------------------------------------------------
    def build(self, text: str, profile: str | Profile = "paper") -> nn.Module:
        profile = self.profile(profile)
        return finish_zoo_init(MnasNet(self.parse(text), profile), profile)

    def published_counts(self, text: str) -> tuple[int, int]:
        """``(params, macs)`` of the ``paper`` network as Accel-NASBench counts them (thop at 224×224;
        its records give both in millions)."""
        macs, params = thop_counts(self.build(text, "paper"), self.input_shape("paper"))
        return params, macs
