"""PASCAL-5i: VOC2012 images with SBD-augmented masks (``SegmentationClassAug``).

Prepared layout (``python -m fewzero.data.prepare pascal ...`` builds it)::

    ROOT/JPEGImages/<name>.jpg
    ROOT/SegmentationClassAug/<name>.png   class ids 0..20, 255 ignore
    ROOT/lists/train.txt                   train_aug: VOC train + SBD train/val - VOC val
    ROOT/lists/val.txt                     VOC2012 val
"""

from __future__ import annotations

import os
from typing import Any

from .classes import pascal_fold_classes
from .episodes import ClassSplit, EpisodeDataset, check_prepared_root, dataset_options

__all__ = ["Pascal5i"]

PASCAL_PREPARE = "python -m fewzero.data.prepare pascal --voc VOCdevkit/VOC2012 --sbd benchmark_RELEASE --out ROOT"


class Pascal5i(EpisodeDataset):
    """PASCAL-5i episodes of fold ``fold``.

    Args:
        root: Prepared folder (layout in [fewzero.data.pascal][fewzero.data.pascal]).
        fold: 0..3; fold ``i`` tests classes ``{5i+1, ..., 5i+5}``.
        split: ``"train"`` (pairs of seen classes) or ``"val"`` (fixed unseen-class episodes).
        **kwargs: ``transform``, ``support_transform`` and the [EpisodePlan][fewzero.data.plans.EpisodePlan]'s options (``min_pixels``,
            ``exclude_unseen``, ``target``, ``n_episodes``, ``seed``).

    Raises:
        FileNotFoundError: naming the missing path, the layout and the prepare command.
        ValueError: for an invalid fold or split.

    Examples:
        >>> import tempfile
        >>> from fewzero.data import Pascal5i, ToyConfig, build_toy, eval_transform
        >>> small = ToyConfig(voc_train=4, sbd_train=4, voc_val=30, coco_train=2, coco_val=4)
        >>> roots = build_toy(tempfile.mkdtemp(), config=small)  # the embedded toy tree
        >>> test = Pascal5i(roots["pascal"], 0, "val", shots=1, min_pixels=64, n_episodes=5,
        ...                 transform=eval_transform(64))
        >>> episode = test[0]
        >>> episode["image"].shape, episode["support_images"].shape, episode["class_id"] in range(1, 6)
        (torch.Size([3, 64, 64]), torch.Size([1, 3, 64, 64]), True)
    """

    def __init__(
        self, root: str | os.PathLike[str], fold: int, split: str = "train", **kwargs: Any
    ):
        seen, unseen = pascal_fold_classes(fold)
        root = check_prepared_root(root, split, "PASCAL-5i", PASCAL_PREPARE)
        self.fold, self.split = fold, split
        plan, reading = dataset_options(split == "train", kwargs)
        super().__init__(
            root / "JPEGImages",
            root / "SegmentationClassAug",
            root / "lists" / f"{split}.txt",
            ClassSplit(20, seen, unseen),
            plan,
            prepare_hint=PASCAL_PREPARE,
            **reading,
        )
