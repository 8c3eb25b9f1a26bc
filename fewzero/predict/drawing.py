"""Drawing a prediction: masks, label maps and overlays as PNG files.

Examples:
    >>> import numpy as np
    >>> rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    >>> tint(rgb, np.array([[1, 0], [0, 0]]), color=(200, 0, 0), alpha=0.5)[0, 0].tolist()
    [100, 0, 0]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..checks import check_numbers
from ..data.readers import ImageLike
from ..files import make_parent, replace_atomically
from .inputs import to_image_tensor

__all__ = [
    "LABEL_COLORS",
    "save_label_overlay",
    "save_labels",
    "save_mask",
    "save_overlay",
    "tint",
]

LABEL_COLORS: tuple[tuple[int, int, int], ...] = (
    (230, 40, 40), (40, 120, 230), (40, 190, 70), (240, 190, 20), (170, 60, 200),
    (20, 200, 200), (250, 120, 30), (140, 90, 40),
)  # fmt: skip
"""Tint of label ``i`` (1-based) in label overlays: ``LABEL_COLORS[(i - 1) % len]``."""


def save_image(image: Image.Image, path: str | os.PathLike[str], name: str = "path") -> Path:
    """Write ``image`` to ``path`` atomically, in the format its extension names.

    Raises:
        ValueError: naming ``name`` for an extension that is no image format.
        IsADirectoryError, NotADirectoryError: naming ``name`` for a folder, or a file where a
            folder must be ([make_parent][fewzero.files.make_parent]).
    """
    path = Path(path)
    formats = Image.registered_extensions()
    if path.suffix.lower() not in formats:
        raise ValueError(
            f"{name} {str(path)!r} must end in an image extension such as .png or .jpg, got "
            f"{path.suffix or 'none'!r}"
        )
    make_parent(path, name)
    fmt = formats[path.suffix.lower()]
    return replace_atomically(path, lambda tmp: image.save(tmp, format=fmt), name)


def save_mask(mask: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write a ``{0, 1}`` mask as a black/white PNG; returns the path."""
    return save_image(Image.fromarray((np.asarray(mask) > 0).astype(np.uint8) * 255), path)


def tint(
    rgb: np.ndarray,
    mask: np.ndarray,
    color: tuple[int, int, int] = (255, 40, 40),
    alpha: float = 0.55,
) -> np.ndarray:
    """``rgb (H, W, 3)`` uint8 with the pixels where ``mask == 1`` tinted ``color``.

    Raises:
        ValueError: for a mask of another size than the image, or ``alpha`` outside [0, 1].
    """
    check_numbers("tint", {"alpha": "unit_interval"}, {"alpha": alpha})
    fg = np.asarray(mask) == 1
    if fg.shape != rgb.shape[:2]:
        raise ValueError(f"mask must have the image's size {rgb.shape[:2]}, got {fg.shape}")
    out = rgb.astype(np.float32).copy()
    out[fg] = (1 - alpha) * out[fg] + alpha * np.asarray(color, dtype=np.float32)
    return out.round().clip(0, 255).astype(np.uint8)


def save_overlay(
    image: ImageLike,
    mask: np.ndarray,
    path: str | os.PathLike[str],
    color: tuple[int, int, int] = (255, 40, 40),
    alpha: float = 0.55,
) -> Path:
    """Write the image with the mask's pixels tinted ``color`` as a PNG; returns the path."""
    rgb = (to_image_tensor(image).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    out = tint(rgb, (np.asarray(mask) > 0).astype(np.uint8), color, alpha)
    return save_image(Image.fromarray(out), path)


def save_labels(labels: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write a label map (0 background, ``i`` class ``i``) as a palette PNG; returns the path.

    The pixel values are the labels (read back with ``numpy.asarray(Image.open(path))``); the
    palette shows them in [`LABEL_COLORS`][fewzero.predict.LABEL_COLORS] (black background).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.min() < 0 or labels.max() > 255:
        raise ValueError(f"labels must be (H, W) in 0..255, got shape {labels.shape}")
    img = Image.fromarray(labels.astype(np.uint8), mode="P")
    palette = [0, 0, 0] + [v for i in range(255) for v in LABEL_COLORS[i % len(LABEL_COLORS)]]
    img.putpalette(palette)
    return save_image(img, path)


def save_label_overlay(
    image: ImageLike,
    labels: np.ndarray,
    names: Sequence[str],
    path: str | os.PathLike[str],
    alpha: float = 0.55,
) -> Path:
    """Write the image with label ``i`` tinted in its colour and a legend of ``names``."""
    from PIL import ImageDraw

    check_numbers("save_label_overlay", {"alpha": "unit_interval"}, {"alpha": alpha})
    rgb = (to_image_tensor(image).permute(1, 2, 0).numpy() * 255).astype(np.float32)
    labels = np.asarray(labels)
    if labels.shape != rgb.shape[:2]:
        raise ValueError(f"labels must have the image's size {rgb.shape[:2]}, got {labels.shape}")
    for i in range(1, len(names) + 1):
        sel = labels == i
        color = np.asarray(LABEL_COLORS[(i - 1) % len(LABEL_COLORS)], dtype=np.float32)
        rgb[sel] = (1 - alpha) * rgb[sel] + alpha * color
    canvas = Image.fromarray(rgb.round().clip(0, 255).astype(np.uint8))
    row = 14
    legend = Image.new("RGB", (canvas.width, row * len(names) + 4), (255, 255, 255))
    draw = ImageDraw.Draw(legend)
    for i, name in enumerate(names):
        y = 2 + row * i
        draw.rectangle([4, y + 2, 14, y + 12], fill=LABEL_COLORS[i % len(LABEL_COLORS)])
        draw.text((20, y), f"{i + 1}: {name}", fill=(0, 0, 0))
    out = Image.new("RGB", (canvas.width, canvas.height + legend.height), (255, 255, 255))
    out.paste(canvas, (0, 0))
    out.paste(legend, (0, canvas.height))
    return save_image(out, path)
