"""Paired image/mask transforms on ``torchvision.transforms.v2`` with ``tv_tensors.Mask``.

Masks are always resampled with nearest neighbour, padded with 255 (ignore) and never
normalised, so image and mask stay aligned pixel for pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..checks import IMAGENET_MEAN, IMAGENET_STD
from .classes import IGNORE_INDEX

__all__ = ["eval_transform", "train_transform"]



def _finish(mean: Sequence[float], std: Sequence[float]) -> list[v2.Transform]:
    return [
        v2.ToDtype({tv_tensors.Image: torch.float32, "others": None}, scale=True),
        v2.Normalize(mean=list(mean), std=list(std)),
    ]


def train_transform(
    crop_size: int = 321,
    scale: tuple[float, float] = (0.5, 2.0),
    flip: bool = True,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """Random scale, horizontal flip, crop (padding with 0 / 255), normalisation.

    Called as ``transform(image, mask)`` with ``tv_tensors.Image`` (uint8 ``(3, H, W)``) and
    ``tv_tensors.Mask`` (``(H, W)``); returns the float image ``(3, crop, crop)`` and the mask.

    Args:
        crop_size: Output side.
        scale: Range of the random rescaling of the shorter side, relative to ``crop_size``.
        flip: Random horizontal flip.
        mean: Normalisation mean (the backbone's).
        std: Normalisation std (the backbone's).
    """
    lo, hi = int(scale[0] * crop_size), int(scale[1] * crop_size)
    ops: list[v2.Transform] = [v2.RandomResize(max(lo, 1), max(hi, lo + 1))]
    if flip:
        ops.append(v2.RandomHorizontalFlip())
    ops.append(
        v2.RandomCrop(
            crop_size,
            pad_if_needed=True,
            fill={tv_tensors.Image: 0, tv_tensors.Mask: IGNORE_INDEX},
        )
    )
    return v2.Compose(ops + _finish(mean, std))


def eval_transform(
    size: int = 321,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> v2.Compose:
    """Resize to ``size x size`` and normalise (the original-size label is kept for scoring)."""
    return v2.Compose([v2.Resize((size, size))] + _finish(mean, std))
