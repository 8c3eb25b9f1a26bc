"""A user's images and masks, in any supported form, to the tensors a model reads."""

from __future__ import annotations

import numpy as np
import torch

from ..data.readers import ImageLike, MaskLike, to_binary_mask, to_rgb_array
from ..models.base import check_finite

__all__ = ["check_has_background", "to_image_tensor", "to_mask_tensor"]


def to_image_tensor(image: ImageLike, name: str = "image") -> torch.Tensor:
    """Any supported image to a float ``(3, H, W)`` tensor in ``[0, 1]``.

    Files and PIL images are read by [`fewzero.data.to_rgb_array`][fewzero.data.readers.to_rgb_array] (EXIF orientation
    applied, 16-bit scaled); float arrays and tensors keep their values.

    Raises:
        FileNotFoundError, OSError: naming a missing or unreadable file.
        ValueError: naming ``name``, for an unsupported type, shape or value range.
    """
    if isinstance(image, np.ndarray) and np.issubdtype(image.dtype, np.floating):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{name} array must be (H, W, 3), got shape {image.shape}")
        image = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)
    if isinstance(image, torch.Tensor) and image.is_floating_point():
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"{name} tensor must be (3, H, W), got shape {tuple(image.shape)}")
        check_finite(image, name)
        if image.min() < 0 or image.max() > 1:
            raise ValueError(
                f"a float {name} must lie in [0, 1], got [{float(image.min()):.3g}, "
                f"{float(image.max()):.3g}]; pass uint8 or scale it"
            )
        return image.float()
    if isinstance(image, torch.Tensor) and image.dtype != torch.uint8:
        raise ValueError(f"{name} must be uint8 or float in [0, 1], got dtype {image.dtype}")
    rgb = to_rgb_array(image, name)
    return torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1).float() / 255.0


def to_mask_tensor(mask: MaskLike, name: str = "mask", class_id: int | None = None) -> torch.Tensor:
    """Any supported mask to an int64 ``(H, W)`` tensor in ``{0, 1, 255}``.

    The rules are [`fewzero.data.to_binary_mask`][fewzero.data.readers.to_binary_mask]'s.

    Raises:
        FileNotFoundError, OSError: naming a missing or unreadable file.
        ValueError: naming the mask, the values found and the rule.
    """
    return to_binary_mask(mask, name=name, class_id=class_id)


def check_has_background(mask: torch.Tensor, name: str, allow: str) -> None:
    """Raise ``ValueError`` if ``mask`` marks every pixel as the object (no 0 pixel).

    A support with no background gives the comparisons nothing to tell the object from, and the
    whole query comes back as the object. ``allow`` names the switch that accepts it anyway.
    """
    if not (mask == 0).any():
        raise ValueError(
            f"{name} marks every pixel as the object ({int((mask == 1).sum())} object, "
            f"{int((mask == 255).sum())} ignored, no background pixel): a support must show "
            f"some background to compare with; mark the object only, or pass {allow} to use it "
            "as it is"
        )
