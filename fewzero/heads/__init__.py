"""Task heads of the SM-VCENet family: query branch, class branches, SAM and CCM."""

from .ccm import ClassComparisonModule
from .class_branch import VisualClassEmbedding
from .query import QueryBranch
from .sam import SpatialAttentionModule
from .word_embedding import SemanticProjection, VariationalClassEmbedding

__all__ = [
    "ClassComparisonModule",
    "QueryBranch",
    "SemanticProjection",
    "SpatialAttentionModule",
    "VariationalClassEmbedding",
    "VisualClassEmbedding",
]
