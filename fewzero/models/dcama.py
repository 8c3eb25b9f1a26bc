"""DCAMA (Shi et al., ECCV 2022): dense cross-query-and-support attention weighted mask aggregation.

The network of DCAMA's code, layer for layer, so that its released checkpoints load and give its
numbers ([load_trained_model][fewzero.models.load_trained_model] reads them as they are):

1. **Encode.** The frozen backbone's every block, read before the block's last ReLU
   (``block_taps="pre_activation"``): the blocks from ``F_2``'s stage to ``F_4``'s for the
   attention, and the last block before them for a skip
   ([features][fewzero.models.Backbone.features], its ``"skip"`` and ``"blocks"``); ResNet's
   bottlenecks, Swin's blocks.
2. **Attend.** One [MaskAttention][fewzero.layers.MaskAttention] per level, shared by its blocks:
   8 heads, sine positional encodings added to the flattened query and support maps, learnt
   query and key projections, the support mask resized bilinearly (``align_corners=True``) as
   the value, the heads averaged. K shots are one key sequence (each shot's positions numbered
   from 0): DCAMA's K-shot rule, ``shot_merge="prototype"``.
3. **Mix.** The attended masks of a level are the channels of a map; three convolutions
   (GroupNorm(4), ReLU; kernels 5, 5, 3 / 5, 3, 3 / 3, 3, 3 from fine to coarse), then coarse to
   fine: bilinear upsampling (``align_corners=True``), addition, three more convolutions.
4. **Decode.** Concatenated with the query's and the support's last ``F_2``-stage maps (the
   support's maximum over the shots), upsampled 2x, concatenated with the two low maps, then
   three pairs of convolutions with 2x upsamplings between them; the logits upsampled to the
   input size (``align_corners=True``).

Departures, at sizes DCAMA never runs (it resizes every image to 384 x 384):

* DCAMA upsamples to squares (``2w x 2w``); here the concatenation with the low maps happens on
  their grid and the other upsamplings are ``2h x 2w``.
* DCAMA's positional table stops at 10000 positions; here encodings are computed for any length.
* Over a body with no map before ``F_2``'s stage (ViTs), the last ``F_2``-stage maps serve as
  the low maps; over a body whose blocks of one level differ in width (EfficientNet), each
  block has its own attention.
* ``shot_merge="mean"`` and ``"vote"`` run one-shot episodes instead.
* Supports of another size than the query (DCAMA resizes both to 384 x 384): the supports'
  skip maps are resampled onto the query's grid (bilinear, ``align_corners=True``) before they
  are concatenated.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..heads.episode import Episode
from ..heads.shot_merge import check_shot_merge
from ..layers import MaskAttention
from ._registry import register_architecture
from .backbone import Backbone
from .families import Family, Variant
from .fewshot import FewShotModel

__all__ = [
    "DCAMA",
    "dcama_efficientnet_lite0",
    "dcama_resnet50",
    "dcama_resnet101",
    "dcama_swin_base_384",
]


def _conv_block(cin: int, widths: list[int], kernels: list[int]) -> nn.Sequential:
    """Convolutions, each followed by GroupNorm(4) and ReLU (DCAMA's ``build_conv_block``)."""
    layers: list[nn.Module] = []
    for cout, k in zip(widths, kernels):
        layers += [nn.Conv2d(cin, cout, k, padding=k // 2), nn.GroupNorm(4, cout), nn.ReLU()]
        cin = cout
    return nn.Sequential(*layers)


def _conv_pair(cin: int, mid: int, cout: int, last_act: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, mid, 3, padding=1), nn.ReLU()]
    layers.append(nn.Conv2d(mid, cout, 3, padding=1))
    return nn.Sequential(*layers, nn.ReLU()) if last_act else nn.Sequential(*layers)


def _up(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)


class DCAMA(FewShotModel):
    """Few-shot segmentation by multi-layer mask attention from query to support positions.

    Shapes:
        ``images (B, 3, H, W)``, ``support_images (B, K, 3, H', W')``, ``support_masks
        (B, K, H', W')`` in {0, 1, 255} -> logits ``(B, 2, H, W)``. A support set is required.

    Args:
        backbone: timm model name or feature module (frozen).
        pretrained: ImageNet weights for the backbone.
        pretrained_file: Local backbone weights (path or state dict).
        channels: Widths of the mixing convolutions (DCAMA: 16, 64, 128); the decoder narrows
            from the third to the first.
        heads: Attention heads (DCAMA: 8; the largest divisor of a level's width up to it).
        dropout: DCAMA's dropout on the encoded maps and on the attention weights, in training.
        backbone_kwargs: Extra [Backbone][fewzero.models.Backbone] arguments (defaults
            ``output_stride=32`` and ``block_taps="pre_activation"``, DCAMA's ResNet reading).
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

    retired_key = "merge.0.0.weight"  # only fewzero 0.1's mechanism had it
    align_corners = True  # DCAMA's code upsamples its logits so
    # DCAMA's training: SGD, Nesterov momentum 0.9, lr 1e-3, weight decay lr / 10
    train_defaults = {
        "optimizer": "sgd",
        "lr": 1e-3,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 1e-4,
    }

    number_rules = {"heads": "positive_int", "dropout": "probability"}

    def __init__(
        self,
        backbone: str | nn.Module = "resnet50",
        *,
        pretrained: bool = False,
        pretrained_file: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None,
        channels: tuple[int, int, int] | list[int] = (16, 64, 128),
        heads: int = 8,
        dropout: float = 0.5,
        backbone_kwargs: Mapping[str, Any] | None = None,
        shot_merge: str = "prototype",
    ) -> None:
        super().__init__()
        self.shot_merge = check_shot_merge(shot_merge, self.shot_merges, "DCAMA")
        kwargs = {
            "output_stride": 32,
            "block_taps": "pre_activation",
            **dict(backbone_kwargs or {}),
        }
        self.encoder = Backbone(
            backbone, pretrained=pretrained, pretrained_file=pretrained_file, **kwargs
        )
        groups, widths = self.encoder.block_groups, self.encoder.block_channels
        self.attention_index, self.attention = self._attentions(heads, dropout)
        c1, c2, c3 = (int(c) for c in channels)
        counts = [groups.count(g) for g in range(3)]
        self.squeeze = nn.ModuleList(
            [
                _conv_block(counts[0], [c1, c2, c3], [5, 5, 3]),
                _conv_block(counts[1], [c1, c2, c3], [5, 3, 3]),
                _conv_block(counts[2], [c1, c2, c3], [3, 3, 3]),
            ]
        )
        self.mix = nn.ModuleList([_conv_block(c3, [c3, c3, c3], [3, 3, 3]) for _ in range(2)])
        self.skip_index = len(groups) - 1 - groups[::-1].index(0)  # F_2's stage's last block
        skip = widths[self.skip_index]
        low = self.encoder.skip_channels or skip
        self.decoder = nn.ModuleList(
            [
                _conv_pair(c3 + 2 * skip + 2 * low, c3, c2, last_act=True),
                _conv_pair(c2, c2, c1, last_act=True),
                _conv_pair(c1, c1, 2, last_act=False),
            ]
        )
        self.num_classes = 2

    def _attentions(self, heads: int, dropout: float) -> tuple[list[int], nn.ModuleList]:
        """Each block's attention index, and the attentions.

        One attention per level where a level's blocks share one width (DCAMA's), else one per
        block.
        """
        groups, widths = self.encoder.block_groups, self.encoder.block_channels
        per_level = [sorted({w for w, g in zip(widths, groups) if g == lvl}) for lvl in range(3)]
        shared = all(len(w) == 1 for w in per_level)
        attended = [w[0] for w in per_level] if shared else widths
        index = list(groups) if shared else list(range(len(widths)))
        return index, nn.ModuleList(
            MaskAttention(c, heads=max(h for h in range(1, heads + 1) if c % h == 0),
                          mask_resize="bilinear", positional=True, dropout=dropout)
            for c in attended
        )  # fmt: skip

    def encode(self, images: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """The low map (or the ``F_2`` skip where the body has none) and every block's map."""
        f = self.encoder.features(images, ("skip", "blocks"))
        skip, blocks = f["skip"], f["blocks"]
        return {"low": blocks[self.skip_index] if skip is None else skip, "blocks": blocks}

    def decode(self, episode: Episode) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits ``(N, 2, h, w)``, four times the low map's grid.

        Attend per block (the shots of an episode as one key sequence), mix coarse to fine,
        decode with the skips (the query's maps and the supports', max over the shots).
        """
        assert episode.support_masks is not None
        query, low = episode.query["blocks"], episode.query["low"]
        assert isinstance(query, list) and isinstance(low, torch.Tensor)
        support = episode.support_by_shot("blocks")
        (support_low,) = episode.support_by_shot("low")
        per_level: list[list[torch.Tensor]] = [[], [], []]
        for i, g in enumerate(self.encoder.block_groups):
            att = self.attention[self.attention_index[i]]
            per_level[g].append(att(query[i], support[i], episode.support_masks))
        fine, mid, coarse = (
            block(torch.cat(maps, dim=1)) for block, maps in zip(self.squeeze, per_level)
        )
        x = self.mix[0](_up(coarse, mid.shape[-2:]) + mid)
        x = self.mix[1](_up(x, fine.shape[-2:]) + fine)
        i = self.skip_index  # the skips: the query's maps and the support's, max over shots
        skip = _up(support[i].amax(dim=1), query[i].shape[-2:])  # supports of another size
        x = torch.cat([x, query[i], skip], dim=1)
        x = _up(x, low.shape[-2:])
        x = torch.cat([x, low, _up(support_low.amax(dim=1), low.shape[-2:])], dim=1)
        for j, block in enumerate(self.decoder):
            x = block(x if j == 0 else _up(x, (2 * x.shape[-2], 2 * x.shape[-1])))
        return x, {}


register_architecture("dcama", DCAMA)


DCAMA_FAMILY = Family(
    "dcama",
    {
        "dcama_resnet50": Variant("dcama", "resnet50"),
        "dcama_resnet101": Variant("dcama", "resnet101"),
        "dcama_swin_base_384": Variant("dcama", "swin_base_patch4_window12_384"),
        "dcama_efficientnet_lite0": Variant("dcama", "efficientnet_lite0"),
    },
)
"""The DCAMA factories: architecture and backbone."""


@DCAMA_FAMILY.factory
def dcama_resnet50(pretrained: bool = False, **kwargs: Any) -> DCAMA:
    """DCAMA over a frozen, undilated ResNet-50 (mask attention at its 13 bottlenecks of layers 2-4)."""


@DCAMA_FAMILY.factory
def dcama_resnet101(pretrained: bool = False, **kwargs: Any) -> DCAMA:
    """DCAMA over a frozen, undilated ResNet-101 (mask attention at its 30 bottlenecks of layers 2-4)."""


@DCAMA_FAMILY.factory
def dcama_swin_base_384(pretrained: bool = False, **kwargs: Any) -> DCAMA:
    """DCAMA over a frozen Swin-B (window 12, 384 px; mask attention at the blocks of stages 2-4)."""


@DCAMA_FAMILY.factory
def dcama_efficientnet_lite0(pretrained: bool = False, **kwargs: Any) -> DCAMA:
    """DCAMA over EfficientNet-Lite0 (offline ImageNet weights; mask attention at its 13 blocks)."""
