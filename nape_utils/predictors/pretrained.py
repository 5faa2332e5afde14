"""Shipped pretrained estimators: ``results/pretrained/<name>/`` holds ``model.pt`` (GENNAPE) or
``model.json`` (nape's hybrid estimator, :mod:`.hybrid`) and ``card.json``.

A model card records what the model was trained on, its settings, the profile its graphs were built
at, and the metrics measured when it was made.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..spaces import get_space
from .gennape import GENNAPE

PRETRAINED_DIR = Path(__file__).resolve().parents[2] / "results" / "pretrained"
#: spaces whose published benchmarks describe the ``paper`` network; predictions for them use it
BENCHMARK_SPACES = ("nb101", "nb201", "nb301", "tnb101_micro", "tnb101_macro", "macro", "mnasnet")


def available() -> list[str]:
    """The shipped GENNAPE models (graph in, accuracy out)."""
    return sorted(p.name for p in PRETRAINED_DIR.glob("*") if (p / "model.pt").is_file())


def hybrid_models() -> list[str]:
    """The shipped hybrid models (a pool of specs in, rank scores out)."""
    return sorted(p.name for p in PRETRAINED_DIR.glob("*") if (p / "model.json").is_file())


def model_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.is_file():
        return path
    for filename in ("model.pt", "model.json"):
        if (PRETRAINED_DIR / str(name_or_path) / filename).is_file():
            return PRETRAINED_DIR / str(name_or_path) / filename
    shipped = available() + hybrid_models()
    raise ValueError(f"no model {str(name_or_path)!r}: give a checkpoint path or one of the shipped models "
                     f"({', '.join(shipped) or 'none shipped yet'})")


def is_hybrid(name_or_path: str | Path) -> bool:
    """Whether a shipped name or a path is a hybrid model (JSON) rather than a GENNAPE checkpoint."""
    return model_path(name_or_path).suffix == ".json"


def load_pretrained(name_or_path: str | Path):
    """The model (a GENNAPE, or a HybridEstimator for ``model.json``) and its card (empty for a bare file)."""
    path = model_path(name_or_path)
    card_file = path.with_name("card.json")
    card = json.loads(card_file.read_text()) if card_file.is_file() else {}
    if path.suffix == ".json":
        from .hybrid import HybridEstimator

        return HybridEstimator.load(path), card
    return GENNAPE.load(path), card


def default_profile(space: str) -> str:
    """``paper`` for benchmark spaces (their labels describe that network), else ``zoo``."""
    return "paper" if get_space(space).name in BENCHMARK_SPACES else "zoo"


def save_pretrained(model: GENNAPE, name: str, card: dict, root: Path = PRETRAINED_DIR) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.pt")
    (folder / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return folder
