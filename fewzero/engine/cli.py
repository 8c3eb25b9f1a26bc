"""Command-line plumbing shared by the example scripts: one path from flags to ``TrainConfig``.

Every training flag maps to one [`TrainConfig`][fewzero.engine.TrainConfig] field (the argparse
``dest`` is the field's name), in every mode; a preset (the toy demo's) fills only the fields
whose flag was not given. Values are checked at parse time, so an error names the flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

from ..checks import (
    nonnegative_float,
    nonnegative_int,
    positive_float,
    positive_int,
    resolve_device,
)
from .config import OPTIMIZERS, TrainConfig

__all__ = [
    "FLAG_FIELDS",
    "add_run_arguments",
    "config_from_args",
    "explicit_dests",
    "local_device",
    "nonnegative_float",
    "nonnegative_int",
    "positive_int",
]


FLAG_FIELDS: dict[str, tuple[str, ...]] = {"quiet": ("progress",), "shots": ("shots", "eval_shots")}
"""[`TrainConfig`][fewzero.engine.TrainConfig] fields set by a flag of another name (``--shots`` sets both)."""


def explicit_dests(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> set[str]:
    """Destinations of the options given on the command line (not filled from defaults).

    The config fields those flags set under another name ([`FLAG_FIELDS`][fewzero.engine.cli.FLAG_FIELDS]) are included.

    Parses ``argv`` a second time with every default set to a sentinel (public
    ``get_default``/``set_defaults``), then restores the defaults.
    """
    dests = list(vars(parser.parse_args(argv)))
    saved = {d: parser.get_default(d) for d in dests}
    unset = object()
    parser.set_defaults(**dict.fromkeys(dests, unset))
    try:
        given = vars(parser.parse_args(argv))
    finally:
        parser.set_defaults(**saved)
    dests = {d for d, v in given.items() if v is not unset}
    return dests.union(*(FLAG_FIELDS.get(d, ()) for d in dests))


def _flag(flag: str, dest: str, help: str, **kw: Any) -> tuple[str, str, str, dict[str, Any]]:
    return flag, dest, help, kw


CONFIG = object()
"""A flag's default that is ``TrainConfig``'s own (read when the parser is built)."""

RUN_FLAGS = (
    _flag("--backbone", "backbone", "timm backbone name overriding the model's", default=None),
    _flag(
        "--backbone-weights",
        "backbone_weights",
        "local backbone weights (.pth/.safetensors of timm's classifier), loaded strictly",
        default=None,
    ),
    _flag("--no-pretrained", "no_pretrained", "random backbone (tests only)", action="store_true"),
    _flag("--fold", "fold", "PASCAL-5i fold (0-3)", type=int, choices=range(4), default=CONFIG),
    _flag("--epochs", "epochs", "training epochs", type=positive_int, default=CONFIG),
    _flag(
        "--steps-per-epoch",
        "max_steps_per_epoch",
        "cap on SGD steps per epoch (none: every pair once)",
        type=positive_int,
        default=CONFIG,
    ),
    _flag("--batch-size", "batch_size", "global batch size", type=positive_int, default=CONFIG),
    _flag(
        "--optimizer",
        "optimizer",
        "sgd (the paper's, DCAMA's) or adamw (HSNet's Adam); HSNet and DCAMA default to their "
        "own optimizer and learning rate",
        choices=OPTIMIZERS,
        default=CONFIG,
    ),
    _flag("--lr", "lr", "learning rate", type=positive_float, default=CONFIG),
    _flag("--momentum", "momentum", "SGD momentum", type=nonnegative_float, default=CONFIG),
    _flag(
        "--nesterov",
        "nesterov",
        "Nesterov momentum for SGD (DCAMA's)",
        action=argparse.BooleanOptionalAction,
        default=CONFIG,
    ),
    _flag(
        "--weight-decay",
        "weight_decay",
        "weight decay (SGD's L2, AdamW's decoupled)",
        type=nonnegative_float,
        default=CONFIG,
    ),
    _flag(
        "--poly-power",
        "poly_power",
        "poly decay power",
        type=nonnegative_float,
        default=CONFIG,
    ),
    _flag(
        "--crop-size",
        "crop_size",
        "training crop and test size",
        type=positive_int,
        default=CONFIG,
    ),
    _flag(
        "--min-pixels",
        "min_pixels",
        "pixels a class must cover for a pair (train, test and supports)",
        type=positive_int,
        default=CONFIG,
    ),
    _flag(
        "--target",
        "target",
        "foreground: the episode's class or every seen class",
        choices=["class", "union"],
        default=CONFIG,
    ),
    _flag(
        "--exclude-unseen",
        "exclude_unseen",
        "drop training images that show an unseen class",
        action=argparse.BooleanOptionalAction,
        default=CONFIG,
    ),
    _flag(
        "--multi-class-weight",
        "multi_class_weight",
        "training pairs whose image shows another class of the split appear this many times",
        type=positive_int,
        default=CONFIG,
    ),
    _flag(
        "--absent-fraction",
        "absent_fraction",
        "few-shot training: share of episodes whose query does not show the support's class "
        "(target all background), so the model learns to mark nothing there",
        type=nonnegative_float,
        default=CONFIG,
    ),
    _flag(
        "--amp",
        "amp",
        "autocast dtype (none: fp32); bf16 by default on CUDA",
        choices=["none", "bf16", "fp16"],
        default=CONFIG,
    ),
    _flag(
        "--channels-last",
        "channels_last",
        "channels_last memory format; on by default on CUDA",
        action=argparse.BooleanOptionalAction,
        default=CONFIG,
    ),
    _flag(
        "--compile",
        "compile",
        "torch.compile the model (eager fallback with a warning)",
        action=argparse.BooleanOptionalAction,
        default=CONFIG,
    ),
    _flag(
        "--seed",
        "seed",
        "seed of data order, augmentation and test episodes",
        type=int,
        default=CONFIG,
    ),
    _flag(
        "--episodes",
        "episodes",
        "test episodes per dataset and fold",
        type=positive_int,
        default=CONFIG,
    ),
    _flag("--workers", "num_workers", "DataLoader workers", type=nonnegative_int, default=2),
    _flag("--device", "device", "torch device (default: cuda when available)", default=CONFIG),
    _flag("--out", "out_dir", "run folder (default: runs/<model>_fold<fold>)", default=None),
    _flag(
        "--resume",
        "resume",
        "continue the run in --out from its last checkpoint",
        action="store_true",
    ),
    _flag("--overwrite", "overwrite", "replace the run in --out", action="store_true"),
    _flag("--quiet", "quiet", "no progress bars", action="store_true"),
)
"""The training flags: ``(flag, dest, help, add_argument keywords)``; ``default=CONFIG`` is the
``TrainConfig`` field's default."""


def add_run_arguments(
    parser: argparse.ArgumentParser, toy_preset: Mapping[str, Any] | None = None
) -> None:
    """Add the training flags ([RUN_FLAGS][fewzero.engine.cli.RUN_FLAGS]), each with help and (with a preset) its toy value."""
    preset = dict(toy_preset or {})
    cfg = TrainConfig()
    for flag, dest, help, kw in RUN_FLAGS:
        if kw.get("default") is CONFIG:
            value = getattr(cfg, dest)
            none = value is None and "none" in kw.get("choices", ())  # --amp none: fp32
            kw = {**kw, "default": "none" if none else value}
        if dest in preset:
            help += f" (toy: {preset[dest]})"
        parser.add_argument(flag, dest=dest, help=help, **kw)


def config_from_args(
    args: argparse.Namespace, model: str, shots: Sequence[int] = (0,)
) -> TrainConfig:
    """The [`TrainConfig`][fewzero.engine.TrainConfig] of parsed arguments: every field whose flag has its name.

    ``shots`` is the ``--shots`` list: the run trains on the first and is scored at each
    (``eval_shots``). Only ``amp`` (``"none"`` on the command line) and ``progress``
    (``--quiet``) are translated.

    Raises:
        ValueError: naming the flag, for values that cannot describe a run (a ``--shots`` list
            that mixes 0 with few-shot counts, an unknown device).
    """
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    names -= {"model", "shots", "eval_shots", "amp"}
    values = {k: v for k, v in vars(args).items() if k in names}
    amp = None if args.amp == "none" else args.amp
    resolve_device(args.device, name="--device")
    try:
        return TrainConfig(
            model=model,
            shots=shots[0],
            eval_shots=list(shots),
            amp=amp,
            progress=not args.quiet,
            **values,
        )
    except ValueError as err:
        flag = "--shots" if "eval_shots" in str(err) else "a flag"
        raise ValueError(f"{flag}: {err}") from err


def local_device(device: str) -> str:
    """``cuda`` becomes ``cuda:<LOCAL_RANK>`` under ``torchrun``."""
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device
