"""Evaluation over fixed test episodes, scored at the label's original size.

Under ``torchrun`` every process scores its own share of the episodes (episode ``i`` goes to
rank ``i % world_size``) and the intersections and unions are summed over all processes, so
every rank returns the numbers a single process computes.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from ..checks import amp_dtype
from ..data.samples import collate_episodes
from ..layers import label_map
from ..metrics import AbsentMeter, IoUMeter, LeakMeter, NWayIoUMeter
from ..models.base import check_finite
from ..models.nway import nway_scores
from . import distributed
from .inputs import episode_inputs, uses_class_ids

__all__ = ["evaluate"]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,
    batch_size: int = 8,
    num_workers: int = 0,
    device: str | torch.device = "cpu",
    amp: str | None = None,
    progress: bool = False,
    max_class_id: int = 80,
    desc: str = "eval",
    label_size: str = "original",
) -> dict[str, Any]:
    """Score ``model`` on every episode of ``dataset`` (K-shot when the episodes carry supports).

    Logits are upsampled bilinearly to each episode's original label size before the argmax.
    Episodes that mark the other classes of their split (``other``, every PASCAL-5i/COCO-20i
    episode) also give the *leak*: the share of those pixels predicted as the episode's class
    ([`LeakMeter`][fewzero.metrics.LeakMeter]). N-way episodes (``ways=N``) are scored as label maps
    ([`nway_scores`][fewzero.models.nway_scores], [`NWayIoUMeter`][fewzero.metrics.NWayIoUMeter]).

    Args:
        model: A model following the one call contract.
        dataset: Episode dataset (zero-shot or few-shot).
        batch_size: Episodes per forward.
        num_workers: DataLoader workers.
        device: Where the model runs.
        amp: ``"bf16"``/``"fp16"`` autocast, or ``None``.
        progress: Show a progress bar (main process only).
        max_class_id: Largest class id of the episodes.
        desc: Progress bar label.
        label_size: ``"original"`` (default; HSNet's and the paper's protocol: logits upsampled
            to each label's own size) or ``"resized"`` (PFENet's default: scored against the
            label after the dataset's transform, at the model's input size). With
            ``"resized"`` the leak is measured on the other classes' pixels resized the same way
            (nearest neighbour).

    Returns:
        [`fewzero.metrics.IoUMeter.compute`][fewzero.metrics.IoUMeter.compute]'s dictionary with ``leak`` (a fraction, nan
        where no episode shows another class) and ``other_pixels``, and
        [AbsentMeter][fewzero.metrics.AbsentMeter]'s numbers over the episodes whose label shows
        no pixel of their class (``absent_episodes`` 0 and nan rates where there are none); for N-way episodes
        [`fewzero.metrics.NWayIoUMeter.compute`][fewzero.metrics.NWayIoUMeter.compute]'s. Equal on every rank.

    Raises:
        ValueError: for NaN/Inf in an episode's images.
    """
    if label_size not in ("original", "resized"):
        raise ValueError(f"label_size must be 'original' or 'resized', got {label_size!r}")
    model.eval()
    meters = _Meters(max_class_id)
    world, rank = distributed.world_size(), distributed.rank()
    shard = dataset if world == 1 else Subset(dataset, range(rank, len(dataset), world))
    loader = DataLoader(
        shard,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_episodes,
    )
    dtype = amp_dtype(amp)
    device = torch.device(device)
    bar = tqdm(
        loader, desc=desc, disable=not (progress and distributed.is_main_process()), leave=False
    )
    for batch in bar:
        ways = "class_ids" in batch
        inputs = episode_inputs(batch, device, class_ids=not ways and uses_class_ids(model))
        check_finite(batch["image"], "images")
        if "support_images" in batch:
            check_finite(batch["support_images"], "support_images")
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            if ways:
                logits = nway_scores(model, **inputs).float()
            else:
                logits = model(**inputs).float()
        labels = batch["label"] if label_size == "original" else list(batch["mask"])
        meters.update(batch, logits, labels)
    return meters.compute(nway=getattr(dataset, "ways", 1) > 1)


class _Meters:
    """An evaluation's meters: IoU, leak and absent for 1-way episodes, N-way IoU for N-way."""

    def __init__(self, max_class_id: int) -> None:
        self.iou = IoUMeter(max_class_id=max_class_id)
        self.leak = LeakMeter(max_class_id=max_class_id)
        self.absent = AbsentMeter()
        self.nway = NWayIoUMeter(max_class_id=max_class_id)

    def update(
        self, batch: dict[str, Any], logits: torch.Tensor, labels: list[torch.Tensor]
    ) -> None:
        """Score each episode of ``batch``: its logits upsampled to its label's size."""
        for i, label in enumerate(labels):
            up = F.interpolate(
                logits[i : i + 1], size=label.shape, mode="bilinear", align_corners=False
            )
            pred = label_map(up).cpu()
            if "class_ids" in batch:
                self.nway.update(pred, label[None], batch["class_ids"][i : i + 1])
                continue
            self.iou.update(pred, label[None], batch["class_id"][i : i + 1])
            self.absent.update(pred, label[None])
            if "other" in batch:
                other = batch["other"][i]
                if tuple(other.shape) != tuple(label.shape):  # resized labels: the same grid
                    grid = F.interpolate(
                        other[None, None].float(), size=label.shape, mode="nearest"
                    )
                    other = grid[0, 0].to(other.dtype)
                self.leak.update(pred, other[None], batch["class_id"][i : i + 1])

    def compute(self, nway: bool) -> dict[str, Any]:
        """The numbers over every rank's episodes."""
        if nway:
            self.nway.all_reduce()
            return self.nway.compute()
        for meter in (self.iou, self.leak, self.absent):
            meter.all_reduce()
        return {**self.iou.compute(), **self.leak.compute(), **self.absent.compute()}
