"""The paper's class embedding from a support set: the class branch's masked-average prototype."""

from __future__ import annotations

from ..prototype import support_prototypes
from .base import Comparison, ComparisonOutput, Episode, FeatureSources
from .registry import register_comparison

__all__ = ["ClassPrototype"]


@register_comparison("prototype")
class ClassPrototype(Comparison):
    """The support's class prototype tiled over the query grid (few-shot SM-VCENet's embedding).

    The class branch (the same MAM/SAM modules and weights as the zero-shot path) embeds each
    support's ``I_class``; masked average pooling over the support mask (area-weighted, 255
    left out) gives one vector per shot, and the mean over the K shots is the prototype
    ([support_prototypes][fewzero.heads.prototype.support_prototypes]). The CCM reads it in
    place of the query's own embedding.

    Shapes:
        ``episode.support["class"] (B * K, C, h', w')`` -> maps ``(B, C, h, w)``; no residual.

    Args:
        sources: The model's features (the class branch's width).
    """

    support_reads = ("class",)

    def __init__(self, sources: FeatureSources) -> None:
        super().__init__()
        self.out_channels = sources.channels("class", "prototype")

    def forward(self, episode: Episode) -> ComparisonOutput:
        """Return the tiled foreground prototype."""
        assert episode.support_masks is not None
        proto = support_prototypes(
            episode.support["class"], episode.support_masks, (1,), episode.strides["class"]
        )
        h, w = episode.size
        return proto[:, 0, :, None, None].expand(-1, -1, h, w), None
