"""Fast NB-101 graphs: vertex ops, projections, stem, pools and head traced once per shape."""
from __future__ import annotations

from functools import lru_cache

import torch.nn as nn

from ..spaces.nb101 import _vertex_op, compute_vertex_channels
from ..spaces.ops import ConvBNReLU
from .compose import GraphComposer, Template


@lru_cache(maxsize=None)
def _block(kind: str, c_in: int, c_out: int, h: int, w: int) -> Template:
    if kind == "stem":
        module = ConvBNReLU(c_in, c_out, 3)
    elif kind == "projection":
        module = ConvBNReLU(c_in, c_out, 1)
    elif kind == "downsample":
        module = nn.MaxPool2d(2, stride=2)
    elif kind == "head":
        module = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, c_out))
    else:  # a vertex op
        module = _vertex_op(kind, c_out)
    return Template.of(module, (1, c_in, h, w))


def compose(space, spec: str, profile: str):
    matrix, ops = space.parse(spec)
    p = space.profile(profile)
    c_img, h, w = p.input_shape
    g = GraphComposer()
    x = g.paste(_block("stem", c_img, p["stem_channels"], h, w), g.input(space.input_shape(profile)))
    c = p["stem_channels"]
    for stack in range(p["num_stacks"]):
        if stack > 0:
            x = g.paste(_block("downsample", *g.shape(x)[:1], c, *g.shape(x)[1:]), x)
            c *= 2
        for _ in range(p["cells_per_stack"]):
            x = _cell(g, matrix, ops, x, c)
    g.output(g.paste(_block("head", c, p.num_classes, *g.shape(x)[1:]), x))
    return g.graph()


def _cell(g: GraphComposer, matrix, ops, x: int, c_out: int) -> int:
    c_in, h, w = g.shape(x)
    n = len(ops)
    channels = compute_vertex_channels(c_in, c_out, matrix)
    values = [x]
    for t in range(1, n - 1):
        total = None
        for s in range(1, t):
            if matrix[s, t]:
                y = values[s] if channels[s] <= channels[t] else g.op("slice", [values[s]], (channels[t], h, w))
                total = y if total is None else g.add(total, y)
        if matrix[0, t]:
            y = g.paste(_block("projection", c_in, channels[t], h, w), x)
            total = y if total is None else g.add(total, y)
        values.append(g.paste(_block(ops[t], channels[t], channels[t], h, w), total))
    concat = [t for t in range(1, n - 1) if matrix[t, n - 1]]
    if not concat:
        return g.paste(_block("projection", c_in, c_out, h, w), x)
    out = values[concat[0]] if len(concat) == 1 else g.concat([values[t] for t in concat])
    if matrix[0, n - 1]:
        out = g.add(out, g.paste(_block("projection", c_in, c_out, h, w), x))
    return out
