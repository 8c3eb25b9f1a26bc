"""What every meter shares: its state is float64 sums, cleared together and summed over processes."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.distributed as dist

from ..checks import check_positive_int

__all__ = ["ClassSumMeter", "SumMeter"]


class SumMeter(ABC):
    """Base of the meters: named float64 sums, made by ``reset`` and added up by ``all_reduce``.

    A meter names its sums and their shapes in
    [`sum_shapes`][fewzero.metrics.sums.SumMeter.sum_shapes]; each becomes an attribute of that
    name, zero after [`reset`][fewzero.metrics.sums.SumMeter.reset].

    Examples:
        >>> import torch
        >>> class Count(SumMeter):
        ...     def sum_shapes(self):
        ...         return {"seen": (1,)}
        >>> meter = Count()
        >>> meter.reset()
        >>> meter.seen += 2
        >>> meter.all_reduce()  # a no-op outside torch.distributed
        >>> meter.seen.tolist()
        [2.0]
    """

    @abstractmethod
    def sum_shapes(self) -> dict[str, tuple[int, ...]]:
        """Each sum's attribute name and shape."""

    def reset(self) -> None:
        """Clear the sums."""
        for name, shape in self.sum_shapes().items():
            setattr(self, name, torch.zeros(shape, dtype=torch.float64))

    def all_reduce(self) -> None:
        """Sum the accumulators over all processes (no-op outside ``torch.distributed``)."""
        if not (dist.is_available() and dist.is_initialized()):
            return
        nccl = dist.get_backend() == "nccl"  # NCCL reduces CUDA tensors only
        for name in self.sum_shapes():
            total = getattr(self, name)
            moved = total.cuda() if nccl else total
            dist.all_reduce(moved, op=dist.ReduceOp.SUM)
            total.copy_(moved.cpu())


class ClassSumMeter(SumMeter):
    """A [`SumMeter`][fewzero.metrics.sums.SumMeter] with sums per class id, up to ``max_class_id``.

    Args:
        max_class_id: Largest class id that may be passed (80 covers COCO).
        ignore_index: Target value excluded from scoring.

    Raises:
        ValueError: naming ``max_class_id`` when it is not a positive int.
    """

    def __init__(self, max_class_id: int = 80, ignore_index: int = 255) -> None:
        check_positive_int("max_class_id", max_class_id)
        self.max_class_id, self.ignore_index = max_class_id, ignore_index
        self.reset()
