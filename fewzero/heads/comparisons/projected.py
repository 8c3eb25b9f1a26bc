"""Comparisons that read one source on both sides, optionally through a learned projection."""

from __future__ import annotations

import torch
from torch import nn

from ...checks import check_choice, check_positive_int
from .base import Comparison, Episode, FeatureSources

__all__ = ["ProjectedComparison"]


class ProjectedComparison(Comparison):
    """Base of the comparisons of one source's query and support maps (cosine, attention, ...).

    ``project`` is a learned 1x1 convolution to ``channels`` applied to both sides: a linear,
    signed space to compare in (the cosines of ReLU features are all ``>= 0``); ``None``
    compares the features as they are.

    Args:
        sources: The model's features.
        source: Which of them to compare (one of ``allowed``).
        channels: Width of the projection, or ``None`` for none.
        allowed: The sources this comparison accepts.
    """

    def __init__(
        self,
        sources: FeatureSources,
        source: str,
        channels: int | None,
        allowed: tuple[str, ...] = ("query", "class"),
    ) -> None:
        super().__init__()
        self.source = check_choice("source", source, allowed)
        self.query_reads = self.support_reads = (source,)
        width = sources.channels(source, type(self).name)
        self.project: nn.Module | None = None
        if channels is not None:
            self.project = nn.Conv2d(width, check_positive_int("channels", channels), 1)
            width = channels
        self.width = width
        """Channels of the compared features."""

    def features(self, episode: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        """The compared query ``(B, width, h, w)`` and support ``(B * K, width, h', w')`` maps."""
        query, support = episode.query[self.source], episode.support[self.source]
        if self.project is None:
            return query, support
        return self.project(query), self.project(support)
