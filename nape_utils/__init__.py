"""nape_utils: the library under nape's notebooks (spaces → graphs → data → zoo → estimators)."""

__version__ = "0.1.0"
