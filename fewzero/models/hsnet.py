"""HSNet (Min et al., ICCV 2021): dense multi-layer correlation squeezed by center-pivot 4D convs.

The network of HSNet's code, layer for layer, so that its released checkpoints load and give its
numbers ([load_trained_model][fewzero.models.load_trained_model] reads them as they are):

1. **Encode.** The frozen backbone's every block from ``F_2``'s stage to ``F_4``'s, read before
   the block's last ReLU ([features][fewzero.models.Backbone.features]' ``"blocks"`` with
   ``block_taps="pre_activation"``: the 13 bottlenecks of ResNet-50's layers 2-4, 30 of
   ResNet-101's), query and supports in one pass.
2. **Correlate.** The clamped cosine (``eps=1e-5``) of every query position with every support
   position, the support's features multiplied by its mask resized bilinearly
   (``align_corners=True``) ([multilayer_correlation][fewzero.layers.multilayer_correlation]);
   the blocks of one level are the channels of one 4D tensor.
3. **Squeeze and mix.** Three [CenterPivotConv4d][fewzero.layers.CenterPivotConv4d] blocks
   (GroupNorm(4), ReLU) per level, strides 4, 4, 2 / 4, 2, 2 / 2, 2, 2 on the support pair;
   the coarser level is resampled onto the finer one's query grid (bilinear,
   ``align_corners=True``), added, and mixed by three more 4D blocks, twice.
4. **Decode.** The support dimensions averaged away; two convolutions, a bilinear 2x upsampling
   (``align_corners=True``), two more convolutions; the logits upsampled to the input size
   (``align_corners=True``).
5. **K shots.** ``shot_merge="vote"`` (the default) is HSNet's ``predict_mask_nshot``
   ([vote_shots][fewzero.heads.shot_merge.vote_shots]): each shot a one-shot episode, each
   episode's mask at the input size a vote, a share of at least one half of the image's largest
   vote is foreground. The vote holds at evaluation; in training (and with
   ``shot_merge="mean"``) the episodes' logits are averaged. The query is encoded once.

Departures, at sizes HSNet never runs (it resizes every image to 400 x 400):

* HSNet upsamples its decoder to a square ``2w x 2w``; here ``2h x 2w``.
* HSNet's strides make the support grids of its three levels meet at 400 px; where they do not,
  the coarser level is also resampled on the support pair (bilinear, ``align_corners=True``).
* Any timm backbone works (its blocks read at their output where they end without an
  activation); ``efficientnet_lite0`` has offline ImageNet weights.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..heads.episode import Episode
from ..heads.shot_merge import check_shot_merge
from ..layers import CenterPivotConv4d, multilayer_correlation
from ._registry import register_architecture
from .backbone import Backbone
from .families import Family, Variant
from .fewshot import FewShotModel

__all__ = ["HSNet", "hsnet_efficientnet_lite0", "hsnet_resnet50", "hsnet_resnet101"]


class _Block4d(nn.Sequential):
    """CenterPivotConv4d blocks, each followed by GroupNorm and ReLU."""

    def __init__(self, channels: list[int], kernels: list[int], strides: list[int]) -> None:
        layers: list[nn.Module] = []
        for cin, cout, k, s in zip(channels[:-1], channels[1:], kernels, strides):
            layers += [
                CenterPivotConv4d(cin, cout, kernel_size=k, stride=(1, s)),
                nn.GroupNorm(4, cout),
                nn.ReLU(inplace=True),
            ]
        super().__init__(*layers)


def _resample(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``x (B, C, hq, wq, hs, ws)`` onto ``like``'s four spatial sizes (bilinear in pairs)."""
    b, c, hq, wq, hs, ws = x.shape
    tq, ts = like.shape[2:4], like.shape[4:6]
    if (hq, wq) != tuple(tq):
        y = x.permute(0, 4, 5, 1, 2, 3).reshape(b * hs * ws, c, hq, wq)
        y = F.interpolate(y, size=tq, mode="bilinear", align_corners=True)
        x = y.view(b, hs, ws, c, *tq).permute(0, 3, 4, 5, 1, 2)
        hq, wq = tq
    if (hs, ws) != tuple(ts):
        y = x.permute(0, 2, 3, 1, 4, 5).reshape(b * hq * wq, c, hs, ws)
        y = F.interpolate(y, size=ts, mode="bilinear", align_corners=True)
        x = y.view(b, hq, wq, c, *ts).permute(0, 3, 1, 2, 4, 5)
    return x


class HSNet(FewShotModel):
    """Hypercorrelation squeeze network: few-shot segmentation from dense correlations.

    Shapes:
        ``images (B, 3, H, W)``, ``support_images (B, K, 3, H', W')``, ``support_masks
        (B, K, H', W')`` in {0, 1, 255} -> logits ``(B, 2, H, W)``. A support set is required.

    Args:
        backbone: timm model name or feature module (frozen).
        pretrained: ImageNet weights for the backbone.
        pretrained_file: Local backbone weights (path or state dict).
        channels: Widths of the three 4D blocks of each level (HSNet: 16, 64, 128); the decoder
            narrows from the third to the second.
        backbone_kwargs: Extra [Backbone][fewzero.models.Backbone] arguments (defaults
            ``output_stride=32``, HSNet's undilated backbone, and
            ``block_taps="pre_activation"``, its reading of each block).
        shot_merge: How K > 1 shots combine at evaluation
            ([fewzero.heads.shot_merge][fewzero.heads.shot_merge]): ``"vote"`` (HSNet's vote of
            the shots' masks) or ``"mean"`` (the shots' logits averaged, as in training).
            ``"prototype"`` is refused: HSNet's correlations keep every support position.

    Examples:
        >>> import torch
        >>> model = HSNet("resnet18").eval()
        >>> masks = torch.zeros(1, 1, 64, 64, dtype=torch.long)
        >>> masks[..., 16:48, 16:48] = 1
        >>> model(torch.randn(1, 3, 64, 64), torch.randn(1, 1, 3, 64, 64), masks).shape
        torch.Size([1, 2, 64, 64])
    """

    shot_merges = ("vote", "mean")  # HSNet's correlations keep every support position
    retired_key = "decoder.6.weight"  # only fewzero 0.1's mechanism had it
    align_corners = True  # HSNet's code upsamples its logits so
    train_defaults = {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 0.0}  # HSNet's Adam

    def __init__(
        self,
        backbone: str | nn.Module = "resnet50",
        *,
        pretrained: bool = False,
        pretrained_file: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None,
        channels: tuple[int, int, int] | list[int] = (16, 64, 128),
        backbone_kwargs: Mapping[str, Any] | None = None,
        shot_merge: str = "vote",
    ) -> None:
        super().__init__()
        self.shot_merge = check_shot_merge(shot_merge, self.shot_merges, "HSNet")
        kwargs = {
            "output_stride": 32,
            "block_taps": "pre_activation",
            **dict(backbone_kwargs or {}),
        }
        self.encoder = Backbone(
            backbone, pretrained=pretrained, pretrained_file=pretrained_file, **kwargs
        )
        c1, c2, c3 = (int(c) for c in channels)
        groups = self.encoder.block_groups
        layers = [groups.count(g) for g in range(3)]
        # finest level: widest kernels and strides (HSNet's layer2 block), coarsest the least
        self.squeeze = nn.ModuleList(
            [
                _Block4d([layers[0], c1, c2, c3], [5, 5, 3], [4, 4, 2]),
                _Block4d([layers[1], c1, c2, c3], [5, 3, 3], [4, 2, 2]),
                _Block4d([layers[2], c1, c2, c3], [3, 3, 3], [2, 2, 2]),
            ]
        )
        self.mix = nn.ModuleList(
            [_Block4d([c3, c3, c3, c3], [3, 3, 3], [1, 1, 1]) for _ in range(2)]
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(c3, c3, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c3, c2, 3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Sequential(
            nn.Conv2d(c2, c2, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c2, 2, 3, padding=1),
        )
        self.num_classes = 2

    def encode(self, images: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """Every block's map from ``F_2``'s stage to ``F_4``'s, before its last ReLU."""
        return {"blocks": self.encoder.features(images, ("blocks",))["blocks"]}

    def decode(self, episode: Episode) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits ``(N, 2, h, w)`` of one-shot episodes, twice ``F_2``'s grid.

        Correlate and squeeze each level, mix coarse to fine, average the support dimensions
        away, decode.
        """
        assert episode.support_masks is not None
        query, support = episode.query["blocks"], episode.support["blocks"]
        assert isinstance(query, list) and isinstance(support, list)
        masks = episode.support_masks[:, 0]
        corr = multilayer_correlation(query, support, masks, self.encoder.block_groups)
        fine, mid, coarse = (block(c) for block, c in zip(self.squeeze, corr))
        mixed = self.mix[0](_resample(coarse, mid) + mid)
        mixed = self.mix[1](_resample(mixed, fine) + fine)
        x = self.decoder(mixed.mean(dim=(-2, -1)))  # the support dimensions averaged away
        x = F.interpolate(
            x, size=(2 * x.shape[-2], 2 * x.shape[-1]), mode="bilinear", align_corners=True
        )
        return self.head(x), {}


register_architecture("hsnet", HSNet)


HSNET_FAMILY = Family(
    "hsnet",
    {
        "hsnet_resnet50": Variant("hsnet", "resnet50"),
        "hsnet_resnet101": Variant("hsnet", "resnet101"),
        "hsnet_efficientnet_lite0": Variant("hsnet", "efficientnet_lite0"),
    },
)
"""The HSNet factories: architecture and backbone."""


@HSNET_FAMILY.factory
def hsnet_resnet50(pretrained: bool = False, **kwargs: Any) -> HSNet:
    """HSNet over a frozen, undilated ResNet-50 (its 13 bottlenecks of layers 2-4)."""


@HSNET_FAMILY.factory
def hsnet_resnet101(pretrained: bool = False, **kwargs: Any) -> HSNet:
    """HSNet over a frozen, undilated ResNet-101 (its 30 bottlenecks of layers 2-4)."""


@HSNET_FAMILY.factory
def hsnet_efficientnet_lite0(pretrained: bool = False, **kwargs: Any) -> HSNet:
    """HSNet over EfficientNet-Lite0 (offline ImageNet weights; correlations at its 13 blocks)."""
