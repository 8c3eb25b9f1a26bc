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

from ..checks import nonnegative_float, nonnegative_int, positive_int, resolve_device
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


def add_run_arguments(
    parser: argparse.ArgumentParser, toy_preset: Mapping[str, Any] | None = None
) -> None:
    """Add the training flags, each with help and (with a preset) its toy value."""
    preset = dict(toy_preset or {})
    cfg = TrainConfig()

    def add(flag: str, dest: str, help: str, **kw: Any) -> None:
        if dest in preset:
            help += f" (toy: {preset[dest]})"
        parser.add_argument(flag, dest=dest, help=help, **kw)

    add("--backbone", "backbone", "timm backbone name overriding the model's", default=None)
    add(
        "--backbone-weights",
        "backbone_weights",
        "local backbone weights (.pth/.safetensors of timm's classifier), loaded strictly",
        default=None,
    )
    add("--no-pretrained", "no_pretrained", "random backbone (tests only)", action="store_true")
    add("--fold", "fold", "PASCAL-5i fold (0-3)", type=int, choices=range(4), default=cfg.fold)
    add("--epochs", "epochs", "training epochs", type=positive_int, default=cfg.epochs)
    add(
        "--steps-per-epoch",
        "max_steps_per_epoch",
        "cap on SGD steps per epoch (none: every pair once)",
        type=positive_int,
        default=cfg.max_steps_per_epoch,
    )
    add(
        "--batch-size", "batch_size", "global batch size", type=positive_int, default=cfg.batch_size
    )
    add(
        "--optimizer",
        "optimizer",
        "sgd (the paper's, DCAMA's) or adamw (HSNet's Adam); HSNet and DCAMA default to their "
        "own optimizer and learning rate",
        choices=OPTIMIZERS,
        default=cfg.optimizer,
    )
    add("--lr", "lr", "learning rate", type=nonnegative_float, default=cfg.lr)
    add("--momentum", "momentum", "SGD momentum", type=nonnegative_float, default=cfg.momentum)
    add(
        "--nesterov",
        "nesterov",
        "Nesterov momentum for SGD (DCAMA's)",
        action=argparse.BooleanOptionalAction,
        default=cfg.nesterov,
    )
    add(
        "--weight-decay",
        "weight_decay",
        "weight decay (SGD's L2, AdamW's decoupled)",
        type=nonnegative_float,
        default=cfg.weight_decay,
    )
    add(
        "--poly-power",
        "poly_power",
        "poly decay power",
        type=nonnegative_float,
        default=cfg.poly_power,
    )
    add(
        "--crop-size",
        "crop_size",
        "training crop and test size",
        type=positive_int,
        default=cfg.crop_size,
    )
    add(
        "--min-pixels",
        "min_pixels",
        "pixels a class must cover for a pair (train, test and supports)",
        type=positive_int,
        default=cfg.min_pixels,
    )
    add("--target", "target", "foreground: the episode's class or every seen class",
        choices=["class", "union"], default=cfg.target)  # fmt: skip
    add(
        "--exclude-unseen",
        "exclude_unseen",
        "drop training images that show an unseen class",
        action=argparse.BooleanOptionalAction,
        default=cfg.exclude_unseen,
    )
    add(
        "--multi-class-weight",
        "multi_class_weight",
        "training pairs whose image shows another class of the split appear this many times",
        type=positive_int,
        default=cfg.multi_class_weight,
    )
    add(
        "--absent-fraction",
        "absent_fraction",
        "few-shot training: share of episodes whose query does not show the support's class "
        "(target all background), so the model learns to mark nothing there",
        type=nonnegative_float,
        default=cfg.absent_fraction,
    )
    add(
        "--amp",
        "amp",
        "autocast dtype (none: fp32); bf16 by default on CUDA",
        choices=["none", "bf16", "fp16"],
        default="none" if cfg.amp is None else cfg.amp,
    )
    add(
        "--channels-last",
        "channels_last",
        "channels_last memory format; on by default on CUDA",
        action=argparse.BooleanOptionalAction,
        default=cfg.channels_last,
    )
    add("--compile", "compile", "torch.compile the model (eager fallback with a warning)",
        action=argparse.BooleanOptionalAction, default=cfg.compile)  # fmt: skip
    add(
        "--seed",
        "seed",
        "seed of data order, augmentation and test episodes",
        type=int,
        default=cfg.seed,
    )
    add(
        "--episodes",
        "episodes",
        "test episodes per dataset and fold",
        type=positive_int,
        default=cfg.episodes,
    )
    add("--workers", "num_workers", "DataLoader workers", type=nonnegative_int, default=2)
    add("--device", "device", "torch device (default: cuda when available)", default=cfg.device)
    add("--out", "out_dir", "run folder (default: runs/<model>_fold<fold>)", default=None)
    add(
        "--resume",
        "resume",
        "continue the run in --out from its last checkpoint",
        action="store_true",
    )
    add("--overwrite", "overwrite", "replace the run in --out", action="store_true")
    add("--quiet", "quiet", "no progress bars", action="store_true")


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
