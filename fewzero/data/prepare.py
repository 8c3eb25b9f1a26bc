"""Build the prepared dataset layouts from the official archives on disk.

PASCAL-5i (VOC2012 + SBD)::

    python -m fewzero.data.prepare pascal --voc VOCdevkit/VOC2012 --sbd benchmark_RELEASE --out DIR

writes ``DIR/SegmentationClassAug/*.png`` (VOC masks where VOC has one, else SBD's ``GTcls``
``.mat`` read with scipy), ``DIR/lists/{train,val}.txt`` (train_aug = VOC train + SBD train/val
minus VOC val; val = VOC val) and links ``DIR/JPEGImages``.

COCO-20i::

    python -m fewzero.data.prepare coco --root COCO --out DIR

writes ``DIR/masks/{train,val}2017/*.png`` from the instance annotations (pycocotools; crowd
regions -> 255), ``DIR/lists/{train,val}.txt`` and links the image folders.

Cross-domain benchmarks (PATNet's layouts, see [`fewzero.data.crossdomain`][fewzero.data.crossdomain])::

    python -m fewzero.data.prepare deepglobe --root land-train --out DIR
    python -m fewzero.data.prepare isic --root ISIC --class-csv class_id.csv --out DIR
    python -m fewzero.data.prepare check {deepglobe,isic,lung,fss1000,suim,isaid,permis,lvis,paco,pascal_part}
        --root DIR

(see [`fewzero.data.prepare_crossdomain`][fewzero.data.prepare_crossdomain]); ``check`` lists what
a layout lacks and exits with 1 when it lacks anything.

PASCAL and COCO are idempotent and resumable: finished masks are kept, and a second run only re-reads them to
rebuild the lists. Each reports the images per class and the episode pairs per fold.

Every listed image must exist and decode (checked with a progress bar before any mask is
written): PASCAL images missing from VOC's ``JPEGImages`` are taken from SBD's ``dataset/img``
when they are there. Otherwise the bad files are listed and the command exits with code 2;
``--skip-bad`` drops them from the lists and says how many. An empty split list and a corrupt
mask are ``error:`` lines, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .classes import COCO_CATEGORY_IDS, coco_fold_classes, pascal_fold_classes
from .io import class_pixel_counts, read_mask, write_list, write_mask
from .layouts import layout_problems
from .prepare_crossdomain import prepare_deepglobe, prepare_isic

__all__ = ["BadFilesError", "check_images", "fold_report", "main", "prepare_coco", "prepare_pascal"]


class BadFilesError(ValueError):
    """Listed images that are missing or do not decode.

    Attributes:
        bad: ``(name, reason)`` pairs.
    """

    def __init__(self, bad: list[tuple[str, str]]) -> None:
        self.bad = bad
        shown = "\n".join(f"  {name}: {reason}" for name, reason in bad[:20])
        more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
        super().__init__(
            f"{len(bad)} listed image(s) are missing or do not decode:\n{shown}{more}\n"
            "fix or restore them, or pass --skip-bad to drop them from the lists"
        )


def check_images(
    names: Sequence[str],
    folders: Sequence[Path],
    progress: bool = True,
    skip_bad: bool = False,
    desc: str = "checking images",
) -> tuple[dict[str, Path], list[tuple[str, str]]]:
    """Find ``<name>.jpg`` in the first of ``folders`` that has it and decode it fully.

    Returns:
        ``{name: path}`` of the good images and the ``(name, reason)`` of the bad ones.

    Raises:
        BadFilesError: for any bad image, unless ``skip_bad``.
    """
    from PIL import Image

    found: dict[str, Path] = {}
    bad: list[tuple[str, str]] = []
    for name in tqdm(names, desc=desc, disable=not progress, unit="img"):
        path = next((d / f"{name}.jpg" for d in folders if (d / f"{name}.jpg").is_file()), None)
        if path is None:
            bad.append((name, "missing from " + " and ".join(str(d) for d in folders)))
            continue
        try:
            with Image.open(path) as img:
                img.load()
        except (OSError, SyntaxError, ValueError) as err:
            bad.append((name, f"{path} does not decode ({err})"))
            continue
        found[name] = path
    if bad and not skip_bad:
        raise BadFilesError(bad)
    return found, bad


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {str(path)!r}")
    return path


def _read_ids(path: Path) -> list[str]:
    ids = [
        line.split()[0]
        for line in _require(path, "image list").read_text().splitlines()
        if line.strip()
    ]
    return ids


def _link(src: Path, dst: Path) -> None:
    """Link ``dst`` to ``src`` (symlink; copy where links are not allowed)."""
    if dst.exists() or dst.is_symlink():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        dst.symlink_to(src.resolve(), target_is_directory=True)
    except OSError:
        shutil.copytree(src, dst)


def _read_sbd_mat(path: Path) -> np.ndarray:
    from scipy.io import loadmat

    mat = loadmat(str(path), squeeze_me=True, struct_as_record=False)
    return np.asarray(mat["GTcls"].Segmentation, dtype=np.uint8)


def fold_report(
    entries: dict[str, list[tuple[str, dict[int, int]]]],
    num_classes: int,
    folds: Sequence[tuple[list[int], list[int]]],
    min_pixels: int = 2 * 32 * 32,
) -> str:
    """Text report: images per class per split, and pairs per fold (train: seen, val: unseen)."""
    lines = ["class  " + "  ".join(f"{s:>8}" for s in entries)]
    for c in range(1, num_classes + 1):
        counts = [sum(c in e for _, e in ents) for ents in entries.values()]
        lines.append(f"{c:5d}  " + "  ".join(f"{n:8d}" for n in counts))
    for i, (seen, unseen) in enumerate(folds):
        parts = []
        for split, ents in entries.items():
            classes = seen if split == "train" else unseen
            n = sum(counts.get(c, 0) >= min_pixels for _, counts in ents for c in classes)
            parts.append(f"{split} pairs {n}")
        lines.append(f"fold {i}: " + ", ".join(parts))
    return "\n".join(lines)


def _pascal_mask(
    name: str, mask_dir: Path, seg: Path, sbd: str | os.PathLike[str] | None
) -> np.ndarray:
    """The class-index mask of ``name``: written already, VOC's, or SBD's (then written)."""
    dst = mask_dir / f"{name}.png"
    if dst.is_file():
        return read_mask(dst, 20)
    if (seg / f"{name}.png").is_file():
        mask = read_mask(seg / f"{name}.png", 20)
    elif sbd is not None and (Path(sbd) / "dataset" / "cls" / f"{name}.mat").is_file():
        mask = _read_sbd_mat(Path(sbd) / "dataset" / "cls" / f"{name}.mat")
    else:
        raise FileNotFoundError(
            f"no mask for image {name!r}: neither {str(seg / (name + '.png'))!r} "
            "nor an SBD .mat exists"
        )
    write_mask(dst, mask)
    return mask


def prepare_pascal(
    voc: str | os.PathLike[str],
    sbd: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    progress: bool = True,
    skip_bad: bool = False,
) -> dict[str, list[tuple[str, dict[int, int]]]]:
    """Build ``SegmentationClassAug``, ``JPEGImages`` and the lists.

    Returns:
        ``{split: [(name, counts)]}``, and ``"skipped": [(name, reason)]`` with ``skip_bad``.

    Raises:
        BadFilesError: listed images missing or undecodable (unless ``skip_bad``).
        FileNotFoundError, ValueError: missing inputs, empty lists, masks without a source.
    """
    voc, out = Path(voc), Path(out)
    _require(voc / "JPEGImages", "VOC2012 JPEGImages")
    seg = voc / "SegmentationClass"
    voc_train = _read_ids(voc / "ImageSets" / "Segmentation" / "train.txt")
    voc_val = _read_ids(voc / "ImageSets" / "Segmentation" / "val.txt")
    sbd_ids: list[str] = []
    if sbd is not None:
        sbd_root = Path(sbd) / "dataset"
        _require(sbd_root / "cls", "SBD dataset/cls")
        for split in ("train", "val"):
            sbd_ids += _read_ids(sbd_root / f"{split}.txt")
    val_set = set(voc_val)
    train_ids = sorted((set(voc_train) | set(sbd_ids)) - val_set)
    for split, ids, source in (
        ("train", train_ids, "train.txt (+ SBD lists)"),
        ("val", voc_val, "val.txt"),
    ):
        if not ids:
            raise ValueError(
                f"the {split} split is empty: {str(voc / 'ImageSets' / 'Segmentation' / source)!r} "
                "lists no image"
            )
    folders = [voc / "JPEGImages"] + ([Path(sbd) / "dataset" / "img"] if sbd is not None else [])
    images, bad = check_images(train_ids + sorted(voc_val), folders, progress, skip_bad)
    train_ids = [n for n in train_ids if n in images]
    voc_val = [n for n in voc_val if n in images]
    mask_dir = out / "SegmentationClassAug"
    result: dict[str, list[tuple[str, dict[int, int]]]] = {}
    for split, ids in (("train", train_ids), ("val", sorted(voc_val))):
        entries = []
        for name in tqdm(ids, desc=f"pascal {split}", disable=not progress, unit="img"):
            mask = _pascal_mask(name, mask_dir, seg, sbd)
            entries.append((name, class_pixel_counts(mask)))
        write_list(out / "lists" / f"{split}.txt", entries)
        result[split] = entries
    if all(p.parent == voc / "JPEGImages" for p in images.values()):
        _link(voc / "JPEGImages", out / "JPEGImages")
    else:  # some images come from SBD: one folder of per-image links
        jpeg = out / "JPEGImages"
        if jpeg.is_symlink():
            jpeg.unlink()  # an earlier run's link to VOC's folder (never write into it)
        jpeg.mkdir(parents=True, exist_ok=True)
        for name, path in images.items():
            dst = jpeg / f"{name}.jpg"
            if not dst.exists():
                try:
                    dst.symlink_to(path.resolve())
                except OSError:
                    shutil.copyfile(path, dst)
    if skip_bad:
        result["skipped"] = bad  # type: ignore[assignment]
    return result


def prepare_coco(
    root: str | os.PathLike[str],
    out: str | os.PathLike[str],
    splits: Sequence[str] = ("train", "val"),
    progress: bool = True,
    skip_bad: bool = False,
) -> dict[str, list[tuple[str, dict[int, int]]]]:
    """Build per-image class masks (1..80, crowd 255) and lists from COCO 2017 annotations.

    Raises:
        BadFilesError: annotated images missing or undecodable (unless ``skip_bad``).
        FileNotFoundError, ValueError: missing inputs, no image in a split, unknown categories.
    """
    from pycocotools.coco import COCO

    root, out = Path(root), Path(out)
    result: dict[str, list[tuple[str, dict[int, int]]]] = {}
    skipped: list[tuple[str, str]] = []
    for split in splits:
        ann_file = _require(
            root / "annotations" / f"instances_{split}2017.json", "COCO annotations"
        )
        _require(root / f"{split}2017", "COCO image folder")
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(ann_file))
        img_ids = sorted(coco.getImgIds())
        if not img_ids:
            raise ValueError(f"{str(ann_file)!r} lists no image")
        names = {i: Path(coco.imgs[i]["file_name"]).stem for i in img_ids}
        good, bad = check_images(
            list(names.values()), [root / f"{split}2017"], progress, skip_bad, f"checking {split}"
        )
        skipped += bad
        entries = []
        for img_id in tqdm(
            [i for i in img_ids if names[i] in good],
            desc=f"coco {split}",
            disable=not progress,
            unit="img",
        ):
            dst = out / "masks" / f"{split}2017" / f"{names[img_id]}.png"
            if dst.is_file():
                mask = read_mask(dst, 80)
            else:
                mask = _coco_mask(coco, img_id, str(ann_file))
                write_mask(dst, mask)
            entries.append((names[img_id], class_pixel_counts(mask)))
        write_list(out / "lists" / f"{split}.txt", entries)
        _link(root / f"{split}2017", out / f"{split}2017")
        result[split] = entries
    if skip_bad:
        result["skipped"] = skipped  # type: ignore[assignment]
    return result


def _coco_mask(coco: Any, img_id: int, ann_file: str) -> np.ndarray:
    """An image's class mask: larger objects first, so smaller ones stay on top; crowd 255."""
    info = coco.imgs[img_id]
    cat_to_class = {cid: i + 1 for i, cid in enumerate(COCO_CATEGORY_IDS)}
    mask = np.zeros((info["height"], info["width"]), dtype=np.uint8)
    anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id, iscrowd=None))
    for ann in sorted(anns, key=lambda a: -a.get("area", 0)):
        if ann.get("iscrowd", 0):
            continue
        if ann["category_id"] not in cat_to_class:
            raise ValueError(
                f"{ann_file!r}: annotation {ann.get('id')} has category_id "
                f"{ann['category_id']}, expected one of COCO's 80 ids (1..90)"
            )
        mask[coco.annToMask(ann) > 0] = cat_to_class[ann["category_id"]]
    for ann in anns:
        if ann.get("iscrowd", 0):
            region = coco.annToMask(ann) > 0
            mask[region & (mask == 0)] = 255
    return mask


SOURCE_PARTS = {
    ("pascal", "voc"): ("JPEGImages", "ImageSets/Segmentation"),
    ("pascal", "sbd"): ("dataset/cls",),
    ("coco", "root"): ("annotations",),
}
"""What each source folder flag must hold, by dataset (VOC2012, SBD's benchmark_RELEASE, COCO)."""


def _check_sources(args: argparse.Namespace) -> str | None:
    """What is wrong with a source folder flag, in its words (``None``: nothing), before any write."""
    for (dataset, dest), parts in SOURCE_PARTS.items():
        root = getattr(args, dest, None) if args.dataset == dataset else None
        if root is None:
            continue
        flag = f"--{dest}"
        if not Path(root).is_dir():
            what = "is a file" if Path(root).exists() else "does not exist"
            return f"{flag} {root!r} {what}: give the folder that holds {', '.join(parts)}"
        lacking = [p for p in parts if not (Path(root) / p).exists()]
        if lacking:
            return f"{flag} {root!r} lacks {', '.join(lacking)}: give the folder that holds them"
    return None


def _refuse(parser: argparse.ArgumentParser, problem: str) -> int:
    print(f"{parser.prog}: error: {problem}", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m fewzero.data.prepare`` and its subcommands."""
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(
        prog="python -m fewzero.data.prepare",
        description=__doc__.split("\n")[0],
        formatter_class=fmt,
    )
    sub = parser.add_subparsers(dest="dataset", required=True)
    p = sub.add_parser("pascal", help="VOC2012 + SBD -> PASCAL-5i layout", formatter_class=fmt)
    p.add_argument("--voc", required=True, help="VOCdevkit/VOC2012")
    p.add_argument("--sbd", default=None, help="benchmark_RELEASE (SBD); omit for VOC masks only")
    p.add_argument("--out", required=True, help="output folder of the prepared layout")
    c = sub.add_parser("coco", help="COCO 2017 -> COCO-20i layout", formatter_class=fmt)
    c.add_argument("--root", required=True, help="folder with annotations/ and {train,val}2017/")
    c.add_argument("--out", required=True, help="output folder of the prepared layout")
    c.add_argument("--class-split", default="fwb", choices=["fwb", "panet"], help="for the report")
    for q in (p, c):
        q.add_argument("--quiet", action="store_true", help="no progress bars")
        q.add_argument("--min-pixels", type=int, default=2 * 32 * 32, help="for the report")
        q.add_argument("--skip-bad", action="store_true", help="drop missing or undecodable images")
    d = sub.add_parser(
        "deepglobe", help="Deepglobe land cover -> PATNet's layout", formatter_class=fmt
    )
    d.add_argument("--root", required=True, help="folder with <id>_sat.jpg and <id>_mask.png")
    d.add_argument("--out", required=True, help="output folder (PATNet's Deepglobe layout)")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    i = sub.add_parser("isic", help="ISIC2018 task 1 -> PATNet's layout", formatter_class=fmt)
    i.add_argument("--root", required=True, help="folder with the official ISIC2018 task 1 folders")
    i.add_argument("--class-csv", required=True, help="PATNet's data/isic/class_id.csv (ID,Class)")
    i.add_argument("--out", required=True, help="output folder (PATNet's ISIC layout)")
    k = sub.add_parser("check", help="say what a cross-domain layout lacks", formatter_class=fmt)
    names = ["deepglobe", "isic", "lung", "fss1000", "suim", "isaid", "permis", "lvis", "paco",
             "pascal_part"]  # fmt: skip
    k.add_argument("name", choices=names, metavar="DATASET",
                   help=f"the dataset: {', '.join(names)}")  # fmt: skip
    k.add_argument("--root", required=True, help="the dataset's folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``python -m fewzero.data.prepare``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.dataset in ("deepglobe", "isic", "check"):
        return _crossdomain(args)
    kw = dict(progress=not args.quiet, skip_bad=args.skip_bad)
    if (problem := _check_sources(args)) is not None:
        return _refuse(parser, problem)
    try:
        if args.dataset == "pascal":
            entries = prepare_pascal(args.voc, args.sbd, args.out, **kw)
            folds = [pascal_fold_classes(i) for i in range(4)]
            num_classes = 20
        else:
            entries = prepare_coco(args.root, args.out, **kw)
            folds = [coco_fold_classes(i, args.class_split) for i in range(4)]
            num_classes = 80
    except (FileNotFoundError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    skipped = entries.pop("skipped", [])
    if skipped:
        print(f"skipped {len(skipped)} bad image(s) (--skip-bad):", file=sys.stderr)
        for name, reason in skipped[:20]:
            print(f"  {name}: {reason}", file=sys.stderr)
    report = fold_report(entries, num_classes, folds, args.min_pixels)
    print(report)
    summary = {split: len(ents) for split, ents in entries.items()}
    print(json.dumps({"dataset": args.dataset, "out": str(args.out), "images": summary}))
    return 0


def _crossdomain(args: argparse.Namespace) -> int:
    """The ``deepglobe``, ``isic`` and ``check`` subcommands."""
    try:
        if args.dataset == "check":
            problems = layout_problems(args.name, args.root, thorough=True)
            for line in problems:
                print(f"{args.name} {args.root}: {line}")
            if not problems:
                print(f"{args.name} {args.root}: complete")
            return 1 if problems else 0
        if args.dataset == "deepglobe":
            counts = prepare_deepglobe(args.root, args.out, progress=not args.quiet)
        else:
            counts = prepare_isic(args.root, args.class_csv, args.out)
    except (FileNotFoundError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({"dataset": args.dataset, "out": str(args.out), "per_class": counts}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
