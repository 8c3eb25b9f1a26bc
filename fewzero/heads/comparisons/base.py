"""What a comparison is: the episode it reads, the maps it gives, the residual and losses it adds.

A few-shot model (encode, compare, decode, merge) encodes an
[Episode][fewzero.heads.Episode]: for each feature *source* it needs, the query's map
and the supports'. A [Comparison][fewzero.heads.comparisons.Comparison] reads the sources it
declares and returns

* ``maps`` ``(B, out_channels, h, w)`` on the decoder's grid: inputs of the decoder (CCM), or
  ``None`` when ``out_channels == 0``;
* ``residual`` ``(B, 2, h', w')``: background/foreground terms added to the decoder's logits
  (averaged onto the logits' grid when ``h', w'`` differ), or ``None``;

and, in training, any auxiliary losses ([losses][fewzero.heads.comparisons.Comparison.losses]).

The sources (``SOURCES``):

==============  ==========================================================================
``"query"``     the query branch's features (``F_2 ⊕ F_3`` projected), on the decoder's grid
``"class"``     the class branch's embedding (MAM, SAM) of ``I_class``; the query's on the
                decoder's grid
``"f4"``        ``I_class`` itself: the frozen backbone's deepest map (PFENet's prior reads it)
``"low_level"`` the backbone's map before ``F_2``'s stage (stride 4 for ResNet, EfficientNet)
==============  ==========================================================================
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import nn

from ...configs import capture_init, json_safe
from ..episode import Episode

__all__ = [
    "SOURCES",
    "Comparison",
    "ComparisonOutput",
    "Episode",
    "FeatureSources",
    "MissingSourceError",
]

SOURCES = ("query", "class", "f4", "low_level")
"""The feature sources a comparison may read (listed in [fewzero.heads.comparisons.base][fewzero.heads.comparisons.base])."""

ComparisonOutput = tuple[torch.Tensor | None, torch.Tensor | None]
"""``(maps, residual)``: decoder inputs and logit terms, each ``None`` where the comparison gives none."""


class MissingSourceError(ValueError):
    """A comparison reads features the model does not have (``source`` names them)."""

    def __init__(self, message: str, source: str, comparison: str) -> None:
        super().__init__(message)
        self.source, self.comparison = source, comparison


class FeatureSources:
    """What a model offers its comparisons: the channels of each source, or why it has none.

    Args:
        channels: Source -> channels, or a callable giving them (run only when a comparison
            asks, e.g. the low-level map's dry run).
        missing: Source -> why the model has no such source (and how to get one).

    Examples:
        >>> sources = FeatureSources({"query": 16}, {"class": "variant='deeplab' has no class branch"})
        >>> sources.channels("query", "cosine")
        16
    """

    def __init__(
        self,
        channels: Mapping[str, int | Callable[[], int]],
        missing: Mapping[str, str] | None = None,
        num_classes: int = 2,
    ) -> None:
        self._channels = dict(channels)
        self._missing = dict(missing or {})
        self.num_classes = num_classes
        """The decoder's logits: a residual is a background/foreground pair, so it needs 2."""

    def check_residual(self, comparison: str) -> None:
        """Raise ``ValueError`` unless the logits are background/foreground (``num_classes=2``)."""
        if self.num_classes != 2:
            raise ValueError(
                f"comparison {comparison!r} adds background/foreground logits: it needs "
                f"num_classes=2, got {self.num_classes}; give it residual=False or use 2 classes"
            )

    def channels(self, source: str, comparison: str) -> int:
        """Channels of ``source``; ``ValueError`` naming ``comparison`` if the model has none."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {source!r} ({comparison})")
        fix = f"leave {comparison!r} out of comparisons"
        if source not in self._channels:
            why = self._missing.get(source, "this model offers no such features")
            raise MissingSourceError(
                f"comparison {comparison!r} reads the {source!r} features: {why}; or {fix}",
                source,
                comparison,
            )
        value = self._channels[source]
        try:
            return int(value() if callable(value) else value)
        except ValueError as err:  # the backbone has no such map
            raise MissingSourceError(
                f"comparison {comparison!r} reads the {source!r} features: {err}; {fix} "
                "(e.g. comparisons=['prototype', 'cosine'])",
                source,
                comparison,
            ) from err


class Comparison(nn.Module, ABC):
    """Base class of the comparisons: a query-to-support comparison a few-shot model composes.

    A subclass sets, in ``__init__(self, sources, **options)``:

    * ``query_reads`` / ``support_reads``: the sources it reads on each side;
    * ``out_channels``: the channels of its decoder maps (0: none);
    * ``residual``: whether it adds a residual to the logits;

    and implements ``forward(episode) -> (maps, residual)``, plus ``losses(episode, logits)``
    for auxiliary training losses. Its constructor arguments (``sources`` aside) are its
    ``config``, ``{"name": ..., **arguments}``, captured when it is built; registered with
    [register_comparison][fewzero.heads.comparisons.register_comparison], it is built by name or
    dict and round-trips through a model's JSON config.
    """

    name: ClassVar[str] = ""
    query_reads: tuple[str, ...] = ()
    support_reads: tuple[str, ...] = ()
    out_channels: int = 0
    residual: bool = False
    config: dict[str, Any]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None:
            first = list(inspect.signature(init).parameters)[1:2]
            if first != ["sources"]:
                raise TypeError(
                    f"{cls.__name__}.__init__ must take sources (a FeatureSources) as its first "
                    f"argument after self, got {first}"
                )
            cls.__init__ = capture_init(init, _store_config)  # type: ignore[method-assign]

    @property
    def needs_support(self) -> bool:
        """Whether the comparison reads the support set (``False``: it runs zero-shot)."""
        return bool(self.support_reads)

    @abstractmethod
    def forward(self, episode: Episode) -> ComparisonOutput:
        """Return ``(maps, residual)`` for ``episode``."""

    def losses(self, episode: Episode, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """Auxiliary training losses, given the episode and the decoder's logits (none here)."""
        return {}


def _store_config(comparison: Comparison, arguments: dict[str, Any]) -> None:
    arguments.pop("sources", None)
    comparison.config = {"name": type(comparison).name, **json_safe(arguments)}
