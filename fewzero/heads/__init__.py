"""Task heads of the SM-VCENet family: query branch, class branches, SAM and CCM; the episode."""

from .ccm import ClassComparisonModule
from .class_branch import VisualClassEmbedding
from .episode import Episode
from .query import QueryBranch
from .sam import SpatialAttentionModule
from .word_embedding import SemanticProjection, VariationalClassEmbedding

__all__ = [
    "ClassComparisonModule",
    "Episode",
    "QueryBranch",
    "SemanticProjection",
    "SpatialAttentionModule",
    "VariationalClassEmbedding",
    "VisualClassEmbedding",
]
