"""What a benchmark's folder lacks: one check per layout, run before any work.

[`layout_problems`][fewzero.data.layout_problems] serves ``python -m fewzero.data.prepare check``
and ``fewzero-eval`` (which runs it, thorough, before a model is built): missing folders and
files, classes with too few pairs, masks of another size than their image or marking nothing,
annotation files that do not read.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from .crossdomain import CROSS_DOMAIN, class_problems, pair_problems
from .isaid import fold_queries, isaid_layout, isaid_pair, read_class_mask
from .lvis import read_lvis_annotations
from .paco import read_paco_annotations
from .pascal_part import VOC, read_part_index
from .permis import MASKS, permis_videos, read_frame_masks
from .readers import read_binary_mask

__all__ = ["layout_problems"]

_REQUIRED = {
    **{name: list(cls.LAYOUT) for name, cls in CROSS_DOMAIN.items()},
    "fss1000": ["splits/test.txt"],
    "isaid": isaid_layout(),
}


def layout_problems(
    dataset: str, root: str | os.PathLike[str], thorough: bool = False
) -> list[str]:
    """What ``root`` lacks for ``dataset``: a key of ``CROSS_DOMAIN``, or ``fss1000``.

    Args:
        dataset: The benchmark.
        root: Its folder.
        thorough: Also open every pair: a mask of another size than its image, a mask that
            marks no object, an image without its mask, an empty split (what the loaders would
            otherwise meet mid-run; ``prepare check`` and ``fewzero-eval`` run it before any
            work).

    Returns:
        One line per missing folder or file, per class with fewer than 2 image/mask pairs, and
        per image without its mask; empty when the layout is complete.

    Raises:
        ValueError: for an unknown dataset name.
    """
    if dataset not in _REQUIRED:
        raise ValueError(f"dataset must be one of {sorted(_REQUIRED)}, got {dataset!r}")
    root = Path(root)
    if not root.is_dir():
        return [f"no such folder {str(root)!r}"]
    problems = [f"missing {rel}" for rel in _REQUIRED[dataset] if not (root / rel).exists()]
    if problems:
        return problems
    if dataset == "fss1000":
        names = [n.strip() for n in (root / "splits/test.txt").read_text().splitlines()]
        names = [n for n in names if n]
        if not names:
            return ["splits/test.txt lists no class (an empty split)"]
        lacking = [n for n in names if not (root / n).is_dir()]
        problems = [f"missing class folder {n}" for n in lacking[:10]] + (
            [f"... and {len(lacking) - 10} more"] if len(lacking) > 10 else []
        )
        if thorough and not problems:
            for name in names:
                folder = root / name
                images = {p.stem: p for p in folder.glob("*.jpg")}
                masks = {p.stem: p for p in folder.glob("*.png")}
                unmasked = sorted(set(images) - set(masks))
                if unmasked:
                    problems.append(f"class {name}: images without a <n>.png mask: {unmasked[:5]}")
                pairs = {s: (images[s], masks[s]) for s in sorted(set(images) & set(masks))}
                problems += pair_problems(f"class {name}", pairs, lambda p: read_binary_mask(p))
        return problems
    if dataset == "isaid":
        return _isaid_problems(root, thorough)
    if dataset == "permis":
        return _permis_problems(root, thorough)
    if dataset == "lvis":
        return _lvis_problems(root, thorough)
    if dataset == "paco":
        return _paco_problems(root, thorough)
    if dataset == "pascal_part":
        return _pascal_part_problems(root, thorough)
    return class_problems(CROSS_DOMAIN[dataset], root, thorough)


def _isaid_problems(root: Path, thorough: bool) -> list[str]:
    """Each fold's list: its classes, classes with fewer than 2 patches, and (thorough) its pairs."""
    problems: list[str] = []
    for fold in range(3):
        try:
            queries = fold_queries(root, fold)
        except ValueError as err:
            problems.append(str(err))
            continue
        for c in range(5 * fold + 1, 5 * fold + 6):
            pairs = {n: isaid_pair(root, n) for n, k in queries if k == c}
            if len(pairs) < 2:
                problems.append(f"fold {fold}: class {c} has {len(pairs)} patches, needs >= 2")
            if thorough:
                read = lambda p, c=c: read_class_mask(p, c)  # noqa: E731
                problems += pair_problems(f"fold {fold} class {c}", pairs, read)
    return problems


def _permis_problems(root: Path, thorough: bool) -> list[str]:
    """What a PerMIS root lacks: any video; thorough, readable masks and frames of their size."""
    videos = permis_videos(root)
    if not videos:
        return [f"no video folder with 0.jpg and {MASKS} (the PerMIRS folders)"]
    problems: list[str] = []
    for video in videos if thorough else []:
        try:
            masks = read_frame_masks(root / video / MASKS)
        except ValueError as err:
            problems.append(str(err))
            continue
        for f, frame in enumerate(masks[:3]):
            image = root / video / f"{f}.jpg"
            if not image.is_file():
                problems.append(f"video {video}: no frame {f}.jpg")
                continue
            with Image.open(image) as img:
                size = img.size
            shape = np.asarray(next(iter(frame.values()))).shape
            if shape[::-1] != size:
                problems.append(
                    f"video {video}: frame {f}'s mask has size {shape[::-1]}, its image {size}"
                )
        if len(masks) < 3:
            problems.append(f"video {video}: {MASKS} holds {len(masks)} frames, needs 3")
        if len(problems) >= 5:
            return [*problems, "... (first problems only)"]
    return problems


def _lvis_problems(root: Path, thorough: bool) -> list[str]:
    """What an LVIS root lacks: a readable ``lvis_val.pkl``; thorough, every image it names."""
    try:
        anno = read_lvis_annotations(root / "lvis_val.pkl")
    except ValueError as err:
        return [str(err)]
    if not thorough:
        return []
    return _missing(root, [f"coco/{n}" for n in sorted({n for i in anno.values() for n in i})])


def _paco_problems(root: Path, thorough: bool) -> list[str]:
    """What a PACO-Part root lacks: readable annotation files; thorough, every image they name."""
    try:
        _, val = read_paco_annotations(root)
    except ValueError as err:
        return [str(err)]
    if not thorough:
        return []
    names = sorted({"/".join(str(p).split("/")[-2:]) for images in val["cid2img"].values()
                    for entry in images for p in entry.values()})  # fmt: skip
    return _missing(root, [f"coco/{n}" for n in names])


def _pascal_part_problems(root: Path, thorough: bool) -> list[str]:
    """What a Pascal-Part root lacks: its index; thorough, each validation image and annotation."""
    voc = root / VOC
    try:
        tree = read_part_index(voc / "all_obj_part_to_image.json")
    except ValueError as err:
        return [str(err)]
    if not thorough:
        return []
    ids = sorted({str(i) for cat in tree.values() for obj in cat["object"].values()
                  for lists in obj["part"].values() for i in lists["val"]})  # fmt: skip
    return _missing(root, [f"{VOC}/JPEGImages/{i}.jpg" for i in ids]
                    + [f"{VOC}/Annotations_Part_json_merged_part_classes/{i}.json" for i in ids])  # fmt: skip


def _missing(root: Path, files: list[str]) -> list[str]:
    """The first five of ``files`` (relative to ``root``) that do not exist, and how many more."""
    lacking = [f for f in files if not (root / f).is_file()]
    return [f"missing {f}" for f in lacking[:5]] + (
        [f"... and {len(lacking) - 5} more files"] if len(lacking) > 5 else []
    )
