"""Episode batches to the models' keyword arguments (the one call contract)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["episode_inputs"]


def episode_inputs(
    batch: Mapping[str, Any], device: torch.device, channels_last: bool = False
) -> dict[str, torch.Tensor | None]:
    """Move a collated episode batch to ``device`` as ``model(**inputs)`` arguments.

    Returns ``images``, ``support_images``/``support_masks`` (``None`` in zero-shot batches) and
    ``class_ids``: every model takes the same call and uses what its contract says. N-way
    batches give ``(B, N, K, ...)`` supports and ``(B, N)`` class ids (see
    [`fewzero.models.nway.nway_scores`][fewzero.models.nway_scores]).
    """
    images = batch["image"].to(device, non_blocking=True)
    support_images = batch.get("support_images")
    support_masks = batch.get("support_masks")
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    if support_images is not None:
        support_images = support_images.to(device, non_blocking=True)
        support_masks = support_masks.to(device, non_blocking=True)
    return {
        "images": images,
        "support_images": support_images,
        "support_masks": support_masks,
        "class_ids": batch["class_ids" if "class_ids" in batch else "class_id"].to(device),
    }
