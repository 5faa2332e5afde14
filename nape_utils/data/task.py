"""The offline task every zoo network trains on: *coloured digits*, 10 classes, 3×16×16.

No download: the source images are scikit-learn's 1,797 handwritten 8×8 digits. Plain digits is too
easy (small CNNs reach 98–99 % and architectures then barely rank), so each example is made harder,
deterministically from a seed:

1. the digit is distorted by a random affine map (rotation ±20°, scale 0.9–1.5, shear ±0.2);
2. it is painted in a random bright colour at a random position of a 16×16 canvas;
3. the canvas has a random dark background colour and Gaussian pixel noise; optionally, clutter:
   fragments (5×5 crops) of *other* digits in other colours, which a network must learn to ignore;
4. each channel of each image is standardised on its own (zero mean, unit std over its pixels).

Step 4 matters for the labels. With one mean/std for the whole training set (``standardise="dataset"``,
the first zoo pilots), every network first sat on a loss plateau at ln 10 while it learned to see past
the random colours, for one to four of its five epochs, and how long it sat there was luck: the two
seeds of one OFA-ProxylessNAS network reached 9 % and 47 %. Per-image standardisation removes the colour
nuisance before the network sees it: on the same HiAML and ProxylessNAS networks the mean accuracy rose
from 54 % and 38 % to 65 % and 62 %, and the gap between two seeds halved for ProxylessNAS
(results/zoo/README.md).

The defaults were chosen by label quality, not by taste. With two fragments of clutter and 4,000
images, narrow families (HiAML, Two-Path, NB-301 at zoo size) stayed at 20–30 % after a zoo budget
and two training seeds ranked them alike only at Spearman 0.1–0.2; without clutter (noise 0.05,
3,000 images) the same families spread over 30–70 % and seeds agree at 0.7–0.8 (results/zoo/README.md).

Source digits are split 60/20/20 into disjoint pools before anything is drawn, so validation and test
examples show handwriting never seen in training. Same config, same tensors, bit for bit.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

SPLITS = ("train", "val", "test")
STANDARDISE = ("image", "dataset")


@dataclass(frozen=True)
class TaskConfig:
    """Everything that decides the task's tensors; its :meth:`key` names a zoo's labels."""

    size: int = 16           # canvas height and width
    n_train: int = 3000
    n_val: int = 1000
    n_test: int = 2000
    clutter: int = 0         # fragments of other digits per image (harder; see the module docstring)
    noise: float = 0.05      # std of the Gaussian pixel noise
    seed: int = 0
    standardise: str = "image"  # "image": each image's channels on their own; "dataset": training mean/std

    def __post_init__(self):
        if self.size < 12:
            raise ValueError(f"size must be at least 12 (the distorted digit is 12×12), got {self.size}")
        for name in ("n_train", "n_val", "n_test"):
            if getattr(self, name) < 10:
                raise ValueError(f"{name} must be at least 10, got {getattr(self, name)}")
        if self.clutter < 0 or self.noise < 0:
            raise ValueError("clutter and noise must be non-negative")
        if self.standardise not in STANDARDISE:
            raise ValueError(f"standardise must be one of {STANDARDISE}, got {self.standardise!r}")

    @classmethod
    def from_dict(cls, settings: dict) -> "TaskConfig":
        """The config a store or Dataset recorded. Records from before ``standardise`` existed were
        made with the training set's mean/std, so a missing entry means ``"dataset"``."""
        return cls(**{"standardise": "dataset", **settings})

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def _source_pools(seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(images))
    cut1, cut2 = int(0.6 * len(order)), int(0.8 * len(order))
    parts = {"train": order[:cut1], "val": order[cut1:cut2], "test": order[cut2:]}
    return {split: (images[idx], digits.target[idx]) for split, idx in parts.items()}


def _distort(image: np.ndarray, rng: np.random.Generator, out: int = 12) -> np.ndarray:
    """A random affine distortion of an 8×8 digit into an ``out``×``out`` patch."""
    from scipy.ndimage import affine_transform

    angle = np.deg2rad(rng.uniform(-20, 20))
    scale = rng.uniform(0.9, 1.5)
    shear = rng.uniform(-0.2, 0.2)
    forward = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ np.array(
        [[1.0, shear], [0.0, 1.0]])
    inverse = np.linalg.inv(forward)
    centre_in, centre_out = np.array([3.5, 3.5]), np.array([(out - 1) / 2] * 2)
    offset = centre_in - inverse @ centre_out
    return np.clip(affine_transform(image, inverse, offset=offset, output_shape=(out, out), order=1), 0, 1)


def _render_split(config: TaskConfig, split: str, pool: tuple[np.ndarray, np.ndarray], n: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    images, labels = pool
    s = config.size
    x = np.empty((n, 3, s, s), dtype=np.float32)
    y = np.empty(n, dtype=np.int64)
    for i in range(n):
        pick = rng.integers(len(images))
        canvas = rng.uniform(0.0, 0.45, size=(3, 1, 1)) + rng.normal(0, config.noise, size=(3, s, s))
        for _ in range(config.clutter):
            other = images[rng.integers(len(images))]
            r, c = rng.integers(0, 4, size=2)
            frag = other[r:r + 5, c:c + 5]
            top, left = rng.integers(0, s - 5 + 1, size=2)
            colour = rng.uniform(0.2, 1.0, size=(3, 1, 1))
            region = canvas[:, top:top + 5, left:left + 5]
            canvas[:, top:top + 5, left:left + 5] = region * (1 - frag) + colour * frag
        patch = _distort(images[pick], rng)
        top, left = rng.integers(0, s - 12 + 1, size=2)
        colour = rng.uniform(0.55, 1.0, size=(3, 1, 1))
        region = canvas[:, top:top + 12, left:left + 12]
        canvas[:, top:top + 12, left:left + 12] = region * (1 - patch) + colour * patch
        x[i] = canvas
        y[i] = labels[pick]
    return x, y


@lru_cache(maxsize=4)
def make_task(config: TaskConfig = TaskConfig()) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """split → (images float32 [N, 3, S, S], standardised as ``config.standardise`` says; labels int64 [N])."""
    pools = _source_pools(config.seed)
    sizes = {"train": config.n_train, "val": config.n_val, "test": config.n_test}
    data = {}
    for k, split in enumerate(SPLITS):
        rng = np.random.default_rng([config.seed, k])
        data[split] = _render_split(config, split, pools[split], sizes[split], rng)
    if config.standardise == "dataset":
        mean = data["train"][0].mean(axis=(0, 2, 3), keepdims=True)
        std = data["train"][0].std(axis=(0, 2, 3), keepdims=True)
    for split, (x, y) in data.items():
        if config.standardise == "image":
            mean = x.mean(axis=(2, 3), keepdims=True)
            std = x.std(axis=(2, 3), keepdims=True) + 1e-3  # a flat channel stays flat, never divides by ~0
        x = ((x - mean) / std).astype(np.float32)
        x.setflags(write=False)
        y.setflags(write=False)
        data[split] = (x, y)
    return data


def task_tensors(data: dict, split: str, size: int, memory_format=None):
    """(images, labels) of one split of :func:`make_task`'s output as torch tensors, the images resized
    to ``size``×``size`` (bilinear, antialiased) where the canvas differs: how a network whose input is
    smaller than the canvas (an OFA spec's resolution at zoo size) sees the task."""
    import torch
    import torch.nn.functional as F

    x, y = torch.tensor(data[split][0]), torch.tensor(data[split][1])
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.contiguous(memory_format=memory_format or torch.contiguous_format), y
