"""Fast NB-201 graphs: stem, reduction blocks, head and every (op, width, size) traced once."""
from __future__ import annotations

from functools import lru_cache

from ..spaces import get_space
from ..spaces.nb201 import EDGES, Head, ResidualReduction, Stem, make_op
from .compose import GraphComposer, Template


@lru_cache(maxsize=None)
def _op(op: str, c: int, h: int, w: int) -> Template:
    return Template.of(make_op(op, c), (1, c, h, w))


@lru_cache(maxsize=None)
def _frame(profile: str) -> tuple[Template, list[Template], Template]:
    p = get_space("nb201").profile(profile)
    c, (c_img, h, w) = p["channels"], p.input_shape
    stem = Template.of(Stem(c_img, c), (1, c_img, h, w))
    reductions = [Template.of(ResidualReduction(c * 2 ** (s - 1), c * 2**s), (1, c * 2 ** (s - 1), h >> (s - 1), w >> (s - 1)))
                  for s in (1, 2)]
    head = Template.of(Head(4 * c, p.num_classes), (1, 4 * c, h >> 2, w >> 2))
    return stem, reductions, head


def compose(space, spec: str, profile: str):
    ops = space.parse(spec)
    p = space.profile(profile)
    stem, reductions, head = _frame(profile)
    g = GraphComposer()
    x = g.paste(stem, g.input(space.input_shape(profile)))
    for stage in range(3):
        if stage:
            x = g.paste(reductions[stage - 1], x)
        if p["cells_per_stage"] == 1:
            x = _cell(g, ops, x)
            continue
        cell = _cell_template(ops, g.shape(x))  # composed once, pasted whole: ≈ 2× faster CGs
        for _ in range(p["cells_per_stage"]):
            x = g.paste(cell, x)
    g.output(g.paste(head, x))
    return g.graph()


def _cell_template(ops, chw: tuple[int, int, int]) -> Template:
    """One cell reading a (c, h, w) tensor, as a template."""
    g = GraphComposer()
    g.output(_cell(g, ops, g.input((1, *chw))))
    return Template.from_graph(g.graph())


def _cell(g: GraphComposer, ops, x: int) -> int:
    c, h, w = g.shape(x)
    nodes = [x]
    for target in (1, 2, 3):
        total = None
        for k, (source, dst) in enumerate(EDGES):
            if dst == target:
                out = g.paste(_op(ops[k], c, h, w), nodes[source])
                total = out if total is None else g.add(total, out)
        nodes.append(total)
    return nodes[3]
