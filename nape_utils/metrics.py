"""Ranking and error metrics for performance estimators (GENNAPE's and NASLib's vocabulary).

All take ``y_true`` and ``y_pred`` as 1-D arrays of equal length ≥ 2 and return a float.
"""
from __future__ import annotations

import numpy as np
from scipy import stats


def _check(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=float).ravel()
    y_pred = np.asarray(y_pred, dtype=float).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length ({len(y_true)} vs {len(y_pred)})")
    if len(y_true) < 2:
        raise ValueError("ranking metrics need at least 2 architectures")
    if not (np.isfinite(y_true).all() and np.isfinite(y_pred).all()):
        raise ValueError("y_true and y_pred must be finite (no NaN or inf)")
    return y_true, y_pred


def spearman(y_true, y_pred) -> float:
    """Spearman rank correlation (SRCC)."""
    return float(stats.spearmanr(*_check(y_true, y_pred))[0])


def kendall_tau(y_true, y_pred) -> float:
    """Kendall's τ-b (ties handled as scipy does)."""
    return float(stats.kendalltau(*_check(y_true, y_pred))[0])


def pairwise_accuracy(y_true, y_pred, min_gap: float = 1e-4) -> float:
    """GENNAPE's pairwise agreement: the share of pairs ordered correctly among pairs whose true
    values differ by more than ``min_gap``."""
    y_true, y_pred = _check(y_true, y_pred)
    i, j = np.triu_indices(len(y_true), k=1)
    gap = y_true[i] - y_true[j]
    keep = np.abs(gap) > min_gap
    if not keep.any():
        return float("nan")
    return float(np.mean(np.sign(gap[keep]) == np.sign(y_pred[i] - y_pred[j])[keep]))


def ndcg(y_true, y_pred, k: int = 10) -> float:
    """NDCG@k over the whole set as one query; relevance = min–max scaled true value × 20, as GENNAPE."""
    from sklearn.metrics import ndcg_score

    y_true, y_pred = _check(y_true, y_pred)
    span = y_true.max() - y_true.min()
    relevance = np.zeros_like(y_true) if span == 0 else (y_true - y_true.min()) / span * 20
    return float(ndcg_score(relevance[None], y_pred[None], k=k))


def precision_at_k(y_true, y_pred, k: int = 10) -> float:
    """Share of the true top-k that the prediction also ranks in its top-k."""
    y_true, y_pred = _check(y_true, y_pred)
    k = min(k, len(y_true))
    top_true = set(np.argsort(-y_true, kind="stable")[:k])
    top_pred = set(np.argsort(-y_pred, kind="stable")[:k])
    return len(top_true & top_pred) / k


def mae(y_true, y_pred) -> float:
    y_true, y_pred = _check(y_true, y_pred)
    return float(np.mean(np.abs(y_true - y_pred)))


def evaluate(y_true, y_pred, ks: tuple[int, ...] = (10, 50)) -> dict[str, float]:
    """Every metric at once: spearman, kendall, ndcg@k, precision@k for each k, mae."""
    out = {"spearman": spearman(y_true, y_pred), "kendall": kendall_tau(y_true, y_pred)}
    for k in ks:
        out[f"ndcg@{k}"] = ndcg(y_true, y_pred, k)
        out[f"precision@{k}"] = precision_at_k(y_true, y_pred, k)
    out["mae"] = mae(y_true, y_pred)
    return out
