"""PFENet's training-free prior mask as a decoder input."""

from __future__ import annotations

from ..prototype import prior_mask
from .base import Comparison, ComparisonOutput, Episode, FeatureSources
from .registry import register_comparison

__all__ = ["PriorComparison"]


@register_comparison("prior")
class PriorComparison(Comparison):
    """PFENet's prior: each query position's best cosine with a masked support position.

    Computed on the frozen ``I_class`` (``"f4"``), min-max normalised per image and averaged
    over the shots ([prior_mask][fewzero.heads.prototype.prior_mask]); no gradient, no
    parameters. One decoder input channel on the decoder's grid.

    Shapes:
        maps ``(B, 1, h, w)`` in ``[0, 1]``; no residual.

    Args:
        sources: The model's features (``"f4"``).
    """

    query_reads = support_reads = ("f4",)
    out_channels = 1

    def __init__(self, sources: FeatureSources) -> None:
        super().__init__()
        sources.channels("f4", "prior")

    def forward(self, episode: Episode) -> ComparisonOutput:
        """Return the prior on the decoder's grid."""
        masks = episode.support_masks
        assert masks is not None
        prior = prior_mask(
            episode.query["f4"].detach(),
            episode.support["f4"].detach(),
            masks.flatten(0, 1),
            masks.shape[1],
            episode.strides["f4"],
        )
        return episode.align(prior), None
