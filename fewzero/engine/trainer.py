"""The training loop: SGD with poly decay, AMP, channels_last, DDP, atomic resumable checkpoints.

Determinism: every epoch seeds torch's global generator and the data order from
``(seed, epoch)``, so an epoch's samples and augmentations do not depend on what ran before it.
On the CPU, training two epochs straight and one epoch + ``resume`` give bit-identical weights.

Run folders (``config.out_dir``) are never overwritten by accident: a folder that holds a run is
refused unless the trainer resumes it (:meth:`Trainer.resume`) or is built with
``overwrite=True``. Checkpoints are ``checkpoint_epoch<N>.pt`` (the initial weights are epoch 0)
with ``checkpoint_last.pt`` linked to the newest; the two newest are kept, plus the newest whose
weights are all finite. A resumed run may change only :data:`SAFE_RESUME_CHANGES` (``lr``,
``epochs`` and settings that do not touch the numbers); each change is warned about and recorded
in ``config.json``'s ``resume_changes``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from ..checks import amp_dtype, default_device
from ..data.classes import IGNORE_INDEX
from ..data.episodes import collate_episodes
from ..models import load_model_state
from . import distributed
from .checkpoint import load_checkpoint, save_checkpoint
from .inputs import episode_inputs

__all__ = [
    "SAFE_RESUME_CHANGES",
    "NonFiniteLossError",
    "RunConfigError",
    "TrainConfig",
    "Trainer",
    "check_run_dir",
    "resume_changes",
    "run_files",
]

#: Settings a resumed run may change (asked for explicitly); every other one changes the run.
SAFE_RESUME_CHANGES = frozenset(
    {
        "lr", "epochs", "device", "num_workers", "progress", "out_dir", "compile", "episodes",
        "eval_shots",
    }
)  # fmt: skip
# Files that make a folder a run folder.
_RUN_FILES = ("config.json", "metrics.jsonl", "checkpoint_last.pt")


class RunConfigError(ValueError):
    """A resumed run's settings differ from its saved run in a way a resume may not change."""


class NonFiniteLossError(FloatingPointError):
    """Raised when the loss becomes NaN or Inf; the last good checkpoint is left in place."""


@dataclass
class TrainConfig:
    """Settings of a training run (defaults: the paper's, and the peers' where it is silent).

    ``episodes`` and ``eval_shots`` are the test protocol the run is scored with (test episodes
    per dataset; the shot counts evaluated, default ``[shots]``), recorded so that an evaluation
    of its checkpoint later uses the same protocol. ``device`` defaults to ``"cuda"`` when
    available.
    """

    model: str = "sm_vcenet_resnet50"
    backbone: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    fold: int = 0
    shots: int = 0
    epochs: int = 200
    batch_size: int = 4
    lr: float = 0.0025
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    crop_size: int = 321
    min_pixels: int = 2 * 32 * 32
    target: str = "class"
    exclude_unseen: bool = False
    multi_class_weight: int = 1
    amp: str | None = None
    channels_last: bool = False
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
        checks = [
            ("epochs", self.epochs >= 1, ">= 1"),
            ("batch_size", self.batch_size >= 1, ">= 1"),
            ("lr", self.lr >= 0, ">= 0"),
            ("momentum", self.momentum >= 0, ">= 0"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("crop_size", self.crop_size >= 1, ">= 1"),
            ("min_pixels", self.min_pixels >= 1, ">= 1"),
            ("shots", self.shots >= 0, ">= 0"),
            ("num_workers", self.num_workers >= 0, ">= 0"),
            ("multi_class_weight", self.multi_class_weight >= 1, ">= 1"),
            ("max_steps_per_epoch", (self.max_steps_per_epoch or 1) >= 1, ">= 1 or None"),
            ("episodes", self.episodes >= 1, ">= 1"),
        ]
        for name, ok, want in checks:
            if not ok:
                raise ValueError(f"{name} must be {want}, got {getattr(self, name)!r}")
        if self.amp not in (None, "bf16", "fp16"):
            raise ValueError(f"amp must be one of (None, 'bf16', 'fp16'), got {self.amp!r}")
        if self.target not in ("class", "union"):
            raise ValueError(f"target must be one of ('class', 'union'), got {self.target!r}")
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

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dictionary (JSON- and ``weights_only``-safe)."""
        return dataclasses.asdict(self)


def _seed_everything(seed: int, epoch: int) -> int:
    value = (seed * 1_000_003 + epoch) % (2**31)
    torch.manual_seed(value)
    return value


class Trainer:
    """Train a segmentation model on episodes (zero-shot, or K-shot with ``config.shots``).

    Args:
        model: A :class:`~fewzero.models.SegmentationModel` (the one call contract).
        train_set: Episode dataset (supports included when ``config.shots > 0``).
        config: Run settings; ``config.out_dir`` receives ``config.json``, ``metrics.jsonl``,
            the checkpoints and ``loss.png``.
        overwrite: Replace a run already in ``config.out_dir`` (otherwise :meth:`fit` refuses
            such a folder unless :meth:`resume` loaded it).

    Raises:
        ValueError: a batch size that does not divide over the processes or exceeds the data.
    """

    def __init__(
        self,
        model: nn.Module,
        train_set: Dataset,
        config: TrainConfig,
        *,
        overwrite: bool = False,
    ) -> None:
        self.config = config
        self.overwrite = overwrite
        self.device = torch.device(config.device)
        self.model = model.to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.train_set = train_set
        self.out_dir = Path(config.out_dir)
        self.world = distributed.world_size()
        if config.batch_size % self.world:
            raise ValueError(
                f"batch_size must be divisible by the number of processes {self.world}, "
                f"got {config.batch_size}"
            )
        self.local_batch = config.batch_size // self.world
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
        self.steps_per_epoch = self._steps_per_epoch()
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._poly)
        self.ddp: nn.Module = self.model
        if self.world > 1:
            self.ddp = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.forward: nn.Module = self.ddp
        if config.compile:
            self.forward = compile_model(self.ddp)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.amp == "fp16")
        self.epoch = 0
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.resume_changes: list[dict[str, Any]] = []
        self._resumed = False
        self._finite: dict[int, bool] = {}

    def _poly(self, step: int) -> float:
        """Poly decay factor at ``step`` of ``epochs * steps_per_epoch`` (read live).

        Reading the config at every step lets a resumed run extend ``epochs``.
        """
        total = max(1, self.steps_per_epoch * self.config.epochs)
        return max(0.0, 1 - step / total) ** self.config.poly_power

    # ----------------------------------------------------------------- data
    def _sampler(self, epoch: int) -> DistributedSampler:
        """The data order of ``epoch``: a permutation seeded by ``(seed, epoch)``, split by rank.

        One process uses the same sampler with one replica, so an N-process run sees the same
        global batches as a one-process run of the same global batch size.
        """
        sampler = DistributedSampler(
            self.train_set,
            num_replicas=self.world,
            rank=distributed.rank(),
            shuffle=True,
            seed=self.config.seed,
            drop_last=True,
        )
        sampler.set_epoch(epoch)
        return sampler

    def _steps_per_epoch(self) -> int:
        n = len(self.train_set) // self.config.batch_size
        if self.config.max_steps_per_epoch is not None:
            n = min(n, self.config.max_steps_per_epoch)
        if n < 1:
            raise ValueError(
                f"batch_size {self.config.batch_size} exceeds the {len(self.train_set)} training pairs"
            )
        return n

    def _loader(self, epoch: int) -> DataLoader:
        sampler = self._sampler(epoch)
        gen = torch.Generator().manual_seed(_seed_everything(self.config.seed, epoch))
        return DataLoader(
            self.train_set,
            batch_size=self.local_batch,
            sampler=sampler,
            drop_last=True,
            num_workers=self.config.num_workers,
            collate_fn=collate_episodes,
            generator=gen,
            persistent_workers=False,
        )

    # ----------------------------------------------------------------- checkpoints
    @property
    def checkpoint_path(self) -> Path:
        """Path of the latest checkpoint (a link to the newest ``checkpoint_epoch<N>.pt``)."""
        return self.out_dir / "checkpoint_last.pt"

    def epoch_checkpoint(self, epoch: int) -> Path:
        """Path of the checkpoint written after ``epoch`` epochs (0: the initial weights)."""
        return self.out_dir / f"checkpoint_epoch{epoch:04d}.pt"

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run exactly."""
        return {
            "format": "fewzero-train-v2",
            "model": self.model.state_dict(),
            "model_config": dict(getattr(self.model, "config", {})),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "rng": {"torch": torch.get_rng_state()},
            "config": self.config.to_dict(),
            "history": self.history,
            "resume_changes": self.resume_changes,
            "finite": all(bool(torch.isfinite(p).all()) for p in self.model.parameters()),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a run.

        The saved run config must equal this trainer's, except for :data:`SAFE_RESUME_CHANGES`:
        those are applied (the learning rate and the poly schedule follow the new values), warned
        about and recorded.

        Raises:
            ValueError: naming every other changed setting, or a model that does not match.
        """
        changed = resume_changes(dict(state.get("config", {})), self.config)
        load_model_state(self.model, state["model"], state.get("model_config"))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.history = list(state.get("history", []))
        self.resume_changes = list(state.get("resume_changes", []))
        torch.set_rng_state(state["rng"]["torch"])
        # The learning rate follows the config (a changed lr or a longer schedule).
        self.scheduler.base_lrs = [self.config.lr for _ in self.optimizer.param_groups]
        for group in self.optimizer.param_groups:
            group["initial_lr"] = self.config.lr
            group["lr"] = self.config.lr * self._poly(self.step)
        notable = {k: v for k, v in changed.items() if k not in ("progress", "out_dir")}
        if notable:
            record = {
                "epoch": self.epoch,
                **{k: {"from": a, "to": b} for k, (a, b) in notable.items()},
            }
            self.resume_changes.append(record)
            if distributed.is_main_process():
                warnings.warn(
                    "resuming with changed settings: "
                    + ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in notable.items()),
                    stacklevel=2,
                )

    def resume(self, path: str | os.PathLike[str] | None = None) -> bool:
        """Load ``path`` (default: the run's last checkpoint) if it exists; returns whether it did.

        ``metrics.jsonl`` is cut back to the resumed epoch, so a run killed after writing its
        metrics but before its checkpoint does not repeat an epoch there.
        """
        path = Path(path) if path is not None else self.checkpoint_path
        if not path.is_file():
            return False
        self.load_state_dict(load_checkpoint(path, map_location=self.device))
        self._resumed = True
        if distributed.is_main_process():
            self._remove_stale_temp_files()
            metrics = self.out_dir / "metrics.jsonl"
            if metrics.is_file():
                lines = [ln for ln in metrics.read_text().splitlines() if ln.strip()]
                keep = [ln for ln in lines if json.loads(ln).get("epoch", 0) <= self.epoch]
                metrics.write_text("".join(ln + "\n" for ln in keep))
        return True

    def _remove_stale_temp_files(self) -> None:
        for tmp in self.out_dir.glob(".checkpoint_*.tmp-*"):
            tmp.unlink(missing_ok=True)

    def _claim_run_dir(self) -> None:
        """Refuse (or, with ``overwrite``, clear) a folder that already holds a run."""
        if not run_files(self.out_dir):
            return
        if not self.overwrite:
            check_run_dir(self.out_dir, resume=False, overwrite=False)
        for name in ("config.json", "metrics.jsonl", "loss.png", "checkpoint_last.pt"):
            (self.out_dir / name).unlink(missing_ok=True)
        for p in self.out_dir.glob("checkpoint_epoch*.pt"):
            p.unlink()
        self._remove_stale_temp_files()

    def _save(self) -> None:
        """Write this epoch's checkpoint, point ``checkpoint_last.pt`` at it, prune old ones."""
        state = self.state_dict()
        path = self.epoch_checkpoint(self.epoch)
        save_checkpoint(state, path)
        tmp = self.out_dir / f".checkpoint_last.pt.tmp-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        try:
            os.link(path, tmp)
        except OSError:  # no hard links on this filesystem
            shutil.copyfile(path, tmp)
        os.replace(tmp, self.checkpoint_path)
        self._finite[self.epoch] = bool(state["finite"])
        self._prune()

    def _prune(self) -> None:
        epochs = sorted(
            int(p.stem.removeprefix("checkpoint_epoch"))
            for p in self.out_dir.glob("checkpoint_epoch*.pt")
        )
        keep = set(epochs[-2:])
        finite = [e for e in epochs if self._is_finite(e)]
        if finite:
            keep.add(finite[-1])
        for e in epochs:
            if e not in keep:
                self.epoch_checkpoint(e).unlink(missing_ok=True)

    def _is_finite(self, epoch: int) -> bool:
        """Whether checkpoint ``epoch`` holds finite weights (read from the file only once)."""
        if epoch not in self._finite:
            self._finite[epoch] = bool(
                load_checkpoint(self.epoch_checkpoint(epoch)).get("finite", True)
            )
        return self._finite[epoch]

    def last_good_checkpoint(self) -> Path | None:
        """The newest checkpoint whose weights are all finite (``None`` if there is none)."""
        epochs = sorted(
            (
                int(p.stem.removeprefix("checkpoint_epoch"))
                for p in self.out_dir.glob("checkpoint_epoch*.pt")
            ),
            reverse=True,
        )
        for e in epochs:
            if self._is_finite(e):
                return self.epoch_checkpoint(e)
        return None

    # ----------------------------------------------------------------- training
    def _loss(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the valid pixels of the *global* batch (DDP-consistent)."""
        total = F.cross_entropy(logits.float(), mask, ignore_index=IGNORE_INDEX, reduction="sum")
        valid = (mask != IGNORE_INDEX).sum().to(torch.float64)
        if self.world > 1:
            dist.all_reduce(valid)
        return total * self.world / valid.clamp(min=1).to(total.dtype)

    def _write_json(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        payload = {**self.config.to_dict(), "resume_changes": self.resume_changes}
        (self.out_dir / "config.json").write_text(json.dumps(payload, indent=2, default=str))

    def _call(self, inputs: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One forward; a compiled model that fails falls back to eager once.

        The eager call runs the same step: an error of the model itself is raised from there,
        as itself, and only a failure that eager does not share is reported as compile's.
        """
        if self.forward is self.ddp:
            return self.ddp(**inputs, return_losses=True)
        try:
            return self.forward(**inputs, return_losses=True)
        except Exception as err:
            out = self.ddp(**inputs, return_losses=True)  # a bug of the model raises here
            warnings.warn(
                f"torch.compile failed ({type(err).__name__}: {err}); training runs eagerly",
                stacklevel=2,
            )
            self.forward = self.ddp
            return out

    def fit(self, stop_after: int | None = None) -> list[dict[str, Any]]:
        """Train from ``self.epoch`` to ``config.epochs``; returns the per-epoch history.

        Args:
            stop_after: Stop once this many epochs are done (as if the run were interrupted
                there; ``resume`` continues it).

        Raises:
            FileExistsError: ``out_dir`` holds a run that was neither resumed nor overwritten.
            NonFiniteLossError: the loss became NaN/Inf; the message names the newest
                checkpoint with finite weights.
        """
        cfg = self.config
        last = cfg.epochs if stop_after is None else min(stop_after, cfg.epochs)
        main = distributed.is_main_process()
        if main:
            if not self._resumed:
                self._claim_run_dir()
                self._resumed = True  # later fit() calls continue this run
            self._write_json()
            if self.epoch == 0 and not self.epoch_checkpoint(0).is_file():
                self._save()  # the initial weights: a restart point if the first epoch diverges
        autocast = amp_dtype(cfg.amp)
        while self.epoch < last:
            self.model.train()
            loader = self._loader(self.epoch)
            start, seen, losses = time.perf_counter(), 0, []
            bar = tqdm(
                total=self.steps_per_epoch,
                desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                disable=not (cfg.progress and main),
                leave=False,
            )
            for i, batch in enumerate(loader):
                if i >= self.steps_per_epoch:
                    break
                inputs = episode_inputs(batch, self.device, cfg.channels_last)
                mask = batch["mask"].to(self.device)
                with torch.autocast(
                    self.device.type, dtype=autocast, enabled=autocast is not None
                ):
                    logits, aux = self._call(inputs)
                loss = self._loss(logits, mask)
                for value in aux.values():
                    loss = loss + value.float()
                if not torch.isfinite(loss):
                    good = self.last_good_checkpoint() if main else None
                    where = (
                        f"the newest checkpoint with finite weights is {str(good)!r}"
                        if good is not None
                        else "no checkpoint with finite weights exists"
                    )
                    raise NonFiniteLossError(
                        f"loss is {loss.item()} at step {self.step + 1} (epoch {self.epoch + 1}); "
                        f"{where}: resume from it with a lower lr (--resume --lr ...)"
                    )
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
                self.step += 1
                seen += inputs["images"].shape[0] * self.world
                losses.append(loss.item())
                bar.set_postfix(
                    loss=f"{losses[-1]:.4f}", img_s=f"{seen / (time.perf_counter() - start):.1f}"
                )
                bar.update()
            bar.close()
            elapsed = time.perf_counter() - start
            self.epoch += 1
            record = {
                "epoch": self.epoch,
                "step": self.step,
                "loss": sum(losses) / max(len(losses), 1),
                "lr": self.optimizer.param_groups[0]["lr"],
                "seconds": elapsed,
                "images_per_s": seen / max(elapsed, 1e-9),
            }
            self.history.append(record)
            if main:
                self._save()
                with open(self.out_dir / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(record) + "\n")
                self.plot()
        return self.history

    def plot(self) -> Path | None:
        """Draw the loss curve to ``out_dir/loss.png`` (matplotlib, no display needed)."""
        if not self.history:
            return None
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot([r["epoch"] for r in self.history], [r["loss"] for r in self.history], marker="o")
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean cross-entropy")
        ax.set_title(f"{self.config.model} fold {self.config.fold}")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = self.out_dir / "loss.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return path


def run_files(out_dir: str | os.PathLike[str]) -> list[str]:
    """Names of the files that make ``out_dir`` a run folder (empty: no run there)."""
    out_dir = Path(out_dir)
    found = [f for f in _RUN_FILES if (out_dir / f).exists()]
    return sorted(found + [p.name for p in out_dir.glob("checkpoint_epoch*.pt")])


def resume_changes(saved: Mapping[str, Any], config: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """The settings ``config`` changes against a saved run's, ``{name: (saved, now)}``.

    Raises:
        RunConfigError: naming every change outside :data:`SAFE_RESUME_CHANGES`.
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


def check_run_dir(
    out_dir: str | os.PathLike[str],
    resume: bool,
    overwrite: bool,
    config: TrainConfig | None = None,
) -> None:
    """Refuse, before any work, a run folder that a new run would replace by accident.

    With ``resume`` and a ``config``, the run's saved ``config.json`` is compared with it by
    :func:`resume_changes`'s rule.

    Raises:
        FileExistsError: ``out_dir`` holds a run and neither ``resume`` nor ``overwrite`` is set.
        FileNotFoundError: ``resume`` is set and ``out_dir`` has no checkpoint to resume.
        ValueError: ``resume`` with a ``config`` that changes what a resumed run may not.
    """
    found = run_files(out_dir)
    if resume:
        if not (Path(out_dir) / "checkpoint_last.pt").is_file():
            raise FileNotFoundError(
                f"resume: no checkpoint to resume in {os.fspath(out_dir)!r} "
                "(checkpoint_last.pt is missing)"
            )
        saved = Path(out_dir) / "config.json"
        if config is not None and saved.is_file():
            resume_changes(json.loads(saved.read_text()), config)
        return
    if found and not overwrite:
        raise FileExistsError(
            f"out_dir {os.fspath(out_dir)!r} already holds a run ({', '.join(found[:4])}); "
            "resume it (--resume / Trainer.resume()) or replace it (--overwrite / "
            "Trainer(..., overwrite=True)), or choose another folder"
        )


def compile_model(module: nn.Module) -> nn.Module:
    """``torch.compile(module)``, or ``module`` with a warning where compile is unavailable.

    Failures at the first compiled call are caught by the trainer, which then runs eagerly.
    """
    try:
        return torch.compile(module)  # type: ignore[return-value]
    except Exception as err:  # e.g. no C++ compiler, unsupported platform or Python
        warnings.warn(f"torch.compile is unavailable ({err}); running eagerly", stacklevel=2)
        return module
