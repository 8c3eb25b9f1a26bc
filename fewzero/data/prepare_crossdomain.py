"""Build PATNet's cross-domain layouts from the official downloads (``python -m fewzero.data.prepare``).

Deepglobe (land-cover training set: ``<id>_sat.jpg`` with its RGB-coded ``<id>_mask.png``)::

    python -m fewzero.data.prepare deepglobe --root land-train --out data/Deepglobe

cuts each image and mask into 6x6 tiles (PATNet's step 1), keeps the tiles whose mask has more
than one colour and every colour on more than 4.8% of its pixels (PATNet's step 2), and writes
each kept tile into the folder of every class it shows: ``<c>/test/origin/<id>_<i><j>.jpg`` and a
white-on-black ``<c>/test/groundtruth/<id>_<i><j>.png`` of that class. PATNet's code does not
include the class-folder step; this is our reading of its layout (its preprocessed download
remains the reference).

ISIC2018 (task 1 training input and ground truth, and PATNet's ``class_id.csv``)::

    python -m fewzero.data.prepare isic --root ISIC --class-csv class_id.csv --out data/ISIC

links each image into ``ISIC2018_Task1-2_Training_Input/<c>/`` by its class
([`ISIC_CLASSES`][fewzero.data.ISIC_CLASSES] order) and the ground-truth folder beside it.

``python -m fewzero.data.prepare check DATASET --root R`` says what a layout lacks
([`layout_problems`][fewzero.data.layout_problems]).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..checks import check_dir, check_file
from .crossdomain import DEEPGLOBE_PALETTE, ISIC_CLASSES
from .readers import read_rgb_class_index

__all__ = ["DEEPGLOBE_TILES", "MIN_COLOUR_SHARE", "prepare_deepglobe", "prepare_isic"]

DEEPGLOBE_TILES = 6
"""Tiles per side PATNet cuts each Deepglobe image into."""

MIN_COLOUR_SHARE = 0.048
"""PATNet's filter: a tile is kept when every colour of its mask covers more than this share."""


def prepare_deepglobe(
    root: str | os.PathLike[str], out: str | os.PathLike[str], progress: bool = True
) -> dict[int, int]:
    """Tile and sort the Deepglobe land-cover images into PATNet's class folders.

    Returns:
        Tiles written per class (``1..6``).

    Raises:
        FileNotFoundError: for a missing root, or a root without ``*_sat.jpg`` images, or an
            image without its ``_mask.png``.
        ValueError: for a mask that is not colour-coded, or when no tile passes the filter.
    """
    root, out = check_dir(root, "Deepglobe --root"), Path(out)
    sats = sorted(root.glob("*_sat.jpg"))
    if not sats:
        raise FileNotFoundError(
            f"no <id>_sat.jpg image in Deepglobe --root {str(root)!r} (the land-cover training "
            "set holds <id>_sat.jpg with <id>_mask.png)"
        )
    counts = dict.fromkeys(range(1, 7), 0)
    n = DEEPGLOBE_TILES
    for sat in tqdm(sats, desc="deepglobe", disable=not progress, unit="img"):
        ident = sat.name[: -len("_sat.jpg")]
        mask_path = check_file(root / f"{ident}_mask.png", f"mask of {sat.name}")
        image = np.asarray(Image.open(sat).convert("RGB"))
        classes = read_rgb_class_index(mask_path, DEEPGLOBE_PALETTE)  # 0: unknown
        h, w = classes.shape
        for i in range(n):
            for j in range(n):
                ys = slice(i * h // n, (i + 1) * h // n)
                xs = slice(j * w // n, (j + 1) * w // n)
                tile = classes[ys, xs]
                values, freq = np.unique(tile, return_counts=True)
                if len(values) < 2 or (freq / tile.size).min() <= MIN_COLOUR_SHARE:
                    continue
                stem = f"{ident}_{i}{j}"
                for c in (int(v) for v in values if v > 0):
                    folder = out / str(c) / "test"
                    (folder / "origin").mkdir(parents=True, exist_ok=True)
                    (folder / "groundtruth").mkdir(parents=True, exist_ok=True)
                    Image.fromarray(image[ys, xs]).save(
                        folder / "origin" / f"{stem}.jpg", quality=95
                    )
                    Image.fromarray((tile == c).astype(np.uint8) * 255).save(
                        folder / "groundtruth" / f"{stem}.png"
                    )
                    counts[c] += 1
    if not any(counts.values()):
        raise ValueError(
            f"Deepglobe --root {str(root)!r}: no tile kept from {len(sats)} image(s): every "
            f"{n} x {n} tile shows one class, or a class on under {MIN_COLOUR_SHARE:.1%} of it "
            "(PATNet's filter); check that the masks are Deepglobe's colour masks"
        )
    return counts


def prepare_isic(
    root: str | os.PathLike[str], class_csv: str | os.PathLike[str], out: str | os.PathLike[str]
) -> dict[int, int]:
    """Sort ISIC2018 task 1 images into PATNet's class folders by ``class_csv`` (``ID,Class``).

    Returns:
        Images per class (``1..3``).

    Raises:
        FileNotFoundError: for a missing folder, csv, or an image the csv names.
        ValueError: for a class name not in [`ISIC_CLASSES`][fewzero.data.ISIC_CLASSES].
    """
    root, out = check_dir(root, "ISIC --root"), Path(out)
    images = check_dir(root / "ISIC2018_Task1-2_Training_Input", "ISIC training input")
    gt = check_dir(root / "ISIC2018_Task1_Training_GroundTruth", "ISIC ground truth")
    with check_file(class_csv, "--class-csv").open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        header = list(reader.fieldnames or [])
    if not {"ID", "Class"} <= set(header):
        raise ValueError(
            f"--class-csv {str(class_csv)!r} must have the columns ID and Class (PATNet's "
            f"class_id.csv), got the header {header}"
        )
    counts = dict.fromkeys(range(1, len(ISIC_CLASSES) + 1), 0)
    for row in rows:
        name = row["Class"].strip().lower().replace(" ", "_")
        if name not in ISIC_CLASSES:
            raise ValueError(
                f"--class-csv {str(class_csv)!r}: class {row['Class']!r} of {row['ID']} is not "
                f"one of {list(ISIC_CLASSES)}"
            )
        c = ISIC_CLASSES.index(name) + 1
        src = check_file(images / f"{row['ID']}.jpg", f"image {row['ID']} named by --class-csv")
        dst = out / "ISIC2018_Task1-2_Training_Input" / str(c) / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            dst.symlink_to(src.resolve())
        counts[c] += 1
    link = out / "ISIC2018_Task1_Training_GroundTruth"
    if not link.exists():
        link.symlink_to(gt.resolve(), target_is_directory=True)
    return counts
