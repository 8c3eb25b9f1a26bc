"""Episode batches to the models' keyword arguments (the one call contract)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["episode_inputs", "uses_class_ids"]


def uses_class_ids(model: nn.Module) -> bool:
    """Whether ``model`` (or the model a DDP / ``torch.compile`` wrapper holds) takes class ids."""
    inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None) or model
    return bool(getattr(inner, "requires_class_ids", False))


def episode_inputs(
    batch: Mapping[str, Any],
    device: torch.device,
    channels_last: bool = False,
    class_ids: bool = True,
) -> dict[str, torch.Tensor | None]:
    """Move a collated episode batch to ``device`` as ``model(**inputs)`` arguments.

    Raises:
        ValueError: for images or supports kept as lists (episodes without a resizing transform).

    Returns ``images``, ``support_images``/``support_masks`` (``None`` in zero-shot batches) and,
    with ``class_ids`` (pass [`uses_class_ids`][fewzero.engine.inputs.uses_class_ids] of the
    model: a model refuses class ids it does not use), ``class_ids``. N-way
    batches give ``(B, N, K, ...)`` supports and ``(B, N)`` class ids (see
    [`fewzero.models.nway.nway_scores`][fewzero.models.nway_scores]).
    """
    for key in ("image", "support_images", "support_masks"):
        if isinstance(batch.get(key), list):
            raise ValueError(
                f"batch[{key!r}] is a list of tensors of their own sizes (an episode dataset "
                "without a resizing transform); the models take one tensor of one size: pass "
                "transform=fewzero.data.eval_transform(size) to the dataset"
            )
    images = batch["image"].to(device, non_blocking=True)
    support_images = batch.get("support_images")
    support_masks = batch.get("support_masks")
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    if support_images is not None:
        support_images = support_images.to(device, non_blocking=True)
        support_masks = support_masks.to(device, non_blocking=True)
    inputs: dict[str, torch.Tensor | None] = {
        "images": images,
        "support_images": support_images,
        "support_masks": support_masks,
    }
    if class_ids:
        inputs["class_ids"] = batch["class_ids" if "class_ids" in batch else "class_id"].to(device)
    return inputs
