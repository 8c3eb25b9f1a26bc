"""Image, mask and list-file I/O shared by the datasets, the prepare command and the toy data.

List files (``lists/<split>.txt``) hold one image per line with its class pixel counts::

    2007_000033 1:10234 15:2211

so that datasets build their (image, class) pairs without decoding every mask.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from ..checks import check_file
from ..files import make_parent
from .classes import IGNORE_INDEX
from .readers import read_image

__all__ = [
    "class_pixel_counts",
    "label_values",
    "read_image",
    "read_list",
    "read_mask",
    "read_mask_array",
    "write_list",
    "write_mask",
]

Entry = tuple[str, dict[int, int]]


def read_mask_array(path: str | os.PathLike[str], mode: str | None = None) -> np.ndarray:
    """Decode a mask image (optionally converted to PIL ``mode``) as an array.

    Raises:
        FileNotFoundError: if the file is missing.
        OSError: naming a file that cannot be decoded.
    """
    path = check_file(path, "mask file")
    try:
        with Image.open(path) as img:
            return np.array(img if mode is None else img.convert(mode))
    except OSError as err:
        raise OSError(f"cannot read mask {str(path)!r}: {err}") from err


def read_mask(path: str | os.PathLike[str], num_classes: int) -> np.ndarray:
    """Read a class-index mask (PNG, palette or grey) as ``uint8 (H, W)``.

    Values must lie in ``{0, ..., num_classes, 255}``.

    Raises:
        FileNotFoundError: if the file is missing.
        ValueError: naming the file and the offending values.
    """
    path = Path(path)
    mask = read_mask_array(path)
    if mask.ndim != 2:
        raise ValueError(f"mask {str(path)!r} must be single-channel, got shape {mask.shape}")
    values = label_values(mask)
    bad = values[(values > num_classes) & (values != IGNORE_INDEX)]
    if bad.size:
        raise ValueError(
            f"mask {str(path)!r} has labels outside {{0..{num_classes}, 255}}: {bad.tolist()}"
        )
    return mask.astype(np.uint8)


_PALETTE = None


def _voc_palette() -> list[int]:
    global _PALETTE
    if _PALETTE is None:
        pal = []
        for i in range(256):
            r = g = b = 0
            c = i
            for j in range(8):
                r |= ((c >> 0) & 1) << (7 - j)
                g |= ((c >> 1) & 1) << (7 - j)
                b |= ((c >> 2) & 1) << (7 - j)
                c >>= 3
            pal += [r, g, b]
        _PALETTE = pal
    return _PALETTE


def write_mask(path: str | os.PathLike[str], mask: np.ndarray) -> None:
    """Write a ``uint8`` class-index mask as a VOC-palette PNG, atomically."""
    path = make_parent(path)
    img = Image.fromarray(mask.astype(np.uint8), mode="P")
    img.putpalette(_voc_palette())
    tmp = path.with_suffix(".tmp.png")
    img.save(tmp)
    os.replace(tmp, path)


def check_label_array(mask: object, name: str = "mask") -> np.ndarray:
    """``mask`` as an array if it is a 2-D map of non-negative integer labels; else raise naming ``name``.

    Raises:
        ValueError: for another rank, a float or bool map, or a negative label.
    """
    arr = np.asarray(mask)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"{name} must be a 2-D map of integer labels (H, W), got shape {arr.shape} of "
            f"{arr.dtype}; read masks with fewzero.data.read_mask"
        )
    if arr.size and not np.issubdtype(arr.dtype, np.unsignedinteger) and arr.min() < 0:
        raise ValueError(f"{name} must hold labels >= 0, got {int(arr.min())}")
    return arr


def label_values(mask: np.ndarray) -> np.ndarray:
    """The distinct labels of ``mask``, sorted (``np.unique``; one counting pass for ``uint8``)."""
    if mask.dtype == np.uint8:
        return np.flatnonzero(np.bincount(mask.ravel(), minlength=256)).astype(np.uint8)
    return np.unique(mask)


def class_pixel_counts(mask: np.ndarray) -> dict[int, int]:
    """Pixel count of every class id present in ``mask`` (background 0 and 255 excluded)."""
    mask = check_label_array(mask)
    values, counts = np.unique(mask, return_counts=True)
    return {int(v): int(n) for v, n in zip(values, counts) if v not in (0, IGNORE_INDEX)}


def write_list(path: str | os.PathLike[str], entries: Iterable[Entry]) -> None:
    """Write a list file (``name c:count ...`` per line), atomically."""
    path = make_parent(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        for name, counts in entries:
            f.write(" ".join([name] + [f"{c}:{n}" for c, n in sorted(counts.items())]) + "\n")
    os.replace(tmp, path)


def read_list(path: str | os.PathLike[str]) -> list[Entry]:
    """Read a list file written by [`write_list`][fewzero.data.write_list].

    Raises:
        FileNotFoundError: naming a missing path, or a folder given for the file.
        ValueError: naming the line that is not ``name class:pixels ...``.
    """
    entries: list[Entry] = []
    check_file(path, "list file")
    with open(path, errors="replace") as f:
        for line_no, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                counts: Mapping[int, int] = {
                    int(c): int(n) for c, n in (p.split(":") for p in parts[1:])
                }
            except ValueError as err:
                raise ValueError(
                    f"{path}:{line_no}: malformed list entry {line.strip()[:60]!r} (a list file "
                    "holds 'name class:pixels ...' lines; prepare it with fewzero.data.prepare)"
                ) from err
            entries.append((parts[0], dict(counts)))
    return entries
