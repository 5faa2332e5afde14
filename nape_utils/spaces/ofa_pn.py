"""OFA ProxylessNAS (Once-for-All, Cai et al., ICLR 2020): the ``ofa_proxyless_d234_e346_k357_w1.3`` space.

Canonical spec: compact JSON ``{"r":R,"d":[6 ints],"ks":[21 ints],"e":[21 ints]}``

- ``r``: input resolution, 128..224 in steps of 4 (OFA's training resolutions).
- ``d``: blocks per stage. Stages 0-4 have 2, 3 or 4 blocks; stage 5 is OFA's fixed single block
  (``n_block_list = [4]*5 + [1]``), so ``d[5]`` is always 1 in the canonical string (OFA's arch dicts
  may carry 2-4 there, which OFA clips to 1; a 5-entry ``d`` is accepted too).
- ``ks``, ``e``: kernel size (3, 5, 7) and expand ratio (3, 4, 6) of every block *slot* in OFA's block
  order: stage i < 5 owns slots 4i..4i+3, stage 5 owns slot 20. A stage uses its first ``d[i]`` slots;
  unused slots hold ``0`` in the canonical string, so equivalent networks have one string.

Also accepted: OFA's arch dicts ``{"ks": [...], "e": [...], "d": [...]}`` (any values in unused slots),
``r`` as an int or ``[r]``, ``image_size`` for ``r``, ``k`` for ``ks``, ``"wid": null``; ``r``
defaults to 224.

Network (``paper``: exactly OFA's ``get_active_subnet`` of ``OFAProxylessNASNets(width_mult=1.3,
ks_list=[3,5,7], expand_ratio_list=[3,4,6], depth_list=[2,3,4], dropout_rate=0)``, 1000 classes, BN
eps 1e-3): first conv 3×3 stride 2 (40 ch, BN, ReLU6); first block MBConv expand 1, kernel 3 (24 ch, no
shortcut); 6 stages at widths 32, 56, 104, 128, 248, 416 with strides 2, 2, 2, 1, 2, 1; ReLU6
everywhere, no squeeze-excite; block mid width ``make_divisible(round(c_in * e), 8)``; identity
shortcut where the stride is 1 and the widths match; feature-mix 1×1 conv (1664, BN, ReLU6); global
average pool; linear classifier.

The ``paper`` input is (3, r, r) with r from the spec: use :meth:`OFAProxylessSpace.input_shape_of`;
``input_shape("paper")`` is the largest, (1, 3, 224, 224). The ``zoo`` profile keeps every elastic
choice and topology rule at small widths (first conv 16, first block 12, stages 16, 20, 24, 28, 32, 40,
feature mix 128, channels rounded to integers; half these widths trained so unevenly that two seeds of
one network disagreed by 8.5 points on average, results/zoo/README.md), with a stride-1 first conv and stage strides
2, 2, 2, 1, 1, 1 for 16×16 inputs (2×2 before the pool; a stride-2 first conv would halve the cost but
leaves 1×1 maps that barely learn: 10–14 % against 40 % in the zoo budget; every stage changes width, so shortcuts sit
where the paper network has them).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from .base import ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES, Profile
from .ofa_common import ElasticMBSpace, MBConfig, MBConvBlock, conv_bn_act, finish_zoo_init, make_divisible

#: OFA's ProxylessNAS base widths: first conv, first block, 6 stages, feature mix
BASE_WIDTHS = (32, 16, 24, 40, 80, 96, 192, 320, 1280)


def widths_of(profile: Profile) -> list[int]:
    """The 9 widths (first conv, first block, 6 stages, feature mix) of a profile."""
    wm, div = profile["width_mult"], profile["divisor"]
    return [make_divisible(b * wm, div) for b in profile["base_widths"]]


class OFAProxylessNet(nn.Module):
    """One OFA-ProxylessNAS sub-network (see the module docstring)."""

    def __init__(self, cfg: MBConfig, profile: Profile, stage_slots: Sequence[int] = (4, 4, 4, 4, 4, 1)):
        super().__init__()
        div, eps = profile["divisor"], profile["bn_eps"]
        w = widths_of(profile)
        self.first_conv = conv_bn_act(profile.input_shape[0], w[0], 3, profile["first_stride"], act="relu6", bn_eps=eps)
        blocks: list[nn.Module] = [MBConvBlock(w[0], w[1], 3, 1, 1, w[0], act="relu6", use_se=False,
                                               shortcut=False, divisor=div, bn_eps=eps)]
        c_in, offset = w[1], 0
        for stage, (width, stride) in enumerate(zip(w[2:8], profile["stage_strides"])):
            for b in range(cfg.d[stage]):
                slot = offset + b
                s = stride if b == 0 else 1
                mid = make_divisible(round(c_in * cfg.e[slot]), div)
                blocks.append(MBConvBlock(c_in, width, cfg.ks[slot], s, cfg.e[slot], mid, act="relu6",
                                          use_se=False, shortcut=s == 1 and c_in == width, divisor=div, bn_eps=eps))
                c_in = width
            offset += stage_slots[stage]
        self.blocks = nn.Sequential(*blocks)
        self.feature_mix_layer = conv_bn_act(c_in, w[8], 1, act="relu6", bn_eps=eps)
        self.global_avg_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(w[8], profile.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.feature_mix_layer(self.blocks(self.first_conv(x)))
        return self.classifier(torch.flatten(self.global_avg_pool(x), 1))


class OFAProxylessSpace(ElasticMBSpace):
    name = "ofa_pn"
    stage_slots = (4, 4, 4, 4, 4, 1)
    profiles = {
        "paper": Profile("paper", (3, 224, 224), 1000, {
            "base_widths": BASE_WIDTHS, "width_mult": 1.3, "divisor": 8, "first_stride": 2,
            "stage_strides": (2, 2, 2, 1, 2, 1), "bn_eps": 1e-3}),
        "zoo": Profile("zoo", ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES, {
            "base_widths": (16, 12, 16, 20, 24, 28, 32, 40, 128), "width_mult": 1.0, "divisor": 1,
            "first_stride": 1, "stage_strides": (2, 2, 2, 1, 1, 1), "bn_eps": 1e-3, "resolution_scale": 16 / 224,
            "channels_last": True, "zero_init_residual": True}),
    }

    def build(self, text: str, profile: str | Profile = "paper") -> nn.Module:
        profile = self._profile(profile)
        return finish_zoo_init(OFAProxylessNet(self.parse(text), profile, self.stage_slots), profile)
