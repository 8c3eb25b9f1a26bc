"""Paired image/mask transforms on ``torchvision.transforms.v2`` with ``tv_tensors.Mask``.

Masks are always resampled with nearest neighbour, padded with 255 (ignore) and never
normalised, so image and mask stay aligned pixel for pixel.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..checks import IMAGENET_MEAN, IMAGENET_STD, check_positive_int
from .classes import IGNORE_INDEX

__all__ = ["eval_transform", "stack_supports", "train_transform"]


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
    check_positive_int("crop_size", crop_size)
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
    check_positive_int("size", size)
    return v2.Compose([v2.Resize((size, size))] + _finish(mean, std))


def stack_supports(
    images: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], size: int | tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resize supports of their own sizes to one ``size`` and stack them.

    Args:
        images: K float images ``(3, H_k, W_k)`` (an episode's ``support_images`` list).
        masks: K masks ``(H_k, W_k)`` in {0, 1, 255}.
        size: Output ``(H, W)`` (or one int for a square).

    Returns:
        ``(K, 3, H, W)`` images (bilinear) and ``(K, H, W)`` int64 masks (nearest), ready for
        ``model(query, images[None], masks[None])``.

    Raises:
        ValueError: if ``images`` and ``masks`` differ in number or in a pair's size.
    """
    if len(images) != len(masks) or not images:
        raise ValueError(
            f"stack_supports needs as many masks as images (at least one), got {len(images)} "
            f"images and {len(masks)} masks"
        )
    hw = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    for side in hw:
        check_positive_int("size", side)
    out_i, out_m = [], []
    for k, (img, msk) in enumerate(zip(images, masks)):
        if tuple(img.shape[-2:]) != tuple(msk.shape[-2:]):
            raise ValueError(
                f"support {k}: image is {tuple(img.shape[-2:])}, its mask {tuple(msk.shape[-2:])}"
            )
        out_i.append(v2.functional.resize(img, list(hw), antialias=True))
        out_m.append(
            v2.functional.resize(msk[None], list(hw), interpolation=v2.InterpolationMode.NEAREST)[
                0
            ].long()
        )
    return torch.stack(out_i), torch.stack(out_m)
