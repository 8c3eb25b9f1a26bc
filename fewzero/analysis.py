"""Class-representation analysis of the paper's Fig. 4: do class embeddings move with the domain?

Eq. 6: the representation of class ``i`` is the mean, over the images showing it, of the
global-average-pooled deepest backbone feature. Cosine similarities between classes give an
affinity matrix per domain; word or sentence embeddings give one matrix whatever the domain.
``affinity_shift`` (mean absolute difference) condenses the paper's argument into one number.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from .checks import IMAGENET_MEAN, IMAGENET_STD, check_dir, check_positive_int, check_tensor
from .data.io import read_image, read_list, read_mask

__all__ = ["affinity_shift", "class_affinity", "class_representations", "cosine_affinity"]


def cosine_affinity(representations: torch.Tensor) -> torch.Tensor:
    """Cosine similarity matrix ``(K, K)`` of row vectors ``(K, C)`` (symmetric, unit diagonal)."""
    check_tensor("representations", representations, dims=2)
    r = F.normalize(representations.double(), dim=1)
    return r @ r.T


def affinity_shift(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference of the off-diagonal entries of two affinity matrices."""
    check_tensor("a", a, dims=2)
    check_tensor("b", b, dims=2)
    if a.shape != b.shape:
        raise ValueError(
            f"affinity matrices must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    off = ~torch.eye(a.shape[0], dtype=torch.bool)
    return (a - b).abs()[off].mean().item()


@torch.no_grad()
def class_representations(
    encoder: torch.nn.Module,
    image_dir: str | os.PathLike[str],
    list_file: str | os.PathLike[str],
    class_ids: Sequence[int],
    size: int = 224,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    min_pixels: int = 1,
    max_images: int | None = None,
    region: str = "image",
    mask_dir: str | os.PathLike[str] | None = None,
    num_classes: int = 80,
) -> torch.Tensor:
    """Per-class mean representation ``(len(class_ids), C)`` (eq. 6).

    Args:
        encoder: Module mapping ``(B, 3, H, W)`` to a list of maps (a
            [`Backbone`][fewzero.models.Backbone]); the last map is pooled.
        image_dir: Folder of ``<name>.jpg``.
        list_file: List file with class pixel counts (``fewzero.data.io``).
        class_ids: Classes to describe, in matrix order.
        size: Images are resized to ``size x size``.
        mean: Input normalisation mean.
        std: Input normalisation std.
        min_pixels: An image counts for a class if the class covers this many pixels.
        max_images: Cap on images per class.
        region: ``"image"`` (global pooling, the paper) or ``"mask"`` (pool inside the class mask).
        mask_dir: Mask folder, needed for ``region="mask"``.
        num_classes: Mask label range (for validation).

    Raises:
        ValueError: if a class has no image.
    """
    check_dir(image_dir, "image_dir")
    check_positive_int("size", size)
    if region not in ("image", "mask"):
        raise ValueError(f"region must be one of ('image', 'mask'), got {region!r}")
    if region == "mask" and mask_dir is None:
        raise ValueError("mask_dir must be given for region='mask', got None")
    entries = read_list(list_file)
    tf = v2.Compose(
        [
            v2.Resize((size, size)),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean), list(std)),
        ]
    )
    out = []
    for c in class_ids:
        names = [n for n, counts in entries if counts.get(c, 0) >= min_pixels][:max_images]
        if not names:
            raise ValueError(
                f"class {c} has no image in {str(list_file)!r} with min_pixels={min_pixels}"
            )
        feats = []
        for name in names:
            img = tf(v2.functional.pil_to_tensor(read_image(Path(image_dir) / f"{name}.jpg")))
            f = encoder(img[None])[-1][0]  # (C, h, w)
            if region == "mask":
                m = torch.from_numpy(
                    read_mask(Path(mask_dir) / f"{name}.png", num_classes) == c
                ).float()
                w = F.interpolate(m[None, None], size=f.shape[-2:], mode="area")[0, 0]
                feats.append((f * w).sum((1, 2)) / w.sum().clamp(min=1e-6))
            else:
                feats.append(f.mean((1, 2)))
        out.append(torch.stack(feats).mean(0))
    return torch.stack(out)


def class_affinity(
    encoder: torch.nn.Module, image_dir, list_file, class_ids: Sequence[int], **kwargs
) -> torch.Tensor:
    """Cosine affinity ``(K, K)`` of [`class_representations`][fewzero.analysis.class_representations] (Fig. 4's vision matrices)."""
    return cosine_affinity(
        class_representations(encoder, image_dir, list_file, class_ids, **kwargs)
    )
