"""Inception (GENNAPE's test family; Mills et al., AAAI 2023): stages of multi-path blocks.

Re-implemented from the authors' code, Ascend-Research/GENNAPE ``model_src/search_space/inception/``
(``constants.py``: ops and counts; ``arch_sampler.py``: ``sample_net_config``; ``arch_utils.py``: the
channel-change rules; ``network_tf.py``: ``InceptionNet``; ``block_tf.py``: ``InceptionBlock``;
``operations_tf.py``: the ops). Network (``paper``, CIFAR-10, every conv with a bias and BN):

- stem: conv 3×3 to 32 channels, BN, ReLU6 (stride 1);
- 4 stages of 2-6 copies of the stage's block; stages 1-3 start with a stride-2 block and double the
  width (32, 64, 128, 256);
- a block runs 1-4 parallel paths on its input and concatenates them (a 1×1 conv-BN maps the concat to
  the block width when the paths' widths do not add up to it); a block that keeps the shape adds its
  input (residual);
- a path is a sequence of ops with at least one *conv* op and at most one *supp* op (a 1-path block has
  1-3 ops, a 2-path block 1+ per path and 4 in all, 3 paths 2+ each and 8 in all, 4 paths 2+ each and
  10 in all). Its first width-changing op (a conv op, ``conv1x1`` or ``double1x1``) maps the input to
  the path's internal width ``C_internal``, its last one to the path's output width ``C_out``; its first
  conv op takes the stride. ``C_internal`` may differ from ``C_out`` only in a path with two or more
  width-changing ops;
- conv 3×3 to 512, BN, ReLU6 → global average pool → linear.

Path widths follow the authors' sampler: a block of width C splits it evenly over its paths (3 paths:
C/2, C/4, C/4, in any order), never below 16; ``C_internal`` is ``C_out`` halved, kept or doubled
(never below 16).

Canonical spec: compact JSON of the 4 stages, each its number of blocks and its block's paths (ops,
paper-size widths)::

    {"stages":[{"n_blocks":2,"paths":[{"ops":["conv3x3","avgpool3x3"],"C_internal":32,"C_out":32}]},...]}

A block's paths are interchangeable up to a permutation of channels, so the canonical form sorts them
by their compact JSON. Also accepted: the authors' ``NetConfig.state_dict()`` (stages with ``block``
{``paths``: [{``ops``, ``op_types``, ``C_internal``, ``C_out``}]}, ``n_blocks``, ``C_in``, ``C_out``,
``stride``).

``zoo``: the same network on 16×16 inputs with every width divided by 4 (stem 8, stages 8-64, paths
down to 4, head conv 128) and a stride-2 stem, so that a zoo run stays within about 30 s on one core;
the last stage runs at 1×1. (Divided by 8, paths shrank to 2 channels and networks learned only
about 20 % in the zoo budget, against about 50 % now.)
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
from .gennape_ops import (check_op_mix, ClassifierHead, ConvBNAct, DepthwiseBNReLU6, InceptionP, InceptionS, PoolBN,
                          divide_width, json_spec)

CONV_OPS: tuple[str, ...] = (
    "conv3x3", "inception_s3x3", "inception_p3x3", "depthwise3x3",
    "conv5x5", "depthwise5x5", "inception_s5x5", "inception_p5x5",
)
SUPP_OPS: tuple[str, ...] = ("conv1x1", "avgpool3x3", "maxpool3x3", "double1x1")
SUPP_C_CHANGE_OPS: tuple[str, ...] = ("conv1x1", "double1x1")
ALL_OPS = CONV_OPS + SUPP_OPS
C_INIT = 32
C_HEAD = 512
NUM_STAGES = 4
REDUCTION_STAGES = (1, 2, 3)
MIN_CHANNELS = 16
MIN_BLOCKS, MAX_BLOCKS = 2, 6
NUM_PATHS = (1, 2, 3, 4)
MAX_OPS_PER_BLOCK = {1: 3, 2: 4, 3: 8, 4: 10}
MIN_OPS_PER_PATH = {1: 1, 2: 1, 3: 2, 4: 2}
#: the sampler's internal-width choices and their probabilities (``PATH_C_CHANGE_PROBS``)
C_CHANGES = (("reduce2", 0.3), ("no_change", 0.6), ("expand2", 0.1))

_FORMATS = ('accepted forms: canonical JSON {"stages": [{"n_blocks": n, "paths": [{"ops": [...], '
            '"C_internal": c, "C_out": c}, ...]}, ...4 stages]}, or the authors\' NetConfig state dict')


def op_type(op: str) -> str:
    return "conv" if op in CONV_OPS else "supp"


def stage_widths() -> list[int]:
    """Block width of each stage at paper size: 32, 64, 128, 256."""
    widths, c = [], C_INIT
    for s in range(NUM_STAGES):
        c = 2 * c if s in REDUCTION_STAGES else c
        widths.append(c)
    return widths


def path_widths(c_block: int, n_paths: int) -> list[int]:
    """The authors' split of a block width over its paths (before shuffling), each at least 16."""
    if n_paths == 3:
        q = c_block // 4
        vals = [2 * q, q, q + c_block - 4 * q]
    else:
        q = c_block // n_paths
        vals = [q] * n_paths
        vals[-1] += c_block - q * n_paths
    return [max(v, MIN_CHANNELS) for v in vals]


def _change_capable(ops: Sequence[str]) -> list[int]:
    return [i for i, op in enumerate(ops) if op in CONV_OPS or op in SUPP_C_CHANGE_OPS]


def can_change_width(ops: Sequence[str]) -> bool:
    """Two or more width-changing ops: the path may have C_internal ≠ C_out (``can_have_C_change``)."""
    return len(_change_capable(ops)) >= 2


def internal_widths(ops: Sequence[str], c_out: int) -> list[int]:
    """The C_internal values the sampler can give a path of ``ops`` and output width ``c_out``."""
    if not can_change_width(ops):
        return [c_out]
    return sorted({max(c_out // 2, MIN_CHANNELS), c_out, max(2 * c_out, MIN_CHANNELS)})


@dataclass(frozen=True)
class PathConfig:
    ops: tuple[str, ...]
    C_internal: int
    C_out: int

    def to_json(self) -> dict:
        return {"ops": list(self.ops), "C_internal": self.C_internal, "C_out": self.C_out}

    def key(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))


@dataclass(frozen=True)
class StageConfig:
    n_blocks: int
    paths: tuple[PathConfig, ...]


# ---------------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------------
def _check_path_ops(ops: Any, where: str) -> tuple[str, ...]:
    if not isinstance(ops, (list, tuple)) or not ops:
        raise ValueError(f"{where}: 'ops' must be a non-empty list of op names, got {ops!r}")
    return check_op_mix(ops, where, "inception", ALL_OPS, CONV_OPS, SUPP_OPS)


def _check_stage(stage: int, n_blocks: Any, paths: Any) -> StageConfig:
    where = f"stage {stage}"
    if not is_whole(n_blocks) or not MIN_BLOCKS <= n_blocks <= MAX_BLOCKS:
        raise ValueError(f"{where}: n_blocks must be an integer in {MIN_BLOCKS}-{MAX_BLOCKS}, got {n_blocks!r}")
    if not isinstance(paths, (list, tuple)) or len(paths) not in NUM_PATHS:
        n = len(paths) if isinstance(paths, (list, tuple)) else paths
        raise ValueError(f"{where}: a block has 1-4 paths, got {n!r}")
    n_paths = len(paths)
    checked: list[PathConfig] = []
    for i, p in enumerate(paths):
        pw = f"{where} path {i}"
        if isinstance(p, PathConfig):
            p = p.to_json()
        if not isinstance(p, dict):
            raise ValueError(f"{pw} must be an object with 'ops', 'C_internal' and 'C_out', got {p!r}")
        unknown = set(p) - {"ops", "op_types", "C_internal", "C_out"}
        missing = {"ops", "C_internal", "C_out"} - set(p)
        if unknown or missing:
            raise ValueError(f"{pw} must have keys 'ops', 'C_internal', 'C_out' (and optionally 'op_types'); "
                             f"unknown {sorted(unknown)}, missing {sorted(missing)}")
        ops = _check_path_ops(p["ops"], pw)
        if "op_types" in p and list(p["op_types"]) != [op_type(o) for o in ops]:
            raise ValueError(f"{pw}: op_types {list(p['op_types'])} do not match the ops' types "
                             f"{[op_type(o) for o in ops]}")
        if len(ops) < MIN_OPS_PER_PATH[n_paths]:
            raise ValueError(f"{pw}: a block with {n_paths} paths needs at least {MIN_OPS_PER_PATH[n_paths]} "
                             f"ops per path, got {len(ops)}")
        if not all(is_whole(p[k]) for k in ("C_internal", "C_out")):
            raise ValueError(f"{pw}: C_internal and C_out must be integers")
        checked.append(PathConfig(ops, p["C_internal"], p["C_out"]))
    total = sum(len(p.ops) for p in checked)
    if total > MAX_OPS_PER_BLOCK[n_paths]:
        raise ValueError(f"{where}: a block with {n_paths} paths has at most {MAX_OPS_PER_BLOCK[n_paths]} ops "
                         f"in total, got {total}")
    c_block = stage_widths()[stage]
    expected = sorted(path_widths(c_block, n_paths))
    got = sorted(p.C_out for p in checked)
    if got != expected:
        raise ValueError(f"{where}: the C_out of a block's {n_paths} path(s) must split the stage width {c_block} "
                         f"as {expected} (any order, each at least {MIN_CHANNELS}), got {got}")
    for i, p in enumerate(checked):
        allowed = internal_widths(p.ops, p.C_out)
        if p.C_internal not in allowed:
            rule = ("a path with fewer than two width-changing ops (conv ops, conv1x1, double1x1) has "
                    "C_internal = C_out" if len(allowed) == 1 else
                    f"C_internal is C_out halved, kept or doubled, at least {MIN_CHANNELS}")
            raise ValueError(f"{where} path {i}: C_internal must be one of {allowed} ({rule}), got {p.C_internal}")
    return StageConfig(n_blocks, tuple(sorted(checked, key=PathConfig.key)))


def _check_stages(stages: Sequence[StageConfig]) -> tuple[StageConfig, ...]:
    if len(stages) != NUM_STAGES:
        raise ValueError(f"an inception spec has exactly {NUM_STAGES} stages, got {len(stages)}")
    return tuple(_check_stage(i, s.n_blocks, s.paths) for i, s in enumerate(stages))


# ---------------------------------------------------------------------------------------------------
# network
# ---------------------------------------------------------------------------------------------------
def make_op(name: str, c_in: int, c_out: int, stride: int) -> nn.Module:
    """One Inception-family op (``get_op_model`` of the authors' TF code), with conv biases."""
    if name in ("conv3x3", "conv5x5", "conv1x1"):
        return ConvBNAct(c_in, c_out, int(name[-1]), stride, "relu6", bias=True)
    if name.startswith("depthwise"):
        return DepthwiseBNReLU6(c_in, c_out, int(name[-1]), stride)
    if name.startswith("inception_s"):
        return InceptionS(c_in, c_out, int(name[-1]), stride, bias=True, factorized_stride=True)
    if name.startswith("inception_p"):
        return InceptionP(c_in, c_out, int(name[-1]), stride)
    if name == "double1x1":
        return nn.Sequential(ConvBNAct(c_in, c_out, 1, 1, "relu6", bias=True),
                             ConvBNAct(c_out, c_out, 1, stride, "relu6", bias=True))
    if name in ("avgpool3x3", "maxpool3x3"):
        if c_in != c_out:
            raise ValueError(f"{name} cannot change the width ({c_in} → {c_out})")
        return PoolBN(name[:3], c_in, 3, stride)
    raise ValueError(f"unknown inception op {name!r}; allowed ops: {', '.join(ALL_OPS)}")


def build_path(ops: Sequence[str], c_in: int, c_internal: int, c_out: int, stride: int) -> nn.Sequential:
    """``InceptionBlock._build_path``: the first width-changing op maps to ``c_internal``, the first conv
    op takes the stride, the last width-changing op maps to ``c_out``."""
    capable = _change_capable(ops)
    first_c, last_c = capable[0], capable[-1]
    first_conv = next(i for i, op in enumerate(ops) if op in CONV_OPS)
    layers, c = [], c_in
    for i, op in enumerate(ops):
        if i == first_c == first_conv:
            out, s = c_internal, stride
        elif i == first_conv == last_c:
            out, s = c_out, stride
        elif i == first_c:
            out, s = c_internal, 1
        elif i == first_conv:
            out, s = c, stride
        elif i == last_c:
            out, s = c_out, 1
        else:
            out, s = c, 1
        layers.append(make_op(op, c, out, s))
        c = out
    if c != c_out:
        raise ValueError(f"path {list(ops)} ends at {c} channels, not C_out={c_out}: C_internal ≠ C_out needs "
                         "two width-changing ops")
    return nn.Sequential(*layers)


class InceptionBlock(nn.Module):
    def __init__(self, paths: Sequence[PathConfig], c_in: int, c_out: int, stride: int, divisor: int):
        super().__init__()
        self.paths = nn.ModuleList(
            build_path(p.ops, c_in, divide_width(p.C_internal, divisor, "inception C_internal"),
                       divide_width(p.C_out, divisor, "inception C_out"), stride) for p in paths)
        c_cat = sum(divide_width(p.C_out, divisor, "inception C_out") for p in paths)
        self.c_proj = ConvBNAct(c_cat, c_out, 1, 1, bias=True) if c_cat != c_out else None
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [path(x) for path in self.paths]
        out = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]
        if self.c_proj is not None:
            out = self.c_proj(out)
        return out + x if self.residual else out


class InceptionNetwork(nn.Module):
    def __init__(self, stages: Sequence[StageConfig], profile: Profile):
        super().__init__()
        div = int(profile["width_divisor"])
        c = divide_width(C_INIT, div, "inception stem")
        self.stem = ConvBNAct(profile.input_shape[0], c, 3, int(profile.options.get("stem_stride", 1)), "relu6", bias=True)
        blocks: list[nn.Module] = []
        for s, (stage, width) in enumerate(zip(stages, stage_widths())):
            c_out = divide_width(width, div, f"inception stage {s}")
            for b in range(stage.n_blocks):
                stride = 2 if s in REDUCTION_STAGES and b == 0 else 1
                blocks.append(InceptionBlock(stage.paths, c, c_out, stride, div))
                c = c_out
        self.blocks = nn.Sequential(*blocks)
        self.head = ClassifierHead(c, profile.num_classes, divide_width(C_HEAD, div, "inception head conv"),
                                   bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


# ---------------------------------------------------------------------------------------------------
# the space
# ---------------------------------------------------------------------------------------------------
class InceptionSpace(Space):
    """Inception networks; see the module docstring for the spec string."""

    name = "inception"
    profiles = {
        "paper": Profile("paper", (3, 32, 32), 10, {"width_divisor": 1}),
        "zoo": Profile("zoo", ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES, {"width_divisor": 4, "stem_stride": 2}),
    }

    def parse(self, text: str) -> tuple[StageConfig, ...]:
        obj = json_spec(text, "inception", _FORMATS)
        if not isinstance(obj, dict) or set(obj) != {"stages"}:
            raise ValueError(f"an inception JSON spec is an object with the single key 'stages'; {_FORMATS}")
        stages = obj["stages"]
        if not isinstance(stages, list) or len(stages) != NUM_STAGES:
            n = len(stages) if isinstance(stages, list) else stages
            raise ValueError(f"an inception spec has exactly {NUM_STAGES} stages, got {n!r}")
        widths, c_prev = stage_widths(), C_INIT
        out = []
        for s, st in enumerate(stages):
            if not isinstance(st, dict):
                raise ValueError(f"stage {s} must be an object with 'n_blocks' and 'paths', got {st!r}")
            if "block" in st:  # the authors' NetConfig state dict
                expect = {"C_in": c_prev, "C_out": widths[s], "stride": 2 if s in REDUCTION_STAGES else 1}
                for k, v in expect.items():
                    if k in st and st[k] != v:
                        raise ValueError(f"stage {s}: {k} is fixed at {v} in the inception macro layout, got {st[k]!r}")
                block = st["block"]
                paths = block.get("paths") if isinstance(block, dict) else None
                out.append(_check_stage(s, st.get("n_blocks"), paths))
            else:
                unknown = set(st) - {"n_blocks", "paths"}
                if unknown:
                    raise ValueError(f"unknown keys {sorted(unknown)} in stage {s}; allowed keys: n_blocks, paths")
                out.append(_check_stage(s, st.get("n_blocks"), st.get("paths")))
            c_prev = widths[s]
        return tuple(out)

    def format(self, parsed: Sequence[StageConfig]) -> str:
        stages = _check_stages(parsed)
        obj = {"stages": [{"n_blocks": s.n_blocks, "paths": [p.to_json() for p in s.paths]} for s in stages]}
        return json.dumps(obj, separators=(",", ":"))

    def to_state_dict(self, text: str) -> dict:
        """The authors' ``NetConfig.state_dict()`` of a spec."""
        stages, widths, c_prev, out = self.parse(text), stage_widths(), C_INIT, []
        for s, st in enumerate(stages):
            paths = [{**p.to_json(), "op_types": [op_type(o) for o in p.ops]} for p in st.paths]
            out.append({"block": {"paths": paths}, "n_blocks": st.n_blocks, "C_in": c_prev, "C_out": widths[s],
                        "stride": 2 if s in REDUCTION_STAGES else 1})
            c_prev = widths[s]
        return {"stages": out}

    # -- search -----------------------------------------------------------------------------------
    @staticmethod
    def _sample_ops(rng: np.random.Generator, n_ops: int) -> tuple[str, ...]:
        """``sample_path``'s ops: a conv op, then each further op a supp op with probability 4/12 (while
        none is in the path) or else a conv op; shuffled."""
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

    @staticmethod
    def _sample_internal(rng: np.random.Generator, ops: Sequence[str], c_out: int) -> int:
        if not can_change_width(ops):
            return c_out
        change = C_CHANGES[int(rng.choice(len(C_CHANGES), p=[p for _, p in C_CHANGES]))][0]
        c = {"reduce2": c_out // 2, "no_change": c_out, "expand2": 2 * c_out}[change]
        return max(c, MIN_CHANNELS)

    def _sample_block(self, rng: np.random.Generator, c_block: int) -> tuple[PathConfig, ...]:
        """``sample_block_config``: uniform path count, widths split and shuffled, op counts drawn path
        by path within the block's budget, then each path's ops and internal width."""
        n_paths = NUM_PATHS[int(rng.integers(len(NUM_PATHS)))]
        widths = [path_widths(c_block, n_paths)[i] for i in rng.permutation(n_paths)]
        lo, budget = MIN_OPS_PER_PATH[n_paths], MAX_OPS_PER_BLOCK[n_paths]
        paths, used = [], 0
        for i in range(n_paths):
            hi = budget - used - lo * (n_paths - i - 1)
            n_ops = int(rng.integers(lo, hi + 1))
            used += n_ops
            ops = self._sample_ops(rng, n_ops)
            paths.append(PathConfig(ops, self._sample_internal(rng, ops, widths[i]), widths[i]))
        return tuple(paths)

    def sample(self, rng: np.random.Generator) -> str:
        """The authors' ``sample_net_config``: per stage a uniform block count in 2-6 and one block."""
        stages = []
        for width in stage_widths():
            n_blocks = int(rng.integers(MIN_BLOCKS, MAX_BLOCKS + 1))
            stages.append(StageConfig(n_blocks, self._sample_block(rng, width)))
        return self.format(stages)

    def mutate(self, text: str, rng: np.random.Generator) -> str:
        """One local change at one stage: its block count ±1; or in one path: replace, insert or delete
        an op, or another internal width; or add a freshly sampled path / drop a path (the paths'
        output widths are then re-split, each keeping its internal-width choice). Draws that would
        break a rule are redrawn."""
        original = self.parse(text)
        spec = self.format(original)
        widths = stage_widths()
        while True:
            stages = list(original)
            s = int(rng.integers(NUM_STAGES))
            st = stages[s]
            paths = list(st.paths)
            n_blocks = st.n_blocks
            k = int(rng.integers(len(paths)))
            ops = list(paths[k].ops)
            move = int(rng.integers(7))
            if move == 0:  # block count
                n_blocks += 1 if rng.random() < 0.5 else -1
                if not MIN_BLOCKS <= n_blocks <= MAX_BLOCKS:
                    continue
            elif move in (1, 2, 3):  # replace / insert / delete an op
                if move == 1:
                    j = int(rng.integers(len(ops)))
                    choices = [o for o in ALL_OPS if o != ops[j]]
                    ops[j] = choices[int(rng.integers(len(choices)))]
                elif move == 2:
                    ops.insert(int(rng.integers(len(ops) + 1)), ALL_OPS[int(rng.integers(len(ALL_OPS)))])
                else:
                    if len(ops) == 1:
                        continue
                    del ops[int(rng.integers(len(ops)))]
                p = paths[k]
                paths[k] = PathConfig(tuple(ops), p.C_internal, p.C_out)
            elif move == 4:  # another internal width
                choices = [c for c in internal_widths(ops, paths[k].C_out) if c != paths[k].C_internal]
                if not choices:
                    continue
                paths[k] = PathConfig(paths[k].ops, choices[int(rng.integers(len(choices)))], paths[k].C_out)
            else:  # add or drop a path, re-splitting the widths
                if move == 5:
                    if len(paths) == max(NUM_PATHS):
                        continue
                    n = len(paths) + 1
                    lo = MIN_OPS_PER_PATH[n]
                    room = MAX_OPS_PER_BLOCK[n] - sum(len(p.ops) for p in paths)
                    if room < lo:
                        continue
                    new_ops = self._sample_ops(rng, int(rng.integers(lo, room + 1)))
                    paths.append(PathConfig(new_ops, 0, 0))
                else:
                    if len(paths) == 1:
                        continue
                    del paths[k]
                paths = self._resplit(paths, widths[s], rng)
            try:
                stages[s] = _check_stage(s, n_blocks, [p.to_json() for p in paths])
            except ValueError:
                continue
            child = self.format(stages)
            if child != spec:
                return child

    @staticmethod
    def _resplit(paths: list[PathConfig], c_block: int, rng: np.random.Generator) -> list[PathConfig]:
        """New output widths for a changed path count, in a random order; each path keeps its ratio of
        internal to output width where it can (a new path takes no change)."""
        widths = [path_widths(c_block, len(paths))[i] for i in rng.permutation(len(paths))]
        out = []
        for p, c_out in zip(paths, widths):
            if p.C_out and p.C_internal < p.C_out:
                c_int = max(c_out // 2, MIN_CHANNELS)
            elif p.C_out and p.C_internal > p.C_out:
                c_int = max(2 * c_out, MIN_CHANNELS)
            else:
                c_int = c_out
            if c_int not in internal_widths(p.ops, c_out):
                c_int = c_out
            out.append(PathConfig(p.ops, c_int, c_out))
        return out

    # -- networks ---------------------------------------------------------------------------------
    def build(self, text: str, profile: str | Profile = "paper") -> nn.Module:
        p = profile if isinstance(profile, Profile) else self.profile(profile)
        return InceptionNetwork(self.parse(text), p)

    def input_shape(self, profile: str | Profile = "paper") -> tuple[int, int, int, int]:
        p = profile if isinstance(profile, Profile) else self.profile(profile)
        return (1, *p.input_shape)


__all__ = ["ALL_OPS", "CONV_OPS", "InceptionBlock", "InceptionNetwork", "InceptionSpace", "PathConfig",
           "SUPP_OPS", "StageConfig", "build_path", "can_change_width", "internal_widths", "make_op",
           "path_widths", "stage_widths"]
