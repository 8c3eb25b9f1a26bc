"""Segment your own images: a predictor over a model or a checkpoint, and ``fewzero-segment``.

Three lines from a checkpoint and an image file to a mask::

    from fewzero.predict import Predictor
    predictor = Predictor("runs/toy/sm_vcenet_efficientnet_lite0/checkpoint_last.pt")
    mask = predictor("photo.jpg")  # (H, W) uint8 in {0, 1} at the photo's own size

Few-shot models take the support set as ``(image, mask)`` pairs:
``predictor("query.jpg", support=[("s1.jpg", "s1.png"), ...])``. Several classes at once (N-way)
take a dictionary of support sets and give a label map (0 background, ``i`` the i-th class in
the dictionary's order): ``predictor("query.jpg", support={"cat": [...], "dog": [...]})``. A model
that needs no training (``create_model("prototype_efficientnet_lite0", pretrained=True)``) can be
passed instead of a checkpoint.

Images may be paths, PIL images, ``(H, W, 3)`` numpy arrays (uint8, or float in [0, 1]) or
``(3, H, W)`` tensors (uint8, or float in [0, 1]); files are read as displayed (EXIF orientation
applied, 16-bit scaled: [`fewzero.data.read_image`][fewzero.data.readers.read_image]). Masks may be paths, PIL images, arrays
or tensors, read by [`fewzero.data.to_binary_mask`][fewzero.data.readers.to_binary_mask]'s rules (1 or white is the object, 255 in
a 0/1 mask is ignored, a palette mask's one class, soft masks at 0.5, any non-black colour); a
mask that marks nothing, or a photograph given as a mask, is refused by name. The predictor
resizes to the model's test size, normalises with the backbone's own mean/std (timm
``pretrained_cfg``) and returns the mask at the image's original size. It runs on CUDA when
one is available (``device=`` overrides).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .checks import check_writable, positive_int, resolve_device
from .data.readers import ImageLike, MaskLike, to_binary_mask, to_rgb_array
from .fitted_support import FittedSupport
from .models import create_model, load_trained_model
from .models.base import SegmentationModel, check_finite
from .models.feature_cache import cached_features
from .models.nway import nway_scores

__all__ = [
    "LABEL_COLORS",
    "FittedSupport",
    "Predictor",
    "check_has_background",
    "main",
    "save_label_overlay",
    "save_labels",
    "save_mask",
    "save_overlay",
    "tint",
    "to_image_tensor",
    "to_mask_tensor",
]

SupportSet = Sequence[tuple[ImageLike, MaskLike]]

LABEL_COLORS: tuple[tuple[int, int, int], ...] = (
    (230, 40, 40), (40, 120, 230), (40, 190, 70), (240, 190, 20), (170, 60, 200),
    (20, 200, 200), (250, 120, 30), (140, 90, 40),
)  # fmt: skip
"""Tint of label ``i`` (1-based) in label overlays: ``LABEL_COLORS[(i - 1) % len]``."""


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


def _check_cli_inputs(model: SegmentationModel, support: bool, class_id: int | None) -> None:
    """The model's needs in fewzero-segment's words (flags), before it runs."""
    arch = model.config.get("arch", type(model).__name__)
    if model.requires_support and not support:
        raise ValueError(
            f"the few-shot model {arch!r} segments the class its support shows: give "
            "--support IMAGE MASK (once per shot), or --support-class NAME IMAGE MASK per class"
        )
    if support and not model.accepts_support:
        raise ValueError(
            f"--support and --support-class do not apply to the zero-shot model {arch!r} (it "
            "segments what it learned from the query alone): drop them, or give a few-shot "
            "--checkpoint"
        )
    if model.requires_class_ids and class_id is None:
        raise ValueError(f"the model {arch!r} segments a class by its id: give --class-id N")
    if class_id is not None and not model.requires_class_ids:
        raise ValueError(f"--class-id does not apply to the model {arch!r}: drop it")


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


class Predictor:
    """Predict masks of new images with a trained model.

    Args:
        model: A [`SegmentationModel`][fewzero.models.SegmentationModel] or a training checkpoint path.
        device: Where the model runs (default: ``"cuda"`` when available, else ``"cpu"``).
        size: Side the images are resized to (default: the checkpoint's training crop, else 321).
        allow_full_masks: Accept a support mask that marks every pixel as the object. Refused by
            default, as an empty one is: the few-shot models compare the query with the
            support's background too, and such a mask gives none.
        presence_threshold: A class whose presence score
            ([presence][fewzero.predict.Predictor.presence]: the share of the image it wins,
            weighted by its probability there) is below this is absent: its mask comes back
            empty. The default, 0.001, empties masks of less than about a thousandth of the
            image (scattered false positives); 0 keeps every predicted pixel.

    Raises:
        FileNotFoundError, ValueError: for a checkpoint that is missing, not fewzero's or holds
            non-finite weights (the message names the file), or a device this machine lacks.

    Examples:
        >>> import numpy as np
        >>> from fewzero.models import create_model
        >>> model = create_model("sm_vcenet", backbone="resnet18")
        >>> predictor = Predictor(model, device="cpu", size=65)
        >>> predictor(np.zeros((40, 50, 3), dtype=np.uint8)).shape
        (40, 50)
    """

    def __init__(
        self,
        model: SegmentationModel | str | os.PathLike[str],
        device: str | torch.device | None = None,
        size: int | None = None,
        allow_full_masks: bool = False,
        presence_threshold: float = 0.001,
    ) -> None:
        self.device = resolve_device(device)
        self.allow_full_masks = bool(allow_full_masks)
        if isinstance(presence_threshold, bool) or not 0.0 <= float(presence_threshold) < 1.0:
            raise ValueError(
                f"presence_threshold must be in [0, 1) (a share of the image), got "
                f"{presence_threshold!r}"
            )
        self.presence_threshold = float(presence_threshold)
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError(f"size must be a positive int (the test side), got {size!r}")
        train_size = None
        if isinstance(model, (str, os.PathLike)):
            model, cfg = load_trained_model(model, device=self.device)
            train_size = cfg.get("crop_size")
        if not isinstance(model, SegmentationModel):
            raise ValueError(
                f"model must be a fewzero SegmentationModel or a checkpoint path, got "
                f"{type(model).__name__}"
            )
        self.model = model.to(self.device).eval()
        self.size = int(size if size is not None else (train_size or 321))
        if self.size < self.model.min_input_size:
            raise ValueError(
                f"size must be >= {self.model.min_input_size} for this backbone, got {self.size}"
            )
        self.mean = torch.tensor(model.encoder.mean).view(3, 1, 1)
        self.std = torch.tensor(model.encoder.std).view(3, 1, 1)

    def preprocess(
        self, image: ImageLike, name: str = "image"
    ) -> tuple[torch.Tensor, tuple[int, int]]:
        """Return the normalised, resized ``(3, size, size)`` image and the original ``(H, W)``."""
        x = to_image_tensor(image, name)
        h, w = x.shape[-2:]
        x = F.interpolate(
            x[None],
            size=(self.size, self.size),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )[0]
        return (x - self.mean) / self.std, (int(h), int(w))

    def _support(
        self, support: Sequence[tuple[ImageLike, MaskLike]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        images, masks = [], []
        for i, pair in enumerate(support):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(
                    f"support[{i}] must be an (image, mask) pair, got {type(pair).__name__}"
                )
            image, mask = pair
            x, (h, w) = self.preprocess(image, _label(image, f"support[{i}] image"))
            label = _label(mask, f"support[{i}] mask")
            m = to_mask_tensor(mask, name=label)
            count = int((m == 1).sum())
            if not self.allow_full_masks:
                check_has_background(m, label, "allow_full_masks=True")
            if tuple(m.shape) != (h, w):
                raise ValueError(
                    f"support[{i}]: mask must have the image's size {(h, w)}, got "
                    f"{tuple(m.shape)} ({label})"
                )
            m = F.interpolate(m[None, None].float(), size=(self.size, self.size), mode="nearest")
            m = m[0, 0].long()
            if not (m == 1).any():
                raise ValueError(
                    f"{label}: its {count} object "
                    f"pixel(s) vanish when resized from {(h, w)} to the model's "
                    f"{self.size}x{self.size}: crop the support closer around the object or "
                    "pass a larger size"
                )
            images.append(x)
            masks.append(m)
        return torch.stack(images)[None], torch.stack(masks)[None]

    def fit(self, support: SupportSet | Mapping[str, SupportSet]) -> FittedSupport:
        """Read, check and resize a support set once, for many queries.

        Args:
            support: ``(image, mask)`` pairs of one class, or ``{class name: pairs}``.

        Returns:
            A [FittedSupport][fewzero.fitted_support.FittedSupport] to pass as ``support=``; the
            backbone's features of its images are computed by the first query and reused by
            every later one. ``fitted.save(path)`` keeps it; ``load_support(path)`` reads it.

        Examples:
            >>> import numpy as np
            >>> from fewzero.models import create_model
            >>> predictor = Predictor(create_model("prototype", backbone="resnet18"), size=64)
            >>> mask = np.zeros((40, 50), dtype=bool)
            >>> mask[10:30, 10:40] = True
            >>> photo = np.zeros((40, 50, 3), dtype=np.uint8)
            >>> fitted = predictor.fit([(photo, mask)])
            >>> predictor(photo, support=fitted).shape
            (40, 50)
        """
        if isinstance(support, Mapping):
            sets = {str(k): self._named_support(k, v) for k, v in support.items()}
            if not sets:
                raise ValueError("support must name at least one class, got an empty dictionary")
            fitted = FittedSupport(
                {k: (v[0][0], v[1][0]) for k, v in sets.items()}, self.size, True
            )
        else:
            images, masks = self._support(support)
            fitted = FittedSupport({"foreground": (images[0], masks[0])}, self.size, False)
        return fitted

    def _named_support(self, name: Any, pairs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """One class's support set of a dictionary; its errors name the class."""
        try:
            return self._support(_pairs(name, pairs))
        except ValueError as err:
            raise ValueError(f"support[{name!r}]: {err}") from err

    def load_support(self, path: str | os.PathLike[str]) -> FittedSupport:
        """Read a support set saved by ``FittedSupport.save``, for this predictor's size.

        Raises:
            ValueError: for a file of another format or a support fitted at another size.
        """
        fitted = FittedSupport.read(path)
        self._check_fitted(fitted)
        return fitted

    def _check_fitted(self, fitted: FittedSupport) -> None:
        if fitted.size != self.size:
            raise ValueError(
                f"support was fitted at size {fitted.size}, this predictor resizes to "
                f"{self.size}: fit it again with this predictor (or pass size={fitted.size})"
            )

    @torch.no_grad()
    def probabilities(
        self,
        image: ImageLike,
        support: SupportSet | Mapping[str, SupportSet] | FittedSupport | None = None,
        class_id: int | None = None,
    ) -> torch.Tensor:
        """Class probabilities ``(num_classes, H, W)`` at the image's original size.

        With a dictionary of N support sets (or a support fitted from one): ``(N + 1, H, W)``
        scores, channel 0 background and channel ``i`` the i-th class's foreground probability
        ([`nway_scores`][fewzero.models.nway_scores]).
        """
        x, size = self.preprocess(image)
        if isinstance(support, FittedSupport):
            self._check_fitted(support)
            sets = list(support.sets.values())
            with cached_features(self.model, support.cache, exact=False):
                if support.named:
                    return self._nway(x, size, [(i[None], m[None]) for i, m in sets])
                return self._one(x, size, (sets[0][0][None], sets[0][1][None]), class_id)
        if isinstance(support, Mapping):
            if not support:
                raise ValueError("support must name at least one class, got an empty dictionary")
            return self._nway(x, size, [self._named_support(k, v) for k, v in support.items()])
        return self._one(x, size, self._support(support) if support else None, class_id)

    def _one(
        self,
        x: torch.Tensor,
        size: tuple[int, int],
        support: tuple[torch.Tensor, torch.Tensor] | None,
        class_id: int | None,
    ) -> torch.Tensor:
        kwargs: dict[str, Any] = {}
        if support is not None:
            kwargs.update(
                support_images=support[0].to(self.device), support_masks=support[1].to(self.device)
            )
        if class_id is not None:
            kwargs["class_ids"] = torch.tensor([class_id], device=self.device)
        logits = self.model(x[None].to(self.device), **kwargs).float()
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits.softmax(dim=1)[0].cpu()

    def _nway(
        self,
        x: torch.Tensor,
        size: tuple[int, int],
        sets: Sequence[tuple[torch.Tensor, torch.Tensor]],
    ) -> torch.Tensor:
        # each class with its own shots, merged by the model's rule (never padded)
        scores = nway_scores(
            self.model,
            x[None].to(self.device),
            [s[0].to(self.device) for s in sets],
            [s[1].to(self.device) for s in sets],
        )
        return F.interpolate(scores, size=size, mode="bilinear", align_corners=False)[0].cpu()

    def presence(
        self,
        image: ImageLike,
        support: SupportSet | Mapping[str, SupportSet] | FittedSupport | None = None,
        class_id: int | None = None,
    ) -> dict[str, float]:
        """Presence score of each class in ``image``.

        The share of the image the class wins, weighted by its probability there (0: nowhere;
        a class that wins half the image at probability 0.9: 0.45).

        Returns:
            ``{class name: score}`` (``"foreground"`` for one support set or a zero-shot model).
            Below ``presence_threshold`` the class counts as absent and ``__call__`` gives it
            no pixel.
        """
        probs = self.probabilities(image, support, class_id)
        return dict(zip(_class_names(support), _presence(probs).tolist()))

    def __call__(
        self,
        image: ImageLike,
        support: SupportSet | Mapping[str, SupportSet] | FittedSupport | None = None,
        class_id: int | None = None,
    ) -> np.ndarray:
        """Predicted mask ``(H, W)`` uint8 (1 = the class) at the image's original size.

        Args:
            image: The image to segment.
            support: ``(image, mask)`` pairs of the class, for few-shot models; or a dictionary
                ``{class name: pairs}`` of several classes, which gives a label map (0
                background, ``i`` the i-th class in the dictionary's order); or a support
                fitted once with [fit][fewzero.predict.Predictor.fit]. A class whose presence
                score is below ``presence_threshold`` gets no pixel.
            class_id: The class id, for word-conditioned models (SPNet, ZSVM).
        """
        probs = self.probabilities(image, support, class_id)
        labels = probs.argmax(0)
        for c, score in enumerate(_presence(probs).tolist(), start=1):
            if score < self.presence_threshold:  # absent: no pixel of it
                labels[labels == c] = 0
        return labels.numpy().astype(np.uint8)


def _pairs(name: Any, pairs: Any) -> SupportSet:
    """A class's pairs (one ``(image, mask)`` pair given without a list is one shot)."""
    if isinstance(pairs, tuple) and len(pairs) == 2 and not isinstance(pairs[0], tuple):
        pairs = [pairs]
    if not pairs:
        raise ValueError("it must hold at least one (image, mask) pair")
    return pairs


def _presence(probs: torch.Tensor) -> torch.Tensor:
    """Each class's presence score from ``(C + 1, H, W)`` probabilities (channel 0 background)."""
    winner = probs.argmax(0)
    classes = torch.arange(1, probs.shape[0])[:, None, None]
    return (probs[1:] * (winner[None] == classes)).flatten(1).mean(1)


def _class_names(support: Any) -> list[str]:
    if isinstance(support, FittedSupport):
        return support.classes
    if isinstance(support, Mapping):
        return [str(k) for k in support]
    return ["foreground"]


def _label(value: Any, fallback: str) -> str:
    """How an error names an input: its path, or its place in the call."""
    return repr(str(value)) if isinstance(value, (str, os.PathLike)) else fallback


def save_mask(mask: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write a ``{0, 1}`` mask as a black/white PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.asarray(mask) > 0).astype(np.uint8) * 255).save(path)
    return path


def tint(
    rgb: np.ndarray,
    mask: np.ndarray,
    color: tuple[int, int, int] = (255, 40, 40),
    alpha: float = 0.55,
) -> np.ndarray:
    """``rgb (H, W, 3)`` uint8 with the pixels where ``mask == 1`` tinted ``color``.

    Raises:
        ValueError: for a mask of another size than the image.
    """
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(out).save(path)
    return path


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def save_label_overlay(
    image: ImageLike,
    labels: np.ndarray,
    names: Sequence[str],
    path: str | os.PathLike[str],
    alpha: float = 0.55,
) -> Path:
    """Write the image with label ``i`` tinted in its colour and a legend of ``names``."""
    from PIL import ImageDraw

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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out.save(path)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``fewzero-segment``: write the mask (or label map) and overlay of one image."""
    p = argparse.ArgumentParser(
        prog="fewzero-segment",
        description="Segment an image with a trained fewzero checkpoint, or with a model that "
        "needs no training (--model prototype_efficientnet_lite0): zero-shot, few-shot with "
        "--support IMAGE MASK pairs (writes mask.png, overlay.png), or several classes at once "
        "with --support-class NAME IMAGE MASK (writes labels.png, a palette label map with 0 = "
        "background and i = the i-th class named, and overlay.png with a legend).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="training checkpoint (checkpoint_last.pt)")
    src.add_argument(
        "--model",
        help="a registered model built with its ImageNet backbone weights and used untrained "
        "(the training-free prototype_efficientnet_lite0)",
    )
    p.add_argument("--query", required=True, help="image to segment")
    p.add_argument(
        "--support",
        nargs=2,
        action="append",
        metavar=("IMAGE", "MASK"),
        default=None,
        help="a support image and its mask (repeat for K shots; few-shot models)",
    )
    p.add_argument(
        "--support-class",
        nargs=3,
        action="append",
        metavar=("NAME", "IMAGE", "MASK"),
        default=None,
        help="a support image and mask of class NAME (repeat for shots and classes; N-way)",
    )
    p.add_argument("--class-id", type=int, default=None, help="class id (SPNet/ZSVM models)")
    p.add_argument(
        "--mask-class",
        type=positive_int,
        default=None,
        help="the object's class index in palette/class-index masks that hold several classes",
    )
    p.add_argument("--size", type=positive_int, default=None,
                   help="test size (default: training crop)")  # fmt: skip
    p.add_argument("--device", default=None,
                   help="torch device (default: cuda when available, else cpu)")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("segment"), help="output folder")
    p.add_argument(
        "--overwrite", action="store_true", help="replace mask/labels/overlay files in --out"
    )
    p.add_argument(
        "--allow-full-mask",
        action="store_true",
        help="accept a support mask that marks every pixel (refused by default: no background)",
    )
    args = p.parse_args(argv)
    if args.support and args.support_class:
        p.error("--support and --support-class cannot be combined: give every class by name")
    if args.out.exists() and not args.out.is_dir():
        p.error(f"--out must be a folder, got the existing file {str(args.out)!r}")
    written = ("labels.png" if args.support_class else "mask.png", "overlay.png")
    clash = [n for n in written if (args.out / n).exists()]
    if clash and not args.overwrite:
        p.error(
            f"--out {str(args.out)!r} already holds {', '.join(clash)}: pass --overwrite to "
            "replace them, or choose another folder"
        )
    try:
        device = resolve_device(args.device, name="--device")
    except ValueError as err:
        p.error(str(err))
    pairs = [("", *pair) for pair in (args.support if args.support is not None else [])]
    pairs += list(args.support_class if args.support_class is not None else [])
    try:  # every input file is read (once) before the model is loaded
        query = to_image_tensor(args.query, f"--query {args.query!r}")
        images = [to_image_tensor(image, f"--support image {image!r}") for _, image, _ in pairs]
        masks = [to_mask_tensor(m, class_id=args.mask_class) for _, _, m in pairs]
        for (_, _, path), m in zip(pairs, masks):
            if not args.allow_full_mask:
                check_has_background(m, f"--support mask {path!r}", "--allow-full-mask")
        check_writable(args.out, "--out")  # before the model runs: the masks are never lost
    except (FileNotFoundError, OSError, ValueError) as err:
        p.exit(2, f"fewzero-segment: error: {err}\n")
    try:
        if args.model is not None:
            model = create_model(args.model, pretrained=True)
            if any(q.requires_grad for q in model.parameters()):
                raise ValueError(
                    f"--model {args.model!r} has trainable weights that were never trained; pass "
                    "its --checkpoint (models usable untrained: prototype_*)"
                )
            predictor = Predictor(model, device=device, size=args.size, allow_full_masks=True)
        else:
            predictor = Predictor(
                args.checkpoint, device=device, size=args.size, allow_full_masks=True
            )
        _check_cli_inputs(predictor.model, bool(pairs), args.class_id)
        if args.support_class:
            by_class: dict[str, list[tuple[Any, Any]]] = {}
            for (name, _, _), image, m in zip(pairs, images, masks):
                by_class.setdefault(name, []).append((image, m))
            labels = predictor(query, support=by_class)
        else:
            support = list(zip(images, masks)) or None
            mask = predictor(query, support=support, class_id=args.class_id)
    except (FileNotFoundError, OSError, ValueError, RuntimeError) as err:
        p.exit(2, f"fewzero-segment: error: {err}\n")
    if args.support_class:
        names = list(by_class)
        save_labels(labels, args.out / "labels.png")
        save_label_overlay(query, labels, names, args.out / "overlay.png")
        counts = ", ".join(f"{n}: {int((labels == i + 1).sum())}" for i, n in enumerate(names))
        print(
            f"pixels per class ({counts}) of {labels.size}; wrote {args.out}/labels.png, overlay.png"
        )
        return 0
    save_mask(mask, args.out / "mask.png")
    save_overlay(query, mask, args.out / "overlay.png")
    print(
        f"{int(mask.sum())} of {mask.size} pixels segmented; wrote {args.out}/mask.png, overlay.png"
    )
    return 0
