"""Embedded toy data: procedurally drawn PASCAL-like and COCO-like trees, no download needed.

``build_toy(root, seed)`` (``root`` by default the cache folder) writes, deterministically from
``seed``, the *raw* layouts that the prepare command reads, then prepares them:

* ``ROOT/raw/VOC2012`` (JPEG images, palette PNG masks, ``ImageSets/Segmentation``) and
  ``ROOT/raw/benchmark_RELEASE`` (SBD ``.mat`` masks) -> ``ROOT/pascal`` (PASCAL-5i layout);
* ``ROOT/raw/coco`` (JPEG images, ``instances_{train,val}2017.json`` with polygon annotations)
  -> ``ROOT/coco`` (COCO-20i layout).

Each of the 20 PASCAL-like classes has its own shape and texture; the 80 COCO-like classes
combine 20 shapes with 4 texture families. Half of the images hold one class (one to three
instances); the other half hold two or three classes of the *same split* (the same PASCAL-5i
fold group, the same COCO-20i fold), each with its own one or two instances, so that a test
query often shows an unseen class besides the episode's and only a support set can tell which
one is meant. Objects lie at varied scales over cluttered backgrounds; the COCO-like images use
a different background style, so that PASCAL2COCO is a domain shift here too.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..checks import check_numbers
from .classes import (
    COCO_CATEGORY_IDS,
    COCO_CLASSES,
    PASCAL_TO_COCO,
    coco_fold_classes,
    pascal_fold_classes,
)
from .io import write_mask

__all__ = [
    "TOY_VERSION",
    "ToyConfig",
    "build_toy",
    "default_toy_root",
    "draw_scene",
    "shape_polygon",
]

TOY_VERSION = 4
"""Version of the toy generator, bumped whenever the drawing changes, so cached trees of an older generator are rebuilt."""


class ToyConfig:
    """Sizes of the toy trees (defaults: seconds to generate, minutes to train on a CPU)."""

    def __init__(
        self,
        voc_train: int = 240,
        sbd_train: int = 240,
        voc_val: int = 200,
        coco_train: int = 40,
        coco_val: int = 320,
        size: tuple[int, int] = (112, 160),
    ) -> None:
        counts = dict(voc_train=voc_train, sbd_train=sbd_train, voc_val=voc_val,
                      coco_train=coco_train, coco_val=coco_val)  # fmt: skip
        check_numbers("ToyConfig", dict.fromkeys(counts, "positive_int"), counts)
        if len(size) != 2 or not all(isinstance(s, int) and s >= 32 for s in size):
            raise ValueError(f"size must be (min side, max side), each >= 32, got {size!r}")
        self.voc_train, self.sbd_train, self.voc_val = voc_train, sbd_train, voc_val
        self.coco_train, self.coco_val = coco_train, coco_val
        self.size = size


def shape_polygon(
    kind: int, cx: float, cy: float, r: float, angle: float
) -> list[tuple[float, float]]:
    """Vertices of shape ``kind`` (0..19) centred at ``(cx, cy)`` with radius ``r``."""
    kind %= 20

    def radial(radii: list[float]) -> list[tuple[float, float]]:
        n = len(radii)
        return [
            (
                cx + r * q * math.cos(angle + 2 * math.pi * i / n),
                cy + r * q * math.sin(angle + 2 * math.pi * i / n),
            )
            for i, q in enumerate(radii)
        ]

    regular = {0: 24, 1: 4, 2: 3, 3: 5, 4: 6, 5: 8}
    if kind in regular:
        return radial([1.0] * regular[kind])
    if kind == 6:  # 5-point star
        return radial([1.0, 0.45] * 5)
    if kind == 7:  # 8-point spiky star
        return radial([1.0, 0.6] * 8)
    if kind == 8:  # cross
        return radial([1.0, 0.42, 0.42] * 4)
    if kind == 9:  # ellipse
        return [(cx + r * math.cos(t) * math.cos(angle) - 0.5 * r * math.sin(t) * math.sin(angle),
                 cy + r * math.cos(t) * math.sin(angle) + 0.5 * r * math.sin(t) * math.cos(angle))
                for t in np.linspace(0, 2 * math.pi, 24, endpoint=False)]  # fmt: skip
    if kind == 10:  # blob
        return radial([1.0, 0.8, 0.95, 0.7, 1.0, 0.85, 0.75, 0.9, 1.0, 0.8, 0.7, 0.9])
    if kind == 11:  # diamond (elongated)
        return radial([1.0, 0.5, 1.0, 0.5])
    if kind == 12:  # gear
        return radial([1.0, 1.0, 0.7, 0.7] * 6)
    if kind == 13:  # triangle pointing down, flattened
        return radial([1.0, 0.6, 1.0, 0.6, 1.0, 0.6])
    if kind == 14:  # hexagram-like
        return radial([1.0, 0.55] * 6)
    if kind == 15:  # heptagon
        return radial([1.0] * 7)
    if kind == 16:  # three-lobed
        return radial([1.0, 0.9, 0.4, 0.4] * 3)
    if kind == 17:  # teardrop
        return radial([1.0, 0.8, 0.55, 0.45, 0.45, 0.55, 0.8, 1.0])
    if kind == 18:  # arrow-like
        return radial([1.0, 0.35, 0.9, 0.9, 0.35])
    return radial([1.0, 0.25] * 4)  # 19: thin 4-point star


def _texture(
    kind: int,
    color: np.ndarray,
    width: int,
    rng: np.random.Generator,
    window: tuple[int, int, int, int],
) -> np.ndarray:
    """The texture's RGB over the image's rows ``y0:y1`` and columns ``x0:x1`` (``window``).

    The pattern is a function of the image's coordinates (``width`` wide), so a window is
    exactly that part of the whole image's texture, and the same random draws are taken.
    """
    y0, y1, x0, x1 = window
    yy, xx = np.mgrid[y0:y1, x0:x1]
    period = rng.integers(4, 9)
    kind %= 5
    if kind == 0:
        pattern = np.ones((y1 - y0, x1 - x0))
    elif kind == 1:
        pattern = 0.55 + 0.45 * (((xx + yy) // period) % 2)
    elif kind == 2:
        pattern = 0.55 + 0.45 * (((xx // period) + (yy // period)) % 2)
    elif kind == 3:
        pattern = 0.6 + 0.4 * (
            (((xx % period) - period / 2) ** 2 + ((yy % period) - period / 2) ** 2) < period
        )
    else:
        pattern = 0.5 + 0.5 * (xx / max(width - 1, 1))
    return np.clip(pattern[..., None] * color[None, None, :], 0, 255)


def _class_color(class_index: int, n_classes: int) -> np.ndarray:
    hue = (class_index * 0.61803398875) % 1.0
    h6 = hue * 6
    i, f = int(h6), h6 - int(h6)
    v, s = 230.0, 0.75
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i % 6]
    return np.array(rgb)


def _background(rng: np.random.Generator, h: int, w: int, style: str) -> np.ndarray:
    base = rng.uniform(60, 160, size=3)
    img = np.clip(base[None, None] + rng.normal(0, 18, size=(h, w, 3)), 0, 255)
    canvas = Image.fromarray(img.astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    n = 12 if style == "pascal" else 30
    for _ in range(n):
        grey = int(rng.uniform(40, 200))
        col = (grey, grey, int(np.clip(grey + rng.normal(0, 20), 0, 255)))
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        if style == "pascal":
            draw.line(
                [(x0, y0), (x0 + rng.normal(0, w / 3), y0 + rng.normal(0, h / 3))],
                fill=col,
                width=int(rng.integers(1, 4)),
            )
        else:
            s = rng.uniform(2, 8)
            draw.rectangle([x0, y0, x0 + s, y0 + s * rng.uniform(0.5, 3)], fill=col)
    return np.array(canvas)


def draw_scene(
    rng: np.random.Generator,
    size: tuple[int, int],
    classes: list[int],
    appearance: dict[int, tuple[int, int, np.ndarray]],
    style: str = "pascal",
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Draw one image; returns ``(rgb (H, W, 3) uint8, mask (H, W) uint8, instances)``.

    ``appearance[c] = (shape kind, texture kind, rgb colour)``; ``instances`` hold each object's
    class and polygon (for COCO annotations), in drawing order.
    """
    h, w = size
    img = _background(rng, h, w, style).astype(np.float64)
    mask = np.zeros((h, w), dtype=np.uint8)
    instances = []
    multi = len(classes) > 1
    for c in classes:
        for _ in range(int(rng.integers(1, 3 if multi else 4))):
            r = rng.uniform(0.12, 0.28 if multi else 0.35) * min(h, w)
            cx, cy = rng.uniform(r * 0.6, w - r * 0.6), rng.uniform(r * 0.6, h - r * 0.6)
            shape, tex, color = appearance[c]
            poly = shape_polygon(shape, cx, cy, r, rng.uniform(0, 2 * math.pi))
            layer = Image.new("L", (w, h), 0)
            ImageDraw.Draw(layer).polygon(poly, fill=1)
            region = np.array(layer, dtype=bool)
            if region.sum() < 16:
                continue
            tint = np.clip(color * rng.uniform(0.8, 1.15), 0, 255)
            rows, cols = np.flatnonzero(region.any(1)), np.flatnonzero(region.any(0))
            y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
            inside = region[y0:y1, x0:x1]  # the texture is drawn over the object's box only
            img[y0:y1, x0:x1][inside] = _texture(tex, tint, w, rng, (y0, y1, x0, x1))[inside]
            mask[region] = c
            instances.append({"class": c, "polygon": [v for xy in poly for v in xy]})
    return img.clip(0, 255).astype(np.uint8), mask, instances


def _pick_classes(rng: np.random.Generator, n_classes: int, multi: float = 0.5) -> list[int]:
    """One class, or (with probability ``multi``) two or three classes of one test split."""
    first = int(rng.integers(1, n_classes + 1))
    if rng.random() >= multi:
        return [first]
    group = [c for c in _split_group(first, n_classes) if c != first]
    more = rng.choice(len(group), size=2 if rng.random() < 0.2 else 1, replace=False)
    return [first] + [group[int(i)] for i in more]


def _split_group(c: int, n_classes: int) -> list[int]:
    """Classes tested together with ``c``: its PASCAL-5i fold, or its COCO-20i (FWB) fold."""
    if n_classes == 20:
        return pascal_fold_classes((c - 1) // 5)[1]
    return coco_fold_classes((c - 1) % 4)[1]


def _sizes(rng: np.random.Generator, size: tuple[int, int]) -> tuple[int, int]:
    lo, hi = size
    return int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))


def _write_jpeg(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, quality=92)


def _write_pascal_raw(raw: Path, cfg: ToyConfig, rng: np.random.Generator) -> None:
    from scipy.io import savemat

    appearance = {c: (c - 1, (c - 1) // 4, _class_color(c - 1, 20)) for c in range(1, 21)}
    voc = raw / "VOC2012"
    sbd = raw / "benchmark_RELEASE" / "dataset"
    splits = {"train": [], "val": [], "sbd": []}
    counts = (("train", cfg.voc_train), ("sbd", cfg.sbd_train), ("val", cfg.voc_val))
    index = 0
    for split, n in counts:
        for _ in range(n):
            name = f"2008_{index:06d}"
            index += 1
            rgb, mask, _ = draw_scene(
                rng, _sizes(rng, cfg.size), _pick_classes(rng, 20), appearance
            )
            _write_jpeg(voc / "JPEGImages" / f"{name}.jpg", rgb)
            if split == "sbd":
                (sbd / "cls").mkdir(parents=True, exist_ok=True)
                mat = sbd / "cls" / f"{name}.mat"
                savemat(str(mat), {"GTcls": {"Segmentation": mask}}, do_compression=True)
                with open(mat, "r+b") as f:  # the header's creation time would differ per run
                    f.write(b"MATLAB 5.0 MAT-file, fewzero toy data".ljust(116))
            else:
                write_mask(voc / "SegmentationClass" / f"{name}.png", mask)
            splits[split].append(name)
    for split in ("train", "val"):
        path = voc / "ImageSets" / "Segmentation" / f"{split}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(splits[split]) + "\n")
    half = len(splits["sbd"]) // 2
    sbd.mkdir(parents=True, exist_ok=True)
    (sbd / "train.txt").write_text("\n".join(splits["sbd"][:half]) + "\n")
    (sbd / "val.txt").write_text("\n".join(splits["sbd"][half:]) + "\n")


def _write_coco_raw(raw: Path, cfg: ToyConfig, rng: np.random.Generator) -> None:
    appearance = {
        c: ((c - 1) % 20, (c - 1) // 20 + 1, _class_color(c + 7, 80)) for c in range(1, 81)
    }
    for p, c in PASCAL_TO_COCO.items():  # same category, same shape; other texture and colour
        appearance[c] = (p - 1, (p - 1) // 4 + 1, _class_color(p + 29, 20))
    categories = [
        {"id": cid, "name": name, "supercategory": "toy"}
        for cid, name in zip(COCO_CATEGORY_IDS, COCO_CLASSES)
    ]
    ann_id = 1
    img_id = 1
    for split, n in (("train", cfg.coco_train), ("val", cfg.coco_val)):
        images, annotations = [], []
        for _ in range(n):
            h, w = _sizes(rng, cfg.size)
            classes = _pick_classes(rng, 80)
            rgb, _, instances = draw_scene(rng, (h, w), classes, appearance, style="coco")
            name = f"{img_id:012d}"
            _write_jpeg(raw / f"{split}2017" / f"{name}.jpg", rgb)
            images.append({"id": img_id, "file_name": f"{name}.jpg", "height": h, "width": w})
            for inst in instances:
                xs, ys = inst["polygon"][0::2], inst["polygon"][1::2]
                x0, y0 = min(xs), min(ys)
                annotations.append(
                    {
                        "id": ann_id,
                        "image_id": img_id,
                        "category_id": COCO_CATEGORY_IDS[inst["class"] - 1],
                        "segmentation": [[round(v, 2) for v in inst["polygon"]]],
                        "area": float(
                            0.5 * abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1)))
                        ),
                        "bbox": [x0, y0, max(xs) - x0, max(ys) - y0],
                        "iscrowd": 0,
                    }
                )
                ann_id += 1
            img_id += 1
        ann_path = raw / "annotations" / f"instances_{split}2017.json"
        ann_path.parent.mkdir(parents=True, exist_ok=True)
        ann_path.write_text(
            json.dumps({"images": images, "annotations": annotations, "categories": categories})
        )


def default_toy_root() -> Path:
    """Cache folder of the embedded toy data (``$FEWZERO_CACHE`` or ``~/.cache/fewzero``)."""
    base = os.environ.get("FEWZERO_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "fewzero"
    )
    return Path(base) / "toy"


def build_toy(
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    config: ToyConfig | None = None,
    progress: bool = False,
) -> dict[str, Path]:
    """Write and prepare the toy trees under ``root``; returns ``{"pascal": ..., "coco": ...}``.

    ``root=None`` is the cache folder ([`default_toy_root`][fewzero.data.toy.default_toy_root]):
    the tree the toy demo (the README's first command) builds and reads, built once per machine.

    Idempotent: a finished tree (marked by ``ROOT/.complete`` with the same seed, sizes and
    generator version) is reused as it is; any other tree there is rebuilt. Processes that build
    the same ``root`` at once (the ranks of a ``torchrun``, two runs sharing a cache) take turns
    on a lock file, ``ROOT/.lock``: one builds, the others then reuse its tree (POSIX; on
    Windows, give concurrent runs their own roots).
    """
    root = default_toy_root() if root is None else Path(root)
    cfg = config or ToyConfig()
    out = {"pascal": root / "pascal", "coco": root / "coco"}
    stamp = json.dumps({"version": TOY_VERSION, "seed": seed, **vars(cfg)}, default=list)
    root.mkdir(parents=True, exist_ok=True)
    with _exclusive(root / ".lock"):
        if (root / ".complete").is_file() and (root / ".complete").read_text() == stamp:
            return out
        (root / ".complete").unlink(missing_ok=True)
        for sub in ("raw", "pascal", "coco"):
            if (root / sub).exists():
                shutil.rmtree(root / sub)
        rng = np.random.default_rng(seed)
        raw = root / "raw"
        _write_pascal_raw(raw, cfg, rng)
        _write_coco_raw(raw / "coco", cfg, rng)
        from .prepare import prepare_coco, prepare_pascal  # lazily: `python -m ...prepare` clean

        prepare_pascal(raw / "VOC2012", raw / "benchmark_RELEASE", out["pascal"], progress=progress)
        prepare_coco(raw / "coco", out["coco"], progress=progress)
        (root / ".complete").write_text(stamp)
    return out


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) while the block runs (POSIX)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
