"""One reference architecture per family: what a search's finds are compared with when trained.

Where the family's authors (or a benchmark) name a network, it is that network; GENNAPE's authors
publish no best or reference network for HiAML, Inception or Two-Path (their code only samples), so
for those, and every other family without one, the reference is the space's *default*: its first spec
sampled at seed 0 — a fixed, arbitrary member, not a strong one. :func:`reference_spec` says which.
"""
from __future__ import annotations

import json

import numpy as np

from ..spaces import Space, get_space

_DARTS_V2 = json.dumps({
    "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 1],
               ["sep_conv_3x3", 1], ["skip_connect", 0], ["skip_connect", 0], ["dil_conv_3x3", 2]],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1],
               ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]],
    "reduce_concat": [2, 3, 4, 5],
})

#: family → (spec, where it comes from)
REFERENCES: dict[str, tuple[str, str]] = {
    "nb201": ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
              "the best CIFAR-10 cell of NAS-Bench-201 (arch index 9930; the fixed cell of NATS-Bench's size space)"),
    "nb301": (_DARTS_V2, "DARTS (second order) genotype, Liu et al. 2019: the cell NAS-Bench-301's space is built on"),
}
DEFAULT_NOTE = ("no published reference network for this family: the space's default, its first spec "
                "sampled at seed 0")


def reference_spec(space: str | Space) -> tuple[str, str]:
    """The family's reference spec (canonical) and a line saying where it comes from."""
    space = get_space(space)
    if space.name in REFERENCES:
        spec, note = REFERENCES[space.name]
        return space.canonical(spec), note
    return space.sample(np.random.default_rng(0)), DEFAULT_NOTE
