"""The leak: how much of the *other* classes' area a model predicts as the episode's class.

On a query that shows the episode's class A and another class B, a model that follows its
support segments A alone; a model that segments "any object" also covers B. The leak is

    leak = (pixels of B predicted foreground) / (pixels of B),

summed over every episode before the division (like the per-class IoU). A zero-shot model, which
cannot know whether A or B is meant, leaks about half of B on such queries; that is the baseline
a few-shot model must beat. Pixels labelled ``ignore_index`` are excluded.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["LeakMeter"]


class LeakMeter:
    """Accumulate the predicted-foreground share of the other classes' pixels.

    Args:
        ignore_index: ``other`` value excluded from scoring.

    Examples:
        >>> import torch
        >>> meter = LeakMeter()
        >>> pred = torch.tensor([[[1, 1, 0, 0]]])
        >>> other = torch.tensor([[[0, 1, 1, 255]]])
        >>> meter.update(pred, other)
        >>> meter.compute()
        {'leak': 0.5, 'other_pixels': 2}
    """

    def __init__(self, ignore_index: int = 255) -> None:
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        """Clear the sums."""
        self.sums = torch.zeros(2, dtype=torch.float64)  # leaked, other pixels

    def update(self, pred: torch.Tensor, other: torch.Tensor) -> None:
        """Add a batch.

        Args:
            pred: ``(B, H, W)`` predictions in {0, 1} (1 = the episode's class).
            other: ``(B, H, W)`` in {0, 1, ignore_index}: 1 where another class lies.

        Raises:
            ValueError: on mismatched shapes or out-of-range values.
        """
        if pred.shape != other.shape or pred.dim() != 3:
            raise ValueError(
                f"pred and other must both be (B, H, W), got {tuple(pred.shape)} and "
                f"{tuple(other.shape)}"
            )
        bad = other[(other != 0) & (other != 1) & (other != self.ignore_index)]
        if bad.numel():
            raise ValueError(
                f"other must be in {{0, 1, {self.ignore_index}}}, got values {bad.unique().tolist()}"
            )
        bad_pred = pred[(pred != 0) & (pred != 1)]
        if bad_pred.numel():
            raise ValueError(f"pred must be in {{0, 1}}, got values {bad_pred.unique().tolist()}")
        o = other == 1
        self.sums += torch.tensor(
            [float((pred.bool() & o).sum()), float(o.sum())], dtype=torch.float64
        )

    def all_reduce(self) -> None:
        """Sum over all processes (no-op outside ``torch.distributed``)."""
        if not (dist.is_available() and dist.is_initialized()):
            return
        t = self.sums.cuda() if dist.get_backend() == "nccl" else self.sums
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        self.sums.copy_(t.cpu())

    def compute(self) -> dict[str, float | int]:
        """``{"leak": fraction in [0, 1] (nan without other pixels), "other_pixels": n}``."""
        leaked, total = self.sums.tolist()
        return {"leak": leaked / total if total > 0 else float("nan"), "other_pixels": int(total)}
