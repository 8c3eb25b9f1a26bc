"""N-way IoU: each way's class scored once per episode, accumulated per class id.

An N-way episode's prediction is a label map (0 background, ``i`` = the i-th way). For each way
``i`` of class ``c``, the episode adds ``|pred == i  and  target == i|`` to class ``c``'s
intersection and ``|pred == i  or  target == i|`` to its union; the per-class IoU is the ratio of
the sums and the mIoU their mean over the classes that occurred. Each class is counted once per
episode it is a way of, whatever its position (PANet's evaluator counts a class once per
*position*, which inflates some classes; PANet issue #30). Pixels labelled ``ignore_index``
are excluded; a class with zero accumulated union scores 1.0, as in
[`IoUMeter`][fewzero.metrics.IoUMeter].
"""

from __future__ import annotations

import torch

from .class_ids import check_episode_maps
from .sums import ClassSumMeter

__all__ = ["NWayIoUMeter"]


class NWayIoUMeter(ClassSumMeter):
    """Accumulate per-class intersections and unions of N-way label maps.

    Args:
        max_class_id: Largest class id.
        ignore_index: Target value excluded from scoring.

    Examples:
        >>> import torch
        >>> meter = NWayIoUMeter()
        >>> pred = torch.tensor([[[1, 1, 2, 0]]])
        >>> target = torch.tensor([[[1, 2, 2, 0]]])
        >>> meter.update(pred, target, torch.tensor([[7, 3]]))
        >>> meter.compute()["per_class"]
        {3: 0.5, 7: 0.5}
    """

    intersection: torch.Tensor
    union: torch.Tensor
    episodes: torch.Tensor
    count: torch.Tensor

    def sum_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per class: intersections, unions and the episodes it is a way of; the episode count."""
        n = self.max_class_id + 1
        return {"intersection": (n,), "union": (n,), "episodes": (n,), "count": (1,)}

    def update(self, pred: torch.Tensor, target: torch.Tensor, class_ids: torch.Tensor) -> None:
        """Add a batch of N-way episodes.

        Args:
            pred: ``(B, H, W)`` label maps in ``0..N``.
            target: ``(B, H, W)`` in ``0..N`` and ``ignore_index``.
            class_ids: ``(B, N)`` class id of each way (distinct within an episode).

        Raises:
            ValueError: on mismatched shapes, out-of-range values or repeated class ids.
        """
        class_ids = torch.as_tensor(class_ids).long().cpu()
        check_episode_maps(pred, target, "target")
        if class_ids.dim() != 2 or class_ids.shape[0] != pred.shape[0]:
            raise ValueError(
                f"class_ids must be ({pred.shape[0]}, N), got {tuple(class_ids.shape)}"
            )
        n = class_ids.shape[1]
        if class_ids.min() < 0 or class_ids.max() > self.max_class_id:
            raise ValueError(
                f"class_ids must lie in [0, {self.max_class_id}], got {class_ids.tolist()}"
            )
        for row in class_ids.tolist():
            if len(set(row)) != len(row):
                raise ValueError(f"class_ids must be distinct within an episode, got {row}")
        if ((pred < 0) | (pred > n)).any():
            raise ValueError(f"pred must be in 0..{n}, got values {pred.unique().tolist()}")
        bad = target[((target < 0) | (target > n)) & (target != self.ignore_index)]
        if bad.numel():
            raise ValueError(
                f"target must be in 0..{n} or {self.ignore_index}, got {bad.unique().tolist()}"
            )
        valid = (target != self.ignore_index).flatten(1)
        p, t = pred.flatten(1).cpu(), target.flatten(1).cpu()
        valid = valid.cpu()
        for way in range(n):
            pw, tw = (p == way + 1) & valid, (t == way + 1) & valid
            ids = class_ids[:, way]
            self.intersection.index_add_(0, ids, (pw & tw).sum(1).double())
            self.union.index_add_(0, ids, (pw | tw).sum(1).double())
            self.episodes.index_add_(0, ids, torch.ones(len(ids), dtype=torch.float64))
        self.count += pred.shape[0]

    def compute(self) -> dict[str, object]:
        """``{"miou", "per_class": {id: iou}, "episodes": n}`` (``miou`` nan without episodes)."""
        present = torch.nonzero(self.episodes > 0).flatten().tolist()
        per_class = {
            c: (self.intersection[c] / self.union[c]).item() if self.union[c] > 0 else 1.0
            for c in present
        }
        miou = sum(per_class.values()) / len(per_class) if per_class else float("nan")
        return {"miou": miou, "per_class": per_class, "episodes": int(self.count.item())}
