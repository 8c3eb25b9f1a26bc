"""The low-level comparison: the backbone's stride-4 map against the support's object."""

from __future__ import annotations

import torch

from ..prototype import cosine_maps, support_prototypes
from .base import ComparisonOutput, Episode, FeatureSources
from .projected import ProjectedComparison
from .registry import register_comparison

__all__ = ["LowLevelComparison"]


@register_comparison("low_level")
class LowLevelComparison(ProjectedComparison):
    """Colour, texture and edges: the low-level map's cosine to the support's foreground prototype.

    The deeper levels abstract appearance away; the map ``F_2``'s stage reads (stride 4 for
    ResNet and EfficientNet) keeps it. Query and supports are projected by a learned 1x1
    convolution, the query is compared with the supports' foreground prototype, and the
    scaled cosine map, averaged onto the logits' grid, is added to the foreground logit. Only
    the foreground: at this level the support's background prototype describes clutter, which an
    object of another class resembles less than it resembles the support's object, so a
    background map would push such objects toward the foreground. Refused for a backbone
    without such a map (plain ViTs).

    Shapes:
        residual ``(B, 2, h_low, w_low)``: zeros, then the foreground map; no decoder maps.

    Args:
        sources: The model's features (``"low_level"``).
        channels: Width of the learned projection, or ``None`` for the raw map.
        scale: Factor of the cosine.
    """

    residual = True

    def __init__(
        self, sources: FeatureSources, channels: int | None = 32, scale: float = 10.0
    ) -> None:
        super().__init__(sources, "low_level", channels, allowed=("low_level",))
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale!r}")
        self.scale = float(scale)
        sources.check_residual("low_level")

    def forward(self, episode: Episode) -> ComparisonOutput:
        """Return no maps and ``[0, scale * cos(query, foreground prototype)]`` as residual."""
        query, support = self.features(episode)
        assert episode.support_masks is not None
        protos = support_prototypes(
            support, episode.support_masks, (1,), episode.strides["low_level"]
        )
        fg = self.scale * cosine_maps(query, protos)
        return None, torch.cat([torch.zeros_like(fg), fg], dim=1)
