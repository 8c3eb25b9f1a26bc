"""One image reader and one mask reader for the files and arrays a person has.

Used by [`Predictor`][fewzero.predict.Predictor], ``fewzero-segment``, [`FSS1000`][fewzero.data.FSS1000]
and every dataset that reads user files, so a file means the same thing everywhere.

Images ([`read_image`][fewzero.data.readers.read_image], [`to_rgb_array`][fewzero.data.readers.to_rgb_array]): the EXIF orientation is applied
(``PIL.ImageOps.exif_transpose``: a phone photo comes out as it is displayed); 16-bit and 32-bit
grey images are scaled from their full range (``I;16``: ``/ 257``), float images from ``[0, 1]``;
grey, palette, CMYK and alpha images become RGB. A file that is not an image is refused with its
name.

Masks ([`read_binary_mask`][fewzero.data.readers.read_binary_mask], [`to_binary_mask`][fewzero.data.readers.to_binary_mask]) come back as ``int64`` ``(H, W)`` in
``{0, 1, 255}`` (1: the object, 255: ignore), by these rules ([`MASK_RULES`][fewzero.data.readers.MASK_RULES]):

* ``class_id=c`` given: ``c`` is the object, 255 is ignored, every other value is background;
* boolean arrays, mode ``"1"`` images: ``True`` is the object;
* integer values in ``{0, 1}`` or ``{0, 1, 255}``: 1 is the object, 255 ignored (the VOC/docs
  convention: an ignore ring around the object stays ignored);
* integer values in ``{0, 255}`` (or ``{0, 65535}`` for 16-bit): white is the object;
* palette or class-index masks (values besides 0 and 255 all below 128): the one class they
  hold is the object, 255 ignored; several classes need ``class_id=`` (the error lists them);
* other grey values (a soft or anti-aliased mask): the object is ``>= 0.5`` of full scale;
* float arrays: ``{0, 1[, 255]}`` as above, else a soft mask in ``[0, 1]`` thresholded at 0.5
  (values outside ``[0, 1]`` are refused);
* RGB(A) masks: grey when every pixel has ``R = G = B``; otherwise any non-black pixel is the
  object (VOC's void colour ``(224, 224, 192)`` is ignored); with an alpha channel over a
  constant colour, alpha ``>= 128`` is the object, else transparent pixels are background;
* JPEG masks (lossy): thresholded (``>= 128`` of full scale, or ``>= 1`` when the mask never
  reaches 128, a 0/1 JPEG), with a warning to save masks as PNG;
* a colour or JPEG "mask" that looks like a photograph (over a quarter of its pixels mid-tone) is
  refused: the image and mask were probably swapped.

A mask with no object pixel is refused, naming the file (or argument), the values found and the
rule.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..checks import check_file

__all__ = [
    "IMAGE_SUFFIXES",
    "MASK_RULES",
    "ImageLike",
    "MaskLike",
    "read_binary_mask",
    "read_image",
    "read_rgb_class_index",
    "read_rgb_class_mask",
    "to_binary_mask",
    "to_rgb_array",
]

ImageLike = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor
"""What the image reader takes: a path, a PIL image, an ``(H, W, 3)`` array or a ``(3, H, W)`` tensor."""
MaskLike = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor
"""What the mask readers take: a path, a PIL image, an ``(H, W)`` array or tensor."""

IMAGE_SUFFIXES = (".jpg", ".jpeg")
"""Image file suffixes the folder datasets look for (compared case-insensitively)."""

MASK_RULES = (
    "a mask marks the object with 1 ({0, 1} or {0, 1, 255}, 255 = ignore), white ({0, 255}), "
    "its one class index (palette/class-index PNG; pass class_id= when it holds several), "
    "values >= 0.5 of full scale (soft masks), or any non-black colour (RGB)"
)
"""The mask rules in one line, quoted by every error about a mask."""

_VOID_RGB = (224, 224, 192)  # VOC's void/border colour
_PHOTO_SHARE = 0.25  # share of mid-tone pixels above which a colour/JPEG mask is a photo
IGNORE = 255


def _open(path: str | os.PathLike[str], what: str) -> Image.Image:
    path = check_file(path, f"{what} file")
    if path.stat().st_size == 0:
        raise OSError(f"cannot read {what} {str(path)!r}: the file is empty (0 bytes)")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise OSError(
            f"cannot read {what} {str(path)!r}: not an image PIL can decode ({err})"
        ) from err
    fmt = img.format
    out = ImageOps.exif_transpose(img)
    out.format = fmt  # exif_transpose returns a copy without the file format
    return out


def _scaled_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """A grey array of a 16/32-bit or float image scaled to ``uint8`` from its full range."""
    if mode == "F" or np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
        scale = 1.0 if np.nanmax(arr, initial=0) <= 1 else 255.0
        return np.clip(np.round(arr / scale * 255), 0, 255).astype(np.uint8)
    if mode.startswith("I;16") or arr.max(initial=0) > 255:
        return np.clip(np.round(arr.astype(np.float64) / 257.0), 0, 255).astype(np.uint8)
    return np.clip(arr, 0, 255).astype(np.uint8)


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        grey = _scaled_uint8(np.asarray(img), img.mode)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"))


def read_image(path: str | os.PathLike[str], name: str = "image") -> Image.Image:
    """Open an image file as RGB, as displayed (EXIF orientation applied, 16-bit scaled).

    Args:
        path: The file.
        name: How errors name it (an argument, or a command line's flag), with its path.

    Raises:
        FileNotFoundError: naming a missing file.
        OSError: naming a file that is empty or not an image.
    """
    img = _open(path, name)
    if img.mode == "RGB":  # already 8-bit RGB, as displayed: no conversion copy
        return img
    return Image.fromarray(_pil_to_rgb(img))


def to_rgb_array(image: ImageLike, name: str = "image") -> np.ndarray:
    """Any image (path, PIL image, ``(H, W, 3)`` array, ``(3, H, W)`` tensor) as ``uint8 (H, W, 3)``.

    Arrays and tensors are ``uint8``, or float in ``[0, 1]``; a ``(H, W)`` array is grey.

    Raises:
        FileNotFoundError, OSError: for a missing or unreadable file.
        ValueError: naming ``name``, for another type, shape, dtype or value range.
    """
    if isinstance(image, (str, os.PathLike)):
        return np.asarray(read_image(image, name))
    if isinstance(image, Image.Image):
        return _pil_to_rgb(ImageOps.exif_transpose(image))
    if isinstance(image, torch.Tensor):
        if image.dim() != 3 or image.shape[0] != 3:
            raise ValueError(f"{name} tensor must be (3, H, W), got shape {tuple(image.shape)}")
        image = image.detach().cpu().permute(1, 2, 0).numpy()
    if not isinstance(image, np.ndarray):
        raise ValueError(
            f"{name} must be a path, PIL image, numpy array or tensor, got {type(image).__name__}"
        )
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} array must be (H, W, 3), got shape {image.shape}")
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    if np.issubdtype(image.dtype, np.floating):
        if not np.isfinite(image).all():
            raise ValueError(f"{name} must be finite, got NaN/Inf values")
        lo, hi = float(image.min(initial=0)), float(image.max(initial=0))
        if lo < 0 or hi > 1:
            raise ValueError(
                f"a float {name} must lie in [0, 1], got [{lo:.3g}, {hi:.3g}]; pass uint8 or "
                "scale it"
            )
        return np.round(image * 255).astype(np.uint8)
    raise ValueError(f"{name} must be uint8 or float in [0, 1], got dtype {image.dtype}")


def _values(arr: np.ndarray, limit: int = 12) -> str:
    vals = np.unique(arr)
    shown = ", ".join(str(v.item()) for v in vals[:limit])
    return "{" + shown + (", ..." if len(vals) > limit else "") + "}"


def _class_index(arr: np.ndarray, name: str, class_id: int | None) -> np.ndarray:
    """A class-index mask: the one class (or ``class_id``) is the object, 255 ignored."""
    classes = [int(v) for v in np.unique(arr) if v not in (0, IGNORE)]
    if class_id is None:
        if len(classes) > 1:
            raise ValueError(
                f"{name}: a class-index mask holding classes {classes} (values found "
                f"{_values(arr)}); pass class_id= (or --mask-class) to pick the object's class"
            )
        class_id = classes[0] if classes else 1
    out = (arr == class_id).astype(np.int64)
    out[arr == IGNORE] = IGNORE
    return out


def _grey(arr: np.ndarray, name: str, class_id: int | None, lossy: bool) -> np.ndarray:
    """The rules for a single-channel integer mask (``uint8`` or 16-bit)."""
    if arr.dtype != np.uint8:
        if arr.max(initial=0) <= 255 and arr.min(initial=0) >= 0:
            arr = arr.astype(np.uint8)  # a 16-bit file holding 8-bit values (class indices)
        else:
            arr = _scaled_uint8(arr, "I;16")
    if class_id is not None:
        return _class_index(arr, name, class_id)
    if lossy:
        high = arr.max(initial=0) >= 128
        rule = ">= 128" if high else ">= 1 (a 0/1 mask)"
        warnings.warn(
            f"{name} is a JPEG mask (lossy compression changes its values): read as the object "
            f"where the value is {rule}; save masks as PNG",
            stacklevel=3,
        )
        return (arr >= (128 if high else 1)).astype(np.int64)
    values = set(np.unique(arr).tolist())
    if values <= {0, IGNORE} and IGNORE in values:
        return (arr == IGNORE).astype(np.int64)  # white on black
    if all(v < 128 or v == IGNORE for v in values):
        return _class_index(arr, name, None)
    return (arr >= 128).astype(np.int64)  # soft / anti-aliased: >= 0.5 of full scale


def _looks_like_photo(rgb: np.ndarray) -> bool:
    level = rgb.max(axis=2) if rgb.ndim == 3 else rgb
    mid = (level >= 32) & (level <= 223)
    return float(mid.mean()) > _PHOTO_SHARE


def _colour(rgb: np.ndarray, name: str, lossy: bool) -> np.ndarray:
    """The rules for an RGB mask whose channels differ somewhere."""
    if _looks_like_photo(rgb):
        raise ValueError(
            f"{name} looks like a photograph, not a mask ({_PHOTO_SHARE:.0%}+ of its pixels are "
            "mid-tones): were the image and the mask swapped? " + MASK_RULES
        )
    if lossy:
        warnings.warn(
            f"{name} is a JPEG mask (lossy compression changes its values): read as the object "
            "where any channel is >= 128; save masks as PNG",
            stacklevel=3,
        )
        return (rgb.max(axis=2) >= 128).astype(np.int64)
    out = (rgb.max(axis=2) > 0).astype(np.int64)
    out[(rgb == np.asarray(_VOID_RGB, dtype=rgb.dtype)).all(axis=2)] = IGNORE
    return out


def _from_pil(img: Image.Image, name: str, class_id: int | None) -> np.ndarray:
    lossy = (img.format or "").upper() in ("JPEG", "MPO", "WEBP")
    mode = img.mode
    if mode == "1":
        return np.asarray(img).astype(np.int64)
    if mode == "P":
        arr = np.asarray(img)
        if class_id is None and set(np.unique(arr).tolist()) <= {0, IGNORE}:
            return _rgb(np.asarray(img.convert("RGB")), name, None, lossy)  # by colour
        return _class_index(arr, name, class_id)
    if mode in ("L", "I", "I;16", "I;16B", "I;16L", "I;16N"):
        return _grey(np.asarray(img), name, class_id, lossy)
    if mode == "F":
        return _float(np.asarray(img), name)
    if mode in ("LA", "PA"):
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode == "RGBA":
        rgba = np.asarray(img)
        rgb, alpha = rgba[..., :3], rgba[..., 3]
        if (rgb == rgb.reshape(-1, 3)[0]).all():  # one colour: the shape is in the alpha
            return (alpha >= 128).astype(np.int64)
        out = _rgb(rgb, name, class_id, lossy)
        out[alpha < 128] = 0
        return out
    return _rgb(np.asarray(img.convert("RGB")), name, class_id, lossy)


def _rgb(rgb: np.ndarray, name: str, class_id: int | None, lossy: bool) -> np.ndarray:
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        if lossy and _looks_like_photo(rgb[..., 0]):
            raise ValueError(
                f"{name} looks like a photograph, not a mask ({_PHOTO_SHARE:.0%}+ of its pixels "
                "are mid-tones): were the image and the mask swapped? " + MASK_RULES
            )
        return _grey(rgb[..., 0], name, class_id, lossy)
    if class_id is not None:
        raise ValueError(
            f"{name}: class_id={class_id} needs a palette or class-index mask, got a colour "
            "(RGB) mask"
        )
    return _colour(rgb, name, lossy)


def _float(arr: np.ndarray, name: str) -> np.ndarray:
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, got NaN/Inf values")
    values = np.unique(arr)
    if set(values.tolist()) <= {0.0, 1.0, 255.0}:  # integer values: the integer rules
        return _grey(arr.astype(np.uint8), name, None, False)
    lo, hi = float(values[0]), float(values[-1])
    if lo < 0 or hi > 1:
        raise ValueError(
            f"{name}: a float mask must hold {{0, 1, 255}} or be a soft mask in [0, 1] "
            f"(object where >= 0.5), got values in [{lo:.3g}, {hi:.3g}]"
        )
    return (arr >= 0.5).astype(np.int64)


def _decode(mask: MaskLike, name: str, class_id: int | None) -> np.ndarray:
    if isinstance(mask, (str, os.PathLike)):
        return _from_pil(_open(mask, name), f"{name} {str(mask)!r}", class_id)
    if isinstance(mask, Image.Image):
        fmt = mask.format
        img = ImageOps.exif_transpose(mask)
        img.format = fmt
        return _from_pil(img, name, class_id)
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    if not isinstance(mask, np.ndarray):
        raise ValueError(
            f"{name} must be a path, PIL image, numpy array or tensor, got {type(mask).__name__}"
        )
    if mask.ndim == 3 and mask.shape[2] in (3, 4):
        img = Image.fromarray(np.ascontiguousarray(mask.astype(np.uint8)))
        return _from_pil(img, name, class_id)
    if mask.ndim != 2:
        raise ValueError(f"{name} must be (H, W) (or (H, W, 3) colour), got shape {mask.shape}")
    if mask.dtype == np.bool_:
        return mask.astype(np.int64)
    if np.issubdtype(mask.dtype, np.floating):
        if class_id is not None:
            mask = mask.astype(np.int64)
        else:
            return _float(mask, name)
    if mask.min(initial=0) < 0:
        raise ValueError(f"{name} must not hold negative values, got {_values(mask)}")
    if class_id is not None:
        return _class_index(mask.astype(np.int64), name, class_id)
    return _grey(
        mask.astype(np.uint16 if mask.max(initial=0) > 255 else np.uint8), name, None, False
    )


def to_binary_mask(mask: MaskLike, name: str = "mask", class_id: int | None = None) -> torch.Tensor:
    """Any mask (path, PIL image, array, tensor) as ``int64 (H, W)`` in ``{0, 1, 255}``.

    The rules are the module's ([`MASK_RULES`][fewzero.data.readers.MASK_RULES]).

    Args:
        mask: The mask.
        name: How errors name it (a file is named by its path).
        class_id: The object's class in a palette/class-index mask.

    Raises:
        FileNotFoundError, OSError: for a missing or unreadable file.
        ValueError: naming the mask, the values found and the rule, for a mask without an object
            pixel, a class-index mask of several classes without ``class_id``, or a photograph.
    """
    out = _decode(mask, name, class_id)
    if not (out == 1).any():
        label = f"{name} {str(mask)!r}" if isinstance(mask, (str, os.PathLike)) else name
        raise ValueError(
            f"{label} marks no object pixel (values found: {_describe(mask)}"
            + (f", class_id={class_id}" if class_id is not None else "")
            + f"); {MASK_RULES}"
        )
    return torch.from_numpy(np.ascontiguousarray(out))


def _describe(mask: Any) -> str:
    try:
        if isinstance(mask, (str, os.PathLike)):
            with Image.open(mask) as img:
                return f"mode {img.mode}, " + _values(np.asarray(img))
        if isinstance(mask, Image.Image):
            return f"mode {mask.mode}, " + _values(np.asarray(mask))
        return _values(np.asarray(mask.cpu() if isinstance(mask, torch.Tensor) else mask))
    except Exception:  # describing must never hide the real error
        return "unreadable"


def read_binary_mask(path: str | os.PathLike[str], class_id: int | None = None) -> np.ndarray:
    """Read a mask file as ``uint8 (H, W)`` in ``{0, 1, 255}`` by the module's rules.

    Raises:
        FileNotFoundError: naming the missing file.
        OSError: naming a file that cannot be decoded.
        ValueError: naming the file, the values found and the rule (see [`to_binary_mask`][fewzero.data.readers.to_binary_mask]).
    """
    return to_binary_mask(path, class_id=class_id).numpy().astype(np.uint8)


def read_rgb_class_index(
    path: str | os.PathLike[str], palette: dict[tuple[int, int, int], int]
) -> np.ndarray:
    """Read a colour-coded class mask (such as Deepglobe's land cover) as class indices.

    Each channel is cut at 128 (the code's colours are pure: 0 or 255 per channel; the cut
    absorbs compression noise) and the colour mapped through ``palette``.

    Returns:
        ``int64 (H, W)`` class indices.

    Raises:
        FileNotFoundError: naming the missing file.
        ValueError: naming the file and the colours that are not in ``palette``.
    """
    rgb = np.asarray(_open(path, "mask").convert("RGB"))
    between = ((rgb > 64) & (rgb < 192)).any(axis=-1)  # neither 0 nor 255 in some channel
    if between.mean() > 0.01:
        shown = sorted({tuple(int(v) for v in px) for px in rgb[between][:1000]})[:4]
        raise ValueError(
            f"mask {str(path)!r} is not colour-coded: {between.mean():.0%} of its pixels are "
            f"far from the class code {sorted(palette)} (e.g. {shown}); a class-index, "
            "grey-level or resized mask? Use the dataset's original colour masks"
        )
    cut = (rgb >= 128).astype(np.int64)
    codes = (cut[..., 0] << 2) | (cut[..., 1] << 1) | cut[..., 2]
    lut = np.full(8, -1, np.int64)
    for (r, g, b), c in palette.items():
        lut[(int(r >= 128) << 2) | (int(g >= 128) << 1) | int(b >= 128)] = c
    out = lut[codes]
    if (out < 0).any():
        bad = sorted({tuple(255 * int(v) for v in px) for px in cut[out < 0][:1000]})
        raise ValueError(
            f"mask {str(path)!r} has colours {bad} (after cutting each channel at 128) that "
            f"are not in the class code {sorted(palette)}"
        )
    return out


def read_rgb_class_mask(
    path: str | os.PathLike[str], palette: dict[tuple[int, int, int], int], class_id: int
) -> np.ndarray:
    """Read class ``class_id`` of a colour-coded class mask, or a binary mask as it is.

    A colour mask is read by [`read_rgb_class_index`][fewzero.data.readers.read_rgb_class_index]
    and the pixels of ``class_id`` are the object. A grey mask (``R = G = B`` everywhere) is
    already binary and is read by the module's rules
    ([`read_binary_mask`][fewzero.data.readers.read_binary_mask]).

    Returns:
        ``uint8 (H, W)`` in ``{0, 1}`` (``{0, 1, 255}`` for a grey mask with an ignore value).

    Raises:
        FileNotFoundError: naming the missing file.
        ValueError: naming the file and the colours that are not in ``palette``.
    """
    img = _open(path, "mask")
    if img.mode in ("RGB", "RGBA", "P"):
        rgb = np.asarray(img.convert("RGB"))
        if not ((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()):
            return (read_rgb_class_index(path, palette) == class_id).astype(np.uint8)
    return read_binary_mask(path)
