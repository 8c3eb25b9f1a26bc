"""Evaluation over fixed test episodes, scored at the label's original size."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..data.episodes import collate_episodes
from ..metrics import IoUMeter
from .trainer import forward_episode

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
) -> dict[str, Any]:
    """Score ``model`` on every episode of ``dataset``.

    Logits are upsampled bilinearly to each episode's original label size before the argmax.

    Returns:
        :meth:`fewzero.metrics.IoUMeter.compute`'s dictionary.
    """
    model.eval()
    meter = IoUMeter(max_class_id=max_class_id)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_episodes,
    )
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp or "")
    device = torch.device(device)
    for batch in tqdm(loader, desc="eval", disable=not progress, leave=False):
        images = batch["image"].to(device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            logits = forward_episode(model, model, images, batch["class_id"]).float()
        for i, label in enumerate(batch["label"]):
            up = F.interpolate(
                logits[i : i + 1], size=label.shape, mode="bilinear", align_corners=False
            )
            meter.update(up.argmax(1).cpu(), label[None], batch["class_id"][i : i + 1])
    meter.all_reduce()
    return meter.compute()
