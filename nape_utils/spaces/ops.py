"""Building blocks shared by several spaces.

Modules that carry a ``cg_op`` class attribute are *atomic* for the computation-graph converter:
it keeps them as one node of that op type instead of tracing inside (e.g. :class:`Zero`, whose body
``x * 0`` would otherwise read as a multiplication).
"""
from __future__ import annotations

import torch
import torch.nn as nn


class Zero(nn.Module):
    """The ``none`` operation: a tensor of zeros, subsampled by ``stride``."""

    cg_op = "zero"

    def __init__(self, stride: int = 1):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class ReLUConvBN(nn.Sequential):
    """ReLU → Conv2d (no bias) → BatchNorm, the pre-activation block of NB-201 and DARTS."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, affine: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class ConvBNReLU(nn.Sequential):
    """Conv2d (no bias, 'same' padding) → BatchNorm → ReLU, NB-101's basic op."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=False),
        )
