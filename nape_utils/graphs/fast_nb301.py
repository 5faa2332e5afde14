"""Fast NB-301 (DARTS) graphs: stem, preprocessing, head and every (op, width, stride, size) traced once."""
from __future__ import annotations

from functools import lru_cache

import torch.nn as nn

from ..spaces.nb301 import FactorizedReduce, make_op
from ..spaces.ops import ReLUConvBN
from .compose import GraphComposer, Template


@lru_cache(maxsize=None)
def _op(op: str, c: int, stride: int, h: int, w: int) -> Template:
    return Template.of(make_op(op, c, stride), (1, c, h, w))


@lru_cache(maxsize=None)
def _preprocess(factorized: bool, c_in: int, c: int, h: int, w: int) -> Template:
    block = FactorizedReduce(c_in, c) if factorized else ReLUConvBN(c_in, c, 1, 1, 0)
    return Template.of(block, (1, c_in, h, w))


@lru_cache(maxsize=None)
def _stem(c_img: int, c: int, stride: int, h: int, w: int) -> Template:
    stem = nn.Sequential(nn.Conv2d(c_img, c, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c))
    return Template.of(stem, (1, c_img, h, w))


@lru_cache(maxsize=None)
def _head(c: int, h: int, w: int, classes: int) -> Template:
    return Template.of(nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes)), (1, c, h, w))


def compose(space, spec: str, profile: str):
    genotype = space.parse(spec)
    p = space.profile(profile)
    c, layers = p["C"], p["layers"]
    c_img, h, w = p.input_shape
    g = GraphComposer()
    stem = _stem(c_img, p["stem_multiplier"] * c, int(p.options.get("stem_stride", 1)), h, w)
    x = g.paste(stem, g.input(space.input_shape(profile)))
    s0 = s1 = x
    c_curr, reduction_prev = c, False
    for i in range(layers):
        reduction = i in p["reduction_cells"]
        c_curr *= 2 if reduction else 1
        pairs = genotype.reduce if reduction else genotype.normal
        concat = genotype.reduce_concat if reduction else genotype.normal_concat
        s0, s1 = s1, _cell(g, pairs, concat, s0, s1, c_curr, reduction, reduction_prev)
        reduction_prev = reduction
    g.output(g.paste(_head(*g.shape(s1), p.num_classes), s1))
    return g.graph()


def _cell(g: GraphComposer, pairs, concat, s0: int, s1: int, c: int, reduction: bool, reduction_prev: bool) -> int:
    (c0, h0, w0), (c1, h1, w1) = g.shape(s0), g.shape(s1)
    states = [g.paste(_preprocess(reduction_prev, c0, c, h0, w0), s0), g.paste(_preprocess(False, c1, c, h1, w1), s1)]
    for k in range(len(pairs) // 2):
        outs = []
        for op, inp in pairs[2 * k: 2 * k + 2]:
            stride = 2 if reduction and inp < 2 else 1
            outs.append(g.paste(_op(op, c, stride, *g.shape(states[inp])[1:]), states[inp]))
        states.append(g.add(*outs))
    return g.concat([states[i] for i in concat])
