"""Class comparison module (CCM) of SM-VCENet: the segmentation decoder.

``cat(F_query, E) -> conv1x1 -> 256 -> ReLU -> 3 residual blocks -> ASPP -> conv1x1 -> logits``,
every convolution followed by a ReLU and no batch normalisation (paper, "Class comparison
module"). Without a class embedding (``class_channels=0``) it is the DeepLab baseline's decoder.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..checks import check_feature_map, check_positive_int
from ..layers import ASPP, ConvNormAct, ResidualStack

__all__ = ["ClassComparisonModule"]


class ClassComparisonModule(nn.Module):
    """Compare a query feature with a pixel-wise class embedding and predict mask logits.

    Shapes:
        ``query (B, query_channels, h, w)`` and ``class_embedding (B, class_channels, h, w)``
        -> logits ``(B, num_classes, h, w)``.

    Args:
        query_channels: Channels of the query feature.
        class_channels: Channels of the class embedding (0: no class embedding, DeepLab).
        channels: Width of the comparison trunk (256 in the paper).
        depth: Number of residual blocks (3 in the paper).
        aspp_rates: ASPP dilation rates.
        num_classes: Output logits (2: background / episode class).
        dropout: Dropout before the classifier.

    Examples:
        >>> import torch
        >>> ccm = ClassComparisonModule(4, 6, channels=8, depth=1, aspp_rates=(1,))
        >>> ccm(torch.randn(2, 4, 5, 5), torch.randn(2, 6, 5, 5)).shape
        torch.Size([2, 2, 5, 5])
    """

    def __init__(
        self,
        query_channels: int,
        class_channels: int = 0,
        channels: int = 256,
        depth: int = 3,
        aspp_rates: Sequence[int] = (6, 12, 18),
        num_classes: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.query_channels = check_positive_int("query_channels", query_channels)
        if class_channels < 0:
            raise ValueError(f"class_channels must be >= 0, got {class_channels!r}")
        self.class_channels = class_channels
        self.num_classes = check_positive_int("num_classes", num_classes)
        self.fuse = ConvNormAct(query_channels + class_channels, channels, 1)
        self.residual = ResidualStack(channels, depth=depth)
        self.aspp = ASPP(channels, channels, rates=aspp_rates)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(
        self, query: torch.Tensor, class_embedding: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return logits ``(B, num_classes, h, w)``."""
        check_feature_map(query, self.query_channels, name="query")
        if self.class_channels:
            if class_embedding is None:
                raise ValueError(
                    f"class_embedding must be a (B, {self.class_channels}, h, w) tensor, got None"
                )
            check_feature_map(class_embedding, self.class_channels, name="class_embedding")
            if class_embedding.shape[-2:] != query.shape[-2:]:
                raise ValueError(
                    "class_embedding must have the spatial size of query "
                    f"{tuple(query.shape[-2:])}, got {tuple(class_embedding.shape[-2:])}"
                )
            x = torch.cat([query, class_embedding], dim=1)
        elif class_embedding is not None:
            raise ValueError(
                f"class_embedding must be None for class_channels=0, got shape "
                f"{tuple(class_embedding.shape)}"
            )
        else:
            x = query
        x = self.aspp(self.residual(self.fuse(x)))
        return self.classifier(self.dropout(x))
