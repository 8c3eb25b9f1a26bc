"""The training loop: SGD with poly decay, AMP, channels_last, DDP, resumable runs.

Determinism: every epoch seeds torch's global generator and the data order from
``(seed, epoch)``, so an epoch's samples and augmentations do not depend on what ran before it.
On the CPU, training two epochs straight and one epoch + ``resume`` give bit-identical weights.

The run's settings are a [`TrainConfig`][fewzero.engine.TrainConfig]; its files (the refusal to
replace a run, atomic checkpoints, the ``checkpoint_last.pt`` link, pruning, the newest finite
checkpoint) are a [`RunFolder`][fewzero.engine.run_folder.RunFolder]. A resumed run may change only
[`SAFE_RESUME_CHANGES`][fewzero.engine.config.SAFE_RESUME_CHANGES]; each change is warned about and recorded in
``config.json``'s ``resume_changes``.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from ..checks import amp_dtype
from ..data.classes import IGNORE_INDEX
from ..data.samples import collate_episodes
from ..models import load_model_state
from . import distributed
from .checkpoint import load_checkpoint
from .config import TrainConfig, resume_changes
from .inputs import episode_inputs, uses_class_ids
from .run_folder import RunFolder

__all__ = ["NonFiniteLossError", "Trainer", "compile_model"]


class NonFiniteLossError(FloatingPointError):
    """Raised when the loss becomes NaN or Inf; the last good checkpoint is left in place."""


def _seed_everything(seed: int, epoch: int) -> int:
    value = (seed * 1_000_003 + epoch) % (2**31)
    torch.manual_seed(value)
    return value


def _optimizer(config: TrainConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """The run's optimizer over ``params``: AdamW, or SGD (Nesterov only with momentum)."""
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        params,
        lr=config.lr,
        momentum=config.momentum,
        nesterov=config.nesterov and config.momentum > 0,
        weight_decay=config.weight_decay,
    )


def _poly_decay(config: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The poly schedule's factor as a function of the step (``epochs`` read live from ``config``).

    Reading the config at every step lets a resumed run extend ``epochs``.
    """

    def factor(step: int) -> float:
        total = max(1, steps_per_epoch * config.epochs)
        return max(0.0, 1 - step / total) ** config.poly_power

    return factor


class Trainer:
    """Train a segmentation model on episodes (zero-shot, or K-shot with ``config.shots``).

    Args:
        model: A [`SegmentationModel`][fewzero.models.SegmentationModel] (the one call contract).
        train_set: Episode dataset (supports included when ``config.shots > 0``).
        config: Run settings; ``config.out_dir`` receives ``config.json``, ``metrics.jsonl``,
            the checkpoints and ``loss.png``.
        overwrite: Replace a run already in ``config.out_dir`` (otherwise ``fit`` refuses
            such a folder unless ``resume`` loaded it).

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
        if not isinstance(config, TrainConfig):
            raise TypeError(
                f"config must be a fewzero.engine.TrainConfig, got a {type(config).__name__}: "
                "build it with TrainConfig(epochs=..., batch_size=...)"
            )
        self.config = config
        self.overwrite = overwrite
        self.device = torch.device(config.device)
        self.model = model.to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.train_set = train_set
        self.folder = RunFolder(config.out_dir)
        self.out_dir = self.folder.out_dir
        self.world = distributed.world_size()
        if config.batch_size % self.world:
            raise ValueError(
                f"batch_size must be divisible by the number of processes {self.world}, "
                f"got {config.batch_size}"
            )
        self.local_batch = config.batch_size // self.world
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = _optimizer(config, params)
        self.steps_per_epoch = self._steps_per_epoch()
        # A closure, not a bound method: the scheduler must not hold the trainer (a reference
        # cycle would keep a DDP wrapper, and its process group, alive past cleanup()).
        self._poly = _poly_decay(config, self.steps_per_epoch)
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

        The saved run config must equal this trainer's, except for [`SAFE_RESUME_CHANGES`][fewzero.engine.config.SAFE_RESUME_CHANGES]:
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
            self.folder.remove_stale_temp_files()
            self.folder.trim_metrics(self.epoch)
        return True

    # ----------------------------------------------------------------- run folder
    @property
    def checkpoint_path(self) -> Path:
        """Path of the latest checkpoint (a link to the newest ``checkpoint_epoch<N>.pt``)."""
        return self.folder.checkpoint_path

    def epoch_checkpoint(self, epoch: int) -> Path:
        """Path of the checkpoint written after ``epoch`` epochs (0: the initial weights)."""
        return self.folder.epoch_checkpoint(epoch)

    def last_good_checkpoint(self) -> Path | None:
        """The newest checkpoint whose weights are all finite (``None`` if there is none)."""
        return self.folder.last_good_checkpoint()

    def _save(self) -> None:
        self.folder.save(self.state_dict(), self.epoch)

    # ----------------------------------------------------------------- training
    def _loss(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the valid pixels of the *global* batch (DDP-consistent)."""
        total = F.cross_entropy(logits.float(), mask, ignore_index=IGNORE_INDEX, reduction="sum")
        valid = (mask != IGNORE_INDEX).sum().to(torch.float64)
        if self.world > 1:
            dist.all_reduce(valid)
        return total * self.world / valid.clamp(min=1).to(total.dtype)

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
        last = self.config.epochs if stop_after is None else min(stop_after, self.config.epochs)
        self._begin()
        while self.epoch < last:
            start = time.perf_counter()
            losses, seen = self._train_epoch()
            self._end_epoch(losses, seen, time.perf_counter() - start)
        return self.history

    def _begin(self) -> None:
        """Claim the run folder (or continue the resumed run), write its config, save epoch 0."""
        if not distributed.is_main_process():
            return
        if not self._resumed:
            self.folder.claim(self.overwrite)
            self._resumed = True  # later fit() calls continue this run
        self.folder.write_config({**self.config.to_dict(), "resume_changes": self.resume_changes})
        if self.epoch == 0 and not self.epoch_checkpoint(0).is_file():
            self._save()  # the initial weights: a restart point if the first epoch diverges

    def _train_epoch(self) -> tuple[list[float], int]:
        """One epoch of SGD steps; returns the step losses and the images seen (all ranks)."""
        self.model.train()
        main = distributed.is_main_process()
        bar = tqdm(
            total=self.steps_per_epoch,
            desc=f"epoch {self.epoch + 1}/{self.config.epochs}",
            disable=not (self.config.progress and main),
            leave=False,
        )
        start, seen, losses = time.perf_counter(), 0, []
        for i, batch in enumerate(self._loader(self.epoch)):
            if i >= self.steps_per_epoch:
                break
            losses.append(self._step(batch))
            seen += batch["image"].shape[0] * self.world
            bar.set_postfix(
                loss=f"{losses[-1]:.4f}", img_s=f"{seen / (time.perf_counter() - start):.1f}"
            )
            bar.update()
        bar.close()
        return losses, seen

    def _step(self, batch: Mapping[str, Any]) -> float:
        """One SGD step on ``batch``; returns its loss.

        Raises:
            NonFiniteLossError: for a NaN/Inf loss, naming the newest finite checkpoint.
        """
        cfg = self.config
        inputs = episode_inputs(
            batch, self.device, cfg.channels_last, class_ids=uses_class_ids(self.model)
        )
        mask = batch["mask"].to(self.device)
        autocast = amp_dtype(cfg.amp)
        with torch.autocast(self.device.type, dtype=autocast, enabled=autocast is not None):
            logits, aux = self._call(inputs)
        loss = self._loss(logits, mask)
        for value in aux.values():
            loss = loss + value.float()
        if not torch.isfinite(loss):
            good = self.last_good_checkpoint() if distributed.is_main_process() else None
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
        return loss.item()

    def _end_epoch(self, losses: list[float], seen: int, elapsed: float) -> None:
        """Record the epoch; the main process saves its checkpoint, metrics and loss curve."""
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
        if distributed.is_main_process():
            self._save()
            self.folder.append_metrics(record)
            self.plot()

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


def compile_model(module: nn.Module) -> nn.Module:
    """``torch.compile(module)``, or ``module`` with a warning where compile is unavailable.

    Failures at the first compiled call are caught by the trainer, which then runs eagerly.
    """
    try:
        return torch.compile(module)  # type: ignore[return-value]
    except Exception as err:  # e.g. no C++ compiler, unsupported platform or Python
        warnings.warn(f"torch.compile is unavailable ({err}); running eagerly", stacklevel=2)
        return module
