"""What a few-shot model marks when the support's class is not in the query at all.

A query that does not show the episode's class should come back empty. Over such *class-absent*
episodes (every label pixel background or ignored) two numbers say how far a model is from that:

* the **false-positive rate**: the share of those episodes with any pixel predicted as the class;
* the **foreground fraction**: the mean, over those episodes, of the share of each query's
  scored pixels (not ignored) predicted as the class.
"""

from __future__ import annotations

import torch

from ..checks import check_numbers
from .class_ids import check_episode_maps
from .sums import SumMeter

__all__ = ["AbsentMeter"]


class AbsentMeter(SumMeter):
    """Accumulate the false-positive rate and foreground fraction of class-absent episodes.

    Episodes whose label shows the class (any pixel 1) are left out: they are scored by
    [IoUMeter][fewzero.metrics.IoUMeter].

    Args:
        ignore_index: Label value excluded from the foreground fraction.

    Examples:
        >>> import torch
        >>> meter = AbsentMeter()
        >>> pred = torch.tensor([[[1, 0, 0, 0]], [[0, 0, 0, 0]], [[1, 1, 0, 0]]])
        >>> label = torch.tensor([[[0, 0, 0, 255]], [[0, 0, 0, 0]], [[1, 1, 0, 0]]])
        >>> meter.update(pred, label)  # the third episode shows the class: not counted
        >>> meter.compute()
        {'absent_episodes': 2, 'absent_fpr': 0.5, 'absent_fg_fraction': 0.16666666666666666}
    """

    sums: torch.Tensor

    def __init__(self, ignore_index: int = 255) -> None:
        check_numbers("AbsentMeter", {"ignore_index": "nonnegative_int"}, {"ignore_index": ignore_index})
        self.ignore_index = ignore_index
        self.reset()

    def sum_shapes(self) -> dict[str, tuple[int, ...]]:
        """Episodes, episodes with any foreground, and their foreground fractions."""
        return {"sums": (3,)}

    def update(self, pred: torch.Tensor, label: torch.Tensor) -> None:
        """Add a batch: ``pred`` and ``label`` ``(B, H, W)``, 1 = the episode's class.

        An episode whose label is all ignore (255) has nothing to score and is left out.

        Raises:
            ValueError: on mismatched shapes, or a ``pred`` that is not a mask (float
                probabilities).
        """
        check_episode_maps(pred, label, "label")
        if pred.is_floating_point():
            raise ValueError(
                f"pred must be a mask of class indices (the argmax of the logits; 1 = the "
                f"episode's class), got {pred.dtype} values such as "
                f"{torch.unique(pred)[:4].tolist()}; pass logits.argmax(1)"
            )
        scored = (label != self.ignore_index).flatten(1).any(dim=1)
        absent = ~(label == 1).flatten(1).any(dim=1) & scored
        if not bool(absent.any()):
            return
        valid = (label != self.ignore_index).flatten(1)[absent]
        fg = (pred == 1).flatten(1)[absent] & valid
        fraction = fg.sum(1).double() / valid.sum(1).clamp(min=1).double()
        self.sums += torch.stack(
            [absent.sum().double(), fg.any(dim=1).sum().double(), fraction.sum()]
        ).cpu()

    def compute(self) -> dict[str, float | int]:
        """``{"absent_episodes", "absent_fpr", "absent_fg_fraction"}`` (nan without such episodes)."""
        n, positive, fraction = self.sums.tolist()
        return {
            "absent_episodes": int(n),
            "absent_fpr": positive / n if n else float("nan"),
            "absent_fg_fraction": fraction / n if n else float("nan"),
        }
