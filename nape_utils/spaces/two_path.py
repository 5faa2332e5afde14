"""Two-Path (GENNAPE's test family; Mills et al., AAAI 2023): two parallel paths of single-path blocks.

Re-implemented from the authors' code, Ascend-Research/GENNAPE ``model_src/search_space/hiaml_two_path/``
(``constants.py``: ops and counts; ``arch_samplers.py``: ``sample_two_path_net_config``;
``networks_tf.py``: ``TwoPathNet``; ``blocks_tf.py``: ``SinglePathBlock``; ``operations_tf.py``: the ops).
Network (``paper``, CIFAR-10):

- stem: conv 3×3 to 32 channels, BN, ReLU6, then the same with stride 2;
- two paths read the stem's output; each is 2-4 blocks, exactly 2 of them reduction blocks (stride 2,
  channels doubled: 32 → 64 → 128);
- a block is 1-3 ops in sequence, at least one of them a *conv* op and at most one a *supp* op; its
  first conv op carries the stride and the channel change, every other op keeps its input's shape; a
  block that keeps the shape adds its input (residual);
- the two paths' outputs are concatenated (256 channels) → conv 3×3 to 512, BN, ReLU6 → global average
  pool → linear.

Convs have no bias (the authors' ``AugmentedConv2D`` default here). Ops (:data:`CONV_OPS`,
:data:`SUPP_OPS`): ``convKxK`` conv-BN-ReLU6; ``double3x3`` two of them (the first keeps the input
width); ``bottleneck-rN-kK`` / ``bottleneck-eN-kK`` two K×K conv-BN (no activation) through
``c_in // N`` / ``c_in * N`` channels; ``inception_sKxK`` 1×K → K×1 conv-BN-ReLU6; pools 3×3 + BN.

Canonical spec: compact JSON, each path its blocks' op lists and its two reduction block indices::

    {"path1":[["conv3x3"],["maxpool3x3","double3x3"]],"path1_reduce_inds":[0,1],
     "path2":[["inception_s5x5"],["conv5x5"],["bottleneck-r2-k3","conv1x1"]],"path2_reduce_inds":[0,2]}

The two paths are interchangeable (they meet in a concat that feeds a full conv), so the canonical form
orders them: ``path1`` is the one whose compact JSON sorts first. Also accepted: the authors'
``TwoPathNetConfig.state_dict()`` (blocks as ``{"op_names": [...], "op_types": [...]}``).

``zoo``: the same network on 16×16 inputs with every width divided by 4 (stem 8, paths 8 → 16 → 32,
head conv 128): the stem reduction is kept, so the paths end at 2×2. (Widths ÷8, the first zoo's,
ranked the family at seed-mean reliability 0.6; results/zoo/README.md.)
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from ..checks import is_whole
from .base import ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES, Profile, Space
from .gennape_ops import Bottleneck, check_op_mix, ClassifierHead, ConvBNAct, InceptionS, PoolBN, divide_width, json_spec

CONV_OPS: tuple[str, ...] = (
    "conv3x3", "double3x3", "conv5x5", "bottleneck-r2-k3", "bottleneck-r4-k3", "bottleneck-e2-k3",
    "inception_s3x3", "inception_s5x5",
)
SUPP_OPS: tuple[str, ...] = ("conv1x1", "bottleneck-r2-k1", "bottleneck-e2-k1", "avgpool3x3", "maxpool3x3")
ALL_OPS = CONV_OPS + SUPP_OPS
MIN_OPS_PER_BLOCK, MAX_OPS_PER_BLOCK = 1, 3
MIN_BLOCKS_PER_PATH, MAX_BLOCKS_PER_PATH = 2, 4
REDUCTIONS_PER_PATH = 2
NUM_PATHS = 2

_FORMATS = ('accepted forms: canonical JSON {"path1": [[op, ...], ...], "path1_reduce_inds": [i, j], '
            '"path2": [...], "path2_reduce_inds": [i, j]}, or the same with blocks as the authors\' '
            '{"op_names": [...], "op_types": [...]}')


def op_type(op: str) -> str:
    return "conv" if op in CONV_OPS else "supp"


@dataclass(frozen=True)
class Path:
    """One path: the op names of each block, and the indices of its two reduction blocks."""

    blocks: tuple[tuple[str, ...], ...]
    reduce_inds: tuple[int, ...]

    def key(self) -> str:
        return json.dumps([[list(b) for b in self.blocks], list(self.reduce_inds)], separators=(",", ":"))


# ---------------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------------
def _check_block(ops: Any, where: str) -> tuple[str, ...]:
    if isinstance(ops, dict):  # the authors' SinglePathBlockConfig state dict
        if "op_names" not in ops:
            raise ValueError(f"{where}: a block given as a dict needs 'op_names' (and optionally 'op_types')")
        names, types = ops["op_names"], ops.get("op_types")
        out = _check_block(names, where)
        if types is not None and list(types) != [op_type(o) for o in out]:
            raise ValueError(f"{where}: op_types {list(types)} do not match the ops' types "
                             f"{[op_type(o) for o in out]} (conv ops: {', '.join(CONV_OPS)}; supp ops: "
                             f"{', '.join(SUPP_OPS)})")
        return out
    if not isinstance(ops, (list, tuple)):
        raise ValueError(f"{where} must be a list of op names, got {ops!r}")
    if not MIN_OPS_PER_BLOCK <= len(ops) <= MAX_OPS_PER_BLOCK:
        raise ValueError(f"{where} must have {MIN_OPS_PER_BLOCK}-{MAX_OPS_PER_BLOCK} ops, got {len(ops)}")
    return check_op_mix(ops, where, "two_path", ALL_OPS, CONV_OPS, SUPP_OPS)


def _check_path(blocks: Any, reduce_inds: Any, name: str) -> Path:
    if not isinstance(blocks, (list, tuple)):
        raise ValueError(f"{name} must be a list of blocks (each a list of op names), got {blocks!r}")
    if not MIN_BLOCKS_PER_PATH <= len(blocks) <= MAX_BLOCKS_PER_PATH:
        raise ValueError(f"{name} must have {MIN_BLOCKS_PER_PATH}-{MAX_BLOCKS_PER_PATH} blocks, got {len(blocks)}")
    checked = tuple(_check_block(b, f"block {i} of {name}") for i, b in enumerate(blocks))
    if not isinstance(reduce_inds, (list, tuple)) or not all(is_whole(i) for i in reduce_inds):
        raise ValueError(f"{name}_reduce_inds must be a list of block indices, got {reduce_inds!r}")
    inds = tuple(sorted(set(reduce_inds)))
    if len(reduce_inds) != REDUCTIONS_PER_PATH or len(inds) != REDUCTIONS_PER_PATH or not all(
            0 <= i < len(checked) for i in inds):
        raise ValueError(f"{name} needs exactly {REDUCTIONS_PER_PATH} distinct reduction block indices in "
                         f"0..{len(checked) - 1}, got {list(reduce_inds)}")
    return Path(checked, inds)


def _canonical(paths: Sequence[Path]) -> tuple[Path, Path]:
    if len(paths) != NUM_PATHS:
        raise ValueError(f"a two_path spec has exactly {NUM_PATHS} paths, got {len(paths)}")
    checked = [_check_path(p.blocks, p.reduce_inds, f"path{i + 1}") for i, p in enumerate(paths)]
    a, b = sorted(checked, key=Path.key)
    return (a, b)


# ---------------------------------------------------------------------------------------------------
# network
# ---------------------------------------------------------------------------------------------------
def make_op(name: str, c_in: int, c_out: int, stride: int) -> nn.Module:
    """One Two-Path op (``get_two_path_op_model`` of the authors' TF code)."""
    if name in ("conv3x3", "conv5x5", "conv1x1"):
        return ConvBNAct(c_in, c_out, int(name[-1]), stride, "relu6")
    if name == "double3x3":
        return nn.Sequential(ConvBNAct(c_in, c_in, 3, stride, "relu6"), ConvBNAct(c_in, c_out, 3, 1, "relu6"))
    if name.startswith("bottleneck-"):
        _, ratio, kernel = name.split("-")
        n = int(ratio[1:])
        hidden = max(1, c_in // n) if ratio[0] == "r" else c_in * n
        return Bottleneck(c_in, hidden, c_out, int(kernel[1:]), stride)
    if name.startswith("inception_s"):
        return InceptionS(c_in, c_out, int(name[-1]), stride)
    if name in ("avgpool3x3", "maxpool3x3"):
        if c_in != c_out:
            raise ValueError(f"{name} cannot change the width ({c_in} → {c_out})")
        return PoolBN(name[:3], c_in, 3, stride)
    raise ValueError(f"unknown two_path op {name!r}; allowed ops: {', '.join(ALL_OPS)}")


class SinglePathBlock(nn.Module):
    """Ops in sequence; the first conv op takes the stride and the width change; residual when the
    shape is kept."""

    def __init__(self, ops: Sequence[str], c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        layers, c, first_conv = [], c_in, True
        for op in ops:
            if first_conv and op in CONV_OPS:
                layers.append(make_op(op, c, c_out, stride))
                c, first_conv = c_out, False
            else:
                layers.append(make_op(op, c, c, 1))
        self.ops = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.ops(x)
        return out + x if self.residual else out


class TwoPathNetwork(nn.Module):
    def __init__(self, paths: Sequence[Path], profile: Profile):
        super().__init__()
        div = int(profile["width_divisor"])
        c_stem = divide_width(int(profile["C_stem"]), div, "two_path stem")
        c_head = divide_width(int(profile["C_head"]), div, "two_path head conv")
        self.stem_proj = ConvBNAct(profile.input_shape[0], c_stem, 3, 1, "relu6")
        self.stem_reduce = ConvBNAct(c_stem, c_stem, 3, 2, "relu6")
        built, c_cat = [], 0
        for path in paths:
            blocks, c = [], c_stem
            for i, ops in enumerate(path.blocks):
                reduce = i in path.reduce_inds
                blocks.append(SinglePathBlock(ops, c, 2 * c if reduce else c, 2 if reduce else 1))
                c = 2 * c if reduce else c
            built.append(nn.Sequential(*blocks))
            c_cat += c
        self.path1, self.path2 = built
        self.head = ClassifierHead(c_cat, profile.num_classes, c_head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_reduce(self.stem_proj(x))
        return self.head(torch.cat([self.path1(x), self.path2(x)], dim=1))


# ---------------------------------------------------------------------------------------------------
# the space
# ---------------------------------------------------------------------------------------------------
class TwoPathSpace(Space):
    """Two-Path networks; see the module docstring for the spec string."""

    name = "two_path"
    profiles = {
        "paper": Profile("paper", (3, 32, 32), 10, {"C_stem": 32, "C_head": 512, "width_divisor": 1}),
        "zoo": Profile("zoo", ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES, {"C_stem": 32, "C_head": 512, "width_divisor": 4,
                                                          "channels_last": True}),
    }

    def parse(self, text: str) -> tuple[Path, Path]:
        obj = json_spec(text, "two_path", _FORMATS)
        if not isinstance(obj, dict):
            raise ValueError(f"a two_path JSON spec must be an object; {_FORMATS}")
        allowed = {"path1", "path2", "path1_reduce_inds", "path2_reduce_inds"}
        unknown, missing = set(obj) - allowed, allowed - set(obj)
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)} in two_path spec; allowed keys: {sorted(allowed)}")
        if missing:
            raise ValueError(f"two_path spec is missing {sorted(missing)}; {_FORMATS}")
        paths = [_check_path(obj[f"path{i}"], obj[f"path{i}_reduce_inds"], f"path{i}") for i in (1, 2)]
        return _canonical(paths)

    def format(self, parsed: Sequence[Path]) -> str:
        a, b = _canonical(parsed)
        obj = {"path1": [list(x) for x in a.blocks], "path1_reduce_inds": list(a.reduce_inds),
               "path2": [list(x) for x in b.blocks], "path2_reduce_inds": list(b.reduce_inds)}
        return json.dumps(obj, separators=(",", ":"))

    def to_state_dict(self, text: str) -> dict:
        """The authors' ``TwoPathNetConfig.state_dict()`` of a spec (blocks with op names and types)."""
        a, b = self.parse(text)
        out: dict[str, Any] = {}
        for i, p in ((1, a), (2, b)):
            out[f"path{i}"] = [{"op_names": list(ops), "op_types": [op_type(o) for o in ops]} for ops in p.blocks]
            out[f"path{i}_reduce_inds"] = list(p.reduce_inds)
        return out

    # -- search -----------------------------------------------------------------------------------
    @staticmethod
    def _sample_block(rng: np.random.Generator) -> tuple[str, ...]:
        """``sample_sp_block_config``: 1-3 ops; a conv op, then each further op a supp op with
        probability 5/13 (while none is in the block) or else a conv op; shuffled."""
        n_ops = int(rng.integers(MIN_OPS_PER_BLOCK, MAX_OPS_PER_BLOCK + 1))
        ops = [CONV_OPS[int(rng.integers(len(CONV_OPS)))]]
        p_supp = len(SUPP_OPS) / len(ALL_OPS)
        supp_added = False
        for _ in range(n_ops - 1):
            if rng.random() < p_supp and not supp_added:
                ops.append(SUPP_OPS[int(rng.integers(len(SUPP_OPS)))])
                supp_added = True
            else:
                ops.append(CONV_OPS[int(rng.integers(len(CONV_OPS)))])
        return tuple(ops[i] for i in rng.permutation(len(ops)))

    def _sample_path(self, rng: np.random.Generator) -> Path:
        n = int(rng.integers(MIN_BLOCKS_PER_PATH, MAX_BLOCKS_PER_PATH + 1))
        blocks = tuple(self._sample_block(rng) for _ in range(n))
        return Path(blocks, tuple(sorted(int(i) for i in rng.permutation(n)[:REDUCTIONS_PER_PATH])))

    def sample(self, rng: np.random.Generator) -> str:
        """The authors' ``sample_two_path_net_config``: per path a uniform length in 2-4, blocks as
        :meth:`_sample_block`, two uniform distinct reduction blocks."""
        return self.format((self._sample_path(rng), self._sample_path(rng)))

    def mutate(self, text: str, rng: np.random.Generator) -> str:
        """One local change in one path: replace, insert or delete an op of a block; insert a freshly
        sampled block or delete a non-reduction block; or move one reduction to another block. Draws
        that would break a rule are redrawn."""
        original = self.parse(text)
        spec = self.format(original)
        while True:
            paths = list(original)
            k = int(rng.integers(NUM_PATHS))
            blocks = [list(b) for b in paths[k].blocks]
            reduce = list(paths[k].reduce_inds)
            move = int(rng.integers(6))
            i = int(rng.integers(len(blocks)))
            if move == 0:  # replace an op
                j = int(rng.integers(len(blocks[i])))
                choices = [o for o in ALL_OPS if o != blocks[i][j]]
                blocks[i][j] = choices[int(rng.integers(len(choices)))]
            elif move == 1:  # insert an op
                if len(blocks[i]) >= MAX_OPS_PER_BLOCK:
                    continue
                blocks[i].insert(int(rng.integers(len(blocks[i]) + 1)), ALL_OPS[int(rng.integers(len(ALL_OPS)))])
            elif move == 2:  # delete an op
                if len(blocks[i]) <= MIN_OPS_PER_BLOCK:
                    continue
                del blocks[i][int(rng.integers(len(blocks[i])))]
            elif move == 3:  # insert a block
                if len(blocks) >= MAX_BLOCKS_PER_PATH:
                    continue
                at = int(rng.integers(len(blocks) + 1))
                blocks.insert(at, list(self._sample_block(rng)))
                reduce = [r + 1 if r >= at else r for r in reduce]
            elif move == 4:  # delete a non-reduction block
                if len(blocks) <= MIN_BLOCKS_PER_PATH or i in reduce:
                    continue
                del blocks[i]
                reduce = [r - 1 if r > i else r for r in reduce]
            else:  # move a reduction to a block that has none
                free = [b for b in range(len(blocks)) if b not in reduce]
                if not free:
                    continue
                reduce[int(rng.integers(len(reduce)))] = free[int(rng.integers(len(free)))]
            try:
                paths[k] = _check_path(blocks, reduce, f"path{k + 1}")
            except ValueError:
                continue
            child = self.format(paths)
            if child != spec:
                return child

    # -- networks ---------------------------------------------------------------------------------
    def build(self, text: str, profile: str | Profile = "paper") -> nn.Module:
        p = profile if isinstance(profile, Profile) else self.profile(profile)
        return TwoPathNetwork(self.parse(text), p)

    def input_shape(self, profile: str | Profile = "paper") -> tuple[int, int, int, int]:
        p = profile if isinstance(profile, Profile) else self.profile(profile)
        return (1, *p.input_shape)


__all__ = ["ALL_OPS", "CONV_OPS", "SUPP_OPS", "Path", "SinglePathBlock", "TwoPathNetwork", "TwoPathSpace",
           "make_op", "op_type"]
