"""One trainer for every family: a zoo network on the offline task, on one CPU thread.

Fixed budget: ``epochs`` passes over the training split, SGD with Nesterov momentum, a linear
warm-up over the first ``warmup`` fraction of steps then a cosine learning-rate schedule, no
augmentation. Everything is seeded (weights, batch order), so
the same (space, spec, seed, config) gives the same accuracy bit for bit on the same machine.

A zoo profile may ask for channels-last (NHWC) tensors (``"channels_last": True`` in its options):
oneDNN's convolutions, depthwise ones above all, then run up to 2.7× faster on one CPU thread
(OFA-MobileNetV3 80 → 42 ms a step; results/zoo/README.md). The memory format changes the order of the
arithmetic, so it belongs to the profile, which a store records per family.

A network whose zoo input is smaller than the task's canvas (OFA specs choose their resolution) sees
the task's images downsampled to it (bilinear, antialiased), in training and in evaluation.
"""
from __future__ import annotations

import math
import numbers
import platform
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn as nn

from ..checks import whole_number
from ..data.task import TaskConfig, make_task, task_tensors
from ..graphs import graph_of
from ..spaces import get_space


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup: float = 0.1      # fraction of all steps spent ramping the learning rate up from zero
    task: TaskConfig = field(default_factory=TaskConfig)

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            whole_number(getattr(self, name), f"TrainConfig.{name}")
        allowed = {"lr": ("above 0", lambda v: v > 0), "momentum": ("in [0, 1)", lambda v: 0 <= v < 1),
                   "weight_decay": ("at least 0", lambda v: v >= 0), "warmup": ("in [0, 1)", lambda v: 0 <= v < 1)}
        for name, (wording, holds) in allowed.items():
            value = getattr(self, name)
            real = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            if not (real and holds(value)):
                raise ValueError(f"TrainConfig.{name} must be a number {wording}, got {value!r}")
        if not isinstance(self.task, TaskConfig):
            raise ValueError(f"TrainConfig.task must be a TaskConfig, got {type(self.task).__name__}")

    def to_dict(self) -> dict:
        return asdict(self)


def versions() -> dict[str, str]:
    """Versions of what a label depends on: the trainer (torch, numpy), the task (scipy's affine warps of
    scikit-learn's digits) and NAGO's graphs (networkx's generators)."""
    from importlib.metadata import version

    import nape_utils

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "nape": nape_utils.__version__, **{name: version(name) for name in ("scipy", "scikit-learn", "networkx")}}


def lr_factor(step: int, total: int, warmup: float) -> float:
    """Learning-rate multiplier: linear warm-up (steadier early steps for fragile nets), then cosine to 0."""
    ramp = int(warmup * total)
    if step < ramp:
        return (step + 1) / ramp
    return 0.5 * (1 + math.cos(math.pi * (step - ramp) / max(1, total - ramp)))


def _evaluate(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += (net(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / len(x)


def train_one(space: str, spec: str, seed: int, config: TrainConfig = TrainConfig()) -> dict:
    """Train ``spec`` at the zoo profile; returns the run's record (accuracies in %, loss curve,
    params, FLOPs, seconds, seed, versions)."""
    torch.set_num_threads(1)
    sp = get_space(space)
    spec = sp.canonical(spec)
    data = make_task(config.task)
    fmt = sp.profile("zoo").memory_format
    size = sp.input_shape_of(spec, "zoo")[-1]
    x_train, y_train = task_tensors(data, "train", size, fmt)
    torch.manual_seed(seed)
    net = sp.build(spec, "zoo").to(memory_format=fmt)
    graph = graph_of(sp, spec, "zoo")
    start = time.perf_counter()
    steps_per_epoch = math.ceil(len(x_train) / config.batch_size)
    total = config.epochs * steps_per_epoch
    opt = torch.optim.SGD(net.parameters(), lr=config.lr, momentum=config.momentum, nesterov=True,
                          weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, total, config.warmup))
    order = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(config.epochs):
        net.train()
        perm = torch.randperm(len(x_train), generator=order)
        running = 0.0
        for b in range(steps_per_epoch):
            idx = perm[b * config.batch_size:(b + 1) * config.batch_size]
            loss = loss_fn(net(x_train[idx]), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            running += loss.item() * len(idx)
        losses.append(running / len(x_train))
    val, test = (_evaluate(net, *task_tensors(data, split, size, fmt)) for split in ("val", "test"))
    return {
        "space": sp.name, "spec": spec, "seed": int(seed),
        "test_accuracy": 100 * test, "val_accuracy": 100 * val,
        "train_loss": [round(v, 6) for v in losses], "params": graph.params, "flops": graph.flops,
        "seconds": time.perf_counter() - start, "versions": versions(),
    }
