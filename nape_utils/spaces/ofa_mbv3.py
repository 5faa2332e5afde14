"""OFA MobileNetV3 (Once-for-All, Cai et al., ICLR 2020): the ``ofa_mbv3_d234_e346_k357_w1.2`` space,
and its width-1.0 twin ``ofa_mbv3_d234_e346_k357_w1.0`` as profile ``paper_w1.0``.

Canonical spec: compact JSON ``{"r":R,"d":[5 ints],"ks":[20 ints],"e":[20 ints]}``

- ``r``: input resolution, 128..224 in steps of 4 (OFA's training resolutions).
- ``d``: blocks in each of the 5 elastic stages, each 2, 3 or 4.
- ``ks``, ``e``: kernel size (3, 5, 7) and expand ratio (3, 4, 6) of every block *slot*, 4 slots per
  stage in OFA's block order (stage i owns slots 4i..4i+3); a stage uses its first ``d[i]`` slots and
  the others hold ``0`` in the canonical string (as OFA's own arch encoder writes them), so equivalent
  networks have one string.

Also accepted: OFA's arch dicts ``{"ks": [...], "e": [...], "d": [...]}`` as ``sample_active_subnet``
returns them (any values in unused slots), with ``r`` as an int or OFA's ``[r]``, ``image_size`` for
``r``, ``k`` for ``ks`` and ``"wid": null``; ``r`` defaults to 224 when absent.

Network (``paper``: exactly OFA's ``get_active_subnet`` of ``OFAMobileNetV3(width_mult=1.2,
ks_list=[3,5,7], expand_ratio_list=[3,4,6], depth_list=[2,3,4], dropout_rate=0)``, 1000 classes):
first conv 3×3 stride 2 (24 ch, BN, h-swish); first block MBConv expand 1, kernel 3 (24 ch, ReLU,
identity shortcut); 5 stages of MBConv blocks at widths 32, 48, 96, 136, 192, strides 2, 2, 2, 1, 2,
activations ReLU, ReLU, h-swish, h-swish, h-swish, squeeze-excite in stages 1, 3, 4 (0-based; OFA's
``se_stages``); block mid width ``make_divisible(round(c_in * e), 8)``; identity shortcut where the
stride is 1 and the widths match; final expand 1×1 conv (1152, BN, h-swish); global average pool;
feature-mix 1×1 conv (1536, no BN, no bias, h-swish); linear classifier.

Profile ``paper_w1.0`` is OFA's other MobileNetV3 super-network, ``OFAMobileNetV3(width_mult=1.0, ...)``
(``ofa_net("ofa_mbv3_d234_e346_k357_w1.0")``): the same elastic choices, so the same spec strings, and
the same layers at OFA's base widths (``make_divisible(width * 1.0, 8)``): first conv 16, first block
16 (identity shortcut), stages 24, 40, 80, 112, 160, final expand 960, feature mix 1280; SE middle
widths ``make_divisible(mid // 4, 8)`` as at 1.2. A spec names a sub-network *of a super-network*, and
the two super-networks differ only in widths, so the width is a profile, not a spec field: the
``ofa-mbv3-dynast`` benchmark table (IntelLabs/DyNAS-T, ImageNet top-1 of w1.0 sub-networks) says
``profile = "paper_w1.0"`` in every row, and at that profile nape's parameter count equals DyNAS-T's
``Model Parameters`` (every parameter, BatchNorm included) and nape's FLOPs equal twice its ``MACs``
(fvcore's count: one per multiply-add of convs and the classifier at a 224×224 input, nothing for
biases, BatchNorm, activations or SE's pool and product) for every row of its five files.

The ``paper`` (and ``paper_w1.0``) input is (3, r, r) with r from the spec: use
:meth:`OFAMobileNetV3Space.input_shape_of`; ``input_shape("paper")`` is the largest, (1, 3, 224, 224). The ``zoo`` profile keeps every elastic
choice and topology rule (same block kinds, activations, SE stages, shortcuts) at small widths
(first conv 16, first block 16, stages 16, 16, 20, 24, 32, final expand 96, feature mix 128, channels
rounded to integers; twice the widths of the first zoo, results/zoo/README.md), with a stride-1 first conv and stage strides 2, 2, 2, 1, 1 for 16×16 inputs (2×2 before
the pool; a stride-2 first conv would halve the cost but leaves 1×1 maps that barely learn: 10–14 %
against 40 % for ProxylessNAS in the zoo budget; stages whose first block has stride 1 still change width, so no shortcut appears that the
paper network lacks).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from .base import ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES, Profile
from .ofa_common import ElasticMBSpace, MBConfig, MBConvBlock, conv_bn_act, finish_zoo_init, make_divisible

#: OFA's base widths: first conv, first block, 5 stages, final expand, feature mix
BASE_WIDTHS = (16, 16, 24, 40, 80, 112, 160, 960, 1280)
STAGE_ACTS = ("relu", "relu", "h_swish", "h_swish", "h_swish")
STAGE_SE = (False, True, False, True, True)


def widths_of(profile: Profile) -> list[int]:
    """The 9 widths (first conv, first block, 5 stages, final expand, feature mix) of a profile."""
    wm, div = profile["width_mult"], profile["divisor"]
    return [make_divisible(b * wm, div) for b in profile["base_widths"]]


class OFAMobileNetV3Net(nn.Module):
    """One OFA-MobileNetV3 sub-network (see the module docstring)."""

    def __init__(self, cfg: MBConfig, profile: Profile, stage_slots: Sequence[int] = (4,) * 5):
        super().__init__()
        div, eps = profile["divisor"], profile["bn_eps"]
        w = widths_of(profile)
        self.first_conv = conv_bn_act(profile.input_shape[0], w[0], 3, profile["first_stride"], act="h_swish",
                                      bn_eps=eps)
        blocks: list[nn.Module] = [MBConvBlock(w[0], w[1], 3, 1, 1, w[0], act=STAGE_ACTS[0], use_se=False,
                                               shortcut=w[0] == w[1], divisor=div, bn_eps=eps)]
        c_in, offset = w[1], 0
        for stage, (width, stride) in enumerate(zip(w[2:7], profile["stage_strides"])):
            for b in range(cfg.d[stage]):
                slot = offset + b
                s = stride if b == 0 else 1
                mid = make_divisible(round(c_in * cfg.e[slot]), div)
                blocks.append(MBConvBlock(c_in, width, cfg.ks[slot], s, cfg.e[slot], mid, act=STAGE_ACTS[stage],
                                          use_se=STAGE_SE[stage], shortcut=s == 1 and c_in == width,
                                          divisor=div, bn_eps=eps))
                c_in = width
            offset += stage_slots[stage]
        self.blocks = nn.Sequential(*blocks)
        self.final_expand_layer = conv_bn_act(c_in, w[7], 1, act="h_swish", bn_eps=eps)
        self.global_avg_pool = nn.AdaptiveAvgPool2d(1)
        self.feature_mix_layer = conv_bn_act(w[7], w[8], 1, act="h_swish", use_bn=False, bias=False)
        self.classifier = nn.Linear(w[8], profile.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_expand_layer(self.blocks(self.first_conv(x)))
        x = self.feature_mix_layer(self.global_avg_pool(x))
        return self.classifier(torch.flatten(x, 1))


class OFAMobileNetV3Space(ElasticMBSpace):
    name = "ofa_mbv3"
    stage_slots = (4, 4, 4, 4, 4)
    profiles = {
        "paper": Profile("paper", (3, 224, 224), 1000, {
            "base_widths": BASE_WIDTHS, "width_mult": 1.2, "divisor": 8, "first_stride": 2,
            "stage_strides": (2, 2, 2, 1, 2), "bn_eps": 1e-5}),
        "paper_w1.0": Profile("paper_w1.0", (3, 224, 224), 1000, {
            "base_widths": BASE_WIDTHS, "width_mult": 1.0, "divisor": 8, "first_stride": 2,
            "stage_strides": (2, 2, 2, 1, 2), "bn_eps": 1e-5}),
        "zoo": Profile("zoo", ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES, {
            "base_widths": (16, 16, 16, 16, 20, 24, 32, 96, 128), "width_mult": 1.0, "divisor": 1,
            "first_stride": 1, "stage_strides": (2, 2, 2, 1, 1), "bn_eps": 1e-5, "resolution_scale": 16 / 224,
            "channels_last": True, "zero_init_residual": True}),
    }

    def build(self, text: str, profile: str | Profile = "paper") -> nn.Module:
        profile = self._profile(profile)
        return finish_zoo_init(OFAMobileNetV3Net(self.parse(text), profile, self.stage_slots), profile)
