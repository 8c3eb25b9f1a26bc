"""What the meters take, checked once for all of them: the episodes' class ids and maps."""

from __future__ import annotations

import torch

from ..checks import check_positive_int

__all__ = ["check_episode_maps", "episode_class_ids"]


def episode_class_ids(class_ids: torch.Tensor, batch: int, max_class_id: int) -> torch.Tensor:
    """``class_ids`` as a ``(batch,)`` int64 CPU tensor, each in ``[0, max_class_id]``.

    Raises:
        ValueError: naming ``class_ids``, for another count than ``batch`` or an id out of range.

    Examples:
        >>> episode_class_ids([3, 7], 2, 80)
        tensor([3, 7])
    """
    check_positive_int("batch", batch)
    check_positive_int("max_class_id", max_class_id)
    class_ids = torch.as_tensor(class_ids).reshape(-1).long().cpu()
    if class_ids.numel() != batch:
        raise ValueError(f"class_ids must have {batch} entries (B), got {class_ids.numel()}")
    if class_ids.min() < 0 or class_ids.max() > max_class_id:
        raise ValueError(f"class_ids must lie in [0, {max_class_id}], got {class_ids.tolist()}")
    return class_ids


def check_episode_maps(
    pred: torch.Tensor, target: torch.Tensor, name: str, ignore_index: int | None = None
) -> None:
    """Check that ``pred`` and ``target`` (called ``name``) are ``(B, H, W)`` maps of one shape.

    With ``ignore_index``, also that ``pred`` is binary and ``target`` in ``{0, 1,
    ignore_index}`` (the one-way meters' masks).

    Raises:
        ValueError: naming ``pred`` or ``name``, with the shapes or the values found.

    Examples:
        >>> import torch
        >>> check_episode_maps(torch.zeros(2, 3, 3), torch.ones(2, 3, 3), "target", 255)
        >>> check_episode_maps(torch.zeros(2, 3, 3), torch.ones(3, 3), "target")
        Traceback (most recent call last):
        ...
        ValueError: pred and target must both be (B, H, W), got (2, 3, 3) and (3, 3)
    """
    if pred.shape != target.shape or pred.dim() != 3:
        raise ValueError(
            f"pred and {name} must both be (B, H, W), got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}"
        )
    if ignore_index is None:
        return
    bad_pred = pred[(pred != 0) & (pred != 1)]
    if bad_pred.numel():
        raise ValueError(f"pred must be in {{0, 1}}, got values {bad_pred.unique().tolist()}")
    bad = target[(target != 0) & (target != 1) & (target != ignore_index)]
    if bad.numel():
        raise ValueError(
            f"{name} must be in {{0, 1, {ignore_index}}}, got values {bad.unique().tolist()}"
        )
