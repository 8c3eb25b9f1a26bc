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

from .class_ids import check_episode_maps, episode_class_ids
from .sums import ClassSumMeter

__all__ = ["LeakMeter"]


class LeakMeter(ClassSumMeter):
    """Accumulate the predicted-foreground share of the other classes' pixels.

    Given each episode's class, the leak is also kept per class (the episode's class, the one
    the support names): on which classes a model confuses the support's object with another.

    Args:
        ignore_index: ``other`` value excluded from scoring.
        max_class_id: Largest episode class id that may be passed (80 covers COCO).

    Examples:
        >>> import torch
        >>> meter = LeakMeter()
        >>> pred = torch.tensor([[[1, 1, 0, 0]], [[0, 0, 0, 0]]])
        >>> other = torch.tensor([[[0, 1, 1, 255]], [[1, 1, 0, 0]]])
        >>> meter.update(pred, other, class_ids=torch.tensor([3, 7]))
        >>> meter.compute()
        {'leak': 0.25, 'other_pixels': 4, 'leak_per_class': {3: 0.5, 7: 0.0}}
    """

    sums: torch.Tensor
    class_sums: torch.Tensor

    def __init__(self, ignore_index: int = 255, max_class_id: int = 80) -> None:
        super().__init__(max_class_id, ignore_index)

    def sum_shapes(self) -> dict[str, tuple[int, ...]]:
        """Leaked and other pixels, over all episodes and per episode class."""
        return {"sums": (2,), "class_sums": (self.max_class_id + 1, 2)}

    def update(
        self, pred: torch.Tensor, other: torch.Tensor, class_ids: torch.Tensor | None = None
    ) -> None:
        """Add a batch.

        Args:
            pred: ``(B, H, W)`` predictions in {0, 1} (1 = the episode's class).
            other: ``(B, H, W)`` in {0, 1, ignore_index}: 1 where another class lies.
            class_ids: ``(B,)`` class id of each episode, for ``leak_per_class`` (optional:
                without it the episodes count in the pooled leak only).

        Raises:
            ValueError: on mismatched shapes or out-of-range values.
        """
        check_episode_maps(pred, other, "other", self.ignore_index)
        if class_ids is not None:
            class_ids = episode_class_ids(class_ids, pred.shape[0], self.max_class_id)
        o = (other == 1).flatten(1)
        leaked = (pred.flatten(1).bool() & o).sum(1)
        # (B, 2): leaked and other pixels of each episode
        per_episode = torch.stack([leaked, o.sum(1)], dim=1).to("cpu", torch.float64)
        self.sums += per_episode.sum(0)
        if class_ids is not None:
            self.class_sums.index_add_(0, class_ids, per_episode)

    def compute(self) -> dict[str, object]:
        """``{"leak", "other_pixels", "leak_per_class"}``.

        ``leak`` is a fraction in [0, 1] (nan without other pixels) and ``other_pixels`` their
        count; ``leak_per_class`` maps each episode class that met other pixels to its leak
        (empty where no ``class_ids`` were passed).
        """
        leaked, total = self.sums.tolist()
        per_class = {
            c: self.class_sums[c, 0].item() / self.class_sums[c, 1].item()
            for c in torch.nonzero(self.class_sums[:, 1] > 0).flatten().tolist()
        }
        return {
            "leak": leaked / total if total > 0 else float("nan"),
            "other_pixels": int(total),
            "leak_per_class": per_class,
        }
