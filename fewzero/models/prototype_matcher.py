"""A training-free few-shot baseline: prototype matching on frozen ImageNet features (PANet-style).

Every query position is compared with the support set's foreground and background prototypes
(masked average pooling of the frozen backbone's features, mean over the K shots) by cosine
similarity; ``scale`` times the two similarities are the background / foreground logits. Nothing
is trained: users without training data start here (``Predictor(create_model("prototype_
efficientnet_lite0", pretrained=True))``), and every trained few-shot model must beat it.

The features are the backbone's three levels (``F_2, F_3, F_4`` on one grid), each L2-normalised
over its channels before they are concatenated, so no level dominates by its magnitude.

**Absent classes.** Matching always finds a best region, so a query without the support's
object would still get pixels. The model therefore also asks how well the query's *best* cells
match the foreground: the mean cosine of its top 5% of cells with the foreground prototype
([presence_scores][fewzero.models.presence_scores] of
[match][fewzero.models.PrototypeMatcher.match]). Below ``presence_cutoff`` the class is absent and
the query gets no foreground. The default, [PRESENCE_CUTOFF][fewzero.models.PRESENCE_CUTOFF], is
calibrated on real photographs with masks, and checked at class level on a collection of real
photographs (the results page, "Absent objects on real photographs").
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_numbers, check_tensor
from ..heads.episode import Episode
from ..heads.prototype import cosine_maps, support_prototypes
from ..heads.shot_merge import check_shot_merge
from ._registry import register_architecture
from .backbone import Backbone
from .families import Family, Variant
from .fewshot import FewShotModel

__all__ = [
    "PRESENCE_CUTOFF",
    "PrototypeMatcher",
    "presence_scores",
    "prototype_efficientnet_lite0",
    "prototype_resnet50",
]

PRESENCE_SHARE = 0.05
"""The share of a query's cells whose mean foreground cosine is its presence score (its best 5%)."""
PRESENCE_CUTOFF = 0.37
"""The calibrated ``presence_cutoff`` (how it was calibrated and checked: the results page)."""


class PrototypeMatcher(FewShotModel):
    """Training-free few-shot segmentation by foreground/background prototype matching.

    Shapes:
        ``images (B, 3, H, W)``, ``support_images (B, K, 3, H', W')``, ``support_masks
        (B, K, H', W')`` in {0, 1, 255} -> logits ``(B, 2, H, W)``. A support set is required.

    Args:
        backbone: timm model name or feature module.
        pretrained: ImageNet weights (offline for ``efficientnet_lite0`` with fewzero[weights]).
        pretrained_file: Local backbone weights (path or state dict).
        levels: Which of the backbone's three levels (0: ``F_2``, 1: ``F_3``, 2: ``F_4``) to match.
        scale: Logit scale of the cosine similarities (PANet: 20).
        backbone_kwargs: Extra [`Backbone`][fewzero.models.Backbone] arguments.
        shot_merge: How K > 1 shots combine: ``"prototype"`` (the mean of the shots'
            prototypes, PANet's), ``"mean"`` or ``"vote"`` (one-shot episodes).
        presence_cutoff: A query whose top 5% of cells match the foreground prototype below
            this mean cosine gets no foreground (the module's page); ``None``: always matched.

    Examples:
        >>> import torch
        >>> model = PrototypeMatcher("resnet18").eval()
        >>> masks = torch.zeros(1, 1, 65, 65, dtype=torch.long)
        >>> masks[..., 20:40, 20:40] = 1
        >>> model(torch.randn(1, 3, 65, 65), torch.randn(1, 1, 3, 65, 65), masks).shape
        torch.Size([1, 2, 65, 65])
    """

    def __init__(
        self,
        backbone: str | nn.Module = "resnet50",
        *,
        pretrained: bool = False,
        pretrained_file: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None,
        levels: Sequence[int] | int = (0, 1, 2),
        scale: float = 20.0,
        backbone_kwargs: Mapping[str, Any] | None = None,
        shot_merge: str = "prototype",
        presence_cutoff: float | None = PRESENCE_CUTOFF,
    ) -> None:
        super().__init__()
        self.shot_merge = check_shot_merge(shot_merge, self.shot_merges, "PrototypeMatcher")
        if presence_cutoff is not None and (
            isinstance(presence_cutoff, bool)
            or not isinstance(presence_cutoff, (int, float))
            or not -1.0 <= presence_cutoff <= 1.0
        ):
            raise ValueError(
                f"presence_cutoff must be a cosine in [-1, 1] or None, got {presence_cutoff!r}: "
                f"the calibrated default is {PRESENCE_CUTOFF}"
            )
        self.presence_cutoff = presence_cutoff
        levels = (levels,) if isinstance(levels, int) else tuple(levels)
        if (
            not levels
            or any(isinstance(i, bool) or i not in (0, 1, 2) for i in levels)
            or len(set(levels)) != len(levels)
        ):
            raise ValueError(f"levels must be distinct values in (0, 1, 2), got {levels!r}")
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale!r}")
        self.levels, self.scale = levels, float(scale)
        self.encoder = Backbone(
            backbone,
            pretrained=pretrained,
            pretrained_file=pretrained_file,
            last_stage=2 in levels,
            **dict(backbone_kwargs or {}),
        )
        self.num_classes = 2

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Matching features ``(B, D, h, w)``: the chosen levels, each L2-normalised."""
        feats = self.encoder(images)
        return torch.cat([F.normalize(feats[i].float(), dim=1) for i in self.levels], dim=1)

    def encode(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The matching features ([embed][fewzero.models.PrototypeMatcher.embed])."""
        return {"embedding": self.embed(images)}

    def match(
        self, query: torch.Tensor, support: torch.Tensor, support_masks: torch.Tensor
    ) -> torch.Tensor:
        """Cosines ``(B, 2, h, w)`` of each query cell with the background and foreground prototypes.

        The presence score the model compares with ``presence_cutoff`` is
        ``presence_scores(match(...)[:, 1])``.

        Args:
            query: ``(B, D, h, w)`` query embeddings ([embed][fewzero.models.PrototypeMatcher.embed]).
            support: ``(B * K, D, h, w)`` support embeddings.
            support_masks: ``(B, K, H, W)`` in ``{0, 1, 255}``, at the support images' size.

        Examples:
            >>> import torch
            >>> from fewzero.models import create_model, presence_scores
            >>> model = create_model("prototype", backbone="resnet18").eval()
            >>> image, mask = torch.rand(1, 3, 64, 64), torch.zeros(1, 1, 64, 64, dtype=torch.long)
            >>> mask[..., 16:48, 16:48] = 1
            >>> cos = model.match(model.embed(image), model.embed(image), mask)
            >>> cos.shape, presence_scores(cos[:, 1]).shape
            (torch.Size([1, 2, 8, 8]), torch.Size([1]))
        """
        protos = support_prototypes(support, support_masks, (0, 1), self.encoder.stride)
        return cosine_maps(query, protos)

    def decode(self, episode: Episode) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``scale * [cos(q, bg), cos(q, fg)]`` at the feature grid ``(N, 2, h, w)``."""
        assert episode.support_masks is not None
        query, support = episode.query["embedding"], episode.support["embedding"]
        assert isinstance(query, torch.Tensor) and isinstance(support, torch.Tensor)
        cosines = self.match(query, support, episode.support_masks)
        if self.presence_cutoff is not None:  # an absent class: the background everywhere
            absent = _top_share_mean(cosines[:, 1], PRESENCE_SHARE) < self.presence_cutoff
            background = torch.minimum(cosines[:, 0], cosines[:, 1]) - 1
            fg = torch.where(absent[:, None, None], background, cosines[:, 1])
            cosines = torch.stack([cosines[:, 0], fg], dim=1)
        return self.scale * cosines, {}


def presence_scores(foreground: torch.Tensor, share: float = PRESENCE_SHARE) -> torch.Tensor:
    """How well each query's best cells match: the mean of its top ``share`` of ``(B, h, w)``.

    Args:
        foreground: ``(B, h, w)`` cosines of the query cells with the foreground prototype
            ([PrototypeMatcher.match][fewzero.models.PrototypeMatcher.match]'s channel 1).
        share: The share of the cells to average, in ``(0, 1]`` (at least one cell).

    Returns:
        ``(B,)``: the score the model compares with its ``presence_cutoff``.

    Examples:
        >>> import torch
        >>> presence_scores(torch.arange(40.0).view(1, 4, 10)).tolist()  # the top 2 of 40 cells
        [38.5]
    """
    check_tensor("foreground", foreground, dims=3)
    check_numbers("presence_scores", {"share": "share"}, {"share": share})
    return _top_share_mean(foreground, share)


def _top_share_mean(foreground: torch.Tensor, share: float) -> torch.Tensor:
    flat = foreground.flatten(1)
    k = max(1, int(share * flat.shape[1]))
    return flat.topk(k, dim=1).values.mean(dim=1)


register_architecture("prototype", PrototypeMatcher)


PROTOTYPE_FAMILY = Family(
    "prototype",
    {
        "prototype_resnet50": Variant("prototype", "resnet50"),
        "prototype_efficientnet_lite0": Variant("prototype", "efficientnet_lite0"),
    },
)
"""The PrototypeMatcher factories: architecture and backbone."""


@PROTOTYPE_FAMILY.factory
def prototype_resnet50(pretrained: bool = False, **kwargs: Any) -> PrototypeMatcher:
    """Training-free prototype matching over a frozen ResNet50 (``pretrained_file=`` its weights)."""


@PROTOTYPE_FAMILY.factory
def prototype_efficientnet_lite0(pretrained: bool = False, **kwargs: Any) -> PrototypeMatcher:
    """Training-free prototype matching over EfficientNet-Lite0 (offline ImageNet weights)."""
