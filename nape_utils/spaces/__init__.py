"""Architecture families, one file each; :func:`get_space` is the way in."""
from __future__ import annotations

import importlib

from .base import ZOO_INPUT_SHAPE, ZOO_NUM_CLASSES, Profile, Space

# registry name → "module:Class"; modules load on first use so `nape spaces` stays instant
_REGISTRY = {
    "nb101": "nb101:NB101Space",
    "nb201": "nb201:NB201Space",
    "nb301": "nb301:NB301Space",
    "ofa_mbv3": "ofa_mbv3:OFAMobileNetV3Space",
    "ofa_pn": "ofa_pn:OFAProxylessSpace",
    "ofa_resnet": "ofa_resnet:OFAResNetSpace",
    "hiaml": "hiaml:HiAMLSpace",
    "inception": "inception:InceptionSpace",
    "two_path": "two_path:TwoPathSpace",
    "nago": "nago:NAGOSpace",
    "ghn_random": "ghn_random:GHNRandomSpace",
    "tnb101_micro": "tnb101:TNB101MicroSpace",
    "tnb101_macro": "tnb101:TNB101MacroSpace",
    "mnasnet": "mnasnet:MnasNetSpace",
    "macro": "macro:MacroSpace",
}
_CACHE: dict[str, Space] = {}


def space_names() -> list[str]:
    return list(_REGISTRY)


def get_space(name: str | Space) -> Space:
    """The space registered as ``name`` (an instance is passed through)."""
    if isinstance(name, Space):
        return name
    if name not in _REGISTRY:
        raise ValueError(f"unknown space {name!r}; known spaces: {', '.join(_REGISTRY)}")
    if name not in _CACHE:
        module, cls = _REGISTRY[name].split(":")
        _CACHE[name] = getattr(importlib.import_module(f"{__name__}.{module}"), cls)()
    return _CACHE[name]


__all__ = ["Profile", "Space", "ZOO_INPUT_SHAPE", "ZOO_NUM_CLASSES", "get_space", "space_names"]
