"""The episodes' class ids as the meters take them, checked once for all of them."""

from __future__ import annotations

import torch

from ..checks import check_positive_int

__all__ = ["episode_class_ids"]


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
