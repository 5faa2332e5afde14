"""The contract every architecture family implements.

A space turns a canonical spec string into a PyTorch module at a named *profile*:
``"paper"`` is the benchmark's own network, exact to the parameter; ``"zoo"`` keeps the same
topology rules but is small enough to train on one CPU core in seconds (nape's offline task).
Every public method takes and returns spec *strings*; the parsed form is private to the space.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn

#: Image size of nape's offline task, the input of every ``zoo`` profile (channels, height, width).
ZOO_INPUT_SHAPE = (3, 16, 16)
ZOO_NUM_CLASSES = 10


@dataclass(frozen=True)
class Profile:
    """How big a space's network is built: input image, classes and family-specific sizes."""

    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    options: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.options[key]

    @property
    def memory_format(self):
        """The torch memory format to train this profile's networks in: channels-last (NHWC) where
        the profile's options ask for it (faster for depthwise and grouped convs on CPU), else NCHW."""
        return torch.channels_last if self.options.get("channels_last") else torch.contiguous_format

    def __hash__(self) -> int:  # options is a dict; hash its sorted items so profiles can key caches
        return hash((self.name, self.input_shape, self.num_classes, repr(sorted(self.options.items()))))

    def replace(self, name: str | None = None, input_shape: tuple[int, int, int] | None = None,
                **options: Any) -> "Profile":
        """A variant of this profile (e.g. other widths or resolution), named ``name``."""
        return Profile(name or f"{self.name}+" + ",".join(f"{k}={v}" for k, v in sorted(options.items())),
                       tuple(input_shape or self.input_shape), self.num_classes, {**self.options, **options})


class Space(ABC):
    """One architecture family: parse/format, validity, sampling, mutation and building."""

    #: registry name, e.g. ``"nb201"``
    name: str = ""
    #: profile name → Profile
    profiles: dict[str, Profile] = {}

    # -- spec strings -------------------------------------------------------------------------
    @abstractmethod
    def parse(self, text: str) -> Any:
        """Parse a spec string (canonical or an accepted alternative) into the parsed form.

        Raises ValueError naming the rule a bad spec breaks."""

    @abstractmethod
    def format(self, parsed: Any) -> str:
        """The canonical spec string of a parsed spec."""

    def canonical(self, text: str) -> str:
        """The canonical form of any accepted spec string."""
        return self.format(self.parse(text))

    def is_valid(self, text: str) -> bool:
        try:
            self.parse(text)
        except ValueError:
            return False
        return True

    def flags(self, text: str) -> dict[str, bool]:
        """Facts about a valid spec that do not make it invalid (e.g. NB-201's unreachable output)."""
        self.parse(text)
        return {}

    # -- search ---------------------------------------------------------------------------------
    @abstractmethod
    def sample(self, rng: np.random.Generator) -> str:
        """A uniformly drawn valid spec, canonical."""

    @abstractmethod
    def mutate(self, text: str, rng: np.random.Generator) -> str:
        """A valid spec that differs from ``text`` by one local change, canonical."""

    def sample_many(self, n: int, seed: int = 0) -> list[str]:
        rng = np.random.default_rng(seed)
        return [self.sample(rng) for _ in range(n)]

    # -- networks -------------------------------------------------------------------------------
    @abstractmethod
    def build(self, text: str, profile: str = "paper") -> nn.Module:
        """The network of a spec at a profile, in its default initialisation."""

    def profile(self, name: "str | Profile") -> Profile:
        """The named profile; a Profile instance (e.g. a macro-scale variant) is passed through."""
        if isinstance(name, Profile):
            return name
        try:
            return self.profiles[name]
        except KeyError:
            raise ValueError(
                f"unknown profile {name!r} for space {self.name!r}; choose one of {sorted(self.profiles)}"
            ) from None

    def input_shape(self, profile: "str | Profile" = "paper") -> tuple[int, int, int, int]:
        """Input tensor shape with a batch of one: (1, C, H, W)."""
        return (1, *self.profile(profile).input_shape)

    def input_shape_of(self, text: str, profile: "str | Profile" = "paper") -> tuple[int, int, int, int]:
        """Input shape of one spec's network (families whose spec chooses the resolution override it)."""
        return self.input_shape(profile)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
