"""INSID3: few-shot segmentation with one frozen DINOv3 and no training (CVPR 2026).

From INSID3's published algorithm (``visinf/INSID3``, Apache-2.0), written anew over timm's
DINOv3 and Meta's own weights files:

* **encode**: DINOv3's last-block tokens after its final norm, L2-normalised over the channels
  ([ViTPatches][fewzero.models.ViTPatches], ``tap="final_norm"``);
* **compare**: the positional subspace, estimated once from a black image at ``image_size``
  ([principal_subspace][fewzero.layers.subspace.principal_subspace], kept as the buffer
  ``positional_basis``), is removed from query and supports; the candidates are matched both
  ways to the support set; the query's patches are clustered
  ([cosine_clusters][fewzero.layers.clustering.cosine_clusters]);
* **decode**: the seed cluster and the clusters that join it
  ([fewzero.heads.cluster_matching][fewzero.heads.cluster_matching]) are the mask.

Departures from INSID3's code, by design:

* The output is logits ``(B, 2, H, W)`` whose argmax is INSID3's mask: the feature-grid mask
  ``m`` becomes the foreground logit ``4 (2m - 1)`` (background 0), upsampled bilinearly as
  INSID3 upsamples ``m`` and thresholds it at 0.5, so the argmax is the same mask.
* Any batch size, any input size (sides padded to the patch), supports of another size than the
  query; INSID3's code takes one query at its ``image_size``.
* An empty support mask is refused (INSID3's code would fail on it); a support mask too small
  for the grid keeps its centroid's cell, as in INSID3.
* ``svd_components`` must be below the width (INSID3's default of 500 is for ViT-L's 1024; at
  ViT-S's 384 it would remove every direction and leave nothing to match).
* The optional CRF refinement of INSID3's code is not included.

An absent class leaves no candidate matched both ways, and the mask comes back empty: its
presence rule is INSID3's own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from ..heads.cluster_matching import (
    foreground_prototype,
    locate_candidates,
    seed_and_merge,
    support_grid_mask,
)
from ..heads.episode import Episode
from ..layers.clustering import cosine_clusters
from ..layers.subspace import principal_subspace, remove_subspace
from ._registry import register_architecture
from .families import Family, Variant
from .fewshot import FewShotModel
from .vit_patches import ViTPatches

__all__ = ["INSID3", "insid3_vitb16", "insid3_vitl16", "insid3_vits16"]

MASK_LOGIT = 4.0
"""The foreground logit of a masked grid cell (``-MASK_LOGIT`` elsewhere; background 0)."""


def _check_number(value: Any, name: str, low: float, high: float, fix: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value <= high:
        raise ValueError(f"{name} must be a number in ({low}, {high}], got {value!r}: {fix}")
    return float(value)


class INSID3(FewShotModel):
    """Training-free in-context segmentation over a frozen DINOv3 (INSID3).

    Shapes:
        ``images (B, 3, H, W)``, ``support_images (B, K, 3, H', W')``, ``support_masks
        (B, K, H', W')`` in {0, 1, 255} -> logits ``(B, 2, H, W)``; the argmax is INSID3's mask
        (the module's page lists the departures). K shots are matched jointly (a mean prototype
        and a majority vote), so ``shot_merge`` is ``"prototype"`` only.

    Args:
        backbone: timm's DINOv3 name (``vit_large_patch16_dinov3_qkvb``: INSID3's default
            ViT-L/16; ``_qkvb`` reads every bias of Meta's files).
        pretrained: Needs ``dinov3_file`` (fewzero downloads nothing).
        dinov3_file: Meta's DINOv3 weights (``dinov3_vitl16_pretrain_lvd1689m-8aa4cbdd.pth``),
            a path or a state dict; ``None`` leaves the weights random (tests).
        image_size: Side of the black image the positional subspace is estimated from (INSID3:
            its input size, 1024).
        svd_components: Directions removed, ``1 <= svd_components < width`` (INSID3: 500).
        tau: Clustering threshold: clusters merge while their mean cosine exceeds it (0.6).
        merge_threshold: A cluster joins the mask when its score exceeds it (0.2).
        backbone_kwargs: Extra ``timm.create_model`` arguments (``depth``, ``embed_dim``, ...).
        shot_merge: ``"prototype"`` (the shots are matched jointly).

    Examples:
        >>> import torch
        >>> model = INSID3("vit_small_patch16_dinov3_qkvb", image_size=32, svd_components=4,
        ...                backbone_kwargs=dict(depth=1, embed_dim=32, num_heads=2)).eval()
        >>> masks = torch.zeros(1, 1, 32, 32, dtype=torch.long)
        >>> masks[..., 8:24, 8:24] = 1
        >>> model(torch.randn(1, 3, 32, 32), torch.randn(1, 1, 3, 32, 32), masks).shape
        torch.Size([1, 2, 32, 32])
    """

    shot_merges = ("prototype",)
    any_backbone = False

    def __init__(
        self,
        backbone: str = "vit_large_patch16_dinov3_qkvb",
        *,
        pretrained: bool = False,
        dinov3_file: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None,
        image_size: int = 1024,
        svd_components: int = 500,
        tau: float = 0.6,
        merge_threshold: float = 0.2,
        backbone_kwargs: Mapping[str, Any] | None = None,
        shot_merge: str = "prototype",
    ) -> None:
        super().__init__()
        if pretrained and dinov3_file is None:
            raise ValueError(
                "pretrained=True needs dinov3_file: fewzero downloads nothing; pass Meta's "
                "DINOv3 file (dinov3_file='dinov3_vitl16_pretrain_lvd1689m-8aa4cbdd.pth', from "
                "the DINOv3 repository's download links)"
            )
        if shot_merge != "prototype":
            raise ValueError(
                f"shot_merge must be 'prototype' for INSID3 (its shots are matched jointly: a "
                f"mean prototype and a majority vote), got {shot_merge!r}"
            )
        fix = "INSID3's defaults are tau=0.6, merge_threshold=0.2"
        self.tau = _check_number(tau, "tau", -1.0, 1.0, fix)
        self.merge_threshold = _check_number(merge_threshold, "merge_threshold", -1.0, 1.0, fix)
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
            raise ValueError(
                f"image_size must be a positive int (INSID3: 1024), got {image_size!r}"
            )
        self.encoder = ViTPatches(
            backbone,
            dinov3_file,
            tap="final_norm",
            argument="dinov3_file",
            **dict(backbone_kwargs or {}),
        )
        width = self.encoder.channels
        if (
            isinstance(svd_components, bool)
            or not isinstance(svd_components, int)
            or not 1 <= svd_components < width
        ):
            raise ValueError(
                f"svd_components must be an int in [1, {width}) for {backbone!r} (width "
                f"{width}), got {svd_components!r}: INSID3 removes 500 of ViT-L's 1024 "
                "directions; keep about half the width"
            )
        self.num_classes, self.input_size = 2, image_size
        black = torch.tensor(self.encoder.mean).view(1, 3, 1, 1).neg() / torch.tensor(
            self.encoder.std
        ).view(1, 3, 1, 1)
        black = black.expand(1, 3, image_size, image_size)
        tokens = F.normalize(self.encoder(black), p=2, dim=1)
        self.register_buffer("positional_basis", principal_subspace(tokens, svd_components))

    def encode(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """DINOv3's tokens, L2-normalised over the channels, ``(N, C, h, w)``."""
        return {"patches": F.normalize(self.encoder(images), p=2, dim=1)}

    def decode(self, episode: Episode) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """INSID3's mask of each query on the feature grid, as logits ``(B, 2, h, w)``."""
        assert episode.support_masks is not None
        query = episode.query["patches"]
        support = episode.support["patches"]
        assert isinstance(query, torch.Tensor) and isinstance(support, torch.Tensor)
        b, k = episode.support_masks.shape[:2]
        support = support.view(b, k, *support.shape[1:])
        masks = [
            self.segment_one(q, s, m) for q, s, m in zip(query, support, episode.support_masks)
        ]
        foreground = MASK_LOGIT * (2 * torch.stack(masks).to(query.dtype) - 1)
        logits = torch.stack([torch.zeros_like(foreground), foreground], dim=1)
        return logits, {}

    @torch.compiler.disable  # data-dependent and host-side (SciPy): runs eagerly when compiled
    def segment_one(
        self, query: torch.Tensor, support: torch.Tensor, support_masks: torch.Tensor
    ) -> torch.Tensor:
        """One query's mask ``(h, w)`` bool from its features ``(C, h, w)``, ``(K, C, hs, ws)``."""
        c, h, w = query.shape
        hs, ws = support.shape[-2:]
        basis = self.positional_basis
        query_debiased = remove_subspace(query[None], basis)[0]
        support_debiased = remove_subspace(support, basis)
        grid = torch.stack([support_grid_mask(m == 1, hs, ws) for m in support_masks])
        prototype = foreground_prototype(support_debiased, grid)
        candidates = locate_candidates(query_debiased, support_debiased, grid, prototype)
        if not candidates.any():
            return candidates
        labels = cosine_clusters(query.reshape(c, -1).T, self.tau).view(h, w)
        return seed_and_merge(
            candidates, labels, query, query_debiased, prototype, self.merge_threshold
        )


register_architecture("insid3", INSID3)


INSID3_FAMILY = Family(
    "insid3",
    {
        "insid3_vits16": Variant("insid3", "vit_small_patch16_dinov3_qkvb"),
        "insid3_vitb16": Variant("insid3", "vit_base_patch16_dinov3_qkvb"),
        "insid3_vitl16": Variant("insid3", "vit_large_patch16_dinov3_qkvb"),
    },
)
"""The INSID3 factories: one per DINOv3 size Meta publishes (``dinov3_file=`` its file)."""


@INSID3_FAMILY.factory
def insid3_vits16(pretrained: bool = False, **kwargs: Any) -> INSID3:
    """INSID3 over DINOv3 ViT-S/16 (``dinov3_file="dinov3_vits16_pretrain_lvd1689m-08c60483.pth"``)."""


@INSID3_FAMILY.factory
def insid3_vitb16(pretrained: bool = False, **kwargs: Any) -> INSID3:
    """INSID3 over DINOv3 ViT-B/16 (``dinov3_file="dinov3_vitb16_pretrain_lvd1689m-73cec8be.pth"``)."""


@INSID3_FAMILY.factory
def insid3_vitl16(pretrained: bool = False, **kwargs: Any) -> INSID3:
    """INSID3 over DINOv3 ViT-L/16, its default (``dinov3_file="dinov3_vitl16_pretrain_lvd1689m-8aa4cbdd.pth"``)."""
