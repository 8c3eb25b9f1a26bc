"""The paper's zero-shot class embedding: the query's own class-branch output (``"self"``)."""

from __future__ import annotations

from .base import Comparison, ComparisonOutput, Episode, FeatureSources
from .registry import register_comparison

__all__ = ["OwnEmbedding"]


@register_comparison("self")
class OwnEmbedding(Comparison):
    """The query compared with itself: its class embedding ``E_VCE`` (SM-VCENet, eq. 1-5).

    The paper's zero-shot path: the class branch (MAM, SAM) embeds the query's own ``I_class``
    and the CCM reads it beside the query features. It reads no support, so a model whose only
    comparison is ``"self"`` is zero-shot; beside a support comparison it is the old
    ``class_source="both"``.

    Shapes:
        ``episode.query["class"] (B, C, h, w)`` -> maps ``(B, C, h, w)``; no residual.

    Args:
        sources: The model's features (the class branch's width).
    """

    query_reads = ("class",)

    def __init__(self, sources: FeatureSources) -> None:
        super().__init__()
        self.out_channels = sources.channels("class", "self")

    def forward(self, episode: Episode) -> ComparisonOutput:
        """Return the query's class embedding as the decoder's maps."""
        return episode.query["class"], None
