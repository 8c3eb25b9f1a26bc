"""Few-shot comparisons as modules: what a few-shot model compares between query and support.

Each comparison is one file: the paper's class embedding of the query itself (``"self"``) and
of the support set (``"prototype"``), PANet's cosine maps (``"cosine"``), the best-match
correlation (``"correlation"``), DCAMA's mask attention (``"mask_attention"``), PFENet's prior
(``"prior"``) and the low-level map (``"low_level"``). A model builds them by name or dict
([create_comparison][fewzero.heads.comparisons.create_comparison]) from its
[FeatureSources][fewzero.heads.comparisons.FeatureSources] and runs them on an encoded
[Episode][fewzero.heads.comparisons.Episode]; see [Comparison][fewzero.heads.comparisons.Comparison]
for what each declares, and the Composing guide for a comparison of your own.

Examples:
    >>> from fewzero.heads.comparisons import list_comparisons
    >>> {"self", "prototype", "cosine", "low_level"} <= set(list_comparisons())
    True
"""

from .base import (
    SOURCES,
    Comparison,
    ComparisonOutput,
    Episode,
    FeatureSources,
    MissingSourceError,
)
from .class_prototype import ClassPrototype
from .correlation import BestMatch
from .cosine import CosineComparison
from .low_level import LowLevelComparison
from .mask_attention import MaskAttentionComparison
from .own_embedding import OwnEmbedding
from .prior import PriorComparison
from .projected import ProjectedComparison
from .registry import (
    Comparisons,
    ComparisonSpec,
    add_residuals,
    create_comparison,
    list_comparisons,
    register_comparison,
)

__all__ = [
    "SOURCES",
    "BestMatch",
    "ClassPrototype",
    "Comparison",
    "ComparisonOutput",
    "ComparisonSpec",
    "Comparisons",
    "CosineComparison",
    "Episode",
    "FeatureSources",
    "LowLevelComparison",
    "MissingSourceError",
    "MaskAttentionComparison",
    "OwnEmbedding",
    "PriorComparison",
    "ProjectedComparison",
    "add_residuals",
    "create_comparison",
    "list_comparisons",
    "register_comparison",
]
