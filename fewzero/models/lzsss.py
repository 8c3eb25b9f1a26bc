"""Language-model-based zero-shot baselines of the paper's Tables 1-2: SPNet and ZSVM.

Both share the DeepLab baseline's conventions — frozen backbone, query branch (eq. 2), BN-free
class comparison trunk — and take a class embedding table ``(num_classes, d)`` (word vectors or
sentence embeddings, row ``c - 1`` for class id ``c``). In the binary episode protocol they output
the target class's foreground logits, so the training loop and runners cover them: their
``forward(images, class_ids)`` takes the episode's class ids (``conditioned = True``).

* SPNet: the trunk ends in a 1x1 projection to ``d``; pixels are scored against the class's
  (unit-norm) vector and a learnt background vector.
* ZSVM: the class's vector is mapped to a sampled visual embedding (mean at test), tiled over the
  query grid and compared with the query feature by the CCM; ``auxiliary_loss`` holds
  ``kl_weight * KL`` after a training forward and is added to the loss by the trainer.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..heads import (
    ClassComparisonModule,
    QueryBranch,
    SemanticProjection,
    VariationalClassEmbedding,
)
from ..layers._validate import is_exporting
from ._registry import register_architecture, register_model
from .backbone import Backbone

__all__ = [
    "SPNet",
    "ZSVM",
    "spnet_efficientnet_lite0",
    "spnet_resnet50",
    "zsvm_efficientnet_lite0",
    "zsvm_resnet50",
]


class _WordConditioned(nn.Module):
    """Shared frozen backbone, query branch and class-embedding table."""

    conditioned = True

    def __init__(
        self,
        backbone: str | nn.Module,
        class_embeddings: torch.Tensor,
        embedding_source: str,
        pretrained: bool,
        pretrained_file: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None,
        query_channels: int,
        backbone_kwargs: Mapping[str, Any] | None,
        **trunk: Any,
    ) -> None:
        super().__init__()
        if class_embeddings is None:
            raise ValueError("class_embeddings must be a (num_classes, d) tensor, got None")
        table = torch.as_tensor(class_embeddings, dtype=torch.float32)
        if table.dim() != 2 or table.shape[0] < 1:
            raise ValueError(
                f"class_embeddings must be a (num_classes, d) table, got shape {tuple(table.shape)}"
            )
        self.encoder = Backbone(
            backbone,
            pretrained=pretrained,
            pretrained_file=pretrained_file,
            **dict(backbone_kwargs or {}),
        )
        c2, c3, _ = self.encoder.channels
        self.query = QueryBranch(c2 + c3, query_channels)
        self.register_buffer("class_embeddings", table.clone())
        self.embedding_dim = table.shape[1]
        self.embedding_source = embedding_source
        self.auxiliary_loss: torch.Tensor | None = None
        self.trunk = {k: (list(v) if isinstance(v, tuple) else v) for k, v in trunk.items()}
        self.config: dict[str, Any] = dict(
            backbone=self.encoder.name,
            embedding_dim=self.embedding_dim,
            embedding_source=embedding_source,
            query_channels=query_channels,
            **self.trunk,
        )

    def _comparison_trunk(self, class_channels: int, num_classes: int) -> ClassComparisonModule:
        return ClassComparisonModule(
            self.config["query_channels"],
            class_channels,
            channels=self.trunk["decoder_channels"],
            depth=self.trunk["decoder_depth"],
            aspp_rates=self.trunk["aspp_rates"],
            num_classes=num_classes,
        )

    def set_class_embeddings(self, table: torch.Tensor) -> None:
        """Swap the class table (e.g. to COCO's 80 classes for PASCAL2COCO); ``d`` must match."""
        table = torch.as_tensor(table, dtype=torch.float32, device=self.class_embeddings.device)
        if table.dim() != 2 or table.shape[1] != self.embedding_dim:
            raise ValueError(
                f"class_embeddings must be (num_classes, {self.embedding_dim}), got {tuple(table.shape)}"
            )
        self.class_embeddings = table.clone()

    def lookup(self, class_ids: torch.Tensor) -> torch.Tensor:
        """Rows of the table for 1-based ``class_ids`` ``(B,)`` -> ``(B, d)``."""
        class_ids = (
            torch.as_tensor(class_ids, device=self.class_embeddings.device).long().reshape(-1)
        )
        n = self.class_embeddings.shape[0]
        if not is_exporting() and (class_ids.min() < 1 or class_ids.max() > n):
            raise ValueError(
                f"class_ids must lie in [1, {n}] (the table's classes), got {class_ids.tolist()}"
            )
        return self.class_embeddings[class_ids - 1]

    def _query(self, images: torch.Tensor) -> torch.Tensor:
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got shape {tuple(images.shape)}")
        f2, f3, _ = self.encoder(images)
        return self.query(torch.cat([f2, f3], dim=1))

    @torch.no_grad()
    def predict(self, images: torch.Tensor, class_ids: torch.Tensor) -> torch.Tensor:
        """Predicted mask ``(B, H, W)`` of each episode's class."""
        return self.forward(images, class_ids).argmax(dim=1)


class SPNet(_WordConditioned):
    """SPNet baseline: DeepLab trunk -> projection to the word space -> scores vs class vectors.

    Shapes:
        ``images (B, 3, H, W)``, ``class_ids (B,)`` -> logits ``(B, 2, H, W)``.

    Args:
        backbone: timm name or feature module.
        class_embeddings: ``(num_classes, d)`` class table.
        embedding_source: Where the table came from (``"minilm"`` or a vector file), recorded in
            ``config`` so PASCAL2COCO can build the COCO table the same way.
        pretrained: ImageNet backbone weights.
        pretrained_file: Local backbone weights.
        query_channels: Query feature width.
        decoder_channels: Width of the comparison trunk.
        decoder_depth: Residual blocks of the trunk.
        aspp_rates: ASPP dilation rates.
        backbone_kwargs: Extra :class:`~fewzero.models.Backbone` arguments.

    Examples:
        >>> import torch
        >>> model = SPNet("resnet18", torch.randn(20, 8), decoder_channels=16).eval()
        >>> model(torch.randn(2, 3, 40, 40), torch.tensor([3, 7])).shape
        torch.Size([2, 2, 40, 40])
    """

    def __init__(
        self,
        backbone: str | nn.Module = "resnet50",
        class_embeddings: torch.Tensor | None = None,
        *,
        embedding_source: str = "custom",
        pretrained: bool = False,
        pretrained_file: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None,
        query_channels: int = 256,
        decoder_channels: int = 256,
        decoder_depth: int = 3,
        aspp_rates: Sequence[int] = (6, 12, 18),
        backbone_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            backbone,
            class_embeddings,
            embedding_source,
            pretrained,
            pretrained_file,
            query_channels,
            backbone_kwargs,
            decoder_channels=decoder_channels,
            decoder_depth=decoder_depth,
            aspp_rates=aspp_rates,
        )
        self.decoder = self._comparison_trunk(0, num_classes=self.embedding_dim)
        self.head = SemanticProjection(self.embedding_dim)
        self.config["arch"] = "spnet"

    def forward(self, images: torch.Tensor, class_ids: torch.Tensor) -> torch.Tensor:
        """Return logits ``(B, 2, H, W)`` of each episode's class."""
        phi = self.decoder(self._query(images))
        logits = self.head(phi, self.lookup(class_ids))
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)


class ZSVM(_WordConditioned):
    """ZSVM baseline: variational word-to-visual class embedding compared with the query by the CCM.

    Shapes:
        ``images (B, 3, H, W)``, ``class_ids (B,)`` -> logits ``(B, 2, H, W)``.

    Args:
        backbone: timm name or feature module.
        class_embeddings: ``(num_classes, d)`` class table.
        embedding_source: Where the table came from (see :class:`SPNet`).
        class_channels: Width of the visual class embedding.
        kl_weight: Weight of the KL term in ``auxiliary_loss``.
        pretrained: ImageNet backbone weights.
        pretrained_file: Local backbone weights.
        query_channels: Query feature width.
        decoder_channels: Width of the comparison trunk.
        decoder_depth: Residual blocks of the trunk.
        aspp_rates: ASPP dilation rates.
        backbone_kwargs: Extra :class:`~fewzero.models.Backbone` arguments.

    Examples:
        >>> import torch
        >>> model = ZSVM("resnet18", torch.randn(20, 8), class_channels=16, decoder_channels=16)
        >>> out = model(torch.randn(2, 3, 40, 40), torch.tensor([1, 2]))
        >>> out.shape, model.auxiliary_loss.shape
        (torch.Size([2, 2, 40, 40]), torch.Size([]))
    """

    def __init__(
        self,
        backbone: str | nn.Module = "resnet50",
        class_embeddings: torch.Tensor | None = None,
        *,
        embedding_source: str = "custom",
        class_channels: int = 256,
        kl_weight: float = 1e-3,
        pretrained: bool = False,
        pretrained_file: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None,
        query_channels: int = 256,
        decoder_channels: int = 256,
        decoder_depth: int = 3,
        aspp_rates: Sequence[int] = (6, 12, 18),
        backbone_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            backbone,
            class_embeddings,
            embedding_source,
            pretrained,
            pretrained_file,
            query_channels,
            backbone_kwargs,
            decoder_channels=decoder_channels,
            decoder_depth=decoder_depth,
            aspp_rates=aspp_rates,
            class_channels=class_channels,
            kl_weight=kl_weight,
        )
        self.mapping = VariationalClassEmbedding(self.embedding_dim, class_channels)
        self.decoder = self._comparison_trunk(class_channels, num_classes=2)
        self.kl_weight = kl_weight
        self.config["arch"] = "zsvm"

    def forward(self, images: torch.Tensor, class_ids: torch.Tensor) -> torch.Tensor:
        """Return logits ``(B, 2, H, W)``; sets ``auxiliary_loss`` (``kl_weight * KL``) in training."""
        query = self._query(images)
        z, kl = self.mapping(self.lookup(class_ids).to(query.dtype))
        self.auxiliary_loss = self.kl_weight * kl if self.training else None
        embedding = z[:, :, None, None].expand(-1, -1, query.shape[2], query.shape[3])
        logits = self.decoder(query, embedding)
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)


def _needs_table(fn):
    fn.needs_class_embeddings = True
    return fn


register_architecture(
    "spnet",
    _needs_table(
        lambda backbone, class_embeddings=None, **kw: SPNet(backbone, class_embeddings, **kw)
    ),
)
register_architecture(
    "zsvm",
    _needs_table(
        lambda backbone, class_embeddings=None, **kw: ZSVM(backbone, class_embeddings, **kw)
    ),
)


@register_model
@_needs_table
def spnet_resnet50(class_embeddings: torch.Tensor | None = None, **kwargs: Any) -> SPNet:
    """SPNet over a frozen ResNet50 (the paper's re-implementation)."""
    return SPNet(kwargs.pop("backbone", "resnet50"), class_embeddings, **kwargs)


@register_model
@_needs_table
def zsvm_resnet50(class_embeddings: torch.Tensor | None = None, **kwargs: Any) -> ZSVM:
    """ZSVM over a frozen ResNet50 (the paper's re-implementation)."""
    return ZSVM(kwargs.pop("backbone", "resnet50"), class_embeddings, **kwargs)


@register_model
@_needs_table
def spnet_efficientnet_lite0(class_embeddings: torch.Tensor | None = None, **kwargs: Any) -> SPNet:
    """SPNet over EfficientNet-Lite0 (the CPU demo's backbone)."""
    return SPNet(kwargs.pop("backbone", "efficientnet_lite0"), class_embeddings, **kwargs)


@register_model
@_needs_table
def zsvm_efficientnet_lite0(class_embeddings: torch.Tensor | None = None, **kwargs: Any) -> ZSVM:
    """ZSVM over EfficientNet-Lite0 (the CPU demo's backbone)."""
    return ZSVM(kwargs.pop("backbone", "efficientnet_lite0"), class_embeddings, **kwargs)
