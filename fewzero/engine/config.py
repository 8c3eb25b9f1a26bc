"""Run configuration: [`TrainConfig`][fewzero.engine.TrainConfig] (one set of defaults) and the rules of a resumed run.

The command line (``fewzero.engine.cli``) and the toy demo's preset only override these
defaults. A resumed run takes every setting it recorded in ``config.json`` unless a flag asks for
another ([`resumed_config`][fewzero.engine.config.resumed_config]), and may change only [`SAFE_RESUME_CHANGES`][fewzero.engine.config.SAFE_RESUME_CHANGES]
([`resume_changes`][fewzero.engine.config.resume_changes]).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checks import default_device

__all__ = [
    "OPTIMIZERS",
    "apply_model_defaults",
    "SAFE_RESUME_CHANGES",
    "RunConfigError",
    "TrainConfig",
    "resume_changes",
    "resumed_config",
]

SAFE_RESUME_CHANGES = frozenset(
    {
        "lr", "epochs", "device", "num_workers", "progress", "out_dir", "compile", "episodes",
        "eval_shots",
    }
)  # fmt: skip
"""Settings a resumed run may change (asked for explicitly); every other one changes the run."""


class RunConfigError(ValueError):
    """A resumed run's settings differ from its saved run in a way a resume may not change."""


OPTIMIZERS = ("sgd", "adamw")
"""Optimisers a run can use: SGD with momentum (the paper's) or AdamW (HSNet's and DCAMA's Adam, with decoupled weight decay); both under the poly schedule."""


def _default_amp() -> str | None:
    return "bf16" if default_device() == "cuda" else None


def _on_cuda() -> bool:
    return default_device() == "cuda"


@dataclass
class TrainConfig:
    """Settings of a training run (defaults: the paper's, and the peers' where it is silent).

    ``episodes`` and ``eval_shots`` are the test protocol the run is scored with (test episodes
    per dataset; the shot counts evaluated, default ``[shots]``), recorded so that an evaluation
    of its checkpoint later uses the same protocol. ``device`` defaults to ``"cuda"`` when
    available, and so do bf16 autocast and channels_last.

    Attributes:
        model: Registered model name (``fewzero.models.list_models()``).
        backbone: timm backbone name overriding the model's (``None``: the model's own).
        model_kwargs: Extra constructor arguments of the model.
        fold: PASCAL-5i fold (0-3): its five classes are unseen in training.
        shots: Support images per training episode (0: zero-shot).
        epochs: Training epochs (one pass over the training pairs each).
        batch_size: Global batch size (split over processes under ``torchrun``).
        optimizer: ``"sgd"`` (momentum) or ``"adamw"`` ([OPTIMIZERS][fewzero.engine.config.OPTIMIZERS]).
        lr: Initial learning rate (decayed by the poly schedule).
        momentum: SGD momentum.
        nesterov: Nesterov momentum for SGD (DCAMA's training).
        weight_decay: SGD's L2 penalty, AdamW's decoupled decay.
        poly_power: Power of the poly decay ``(1 - step / steps) ** power``.
        crop_size: Side of the training crops and of the test inputs.
        min_pixels: Fewest pixels of a class for an (image, class) pair, in training and test.
        target: ``"class"`` (the episode's class is the foreground, the paper's) or
            ``"union"`` (every seen class in the image).
        exclude_unseen: Drop training images that show any unseen class.
        multi_class_weight: Training pairs whose image shows another class of the split appear
            this many times.
        absent_fraction: Few-shot training: the share of queries replaced by an image without
            the support's class (target all background).
        amp: ``"bf16"`` or ``"fp16"`` autocast, or ``None`` (default: bf16 on CUDA).
        channels_last: Train in channels_last memory format (default: on CUDA).
        compile: ``torch.compile`` the model for training.
        seed: Seed of the initialisation, the data order and the test episodes.
        num_workers: DataLoader worker processes.
        max_steps_per_epoch: Cap on the optimiser steps of an epoch (``None``: every pair once).
        episodes: Test episodes per dataset for the run's evaluation.
        eval_shots: Shot counts the run is scored at (default ``[shots]``).
        out_dir: Run folder: checkpoints, ``config.json``, logs.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (default: CUDA when available).
        progress: Show progress bars.
        extra: Free-form settings recorded with the run (e.g. ``model_defaults``).
    """

    model: str = "sm_vcenet_resnet50"
    backbone: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    fold: int = 0
    shots: int = 0
    epochs: int = 200
    batch_size: int = 4
    optimizer: str = "sgd"
    lr: float = 0.0025
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    crop_size: int = 321
    min_pixels: int = 2 * 32 * 32
    target: str = "class"
    exclude_unseen: bool = False
    multi_class_weight: int = 1
    absent_fraction: float = 0.0
    amp: str | None = field(default_factory=_default_amp)
    channels_last: bool = field(default_factory=_on_cuda)
    compile: bool = False
    seed: int = 0
    num_workers: int = 0
    max_steps_per_epoch: int | None = None
    episodes: int = 1000
    eval_shots: list[int] = field(default_factory=list)
    out_dir: str = "runs/train"
    device: str = field(default_factory=default_device)
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Refuse settings that cannot describe a run, naming the field and the value."""
        self._check_number_types()
        checks = [
            ("epochs", self.epochs >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("lr", self.lr > 0, "> 0 (a run at lr 0 never changes its weights)"),
            ("momentum", self.momentum >= 0, ">= 0"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("crop_size", self.crop_size >= 1, ">= 1"),
            ("min_pixels", self.min_pixels >= 1, ">= 1"),
            ("shots", self.shots >= 0, ">= 0"),
            ("num_workers", self.num_workers >= 0, ">= 0"),
            ("multi_class_weight", self.multi_class_weight >= 1, ">= 1"),
            ("absent_fraction", 0.0 <= self.absent_fraction < 1.0, "in [0, 1)"),
            ("max_steps_per_epoch", (self.max_steps_per_epoch or 1) >= 1, ">= 1 or None"),
            ("episodes", self.episodes >= 1, ">= 1"),
        ]
        for name, ok, want in checks:
            if not ok:
                raise ValueError(f"{name} must be {want}, got {getattr(self, name)!r}")
        if self.amp not in (None, "bf16", "fp16"):
            raise ValueError(f"amp must be one of (None, 'bf16', 'fp16'), got {self.amp!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.target not in ("class", "union"):
            raise ValueError(f"target must be one of ('class', 'union'), got {self.target!r}")
        self._check_combinations()
        self.eval_shots = [int(k) for k in self.eval_shots] or [self.shots]
        if self.shots > 0 and min(self.eval_shots) < 1:
            raise ValueError(
                f"eval_shots must all be >= 1 for a few-shot run (shots={self.shots}), got "
                f"{self.eval_shots}: a few-shot model cannot be scored without a support set"
            )
        if self.shots == 0 and max(self.eval_shots) > 0:
            raise ValueError(
                f"eval_shots must all be 0 for a zero-shot run (shots=0), got {self.eval_shots}: "
                "a zero-shot model takes no support set (train few-shot with shots >= 1)"
            )

    def _check_number_types(self) -> None:
        """Each numeric field a number of its kind: not a bool, a string or NaN."""
        ints = ("epochs", "batch_size", "crop_size", "min_pixels", "shots", "num_workers",
                "episodes", "max_steps_per_epoch")  # fmt: skip
        reals = ("lr", "momentum", "weight_decay", "multi_class_weight", "absent_fraction")
        for name in ints + reals:
            value = getattr(self, name)
            if name == "max_steps_per_epoch" and value is None:
                continue
            kinds = (int,) if name in ints else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds) or value != value:
                want = "an int" if name in ints else "a finite number"
                raise ValueError(f"{name} must be {want}, got {value!r} ({type(value).__name__})")

    def _check_combinations(self) -> None:
        """Settings that would be recorded and then ignored are refused, naming the flag."""
        if self.nesterov and self.optimizer != "sgd":
            raise ValueError(
                f"nesterov (--nesterov) applies to SGD, got optimizer={self.optimizer!r}: drop "
                "--nesterov, or pass --optimizer sgd"
            )
        if self.nesterov and self.momentum == 0:
            raise ValueError(
                "nesterov (--nesterov) needs momentum > 0 (Nesterov momentum without momentum "
                "is plain SGD), got momentum=0: drop --nesterov or pass --momentum 0.9"
            )
        if self.absent_fraction and self.shots == 0:
            raise ValueError(
                f"absent_fraction (--absent-fraction) applies to few-shot training (shots >= 1), "
                f"got absent_fraction={self.absent_fraction} for a zero-shot run: a query without "
                "the support's class needs a support; drop it or train few-shot (--shots K)"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dictionary (JSON- and ``weights_only``-safe)."""
        return dataclasses.asdict(self)


def apply_model_defaults(config: TrainConfig, explicit: Collection[str] = ()) -> TrainConfig:
    """``config`` with its model's own training settings where no flag set them.

    A model class may carry ``train_defaults`` (HSNet: Adam at 1e-3; DCAMA: SGD with Nesterov
    momentum at 1e-3, weight decay 1e-4: each peer's training). Fields named in ``explicit``
    (the flags given) keep their values. The settings taken are recorded in
    ``extra["model_defaults"]``, so the run's ``config.json`` says where they came from.

    Examples:
        >>> cfg = apply_model_defaults(TrainConfig(model="hsnet_resnet50"))
        >>> cfg.optimizer, cfg.lr, cfg.extra["model_defaults"]["from"]
        ('adamw', 0.001, 'HSNet')
        >>> apply_model_defaults(TrainConfig(model="hsnet_resnet50", lr=0.01), {"lr"}).lr
        0.01
    """
    from ..models import model_class

    cls = model_class(config.model)
    defaults = dict(getattr(cls, "train_defaults", {}))
    taken = {k: v for k, v in defaults.items() if k not in explicit}
    if not taken:
        return config
    extra = {**config.extra, "model_defaults": {"from": cls.__name__, **taken}}
    return dataclasses.replace(config, **taken, extra=extra)


def resume_changes(saved: Mapping[str, Any], config: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """The settings ``config`` changes against a saved run's, ``{name: (saved, now)}``.

    Raises:
        RunConfigError: naming every change outside [`SAFE_RESUME_CHANGES`][fewzero.engine.config.SAFE_RESUME_CHANGES].
    """
    own = config.to_dict()
    changed = {k: (saved[k], own[k]) for k in own if k in saved and saved[k] != own[k]}
    refused = {k: v for k, v in changed.items() if k not in SAFE_RESUME_CHANGES}
    if refused:
        details = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in refused.items())
        raise RunConfigError(
            f"checkpoint belongs to another run config ({details}); a resumed run may change "
            f"only {sorted(SAFE_RESUME_CHANGES)}: start a new run in another out_dir"
        )
    return changed


def resumed_config(config: TrainConfig, explicit: Collection[str]) -> TrainConfig:
    """``config`` with every field not in ``explicit`` taken from the run saved in its folder.

    ``explicit`` names the fields set explicitly (the command line's
    ``explicit_dests``), so a resumed run keeps every setting it
    recorded (shots, eval shots, episodes, ...) unless asked for another.
    """
    path = Path(config.out_dir) / "config.json"
    if not path.is_file():
        return config
    saved = json.loads(path.read_text())
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    keep = {"out_dir", *explicit}
    merged = {k: v for k, v in saved.items() if k in fields and k not in keep}
    return dataclasses.replace(config, **merged)
