"""The last stage apart: ``F_2, F_3`` without ``B_4``, then ``B_4`` on a map of one's own.

SM-VCENet's ``class_branch={"input": "concat"}`` (eq. 1 literally) runs the frozen last stage on an adapted
``F_2 ⊕ F_3``: [mid_levels][fewzero.models.stage_split.mid_levels] gives ``[F_2, F_3]`` without
running ``B_4``, and [run_last_stage][fewzero.models.stage_split.run_last_stage] applies ``B_4``
to any map (gradients flow to the map, not to ``B_4``). Only timm ``FeatureListNet`` bodies with
NCHW maps at any input size can be split so ([split_last_stage][fewzero.models.stage_split.split_last_stage]
refuses the others by name).

Examples:
    >>> import torch
    >>> from fewzero.models import Backbone
    >>> r18 = Backbone("resnet18")
    >>> f2, f3 = mid_levels(r18, torch.randn(1, 3, 64, 64))
    >>> run_last_stage(r18, f3).shape
    torch.Size([1, 512, 8, 8])
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
from torch import nn

__all__ = ["StageSplit", "mid_levels", "run_last_stage", "split_last_stage"]


class StageSplit(NamedTuple):
    """A body's modules up to ``F_3``, its last stage's modules, and the ``F_2``/``F_3`` names."""

    head: list[tuple[str, nn.Module]]
    tail: list[tuple[str, nn.Module]]
    returns: list[str]


def split_last_stage(backbone: nn.Module) -> StageSplit:
    """Split a [Backbone][fewzero.models.Backbone]'s timm ``FeatureListNet`` body at its last stage.

    Raises:
        ValueError: for a body whose last stage cannot run on its own.
    """
    from timm.models import FeatureDictNet

    body = backbone.body
    if (
        not isinstance(body, FeatureDictNet)
        or backbone.size_multiple > 1
        or backbone.output_fmt != "NCHW"
    ):
        raise ValueError(
            "class_branch={'input': 'concat'} needs a backbone whose last stage can be run on its own "
            "(timm FeatureListNet models with NCHW maps at any input size, such as resnet*, "
            f"convnext*), got {type(body).__name__} for {backbone.name!r} (output_fmt "
            f"{backbone.output_fmt}, inputs padded to a multiple of {backbone.size_multiple}); "
            "use class_branch={'input': 'layer4'}"
        )
    returns = list(body.return_layers)
    items = list(body.items())
    names = [n for n, _ in items]
    cut = names.index(returns[1]) + 1
    end = names.index(returns[2]) + 1
    return StageSplit(items[:cut], items[cut:end], returns[:2])


def mid_levels(backbone: nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """``[F_2, F_3]`` on one grid, without running the last stage ``B_4``."""
    split = split_last_stage(backbone)
    feats = []
    with torch.no_grad() if backbone.frozen else contextlib.nullcontext():
        x = images
        for name, module in split.head:
            x = module(x)
            if name in split.returns:
                feats.append(x)
    return backbone.align(feats)


def run_last_stage(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The frozen last stage ``B_4`` on ``x``; gradients flow to ``x``, not to ``B_4``."""
    for _, module in split_last_stage(backbone).tail:
        x = module(x)
    return x
