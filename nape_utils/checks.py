"""Checks at the door shared across the library, so that one mistake gets one wording everywhere."""
from __future__ import annotations

import numbers
from typing import Any


def is_whole(value: Any) -> bool:
    """An integer (Python's or numpy's), and not a bool: ``True`` is an int to Python, never a count to us."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def whole_number(value: Any, name: str, minimum: int = 1, hint: str = "") -> int:
    """``value`` as an ``int``, or a ValueError naming ``name``, the least value allowed and ``hint``
    (how to fix it)."""
    if not is_whole(value) or value < minimum:
        raise ValueError(f"{name} must be an integer of at least {minimum}, got {value!r}" + (f"; {hint}" if hint else ""))
    return int(value)
