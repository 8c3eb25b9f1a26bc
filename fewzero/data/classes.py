"""Class names and the standard fold splits of PASCAL-5i and COCO-20i.

* PASCAL-5i: fold ``i`` tests classes ``{5i+1, ..., 5i+5}`` (Shaban et al. 2017).
* COCO-20i, ``"fwb"`` (default, interleaved; Nguyen & Todorovic 2019, used by PFENet's
  ``use_split_coco`` and HSNet): fold ``i`` tests ``{4k + i + 1 : k = 0..19}``.
* COCO-20i, ``"panet"`` (consecutive; Wang et al. 2019): fold ``i`` tests ``{20i+1, ..., 20i+20}``.

Class ids are 1-based; 0 is background and 255 is "ignore".
"""

from __future__ import annotations

__all__ = [
    "COCO_CATEGORY_IDS",
    "COCO_CLASSES",
    "IGNORE_INDEX",
    "PASCAL_CLASSES",
    "PASCAL_TO_COCO",
    "coco_fold_classes",
    "pascal_fold_classes",
]

IGNORE_INDEX = 255
"""Label value that is scored as neither class (VOC's object boundaries, COCO's crowd regions)."""

PASCAL_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip
"""The 20 PASCAL VOC class names; position + 1 is the class id (1..20)."""

COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip
"""The 80 COCO class names; position + 1 is fewzero's class id (1..80)."""

COCO_CATEGORY_IDS: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27,
    28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53,
    54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80,
    81, 82, 84, 85, 86, 87, 88, 89, 90,
)  # fmt: skip
"""COCO 2017 category ids (1..90 with gaps) in order; position + 1 is fewzero's class id (1..80)."""


PASCAL_TO_COCO: dict[int, int] = {
    i + 1: COCO_CLASSES.index(name) + 1
    for i, name in enumerate(
        ("airplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
         "dining table", "dog", "horse", "motorcycle", "person", "potted plant", "sheep", "couch",
         "train", "tv")
    )
}  # fmt: skip
"""PASCAL class id (1..20) -> COCO class id (1..80) of the same category (PASCAL2COCO, Fig. 4)."""


def _check_fold(fold: int, n: int = 4) -> None:
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < n:
        raise ValueError(f"fold must be an int in [0, {n - 1}], got {fold!r}")


def pascal_fold_classes(fold: int) -> tuple[list[int], list[int]]:
    """Return ``(seen, unseen)`` class ids (1..20) of PASCAL-5i fold ``fold``.

    Examples:
        >>> pascal_fold_classes(1)[1]
        [6, 7, 8, 9, 10]
    """
    _check_fold(fold)
    unseen = list(range(5 * fold + 1, 5 * fold + 6))
    return [c for c in range(1, 21) if c not in unseen], unseen


def coco_fold_classes(fold: int, class_split: str = "fwb") -> tuple[list[int], list[int]]:
    """Return ``(seen, unseen)`` class ids (1..80) of COCO-20i fold ``fold``.

    Args:
        fold: 0..3.
        class_split: ``"fwb"`` (interleaved, default) or ``"panet"`` (consecutive).

    Examples:
        >>> coco_fold_classes(0)[1][:3], coco_fold_classes(0, "panet")[1][:3]
        ([1, 5, 9], [1, 2, 3])
    """
    _check_fold(fold)
    if class_split == "fwb":
        unseen = [4 * k + fold + 1 for k in range(20)]
    elif class_split == "panet":
        unseen = list(range(20 * fold + 1, 20 * fold + 21))
    else:
        raise ValueError(f"class_split must be one of ('fwb', 'panet'), got {class_split!r}")
    return [c for c in range(1, 81) if c not in unseen], unseen
