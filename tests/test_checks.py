"""The shared checks at the door: one wording for a count that is not a count."""
from __future__ import annotations

import numpy as np
import pytest

from nape_utils.checks import is_whole, whole_number


def test_is_whole_takes_python_and_numpy_integers_but_not_bools_or_floats():
    assert all(is_whole(v) for v in (0, -3, np.int64(7), np.uint8(2)))
    assert not any(is_whole(v) for v in (True, np.bool_(True), 2.0, "3", None))


def test_whole_number_returns_a_plain_int_or_says_what_to_give():
    value = whole_number(np.int32(4), "population", 2)
    assert value == 4 and type(value) is int
    with pytest.raises(ValueError, match=r"population must be an integer of at least 2, got 1; use 2 or more"):
        whole_number(1, "population", 2, "use 2 or more")
    with pytest.raises(ValueError, match=r"chunk must be an integer of at least 1, got True$"):
        whole_number(True, "chunk")
