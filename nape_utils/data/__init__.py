"""Data: the offline task the zoo trains on (:mod:`.task`), published benchmark tables
(:func:`load_benchmark`, :mod:`.benchmarks`) and their checksummed download (:func:`fetch`, :mod:`.download`).

Names load on first use, so ``from nape_utils.data.task import …`` does not import pandas."""
from __future__ import annotations

import importlib

_EXPORTS = {
    "load_benchmark": "benchmarks", "benchmark_names": "benchmarks", "get_benchmark": "benchmarks",
    "safe_unpickle": "benchmarks", "BenchmarkFormatError": "benchmarks", "UnsafePickleError": "benchmarks",
    "BENCHMARKS": "benchmarks",
    "fetch": "download", "fetch_all": "download", "list_files": "download", "cache_dir": "download", "REGISTRY": "download",
    "DownloadError": "download", "ChecksumError": "download", "IncompleteDownload": "download",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
