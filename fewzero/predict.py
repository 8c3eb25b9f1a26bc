"""Segment your own images: a predictor over a model or a checkpoint, and ``fewzero-segment``.

Three lines from a checkpoint and an image file to a mask::

    from fewzero.predict import Predictor
    predictor = Predictor("runs/toy/sm_vcenet_efficientnet_lite0/checkpoint_last.pt")
    mask = predictor("photo.jpg")  # (H, W) uint8 in {0, 1} at the photo's own size

Few-shot models take the support set as ``(image, mask)`` pairs:
``predictor("query.jpg", support=[("s1.jpg", "s1.png"), ...])``.

Images may be paths, PIL images, ``(H, W, 3)`` numpy arrays (uint8, or float in [0, 1]) or
``(3, H, W)`` tensors (uint8, or float in [0, 1]). Masks may be paths (PNG: white or 1 is the
class), boolean arrays, or arrays/tensors in ``{0, 1, 255}`` (255: ignore). The predictor resizes
to the model's test size, normalises with the backbone's own mean/std (timm ``pretrained_cfg``)
and returns the mask at the image's original size.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .data.fss import read_binary_mask
from .models.base import SegmentationModel, check_finite

__all__ = ["Predictor", "main", "save_mask", "save_overlay", "to_image_tensor", "to_mask_tensor"]

ImageLike = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor
MaskLike = str | os.PathLike | np.ndarray | torch.Tensor


def to_image_tensor(image: ImageLike) -> torch.Tensor:
    """Any supported image to a float ``(3, H, W)`` tensor in ``[0, 1]``.

    Raises:
        FileNotFoundError: for a missing file.
        ValueError: for an unsupported type, shape or value range.
    """
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"image file not found: {str(path)!r}")
        with Image.open(path) as img:
            image = img.convert("RGB")
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image array must be (H, W, 3), got shape {image.shape}")
        image = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1)
    if not isinstance(image, torch.Tensor):
        raise ValueError(
            f"image must be a path, PIL image, numpy array or tensor, got {type(image).__name__}"
        )
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image tensor must be (3, H, W), got shape {tuple(image.shape)}")
    if image.dtype == torch.uint8:
        return image.float() / 255.0
    if not image.is_floating_point():
        raise ValueError(f"image must be uint8 or float in [0, 1], got dtype {image.dtype}")
    check_finite(image, "image")
    if image.min() < 0 or image.max() > 1:
        raise ValueError(
            f"a float image must lie in [0, 1], got [{float(image.min()):.3g}, "
            f"{float(image.max()):.3g}]; pass uint8 or scale it"
        )
    return image.float()


def to_mask_tensor(mask: MaskLike) -> torch.Tensor:
    """Any supported mask to an int64 ``(H, W)`` tensor in ``{0, 1, 255}``.

    Raises:
        FileNotFoundError: for a missing file.
        ValueError: for another shape or values outside ``{0, 1, 255}``.
    """
    if isinstance(mask, (str, os.PathLike)):
        return torch.from_numpy(read_binary_mask(mask)).long()
    t = torch.as_tensor(np.asarray(mask) if isinstance(mask, np.ndarray) else mask)
    if t.dim() != 2:
        raise ValueError(f"mask must be (H, W), got shape {tuple(t.shape)}")
    if t.dtype == torch.bool:
        return t.long()
    t = t.long()
    bad = torch.unique(t[(t != 0) & (t != 1) & (t != 255)])
    if bad.numel():
        raise ValueError(
            f"mask values must be in {{0, 1, 255}} (255: ignore), got {bad.tolist()[:8]}; pass "
            "a boolean array for a 0/255 mask"
        )
    return t


class Predictor:
    """Predict masks of new images with a trained model.

    Args:
        model: A :class:`~fewzero.models.SegmentationModel` or a training checkpoint path.
        device: Where the model runs.
        size: Side the images are resized to (default: the checkpoint's training crop, else 321).

    Raises:
        FileNotFoundError, ValueError: for a checkpoint that is missing or not fewzero's (the
            message names the file).

    Examples:
        >>> import numpy as np
        >>> from fewzero.models import create_model
        >>> predictor = Predictor(create_model("sm_vcenet", backbone="resnet18"), size=65)
        >>> predictor(np.zeros((40, 50, 3), dtype=np.uint8)).shape
        (40, 50)
    """

    def __init__(
        self,
        model: SegmentationModel | str | os.PathLike[str],
        device: str | torch.device = "cpu",
        size: int | None = None,
    ) -> None:
        self.device = torch.device(device)
        train_size = None
        if isinstance(model, (str, os.PathLike)):
            from .engine.recipes import load_trained_model

            model, cfg = load_trained_model(model, device=str(self.device))
            train_size = cfg.get("crop_size")
        if not isinstance(model, SegmentationModel):
            raise ValueError(
                f"model must be a fewzero SegmentationModel or a checkpoint path, got "
                f"{type(model).__name__}"
            )
        self.model = model.to(self.device).eval()
        self.size = int(size or train_size or 321)
        self.mean = torch.tensor(model.encoder.mean).view(3, 1, 1)
        self.std = torch.tensor(model.encoder.std).view(3, 1, 1)

    def preprocess(self, image: ImageLike) -> tuple[torch.Tensor, tuple[int, int]]:
        """Return the normalised, resized ``(3, size, size)`` image and the original ``(H, W)``."""
        x = to_image_tensor(image)
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
        for i, (image, mask) in enumerate(support):
            x, (h, w) = self.preprocess(image)
            m = to_mask_tensor(mask)
            if tuple(m.shape) != (h, w):
                raise ValueError(
                    f"support[{i}]: mask must have the image's size {(h, w)}, got {tuple(m.shape)}"
                )
            m = F.interpolate(m[None, None].float(), size=(self.size, self.size), mode="nearest")
            images.append(x)
            masks.append(m[0, 0].long())
        return torch.stack(images)[None], torch.stack(masks)[None]

    @torch.no_grad()
    def probabilities(
        self,
        image: ImageLike,
        support: Sequence[tuple[ImageLike, MaskLike]] | None = None,
        class_id: int | None = None,
    ) -> torch.Tensor:
        """Class probabilities ``(num_classes, H, W)`` at the image's original size."""
        x, size = self.preprocess(image)
        kwargs: dict[str, Any] = {}
        if support:
            s_img, s_mask = self._support(support)
            kwargs.update(
                support_images=s_img.to(self.device), support_masks=s_mask.to(self.device)
            )
        if class_id is not None:
            kwargs["class_ids"] = torch.tensor([class_id], device=self.device)
        logits = self.model(x[None].to(self.device), **kwargs).float()
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits.softmax(dim=1)[0].cpu()

    def __call__(
        self,
        image: ImageLike,
        support: Sequence[tuple[ImageLike, MaskLike]] | None = None,
        class_id: int | None = None,
    ) -> np.ndarray:
        """Predicted mask ``(H, W)`` uint8 (1 = the class) at the image's original size.

        Args:
            image: The image to segment.
            support: ``(image, mask)`` pairs of the class, for few-shot models.
            class_id: The class id, for word-conditioned models (SPNet, ZSVM).
        """
        return self.probabilities(image, support, class_id).argmax(0).numpy().astype(np.uint8)


def save_mask(mask: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Write a ``{0, 1}`` mask as a black/white PNG; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((np.asarray(mask) > 0).astype(np.uint8) * 255).save(path)
    return path


def save_overlay(
    image: ImageLike,
    mask: np.ndarray,
    path: str | os.PathLike[str],
    color: tuple[int, int, int] = (255, 40, 40),
    alpha: float = 0.55,
) -> Path:
    """Write the image with the mask's pixels tinted ``color`` as a PNG; returns the path."""
    rgb = (to_image_tensor(image).permute(1, 2, 0).numpy() * 255).astype(np.float32)
    fg = np.asarray(mask) > 0
    if fg.shape != rgb.shape[:2]:
        raise ValueError(f"mask must have the image's size {rgb.shape[:2]}, got {fg.shape}")
    rgb[fg] = (1 - alpha) * rgb[fg] + alpha * np.asarray(color, dtype=np.float32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb.round().clip(0, 255).astype(np.uint8)).save(path)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``fewzero-segment``: write ``mask.png`` and ``overlay.png`` of one image."""
    p = argparse.ArgumentParser(
        prog="fewzero-segment",
        description="Segment an image with a trained fewzero checkpoint (zero-shot, or few-shot "
        "with --support IMAGE MASK pairs); writes mask.png and overlay.png into --out.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="training checkpoint (checkpoint_last.pt)")
    p.add_argument("--query", required=True, help="image to segment")
    p.add_argument(
        "--support",
        nargs=2,
        action="append",
        metavar=("IMAGE", "MASK"),
        default=None,
        help="a support image and its mask (repeat for K shots; few-shot models)",
    )
    p.add_argument("--class-id", type=int, default=None, help="class id (SPNet/ZSVM models)")
    p.add_argument("--size", type=int, default=None, help="test size (default: training crop)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="torch device")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("segment"), help="output folder")
    args = p.parse_args(argv)
    try:
        predictor = Predictor(args.checkpoint, device=args.device, size=args.size)
        support = [tuple(pair) for pair in args.support] if args.support else None
        mask = predictor(args.query, support=support, class_id=args.class_id)
    except (FileNotFoundError, ValueError) as err:
        p.exit(2, f"fewzero-segment: error: {err}\n")
    save_mask(mask, args.out / "mask.png")
    save_overlay(args.query, mask, args.out / "overlay.png")
    print(
        f"{int(mask.sum())} of {mask.size} pixels segmented; wrote {args.out}/mask.png, overlay.png"
    )
    return 0
