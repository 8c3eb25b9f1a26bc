"""GF-SAM: few-shot segmentation by graph-based prompting of SAM with DINOv2 (NeurIPS 2024).

From GF-SAM's published algorithm (``ANDYZAQ/GF-SAM``, MIT), written anew over timm's DINOv2 and
SAM image encoders, fewzero's SAM prompt and mask bricks and Meta's own weights files:

* **encode**: DINOv2's last-block tokens before its final norm (``x_prenorm``), of every image
  resized to ``dino_size`` (518: a 37 x 37 grid), each image's tokens L2-normalised along the
  token axis as GF-SAM does; the query alone also gets SAM's image embedding, once;
* **compare**: the priors, the prompt map and its point prompts
  ([fewzero.heads.graph_prompting][fewzero.heads.graph_prompting]);
* **decode**: SAM decodes every point prompt in one batch (GF-SAM: batches of 64), and the
  point-mask graph, the growth and the point consistency choose the masks whose union is the
  answer.

Departures from GF-SAM's code, by design:

* The output is logits ``(B, 2, H, W)``: ``+4`` on the mask, ``-4`` elsewhere (background 0), so
  the argmax is the mask.
* ``fallback=False`` (the default): when no mask is kept, the answer is empty, so that a class
  that is absent comes back empty. GF-SAM always answers, with its best candidate mask:
  ``fallback=True`` is its rule (and gives its published numbers).
* An empty support mask is refused; GF-SAM replaces it with a 14 x 14 square in the middle.
* Any batch size and input size. SAM sees the query as GF-SAM gives it to SAM's predictor (8-bit,
  longest side 1024; fewzero resizes other sizes with antialiased bilinear resampling where
  Meta's predictor uses PIL's). DINOv2 sees every image at ``dino_size x dino_size``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from ..heads.episode import Episode
from ..heads.graph_prompting import (
    grow_components,
    merge_kept,
    point_consistency,
    point_mask_components,
    prompt_map,
    select_points,
    similarity_priors,
)
from ._registry import register_architecture
from .families import Family, Variant
from .fewshot import FewShotModel
from .insid3 import MASK_LOGIT
from .sam import SAM_SIZES, SegmentAnything
from .vit_patches import ViTPatches

__all__ = ["GFSAM", "gf_sam_vit_h_dinov2_vitl14"]

POSTPROCESS_CHUNK = 32
"""SAM's masks upsampled to the query's size this many at a time (all are decoded in one pass)."""


class GFSAM(FewShotModel):
    """Training-free few-shot segmentation: DINOv2 priors prompt SAM, a graph picks the masks.

    Shapes:
        ``images (B, 3, H, W)``, ``support_images (B, K, 3, H', W')``, ``support_masks
        (B, K, H', W')`` in {0, 1, 255} -> logits ``(B, 2, H, W)`` whose argmax is the mask
        (the module's page lists the departures from GF-SAM's code). The K shots' priors are
        averaged, so ``shot_merge`` is ``"prototype"`` only.

    Args:
        backbone: timm's DINOv2 name (GF-SAM: ``vit_large_patch14_dinov2``).
        pretrained: Needs both files (fewzero downloads nothing).
        dinov2_file: Meta's ``dinov2_vitl14_pretrain.pth`` (path or state dict).
        sam: SAM's size, ``"vit_h"`` (GF-SAM's), ``"vit_l"`` or ``"vit_b"``.
        sam_file: Meta's ``sam_vit_h_4b8939.pth`` (path or state dict).
        dino_size: The side DINOv2 sees (518).
        fallback: Answer with the best candidate mask when no mask is kept (GF-SAM's rule);
            ``False``: answer nothing (an absent class comes back empty).
        backbone_kwargs: Extra ``timm.create_model`` arguments of DINOv2 (tests).
        sam_kwargs: Extra [SegmentAnything][fewzero.models.SegmentAnything] arguments (tests).
        shot_merge: ``"prototype"``.

    Examples:
        >>> import torch
        >>> model = GFSAM("vit_small_patch14_dinov2", sam="vit_b", dino_size=56,
        ...     backbone_kwargs=dict(depth=1, embed_dim=32, num_heads=2, img_size=56),
        ...     sam_kwargs=dict(image_size=64, prompt_dim=32,
        ...         encoder_kwargs=dict(depth=1, embed_dim=32, num_heads=2, global_attn_indexes=[0]),
        ...         decoder_kwargs=dict(num_heads=2, mlp_dim=64, iou_head_hidden_dim=32))).eval()
        >>> masks = torch.zeros(1, 1, 64, 64, dtype=torch.long)
        >>> masks[..., 16:48, 16:48] = 1
        >>> model(torch.randn(1, 3, 64, 64), torch.randn(1, 1, 3, 64, 64), masks).shape
        torch.Size([1, 2, 64, 64])
    """

    shot_merges = ("prototype",)
    any_backbone = False

    def __init__(
        self,
        backbone: str = "vit_large_patch14_dinov2",
        *,
        pretrained: bool = False,
        dinov2_file: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None,
        sam: str = "vit_h",
        sam_file: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None,
        dino_size: int = 518,
        fallback: bool = False,
        backbone_kwargs: Mapping[str, Any] | None = None,
        sam_kwargs: Mapping[str, Any] | None = None,
        shot_merge: str = "prototype",
    ) -> None:
        super().__init__()
        if pretrained and (dinov2_file is None or sam_file is None):
            raise ValueError(
                "pretrained=True needs dinov2_file and sam_file: fewzero downloads nothing; pass "
                "Meta's files (dinov2_file='dinov2_vitl14_pretrain.pth', "
                "sam_file='sam_vit_h_4b8939.pth')"
            )
        if shot_merge != "prototype":
            raise ValueError(
                f"shot_merge must be 'prototype' for GF-SAM (its shots' priors are averaged), got "
                f"{shot_merge!r}"
            )
        if sam not in SAM_SIZES:
            raise ValueError(
                f"sam must be one of {sorted(SAM_SIZES)} (GF-SAM: 'vit_h'), got {sam!r}"
            )
        if not isinstance(fallback, bool):
            raise ValueError(f"fallback must be True or False, got {fallback!r}")
        if isinstance(dino_size, bool) or not isinstance(dino_size, int) or dino_size < 14:
            raise ValueError(f"dino_size must be an int >= 14 (GF-SAM: 518), got {dino_size!r}")
        self.encoder = ViTPatches(
            backbone, dinov2_file, tap="last_block", argument="dinov2_file",
            **dict(backbone_kwargs or {}),
        )  # fmt: skip
        if dino_size % self.encoder.stride:
            raise ValueError(
                f"dino_size must be a multiple of {backbone!r}'s patch {self.encoder.stride} "
                f"(GF-SAM: 518 = 37 x 14), got {dino_size}"
            )
        self.sam = SegmentAnything(sam, sam_file, argument="sam_file", **dict(sam_kwargs or {}))
        self.dino_size, self.fallback, self.num_classes = dino_size, fallback, 2
        self.input_size = self.sam.image_size  # GF-SAM's query side (1024)
        self.register_buffer("mean", torch.tensor(self.encoder.mean).view(1, 3, 1, 1), False)
        self.register_buffer("std", torch.tensor(self.encoder.std).view(1, 3, 1, 1), False)

    def encode(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """DINOv2's tokens ``(N, g g, C)`` at ``dino_size``, each image's normalised over its tokens."""
        rgb = images * self.std + self.mean
        x = F.interpolate(
            rgb, (self.dino_size,) * 2, mode="bilinear", align_corners=False, antialias=True
        )
        tokens = self.encoder((x - self.mean) / self.std).flatten(2).transpose(1, 2)
        return {"tokens": F.normalize(tokens, p=2, dim=1)}

    def encode_episode(
        self,
        images: torch.Tensor,
        support_images: torch.Tensor | None,
        support_masks: torch.Tensor | None,
    ) -> Episode:
        """DINOv2 over query and supports (one pass where sizes match), SAM over the query only."""
        episode = super().encode_episode(images, support_images, support_masks)
        rgb = ((images * self.std + self.mean) * 255).clamp(0, 255).to(torch.uint8).float()
        query = dict(episode.query, sam=self.sam.embed(rgb))
        return Episode(query, episode.support, support_masks, size=tuple(images.shape[-2:]))

    def decode(self, episode: Episode) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """GF-SAM's mask of each query at its size, as logits ``(B, 2, H, W)``."""
        assert episode.support_masks is not None
        tokens, embeddings = episode.query["tokens"], episode.query["sam"]
        support = episode.support["tokens"]
        assert isinstance(tokens, torch.Tensor) and isinstance(support, torch.Tensor)
        assert isinstance(embeddings, torch.Tensor)
        b, k = episode.support_masks.shape[:2]
        support = support.view(b, k, *support.shape[1:])
        masks = [
            self.segment_one(t, e[None], s, (m == 1).float(), episode.size)
            for t, e, s, m in zip(tokens, embeddings, support, episode.support_masks)
        ]
        foreground = MASK_LOGIT * (2 * torch.stack(masks).to(tokens.dtype) - 1)
        return torch.stack([torch.zeros_like(foreground), foreground], dim=1), {}

    @torch.compiler.disable  # data-dependent and host-side (SciPy): runs eagerly when compiled
    def segment_one(
        self,
        query: torch.Tensor,
        embedding: torch.Tensor,
        supports: torch.Tensor,
        masks: torch.Tensor,
        size: tuple[int, int],
    ) -> torch.Tensor:
        """One query's mask ``(H, W)`` bool.

        Args:
            query: ``(g g, C)`` DINOv2 tokens.
            embedding: SAM's ``(1, C', 64, 64)``.
            supports: ``(K, g g, C)``.
            masks: ``(K, H', W')`` float in {0, 1}.
            size: The query's ``(H, W)``.
        """
        max_prior, mean_prior = similarity_priors(query, supports, masks)
        background = similarity_priors(query, supports, 1 - masks)[1]
        points, hot = select_points(prompt_map(max_prior, mean_prior, background))
        if len(points) == 0:
            return torch.zeros(size, dtype=torch.bool, device=query.device)
        sam_masks = self.point_masks(embedding, points, hot.shape[-1], size)
        count, labels = point_mask_components(sam_masks, points, hot)
        labels_t = torch.as_tensor(labels, dtype=torch.long, device=query.device)
        half = (mean_prior.max() + mean_prior.min()) / 2
        joined, scores = grow_components(
            sam_masks, labels_t, count, mean_prior * mean_prior, background * half
        )
        kept = point_consistency(query, sam_masks, labels_t, count, joined, points)
        return merge_kept(sam_masks, kept, scores, self.fallback)

    def point_masks(
        self, embedding: torch.Tensor, points: torch.Tensor, grid: int, size: tuple[int, int]
    ) -> torch.Tensor:
        """SAM's single mask ``(P, H, W)`` bool for each grid point, all prompts in one pass.

        A grid cell ``(x, y)`` is prompted at ``int(x * S / g)`` pixels of SAM's ``S``-pixel
        input (GF-SAM's ``apply_coords`` and integer cast).
        """
        scale = self.sam.image_size / max(size)
        resized = (int(size[0] * scale + 0.5), int(size[1] * scale + 0.5))
        factor = torch.tensor([resized[1] / grid, resized[0] / grid], dtype=torch.float64)
        coords = (points.double().cpu() * factor).to(torch.int32).float().to(embedding.device)
        labels = torch.ones(len(points), 1, device=embedding.device)
        low, _ = self.sam.decode_points(embedding, coords[:, None], labels)
        chunks = low.split(POSTPROCESS_CHUNK)  # full-size float logits of 128 prompts: 0.5 GB
        return torch.cat([self.sam.postprocess(c, size)[:, 0] > 0 for c in chunks])


register_architecture("gf_sam", GFSAM)


GF_SAM_FAMILY = Family(
    "gf_sam",
    {"gf_sam_vit_h_dinov2_vitl14": Variant("gf_sam", "vit_large_patch14_dinov2")},
)
"""The GF-SAM factories: GF-SAM's own pairing of SAM ViT-H with DINOv2 ViT-L/14."""


@GF_SAM_FAMILY.factory
def gf_sam_vit_h_dinov2_vitl14(pretrained: bool = False, **kwargs: Any) -> GFSAM:
    """GF-SAM as published (``sam_file="sam_vit_h_4b8939.pth"``, ``dinov2_file="dinov2_vitl14_pretrain.pth"``)."""
