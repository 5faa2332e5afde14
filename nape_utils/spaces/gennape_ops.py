"""Op modules shared by GENNAPE's three new families: HiAML, Two-Path and Inception.

Re-implemented in PyTorch from the authors' TensorFlow code (Ascend-Research/GENNAPE,
``model_src/search_space/hiaml_two_path/operations_tf.py`` and
``model_src/search_space/inception/operations_tf.py``), which is what their computation graphs were
built from. Where the authors' own PyTorch twin (``operations.py``) differs in a parameter-free
detail, the TensorFlow version is followed; parameter counts are identical in both (their
``arch_gen.py`` asserts it):

- HiAML's conv-BN-ReLU units use ReLU (the PyTorch twin: ReLU6);
- Two-Path's ``bottleneck-*`` ops are two conv-BN units without activation (the twin: ReLU6 after each);
- Inception's ``inception_p*`` applies one ReLU6 after the concat (the twin: one per branch and one after);
- every BatchNorm has Keras' epsilon 1e-3; average pools ignore the padding (Keras ``"same"``).

Convolutions use symmetric ``k // 2`` padding: the same output sizes as Keras ``"same"`` (which pads
one more pixel at the bottom/right for stride 2 and an even input).
"""
from __future__ import annotations

import torch
import torch.nn as nn

#: Keras BatchNormalization epsilon used by the authors' TensorFlow networks
BN_EPS = 1e-3


def _pair(v) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def make_act(act: str | None) -> nn.Module | None:
    if act is None:
        return None
    if act == "relu":
        return nn.ReLU(inplace=False)
    if act == "relu6":
        return nn.ReLU6(inplace=False)
    raise ValueError(f"unknown activation {act!r}; use 'relu', 'relu6' or None")


class ConvBNAct(nn.Sequential):
    """Conv2d ('same' padding) → BatchNorm → optional ReLU/ReLU6: the authors' ``AugmentedConv2D``."""

    def __init__(self, c_in: int, c_out: int, kernel, stride=1, act: str | None = None, bias: bool = False,
                 bn: bool = True):
        k, s = _pair(kernel), _pair(stride)
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, k, stride=s, padding=(k[0] // 2, k[1] // 2), bias=bias)]
        if bn:
            layers.append(nn.BatchNorm2d(c_out, eps=BN_EPS))
        a = make_act(act)
        if a is not None:
            layers.append(a)
        super().__init__(*layers)


class PoolBN(nn.Sequential):
    """3×3 max or average pool ('same' padding, padding excluded from averages) → BatchNorm."""

    def __init__(self, kind: str, channels: int, kernel: int = 3, stride: int = 1):
        if kind == "max":
            pool: nn.Module = nn.MaxPool2d(kernel, stride=stride, padding=kernel // 2)
        elif kind == "avg":
            pool = nn.AvgPool2d(kernel, stride=stride, padding=kernel // 2, count_include_pad=False)
        else:
            raise ValueError(f"unknown pool kind {kind!r}; use 'max' or 'avg'")
        super().__init__(pool, nn.BatchNorm2d(channels, eps=BN_EPS))


class InceptionS(nn.Sequential):
    """Spatially separable conv: 1×k conv-BN-ReLU6 → k×1 conv-BN-ReLU6.

    ``factorized_stride=False`` (HiAML, Two-Path): the first conv carries the full stride.
    ``factorized_stride=True`` (Inception family): stride (1, s) on the 1×k conv, (s, 1) on the k×1."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, *, bias: bool = False,
                 factorized_stride: bool = False):
        s1, s2 = ((1, stride), (stride, 1)) if factorized_stride else ((stride, stride), (1, 1))
        super().__init__(
            ConvBNAct(c_in, c_out, (1, kernel), s1, "relu6", bias=bias),
            ConvBNAct(c_out, c_out, (kernel, 1), s2, "relu6", bias=bias),
        )


class InceptionP(nn.Module):
    """Parallel separable conv (Inception family): a 1×k and a k×1 conv-BN branch (each followed by the
    other orientation when strided), ``c_out // 2`` and the rest of the channels, concat → ReLU6."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3, stride: int = 1, *, bias: bool = True):
        super().__init__()
        c1, c2 = c_out // 2, c_out - c_out // 2
        wide, tall = (1, kernel), (kernel, 1)
        if stride == 1:
            self.branch1: nn.Module = ConvBNAct(c_in, c1, wide, 1, bias=bias)
            self.branch2: nn.Module = ConvBNAct(c_in, c2, tall, 1, bias=bias)
        else:
            self.branch1 = nn.Sequential(ConvBNAct(c_in, c1, wide, (1, stride), bias=bias),
                                         ConvBNAct(c1, c1, tall, (stride, 1), bias=bias))
            self.branch2 = nn.Sequential(ConvBNAct(c_in, c2, tall, (stride, 1), bias=bias),
                                         ConvBNAct(c2, c2, wide, (1, stride), bias=bias))
        self.act = nn.ReLU6(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(torch.cat([self.branch1(x), self.branch2(x)], dim=1))


class DepthwiseBNReLU6(nn.Sequential):
    """Inception family's depthwise op: [1×1 conv, no bias/BN, when c_in ≠ c_out] → depthwise k×k conv
    (bias) → BN → ReLU6."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, *, bias: bool = True):
        layers: list[nn.Module] = []
        if c_in != c_out:
            layers.append(nn.Conv2d(c_in, c_out, 1, bias=False))
        layers += [nn.Conv2d(c_out, c_out, kernel, stride=stride, padding=kernel // 2, groups=c_out, bias=bias),
                   nn.BatchNorm2d(c_out, eps=BN_EPS), nn.ReLU6(inplace=False)]
        super().__init__(*layers)


class Bottleneck(nn.Sequential):
    """Two-Path's bottleneck: k×k conv-BN to ``c_hidden`` (strided) → k×k conv-BN to ``c_out``; no activation."""

    def __init__(self, c_in: int, c_hidden: int, c_out: int, kernel: int, stride: int = 1):
        super().__init__(ConvBNAct(c_in, c_hidden, kernel, stride), ConvBNAct(c_hidden, c_out, kernel, 1))


class ClassifierHead(nn.Module):
    """[conv3×3-BN-ReLU6 to ``c_head``] → global average pool → linear (the families' output part)."""

    def __init__(self, c_in: int, num_classes: int, c_head: int | None = None, *, bias: bool = False):
        super().__init__()
        self.post_conv = ConvBNAct(c_in, c_head, 3, 1, "relu6", bias=bias) if c_head else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_head or c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.post_conv is not None:
            x = self.post_conv(x)
        return self.classifier(torch.flatten(self.global_pooling(x), 1))


def divide_width(channels: int, divisor: int, what: str) -> int:
    """``channels / divisor``, refusing a remainder (a profile must scale every width exactly)."""
    if divisor < 1 or channels % divisor:
        raise ValueError(f"{what}: {channels} channels are not divisible by the profile's width_divisor {divisor}")
    return channels // divisor


def json_spec(text, family: str, formats: str):
    """``json.loads`` with a ValueError naming the family and its accepted forms."""
    import json

    if not isinstance(text, str):
        raise ValueError(f"a {family} spec must be a string, got {type(text).__name__}; {formats}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"malformed JSON spec for {family}: {e}; {formats}") from None


__all__ = ["BN_EPS", "Bottleneck", "ClassifierHead", "ConvBNAct", "DepthwiseBNReLU6", "InceptionP", "InceptionS",
           "PoolBN", "divide_width", "json_spec", "make_act"]


def check_op_mix(ops, where: str, family: str, all_ops, conv_ops, supp_ops) -> tuple[str, ...]:
    """The rule both Two-Path and Inception blocks share: known ops, at least one conv op, at most
    one supplementary op."""
    for op in ops:
        if op not in all_ops:
            raise ValueError(f"unknown {family} op {op!r} in {where}; allowed ops: {', '.join(all_ops)}")
    if not any(op in conv_ops for op in ops):
        raise ValueError(f"{where} needs at least one conv op ({', '.join(conv_ops)}), got {list(ops)}")
    if sum(op in supp_ops for op in ops) > 1:
        raise ValueError(f"{where} may have at most one supp op ({', '.join(supp_ops)}), got {list(ops)}")
    return tuple(ops)
