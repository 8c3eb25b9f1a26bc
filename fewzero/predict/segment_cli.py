"""``fewzero-segment``: its parser and its run, in the words of its flags."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checks import check_writable, nonnegative_float, positive_int, resolve_device
from ..models.base import SegmentationModel
from ..models.weight_files import (
    WEIGHT_FILES,
    add_weight_file_flags,
    build_from_files,
    check_files,
)
from .drawing import save_label_overlay, save_labels, save_mask, save_overlay
from .inputs import check_has_background, to_image_tensor, to_mask_tensor
from .predictor import Predictor

__all__ = ["SegmentInputs", "build_parser", "main", "resolve"]


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


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``fewzero-segment`` (its flags are the docs' CLI reference)."""
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
        help="a training-free model: prototype_efficientnet_lite0 (its ImageNet weights), or "
        "insid3_vitl16 (with --dinov3-file) and gf_sam_vit_h_dinov2_vitl14 (with --dinov2-file "
        "and --sam-file) over Meta's files",
    )
    add_weight_file_flags(p)
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
    _add_run_flags(p)
    return p


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    """How the model runs and where its masks go."""
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
    p.add_argument(
        "--presence-threshold",
        type=nonnegative_float,
        default=0.001,
        help="a class that wins less than this share of the query (weighted by its "
        "probability) comes back empty (default 0.001; 0 keeps every pixel; below 1)",
    )


@dataclass(frozen=True)
class SegmentInputs:
    """What ``fewzero-segment`` was given, read and checked before any model is loaded."""

    query: torch.Tensor
    support: list[tuple[torch.Tensor, torch.Tensor]]
    classes: list[str] | None  # the class of each support pair, with --support-class


def resolve(p: argparse.ArgumentParser, args: argparse.Namespace) -> SegmentInputs:
    """Every input file read (once) and every flag checked; ``p.error`` names the flag."""
    if not args.presence_threshold < 1:
        p.error(
            f"--presence-threshold must be below 1 (a share of the query), got "
            f"{args.presence_threshold}: 1 would empty every mask"
        )
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
    pairs = [("", *pair) for pair in (args.support if args.support is not None else [])]
    pairs += list(args.support_class if args.support_class is not None else [])
    try:
        query = to_image_tensor(args.query, "--query")
        images = [to_image_tensor(image, "--support image") for _, image, _ in pairs]
        masks = [to_mask_tensor(m, "--support mask", class_id=args.mask_class) for _, _, m in pairs]
        for (_, _, path), m in zip(pairs, masks):
            if not args.allow_full_mask:
                check_has_background(m, f"--support mask {path!r}", "--allow-full-mask")
        if args.model is not None:  # the model and its files, before anything is written
            check_files(args.model, {arg: getattr(args, arg) for _, arg, _ in WEIGHT_FILES}, True)
        check_writable(args.out, "--out")  # before the model runs: the masks are never lost
    except (FileNotFoundError, OSError, ValueError) as err:
        p.exit(2, f"fewzero-segment: error: {err}\n")
    classes = [name for name, _, _ in pairs] if args.support_class else None
    return SegmentInputs(query, list(zip(images, masks)), classes)


def _predictor(args: argparse.Namespace, device: str) -> Predictor:
    """The predictor of ``--model`` (untrained only where nothing is trainable) or ``--checkpoint``."""
    files = {arg: getattr(args, arg) for _, arg, _ in WEIGHT_FILES}
    if args.model is None:
        given = [flag for flag, arg, _ in WEIGHT_FILES if files[arg] is not None]
        if given:
            raise ValueError(
                f"{', '.join(given)} apply with --model (a training-free model over Meta's "
                "files); a --checkpoint holds its own weights: drop them"
            )
        return Predictor(args.checkpoint, device=device, size=args.size, allow_full_masks=True,
                         presence_threshold=args.presence_threshold)  # fmt: skip
    model = build_from_files(args.model, files, as_flags=True)
    if any(q.requires_grad for q in model.parameters()):
        raise ValueError(
            f"--model {args.model!r} has trainable weights that were never trained; pass "
            "its --checkpoint (models usable untrained: prototype_*)"
        )
    return Predictor(model, device=device, size=args.size, allow_full_masks=True,
                     presence_threshold=args.presence_threshold)  # fmt: skip


def _write(out: Path, inputs: SegmentInputs, result: np.ndarray) -> str:
    """Write the mask (or label map) and the overlay; returns the line to print."""
    if inputs.classes is None:
        save_mask(result, out / "mask.png")
        save_overlay(inputs.query, result, out / "overlay.png")
        return f"{int(result.sum())} of {result.size} pixels segmented; wrote {out}/mask.png, overlay.png"
    names = list(dict.fromkeys(inputs.classes))
    save_labels(result, out / "labels.png")
    save_label_overlay(inputs.query, result, names, out / "overlay.png")
    counts = ", ".join(f"{n}: {int((result == i + 1).sum())}" for i, n in enumerate(names))
    return f"pixels per class ({counts}) of {result.size}; wrote {out}/labels.png, overlay.png"


def main(argv: Sequence[str] | None = None) -> int:
    """``fewzero-segment``: write the mask (or label map) and overlay of one image.

    Parse, resolve (every file read and every flag checked before the model loads), run, write.
    """
    p = build_parser()
    args = p.parse_args(argv)
    try:
        device = resolve_device(args.device, name="--device")
    except ValueError as err:
        p.error(str(err))
    inputs = resolve(p, args)
    try:
        predictor = _predictor(args, device)
        _check_cli_inputs(predictor.model, bool(inputs.support), args.class_id)
        if inputs.classes is None:
            result = predictor(inputs.query, support=inputs.support or None, class_id=args.class_id)
        else:
            by_class: dict[str, list[tuple[Any, Any]]] = {}
            for name, pair in zip(inputs.classes, inputs.support):
                by_class.setdefault(name, []).append(pair)
            result = predictor(inputs.query, support=by_class)
    except (FileNotFoundError, OSError, ValueError, RuntimeError) as err:
        p.exit(2, f"fewzero-segment: error: {err}\n")
    print(_write(args.out, inputs, result))
    return 0
