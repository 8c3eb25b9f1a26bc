"""DCAMA's comparison as one decoder input: attention from the query to the support's mask."""

from __future__ import annotations

from ...layers import MaskAttention
from ..prototype import grid_masks
from .base import ComparisonOutput, Episode, FeatureSources
from .projected import ProjectedComparison
from .registry import register_comparison

__all__ = ["MaskAttentionComparison"]


@register_comparison("mask_attention")
class MaskAttentionComparison(ProjectedComparison):
    """Every query position attends to every support position; the value is the support mask.

    DCAMA's mechanism ([MaskAttention][fewzero.layers.MaskAttention]): each query position gets
    the support mask averaged over all support positions of all K shots, weighted by feature
    similarity. One decoder input channel; no residual.

    Shapes:
        maps ``(B, 1, h, w)``.

    Args:
        sources: The model's features.
        source: ``"query"`` or ``"class"``.
        channels: Width of the learned projection attended in, or ``None`` for the features.
        heads: Attention heads (``None``: MaskAttention's default).
    """

    out_channels = 1

    def __init__(
        self,
        sources: FeatureSources,
        source: str = "query",
        channels: int | None = None,
        heads: int | None = None,
    ) -> None:
        super().__init__(sources, source, channels)
        self.attention = MaskAttention(self.width, heads=heads)

    def forward(self, episode: Episode) -> ComparisonOutput:
        """Return the attended support mask."""
        query, support = self.features(episode)
        masks = episode.support_masks
        assert masks is not None
        b, k = masks.shape[:2]
        cells = grid_masks(masks.flatten(0, 1), support.shape[-2:], episode.strides[self.source])
        attended = self.attention(
            query, support.view(b, k, *support.shape[1:]), cells.view(b, k, *cells.shape[1:])
        )
        return attended, None
