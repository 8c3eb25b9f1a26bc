"""Episode IoU metrics: per-class IoU, mIoU and FB-IoU as in the few-shot literature.

* per-class IoU = (sum of intersections) / (sum of unions) over every episode of that class
  (not a mean of per-episode IoUs);
* mIoU = mean of the per-class IoU over the classes that occur in the evaluated episodes;
* FB-IoU = mean of the background IoU and the foreground IoU, each accumulated over all episodes.

Convention for an empty class: a class whose accumulated union is zero (no foreground in any of
its targets and none predicted) scores IoU 1.0 — the prediction is exactly right. HSNet's
evaluator scores such a class 0. With the datasets here it cannot occur (every episode's class
covers at least ``min_pixels`` >= 1 pixels of its target), so the two conventions agree on every
benchmark number.

Pixels labelled ``ignore_index`` (255) are excluded. Values are fractions in [0, 1].
"""

from __future__ import annotations

import torch

from .class_ids import check_episode_maps, episode_class_ids
from .sums import ClassSumMeter

__all__ = ["IoUMeter"]


class IoUMeter(ClassSumMeter):
    """Accumulate intersections and unions of binary episode predictions.

    Args:
        max_class_id: Largest class id that may be passed (80 covers COCO).
        ignore_index: Target value excluded from scoring.

    Examples:
        >>> import torch
        >>> meter = IoUMeter()
        >>> pred = torch.tensor([[[1, 1, 0, 0]]])
        >>> target = torch.tensor([[[1, 0, 0, 255]]])
        >>> meter.update(pred, target, torch.tensor([3]))
        >>> meter.compute()["per_class"]
        {3: 0.5}
    """

    intersection: torch.Tensor
    union: torch.Tensor
    episodes: torch.Tensor
    fb_intersection: torch.Tensor
    fb_union: torch.Tensor

    def sum_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per class: intersections, unions, episodes; background and foreground over all."""
        n = self.max_class_id + 1
        per_class = {"intersection": (n,), "union": (n,), "episodes": (n,)}
        return {**per_class, "fb_intersection": (2,), "fb_union": (2,)}

    def update(self, pred: torch.Tensor, target: torch.Tensor, class_ids: torch.Tensor) -> None:
        """Add a batch of episodes.

        Args:
            pred: ``(B, H, W)`` predictions in {0, 1}.
            target: ``(B, H, W)`` targets in {0, 1, 255}.
            class_ids: ``(B,)`` class id of each episode.

        Raises:
            ValueError: on mismatched shapes or out-of-range values.
        """
        check_episode_maps(pred, target, "target", self.ignore_index)
        class_ids = episode_class_ids(class_ids, pred.shape[0], self.max_class_id)
        valid = (target != self.ignore_index).flatten(1)
        p = pred.flatten(1).bool() & valid
        t = (target.flatten(1) == 1) & valid
        inter_fg = (p & t).sum(1).double().cpu()
        union_fg = (p | t).sum(1).double().cpu()
        pb, tb = (~p) & valid, (~t) & valid
        inter_bg = (pb & tb).sum(1).double().cpu()
        union_bg = (pb | tb).sum(1).double().cpu()
        self.intersection.index_add_(0, class_ids, inter_fg)
        self.union.index_add_(0, class_ids, union_fg)
        self.episodes.index_add_(0, class_ids, torch.ones_like(inter_fg))
        self.fb_intersection += torch.stack([inter_bg.sum(), inter_fg.sum()])
        self.fb_union += torch.stack([union_bg.sum(), union_fg.sum()])

    def compute(self) -> dict[str, object]:
        """Return ``{"miou", "fbiou", "per_class": {id: iou}, "episodes": n}``.

        A class whose accumulated union is zero (every episode empty and predicted empty) scores
        1.0. Without any episode, ``miou`` and ``fbiou`` are ``nan``.
        """
        present = torch.nonzero(self.episodes > 0).flatten().tolist()
        per_class = {}
        for c in present:
            u = self.union[c].item()
            per_class[c] = self.intersection[c].item() / u if u > 0 else 1.0
        miou = sum(per_class.values()) / len(per_class) if per_class else float("nan")
        fb = [
            (self.fb_intersection[i] / self.fb_union[i]).item() if self.fb_union[i] > 0 else 1.0
            for i in range(2)
        ]
        fbiou = sum(fb) / 2 if present else float("nan")
        return {
            "miou": miou,
            "fbiou": fbiou,
            "per_class": per_class,
            "episodes": int(self.episodes.sum().item()),
        }
