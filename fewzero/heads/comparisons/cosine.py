"""PANet's comparison: cosine maps of the query against the support's two prototypes."""

from __future__ import annotations

import torch

from ..prototype import alignment_loss, cosine_maps, support_prototypes
from .base import ComparisonOutput, Episode, FeatureSources
from .projected import ProjectedComparison
from .registry import register_comparison

__all__ = ["CosineComparison"]


@register_comparison("cosine")
class CosineComparison(ProjectedComparison):
    """Where the query looks like the support: cosines to its background and foreground prototypes.

    PANet (Wang et al., ICCV 2019): masked average pooling of the support features over the
    support's background and foreground ([support_prototypes][fewzero.heads.prototype.support_prototypes],
    the mean over the K shots), and the cosine of every query position with each
    ([cosine_maps][fewzero.heads.prototype.cosine_maps]), times ``scale``. The two maps are
    decoder inputs and, with ``residual``, are added to the background/foreground logits, so
    the segmentation loss trains the comparison directly and the decoder learns a correction.
    In training, ``alignment_weight`` adds PANet's prototype alignment loss
    ([alignment_loss][fewzero.heads.prototype.alignment_loss]) as ``losses["alignment"]``.

    Shapes:
        maps ``(B, 2, h, w)`` (background, foreground); residual the same maps or ``None``.

    Args:
        sources: The model's features.
        source: ``"query"`` (the query branch's features) or ``"class"`` (the class branch's).
        channels: Width of the learned projection compared in, or ``None`` for the features.
        scale: Factor of the cosines (PANet: 20).
        residual: Add the maps to the logits.
        alignment_weight: Weight of the alignment loss in training (0: none).
    """

    out_channels = 2

    def __init__(
        self,
        sources: FeatureSources,
        source: str = "query",
        channels: int | None = 128,
        scale: float = 10.0,
        residual: bool = True,
        alignment_weight: float = 1.0,
    ) -> None:
        super().__init__(sources, source, channels)
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale!r}")
        if not alignment_weight >= 0:
            raise ValueError(f"alignment_weight must be >= 0, got {alignment_weight!r}")
        self.scale, self.residual = float(scale), bool(residual)
        if residual:
            sources.check_residual(type(self).name)
        self.alignment_weight = float(alignment_weight)

    def forward(self, episode: Episode) -> ComparisonOutput:
        """Return the scaled background/foreground cosine maps (and them again as residual)."""
        query, support = self.features(episode)
        assert episode.support_masks is not None
        protos = support_prototypes(
            support, episode.support_masks, (0, 1), episode.strides[self.source]
        )
        maps = self.scale * cosine_maps(query, protos)
        return maps, (maps if self.residual else None)

    def losses(self, episode: Episode, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"alignment": weight * PANet's alignment loss}`` (empty with ``alignment_weight=0``)."""
        if not self.alignment_weight:
            return {}
        query, support = self.features(episode)
        assert episode.support_masks is not None
        loss = alignment_loss(
            query,
            logits.float().softmax(dim=1),
            support,
            episode.support_masks,
            self.scale,
            episode.strides[self.source],
        )
        return {"alignment": self.alignment_weight * loss}
