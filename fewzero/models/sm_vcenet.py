"""SM-VCENet and its ablation family (paper Fig. 2 and Table 3) over any timm backbone.

``SMVCENet`` = frozen :class:`~fewzero.models.Backbone` + :class:`~fewzero.heads.QueryBranch`
(eq. 2) + a class branch (:class:`~fewzero.heads.VisualClassEmbedding`, eq. 1, 3-5 and SAM) +
:class:`~fewzero.heads.ClassComparisonModule`. ``variant`` picks the row of Table 3:

==============  =============================  ======================
variant         class branch                   class embedding width
==============  =============================  ======================
``deeplab``     none                           0
``vcenet``      VCE (1x1 conv)                 C
``m_vcenet``    MAM + compressor               C
``sm_vcenet``   MAM + compressor + SAM         2C
==============  =============================  ======================

``C`` is the channel count of ``I_class`` (2048 for ResNet50) unless ``class_channels`` reduces it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..heads import ClassComparisonModule, QueryBranch, VisualClassEmbedding
from ..layers._validate import check_choice, is_exporting
from ._registry import register_architecture, register_model
from .backbone import Backbone

__all__ = [
    "VARIANTS",
    "SMVCENet",
    "deeplab_efficientnet_lite0",
    "deeplab_resnet101",
    "deeplab_resnet50",
    "m_vcenet_efficientnet_lite0",
    "m_vcenet_resnet101",
    "m_vcenet_resnet50",
    "sm_vcenet_efficientnet_lite0",
    "sm_vcenet_resnet101",
    "sm_vcenet_resnet50",
    "vcenet_efficientnet_lite0",
    "vcenet_resnet101",
    "vcenet_resnet50",
]

VARIANTS: dict[str, tuple[bool, bool, bool]] = {
    # name: (class branch, MAM, SAM)
    "deeplab": (False, False, False),
    "vcenet": (True, False, False),
    "m_vcenet": (True, True, False),
    "sm_vcenet": (True, True, True),
}


class SMVCENet(nn.Module):
    """SM-VCENet family: frozen backbone, query branch, visual class embedding, CCM.

    Shapes:
        images ``(B, 3, H, W)`` (normalised with ``backbone.mean``/``backbone.std``) -> logits
        ``(B, num_classes, H, W)`` at input resolution (any ``H, W >= min_input_size``, not only
        multiples of 8).

    Args:
        backbone: timm model name or a module exposing ``feature_info``.
        variant: ``"sm_vcenet"``, ``"m_vcenet"``, ``"vcenet"`` or ``"deeplab"``.
        pretrained: ImageNet weights for the backbone (see :class:`~fewzero.models.Backbone`).
        pretrained_file: Local backbone weights (path or state dict).
        class_input: ``"layer4"`` (default): ``I_class = B_4(F_3)``, the frozen layer4 output.
            ``"concat"``: eq. 1 literally, ``I_class = B_4(adapter(F_2 ⊕ F_3))`` with a trainable
            1x1 adapter initialised to pass ``F_3`` through (timm ``FeatureListNet`` backbones).
        attention: SAM's non-local kind, ``"channel"`` (the paper's equations) or ``"spatial"``.
        class_channels: Width ``C`` of the class branch (default: ``I_class``'s channels).
        bins: MAM pyramid bins.
        query_channels: Query feature width (256).
        decoder_channels: CCM width (256).
        decoder_depth: CCM residual blocks (3).
        aspp_rates: CCM ASPP rates.
        num_classes: Output logits (2).
        pooled_projection: MAM's exact pooled projection (default) or concat-then-conv.
        backbone_kwargs: Extra arguments of :class:`~fewzero.models.Backbone`.

    Examples:
        >>> import torch
        >>> model = SMVCENet("resnet18", variant="sm_vcenet").eval()
        >>> model(torch.randn(1, 3, 65, 65)).shape
        torch.Size([1, 2, 65, 65])
    """

    def __init__(
        self,
        backbone: str | nn.Module = "resnet50",
        variant: str = "sm_vcenet",
        *,
        pretrained: bool = False,
        pretrained_file: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None,
        class_input: str = "layer4",
        attention: str = "channel",
        class_channels: int | None = None,
        bins: Sequence[int] = (1, 2, 3, 6),
        query_channels: int = 256,
        decoder_channels: int = 256,
        decoder_depth: int = 3,
        aspp_rates: Sequence[int] = (6, 12, 18),
        num_classes: int = 2,
        pooled_projection: bool = True,
        backbone_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.variant = check_choice("variant", variant, tuple(VARIANTS))
        self.class_input = check_choice("class_input", class_input, ("layer4", "concat"))
        has_class, mam, sam = VARIANTS[variant]
        self.encoder = Backbone(
            backbone,
            pretrained=pretrained,
            pretrained_file=pretrained_file,
            **dict(backbone_kwargs or {}),
        )
        c2, c3, c4 = self.encoder.channels
        self.query = QueryBranch(c2 + c3, query_channels)
        self.adapter: nn.Module | None = None
        if has_class and class_input == "concat":
            self.encoder._split()  # fail early for backbones whose last stage cannot run alone
            self.adapter = nn.Conv2d(c2 + c3, c3, 1)
            with torch.no_grad():
                self.adapter.weight.zero_()
                self.adapter.bias.zero_()
                self.adapter.weight[:, c2:, 0, 0].copy_(torch.eye(c3))
        self.class_branch: VisualClassEmbedding | None = (
            VisualClassEmbedding(
                c4,
                class_channels,
                mam=mam,
                sam=sam,
                bins=bins,
                attention=attention,
                pooled_projection=pooled_projection,
            )
            if has_class
            else None
        )
        self.decoder = ClassComparisonModule(
            query_channels,
            0 if self.class_branch is None else self.class_branch.out_channels,
            channels=decoder_channels,
            depth=decoder_depth,
            aspp_rates=aspp_rates,
            num_classes=num_classes,
        )
        self.num_classes = num_classes
        self.config: dict[str, Any] = dict(
            backbone=self.encoder.name,
            variant=variant,
            class_input=class_input,
            attention=attention,
            class_channels=class_channels,
            bins=list(bins),
            query_channels=query_channels,
            decoder_channels=decoder_channels,
            decoder_depth=decoder_depth,
            aspp_rates=list(aspp_rates),
            num_classes=num_classes,
        )

    @property
    def min_input_size(self) -> int:
        """Smallest accepted input side."""
        return self.encoder.min_input_size

    def check_input(self, images: torch.Tensor) -> None:
        """Raise ``ValueError`` for a non-``(B, 3, H, W)`` input or one below the minimum size."""
        if images.dim() != 4:
            raise ValueError(
                f"images must be a 4-D tensor (B, 3, H, W), got {images.dim()}-D with shape "
                f"{tuple(images.shape)}"
            )
        if images.shape[1] != 3:
            raise ValueError(
                f"images must be RGB with 3 channels (dim 1), got {images.shape[1]} "
                f"(shape {tuple(images.shape)})"
            )
        h, w = images.shape[-2:]
        if min(h, w) < self.min_input_size:
            raise ValueError(
                f"images must be at least {self.min_input_size}x{self.min_input_size} for backbone "
                f"{self.encoder.name!r}, got {h}x{w}"
            )

    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return the query feature ``(B, query_channels, h, w)`` and ``I_class`` (or ``None``)."""
        if self.adapter is not None:
            f2, f3 = self.encoder.forward_mid(images)
            i_class: torch.Tensor | None = self.encoder.last_stage(
                self.adapter(torch.cat([f2, f3], dim=1))
            )
        else:
            f2, f3, f4 = self.encoder(images)
            i_class = f4 if self.class_branch is not None else None
        return self.query(torch.cat([f2, f3], dim=1)), i_class

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return logits ``(B, num_classes, H, W)`` at the input's resolution."""
        if not is_exporting():
            self.check_input(images)
        query, i_class = self.features(images)
        embedding = None
        if self.class_branch is not None and i_class is not None:
            embedding = self.class_branch(i_class)
            if embedding.shape[-2:] != query.shape[-2:]:
                embedding = self.encoder.align([query, embedding])[1]
        logits = self.decoder(query, embedding)
        return F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Return the predicted mask ``(B, H, W)`` (``int64``, 1 = the episode's class)."""
        return self.forward(images).argmax(dim=1)


def _build(variant: str, backbone: str | nn.Module, **kwargs: Any) -> SMVCENet:
    return SMVCENet(backbone=backbone, variant=variant, **kwargs)


for _variant in VARIANTS:
    register_architecture(_variant, lambda _v=_variant, **kw: _build(_v, **kw))


@register_model
def sm_vcenet_resnet50(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """SM-VCENet (MAM + SAM) over a frozen, dilated ResNet50 (the paper's model)."""
    return _build("sm_vcenet", kwargs.pop("backbone", "resnet50"), pretrained=pretrained, **kwargs)


@register_model
def m_vcenet_resnet50(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """M-VCENet (MAM only) over ResNet50 (Table 3)."""
    return _build("m_vcenet", kwargs.pop("backbone", "resnet50"), pretrained=pretrained, **kwargs)


@register_model
def vcenet_resnet50(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """VCENet (visual class embedding without MAM/SAM) over ResNet50 (Table 3)."""
    return _build("vcenet", kwargs.pop("backbone", "resnet50"), pretrained=pretrained, **kwargs)


@register_model
def deeplab_resnet50(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """DeepLab baseline (no class branch) over ResNet50 (Tables 1-3)."""
    return _build("deeplab", kwargs.pop("backbone", "resnet50"), pretrained=pretrained, **kwargs)


@register_model
def sm_vcenet_resnet101(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """SM-VCENet over ResNet101."""
    return _build("sm_vcenet", kwargs.pop("backbone", "resnet101"), pretrained=pretrained, **kwargs)


@register_model
def m_vcenet_resnet101(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """M-VCENet over ResNet101."""
    return _build("m_vcenet", kwargs.pop("backbone", "resnet101"), pretrained=pretrained, **kwargs)


@register_model
def vcenet_resnet101(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """VCENet over ResNet101."""
    return _build("vcenet", kwargs.pop("backbone", "resnet101"), pretrained=pretrained, **kwargs)


@register_model
def deeplab_resnet101(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """DeepLab baseline over ResNet101."""
    return _build("deeplab", kwargs.pop("backbone", "resnet101"), pretrained=pretrained, **kwargs)


@register_model
def sm_vcenet_efficientnet_lite0(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """SM-VCENet over EfficientNet-Lite0 (offline ImageNet weights with ``fewzero[weights]``)."""
    return _build(
        "sm_vcenet", kwargs.pop("backbone", "efficientnet_lite0"), pretrained=pretrained, **kwargs
    )


@register_model
def m_vcenet_efficientnet_lite0(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """M-VCENet over EfficientNet-Lite0."""
    return _build(
        "m_vcenet", kwargs.pop("backbone", "efficientnet_lite0"), pretrained=pretrained, **kwargs
    )


@register_model
def vcenet_efficientnet_lite0(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """VCENet over EfficientNet-Lite0."""
    return _build(
        "vcenet", kwargs.pop("backbone", "efficientnet_lite0"), pretrained=pretrained, **kwargs
    )


@register_model
def deeplab_efficientnet_lite0(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """DeepLab baseline over EfficientNet-Lite0."""
    return _build(
        "deeplab", kwargs.pop("backbone", "efficientnet_lite0"), pretrained=pretrained, **kwargs
    )
