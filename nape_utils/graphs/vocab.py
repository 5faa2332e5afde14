"""The op vocabulary of nape's computation graphs.

One id per atomic operation type. Id 0 is ``oov`` (out of vocabulary): an op the converter does not
know becomes an explicit ``oov`` node and a warning, never a silent drop. Ids are stable: append new
ops at the end so saved graphs and trained encoders keep their meaning.
"""
from __future__ import annotations

OPS: tuple[str, ...] = (
    "oov",
    "input", "output",
    "conv", "depthwise", "group_conv", "linear", "matmul",
    "batchnorm", "layernorm", "groupnorm",
    "relu", "relu6", "sigmoid", "tanh", "hardswish", "hardsigmoid", "silu", "gelu", "softmax",
    "add", "mul", "concat",
    "maxpool", "avgpool", "global_pool", "mean",
    "flatten", "reshape", "slice", "split", "pad", "upsample",
    "identity", "zero", "dropout",
)
OP_ID: dict[str, int] = {op: i for i, op in enumerate(OPS)}

#: ops that carry weights and so have kernel features and parameters
WEIGHTED_OPS = frozenset({"conv", "depthwise", "group_conv", "linear"})


def op_id(name: str) -> int:
    """The id of an op name; unknown names raise ValueError listing the vocabulary."""
    try:
        return OP_ID[name]
    except KeyError:
        raise ValueError(f"unknown op {name!r}; the vocabulary is: {', '.join(OPS)}") from None
