"""COCO-20i: COCO 2017 with its 80 classes (category ids 1..90 mapped to 1..80).

Prepared layout (``python -m fewzero.data.prepare coco --root COCO --out ROOT`` builds it from
``annotations/instances_{train,val}2017.json`` with pycocotools; crowd regions become 255)::

    ROOT/{train2017,val2017}/<name>.jpg
    ROOT/masks/{train2017,val2017}/<name>.png   class ids 0..80, 255 ignore
    ROOT/lists/{train,val}.txt
"""

from __future__ import annotations

import os
from typing import Any

from .classes import coco_fold_classes
from .episodes import ClassSplit, EpisodeDataset, check_prepared_root, dataset_options

__all__ = ["Coco20i"]

COCO_PREPARE = "python -m fewzero.data.prepare coco --root COCO --out ROOT"


class Coco20i(EpisodeDataset):
    """COCO-20i episodes of fold ``fold``.

    Args:
        root: Prepared folder (layout in [fewzero.data.coco][fewzero.data.coco]).
        fold: 0..3.
        split: ``"train"`` or ``"val"``.
        class_split: ``"fwb"`` (interleaved, default) or ``"panet"`` (consecutive).
        **kwargs: See [`EpisodeDataset`][fewzero.data.EpisodeDataset].

    Raises:
        FileNotFoundError: naming the missing path, the layout and the prepare command.
        ValueError: for an invalid fold, split or class split.

    Examples:
        >>> import tempfile
        >>> from fewzero.data import Coco20i, ToyConfig, build_toy, eval_transform
        >>> small = ToyConfig(voc_train=4, sbd_train=4, voc_val=4, coco_train=2, coco_val=40)
        >>> roots = build_toy(tempfile.mkdtemp(), config=small)  # the embedded toy tree
        >>> test = Coco20i(roots["coco"], 0, "val", shots=2, min_pixels=64, n_episodes=4,
        ...                transform=eval_transform(64))
        >>> episode = test[0]
        >>> episode["image"].shape, episode["support_images"].shape
        (torch.Size([3, 64, 64]), torch.Size([2, 3, 64, 64]))
        >>> episode["class_id"] in test.unseen  # a test episode's class is unseen in training
        True
    """

    HSNET_SAMPLING = "per_class"

    def __init__(
        self,
        root: str | os.PathLike[str],
        fold: int,
        split: str = "val",
        class_split: str = "fwb",
        **kwargs: Any,
    ):
        seen, unseen = coco_fold_classes(fold, class_split)
        root = check_prepared_root(root, split, "COCO-20i", COCO_PREPARE)
        self.fold, self.split, self.class_split = fold, split, class_split
        plan, reading = dataset_options(split == "train", kwargs)
        super().__init__(
            root / f"{split}2017",
            root / "masks" / f"{split}2017",
            root / "lists" / f"{split}.txt",
            ClassSplit(80, seen, unseen),
            plan,
            prepare_hint=COCO_PREPARE,
            **reading,
        )
