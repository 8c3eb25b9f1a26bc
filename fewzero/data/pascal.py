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
from .episodes import EpisodeDataset, check_prepared_root

__all__ = ["Pascal5i"]

PASCAL_PREPARE = "python -m fewzero.data.prepare pascal --voc VOCdevkit/VOC2012 --sbd benchmark_RELEASE --out ROOT"


class Pascal5i(EpisodeDataset):
    """PASCAL-5i episodes of fold ``fold``.

    Args:
        root: Prepared folder (see the module docstring).
        fold: 0..3; fold ``i`` tests classes ``{5i+1, ..., 5i+5}``.
        split: ``"train"`` (pairs of seen classes) or ``"val"`` (fixed unseen-class episodes).
        **kwargs: See [`EpisodeDataset`][fewzero.data.EpisodeDataset] (``transform``, ``min_pixels``,
            ``exclude_unseen``, ``target``, ``n_episodes``, ``seed``).

    Raises:
        FileNotFoundError: naming the missing path, the layout and the prepare command.
        ValueError: for an invalid fold or split.
    """

    def __init__(
        self, root: str | os.PathLike[str], fold: int, split: str = "train", **kwargs: Any
    ):
        seen, unseen = pascal_fold_classes(fold)
        root = check_prepared_root(root, split, "PASCAL-5i", PASCAL_PREPARE)
        self.fold, self.split = fold, split
        super().__init__(
            root / "JPEGImages",
            root / "SegmentationClassAug",
            root / "lists" / f"{split}.txt",
            num_classes=20,
            seen=seen,
            unseen=unseen,
            train=split == "train",
            prepare_hint=PASCAL_PREPARE,
            **kwargs,
        )
