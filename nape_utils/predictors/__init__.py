"""Performance estimators (zero-cost proxies so far; each submodule adds its public names to ``_LAZY``).

Names load on first use (``from nape_utils.predictors import compute_proxies``), so importing the
package stays cheap.
"""
from __future__ import annotations

import importlib

# public name → submodule that defines it
_LAZY = {
    "PROXY_NAMES": "proxies",
    "ProxyWarning": "proxies",
    "compute_proxies": "proxies",
    "make_batch": "proxies",
    "score_specs": "proxies",
    "RWE": "rwe",
    "RWEWarning": "rwe",
    "final_linear": "rwe",
    "fit_last_layer": "rwe",
    "rwe_network": "rwe",
    "rwe_score": "rwe",
    "rwe_scores": "rwe",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = list(_LAZY)
