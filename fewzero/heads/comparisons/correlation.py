"""The best-match comparison: HSNet's dense correlation squeezed by its maximum."""

from __future__ import annotations

import torch

from ...layers import dense_correlation
from .base import ComparisonOutput, Episode, FeatureSources
from .projected import ProjectedComparison
from .registry import register_comparison

__all__ = ["BestMatch"]


@register_comparison("correlation")
class BestMatch(ProjectedComparison):
    """Each query position's best match among the support's background and foreground positions.

    Every query position is compared with every support position (HSNet's clamped cosine,
    [dense_correlation][fewzero.layers.dense_correlation]); the 4D correlation is squeezed by
    its maximum over the support's background and over its foreground positions, averaged over
    the K shots and times ``scale``. Where a prototype averages the object away, the best match
    keeps its parts. HSNet squeezes the correlation with learned 4D convolutions
    ([CenterPivotConv4d][fewzero.layers.CenterPivotConv4d]); the max is the training-free squeeze.

    Shapes:
        maps ``(B, 2, h, w)`` (background, foreground); residual the same maps or ``None``.

    Args:
        sources: The model's features.
        source: ``"query"`` or ``"class"``.
        channels: Width of the learned projection compared in, or ``None`` for the features.
        scale: Factor of the best matches.
        residual: Add the maps to the logits.
    """

    out_channels = 2

    def __init__(
        self,
        sources: FeatureSources,
        source: str = "query",
        channels: int | None = None,
        scale: float = 10.0,
        residual: bool = False,
    ) -> None:
        super().__init__(sources, source, channels)
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale!r}")
        self.scale, self.residual = float(scale), bool(residual)
        if residual:
            sources.check_residual(type(self).name)

    def forward(self, episode: Episode) -> ComparisonOutput:
        """Return the scaled best-match maps."""
        query, support = self.features(episode)
        masks = episode.support_masks
        assert masks is not None
        b, k = masks.shape[:2]
        q = query.repeat_interleave(k, dim=0)
        flat = masks.flatten(0, 1)
        best = [
            dense_correlation(q, support, (flat == value).long()).flatten(3).amax(-1)
            for value in (0, 1)
        ]
        out = torch.stack(best, dim=1)  # (B * K, 2, h, w)
        maps = self.scale * out.view(b, k, *out.shape[1:]).mean(1).to(query.dtype)
        return maps, (maps if self.residual else None)
