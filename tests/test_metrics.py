"""Metrics against hand-computed values."""
from __future__ import annotations

import numpy as np
import pytest

from nape_utils import metrics


def test_rank_correlations_and_pairwise_accuracy():
    y = [1, 2, 3, 4]
    assert metrics.spearman(y, [10, 20, 30, 40]) == pytest.approx(1)
    assert metrics.kendall_tau(y, [4, 3, 2, 1]) == pytest.approx(-1)
    # one swapped pair out of 6
    assert metrics.kendall_tau(y, [1, 3, 2, 4]) == pytest.approx((5 - 1) / 6)
    assert metrics.pairwise_accuracy(y, [1, 3, 2, 4]) == pytest.approx(5 / 6)
    assert metrics.pairwise_accuracy([1, 1.00001, 2], [3, 2, 1], min_gap=1e-4) == pytest.approx(0)


def test_ndcg_precision_and_mae():
    y = np.array([0.0, 5.0, 10.0])
    assert metrics.ndcg(y, y, k=3) == pytest.approx(1)
    # relevance = [0, 10, 20]; predicted order [0, 1, 2] → DCG = 0 + 10/log2(3) + 20/log2(4)
    ideal = 20 / 1 + 10 / np.log2(3)
    assert metrics.ndcg(y, [3, 2, 1], k=3) == pytest.approx((10 / np.log2(3) + 20 / 2) / ideal)
    assert metrics.precision_at_k([1, 2, 3, 4], [4, 3, 2, 1], k=2) == 0
    assert metrics.precision_at_k([1, 2, 3, 4], [1, 2, 4, 3], k=2) == 1
    assert metrics.mae([1, 2], [2, 4]) == pytest.approx(1.5)
    assert set(metrics.evaluate(y, y, ks=(2,))) == {"spearman", "kendall", "ndcg@2", "precision@2", "mae"}


@pytest.mark.parametrize("a, b, message", [([1, 2], [1], "differ in length"), ([1], [1], "at least 2"),
                                           ([1, np.nan], [1, 2], "finite")])
def test_bad_input(a, b, message):
    with pytest.raises(ValueError, match=message):
        metrics.spearman(a, b)
