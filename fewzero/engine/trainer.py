"""The training loop: SGD with poly decay, AMP, channels_last, DDP, atomic resumable checkpoints.

Determinism: every epoch seeds torch's global generator and the data order from
``(seed, epoch)``, so an epoch's samples and augmentations do not depend on what ran before it.
On the CPU, training two epochs straight and one epoch + ``resume`` give bit-identical weights.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
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

from ..data.classes import IGNORE_INDEX
from ..data.episodes import collate_episodes
from ..models import load_model_state
from . import distributed
from .checkpoint import load_checkpoint, save_checkpoint

__all__ = ["NonFiniteLossError", "TrainConfig", "Trainer", "forward_episode"]

# Config entries that must match for a resumed run to continue the same run.
_RESUME_KEYS = ("model", "backbone", "fold", "seed", "epochs", "batch_size", "lr", "momentum",
                "weight_decay", "poly_power", "crop_size", "target")  # fmt: skip


class NonFiniteLossError(FloatingPointError):
    """Raised when the loss becomes NaN or Inf; the last good checkpoint is left in place."""


@dataclass
class TrainConfig:
    """Settings of a training run (defaults: the paper's, and the peers' where it is silent)."""

    model: str = "sm_vcenet_resnet50"
    backbone: str | None = None
    fold: int = 0
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
    amp: str | None = None
    channels_last: bool = False
    seed: int = 0
    num_workers: int = 0
    max_steps_per_epoch: int | None = None
    out_dir: str = "runs/train"
    device: str = "cpu"
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dictionary (JSON- and ``weights_only``-safe)."""
        return dataclasses.asdict(self)


def forward_episode(
    module: nn.Module, model: nn.Module, images: torch.Tensor, class_ids: torch.Tensor
) -> torch.Tensor:
    """Call ``module`` (the model or its DDP wrapper) with the class ids if ``model`` needs them."""
    if getattr(model, "conditioned", False):
        return module(images, class_ids.to(images.device))
    return module(images)


def _seed_everything(seed: int, epoch: int) -> int:
    value = (seed * 1_000_003 + epoch) % (2**31)
    torch.manual_seed(value)
    return value


class Trainer:
    """Train a segmentation model on binary episodes.

    Args:
        model: The model (``forward(images) -> logits (B, 2, H, W)``).
        train_set: Episode dataset yielding ``image``/``mask`` pairs.
        config: Run settings; ``config.out_dir`` receives ``config.json``, ``metrics.jsonl``,
            ``checkpoint_last.pt`` and ``loss.png``.
    """

    def __init__(self, model: nn.Module, train_set: Dataset, config: TrainConfig) -> None:
        if config.amp not in (None, "bf16", "fp16"):
            raise ValueError(f"amp must be one of (None, 'bf16', 'fp16'), got {config.amp!r}")
        self.config = config
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
        self.total_steps = max(1, self.steps_per_epoch * config.epochs)
        power = config.poly_power
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: max(0.0, 1 - step / self.total_steps) ** power
        )
        self.ddp: nn.Module = self.model
        if self.world > 1:
            self.ddp = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.amp == "fp16")
        self.epoch = 0
        self.step = 0
        self.history: list[dict[str, Any]] = []

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
        """Path of the latest checkpoint."""
        return self.out_dir / "checkpoint_last.pt"

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run exactly."""
        return {
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
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a run; refuses a checkpoint of another architecture or run config."""
        saved = state.get("config", {})
        diff = [k for k in _RESUME_KEYS if k in saved and saved[k] != getattr(self.config, k)]
        if diff:
            details = ", ".join(
                f"{k}: run {getattr(self.config, k)!r} vs checkpoint {saved[k]!r}" for k in diff
            )
            raise ValueError(f"checkpoint belongs to another run config ({details})")
        load_model_state(self.model, state["model"], state.get("model_config"))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.history = list(state.get("history", []))
        torch.set_rng_state(state["rng"]["torch"])

    def resume(self, path: str | os.PathLike[str] | None = None) -> bool:
        """Load ``path`` (default: the run's last checkpoint) if it exists; returns whether it did."""
        path = Path(path) if path is not None else self.checkpoint_path
        if not path.is_file():
            return False
        self.load_state_dict(load_checkpoint(path, map_location=self.device))
        return True

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
        (self.out_dir / "config.json").write_text(
            json.dumps(self.config.to_dict(), indent=2, default=str)
        )

    def fit(self, stop_after: int | None = None) -> list[dict[str, Any]]:
        """Train from ``self.epoch`` to ``config.epochs``; returns the per-epoch history.

        Args:
            stop_after: Stop once this many epochs are done (as if the run were interrupted
                there; ``resume`` continues it).
        """
        cfg = self.config
        last = cfg.epochs if stop_after is None else min(stop_after, cfg.epochs)
        main = distributed.is_main_process()
        if main:
            self._write_json()
        amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp or "")
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
                images = batch["image"].to(self.device)
                if cfg.channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                mask = batch["mask"].to(self.device)
                with torch.autocast(
                    self.device.type, dtype=amp_dtype, enabled=amp_dtype is not None
                ):
                    logits = forward_episode(self.ddp, self.model, images, batch["class_id"])
                loss = self._loss(logits, mask)
                aux = getattr(self.model, "auxiliary_loss", None)
                if aux is not None:
                    loss = loss + aux.float()
                if not torch.isfinite(loss):
                    raise NonFiniteLossError(
                        f"loss is {loss.item()} at step {self.step + 1} (epoch {self.epoch + 1}); "
                        f"the last good checkpoint is {str(self.checkpoint_path)!r}"
                    )
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
                self.step += 1
                seen += images.shape[0] * self.world
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
                "lr": self.scheduler.get_last_lr()[0],
                "seconds": elapsed,
                "images_per_s": seen / max(elapsed, 1e-9),
            }
            self.history.append(record)
            if main:
                with open(self.out_dir / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(record) + "\n")
                save_checkpoint(self.state_dict(), self.checkpoint_path)
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
