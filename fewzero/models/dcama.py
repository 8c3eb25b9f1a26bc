"""DCAMA (Shi et al., ECCV 2022): dense cross-query-and-support attention weighted mask aggregation.

For every block from ``F_2``'s stage to ``F_4``'s
([forward_blocks][fewzero.models.Backbone.forward_blocks]), a
[MaskAttention][fewzero.layers.MaskAttention] gives each query position the support mask
averaged over all support positions (of all K shots: one key sequence), weighted by feature
similarity. The per-block maps of one level are stacked, mixed by convolutions, merged coarse
to fine, concatenated with the query's and the support's ``F_2``/``F_3`` features (DCAMA's
skips; the support's as their maximum over the K shots, as DCAMA) and decoded into two logits.

Where the paper (and its code) leave room, fewzero chooses:

* **Backbone stride.** An undilated backbone, ``output_stride=32`` (DCAMA's ResNet).
* **Heads.** 8 where the block width allows, else the largest divisor of it up to 8.
* **Positional encodings.** DCAMA adds sine encodings to queries and keys; they are left out
  (a query and a support image share no positions), see ``MaskAttention``.
* **K shots.** ``shot_merge="prototype"`` (the default) is DCAMA's K-shot version: one softmax
  over the concatenated keys of all shots, the support set pooled in the comparison.
  ``"mean"`` and ``"vote"`` run one-shot episodes instead
  ([fewzero.heads.shot_merge][fewzero.heads.shot_merge]).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..heads.shot_merge import check_shot_merge, merge_shots, one_shot_episodes
from ..layers import MaskAttention
from ._registry import register_architecture, register_model
from .backbone import Backbone
from .base import FewShotModel
from .episode import encode_pair

__all__ = ["DCAMA", "dcama_efficientnet_lite0", "dcama_resnet50"]


def _mixer(cin: int, width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, width, 3, padding=1),
        nn.GroupNorm(4, width),
        nn.ReLU(inplace=True),
        nn.Conv2d(width, width, 3, padding=1),
        nn.GroupNorm(4, width),
        nn.ReLU(inplace=True),
    )


class DCAMA(FewShotModel):
    """Few-shot segmentation by multi-layer mask attention from query to support positions.

    Shapes:
        ``images (B, 3, H, W)``, ``support_images (B, K, 3, H', W')``, ``support_masks
        (B, K, H', W')`` in {0, 1, 255} -> logits ``(B, 2, H, W)``. A support set is required.

    Args:
        backbone: timm model name or feature module (frozen).
        pretrained: ImageNet weights for the backbone.
        pretrained_file: Local backbone weights (path or state dict).
        width: Channels of the mixing convolutions (DCAMA: 128).
        backbone_kwargs: Extra [Backbone][fewzero.models.Backbone] arguments (default
            ``output_stride=32``).
        shot_merge: How K > 1 shots combine: ``"prototype"`` (the shots' keys in one attention,
            DCAMA's), ``"mean"`` or ``"vote"`` (one-shot episodes).

    Examples:
        >>> import torch
        >>> model = DCAMA("resnet18").eval()
        >>> masks = torch.zeros(1, 2, 64, 64, dtype=torch.long)
        >>> masks[..., 16:48, 16:48] = 1
        >>> model(torch.randn(1, 3, 64, 64), torch.randn(1, 2, 3, 64, 64), masks).shape
        torch.Size([1, 2, 64, 64])
    """

    def __init__(
        self,
        backbone: str | nn.Module = "resnet50",
        *,
        pretrained: bool = False,
        pretrained_file: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None,
        width: int = 128,
        backbone_kwargs: Mapping[str, Any] | None = None,
        shot_merge: str = "prototype",
    ) -> None:
        super().__init__()
        self.shot_merge = check_shot_merge(shot_merge, self.shot_merges, "DCAMA")
        kwargs = {"output_stride": 32, **dict(backbone_kwargs or {})}
        self.encoder = Backbone(
            backbone, pretrained=pretrained, pretrained_file=pretrained_file, **kwargs
        )
        groups = self.encoder.block_groups
        self.attention = nn.ModuleList([MaskAttention(c) for c in self.encoder.block_channels])
        self.mixers = nn.ModuleList([_mixer(groups.count(g), width) for g in range(3)])
        self.merge = nn.ModuleList([_mixer(width, width) for _ in range(2)])
        c2, c3 = self.encoder.channels[:2]  # the skips: the last maps of F_2's and F_3's stages
        self.decoder = nn.Sequential(
            nn.Conv2d(width + 2 * (c2 + c3), width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 2, 3, padding=1),
        )
        self.num_classes = 2

    def forward_features(
        self,
        images: torch.Tensor,
        support_images: torch.Tensor | None,
        support_masks: torch.Tensor | None,
        class_ids: torch.Tensor | None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return logits ``(B, 2, h, w)`` on the grid of ``F_2``'s stage.

        Encode (every block of query and supports), attend per block, mix coarse to fine,
        decode with the skips, merge the shots.
        """
        assert support_images is not None and support_masks is not None
        n_shots = support_images.shape[1]
        query, support = encode_pair(
            self.encoder.forward_blocks, images, support_images.flatten(0, 1)
        )
        assert support is not None
        if self.shot_merge != "prototype":  # one-shot episodes: the query's maps repeated
            query, support_masks = one_shot_episodes(query, support_masks)
        b, k = support_masks.shape[:2]
        groups = self.encoder.block_groups
        per_level: list[list[torch.Tensor]] = [[], [], []]
        for att, g, q, s in zip(self.attention, groups, query, support):
            per_level[g].append(att(q, s.view(b, k, *s.shape[1:]), support_masks))
        fine, mid, coarse = (
            mixer(torch.cat(maps, dim=1)) for mixer, maps in zip(self.mixers, per_level)
        )
        x = self.merge[0](_up(coarse, mid) + mid)
        x = self.merge[1](_up(x, fine) + fine)
        last = [len(groups) - 1 - groups[::-1].index(g) for g in (0, 1)]  # F_2's, F_3's stage ends
        skips = []
        for i in last:  # the query's features and the support's, max over the shots
            shots = support[i].view(b, k, *support[i].shape[1:]).amax(dim=1)
            skips += [_up(query[i], fine), _up(shots, fine)]
        logits = self.decoder(torch.cat([x, *skips], dim=1))
        merged = 1 if self.shot_merge == "prototype" else n_shots
        return merge_shots(logits, merged, self.shot_merge, self.training, images.shape[-2:]), {}


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if x.shape[-2:] == like.shape[-2:]:
        return x
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


register_architecture("dcama", DCAMA)


@register_model
def dcama_resnet50(pretrained: bool = False, **kwargs: Any) -> DCAMA:
    """DCAMA over a frozen, undilated ResNet-50 (mask attention at its 13 bottlenecks)."""
    return DCAMA(kwargs.pop("backbone", "resnet50"), pretrained=pretrained, **kwargs)


@register_model
def dcama_efficientnet_lite0(pretrained: bool = False, **kwargs: Any) -> DCAMA:
    """DCAMA over EfficientNet-Lite0 (offline ImageNet weights; mask attention at its 13 blocks)."""
    return DCAMA(kwargs.pop("backbone", "efficientnet_lite0"), pretrained=pretrained, **kwargs)
