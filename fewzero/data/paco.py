"""PACO-Part: object parts of COCO images, 448 part classes in four folds (Matcher's layout).

PACO (Ramanathan et al., CVPR 2023) labels the parts of COCO objects; PACO-Part (Matcher, ICLR
2024) takes its part categories as few-shot classes: fold ``k`` holds categories ``k, k+4, ...``
of the training file's 448, kept where the validation file has more images than the shot
count. An episode's query and supports are crops to one object's box, and its mask is that
object's part. Layout (``ROOT`` is the ``PACO-Part`` folder)::

    ROOT/coco/val2017/<id>.jpg (and train2017/)      COCO 2017's images
    ROOT/paco/paco_part_train.pkl                    {"cid2img": {category: [...]}, ...}
    ROOT/paco/paco_part_val.pkl                      {"cid2img": {category: [{image id: path}]},
                                                      "img2anno": {image id: [annotation]}}

Each annotation holds ``category_id``, ``obj_ann_id``, ``obj_bbox`` (``[x, y, w, h]``) and a
``segmentation`` (COCO polygons or RLE). Download: COCO 2017's images and the ``paco.zip``
annotations Matcher, GF-SAM and INSID3 name. ``python -m fewzero.data.prepare check paco --root
R`` says what a folder lacks. The annotation files are pickles, read without running code
([`fewzero.data.plain_pickle`][fewzero.data.plain_pickle]).

Their protocol (``protocol="insid3"``, the only one: an episode is drawn with its objects):
2500 episodes; each draws a class of the fold, a query image of it, one of the class's objects
in it, then supports (other images) one at a time with an object each, all by NumPy's legacy
generator seeded with 0; an episode with an empty crop is drawn again; images and masks are
cropped to the object's box; 1024 x 1024 inputs, labels resized to 1024 (INSID3's scoring).
A manifest names an episode's image as ``<image>#<object id>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .lvis import segmentation_mask
from .peer_benchmarks import Files, PeerBenchmark
from .plain_pickle import read_plain_pickle
from .readers import read_image

__all__ = ["PACOPart", "paco_fold_categories"]

PACO_EPISODES = 2500
"""Test episodes of PACO-Part's protocol (per fold and shot count)."""

PACO_CLASSES = 448
"""PACO-Part's part categories (its training file's)."""


def paco_fold_categories(train: dict, val_cid2img: dict, fold: int, shots: int) -> list:
    """Fold ``fold``'s categories: every fourth training one from ``fold``, if held enough.

    A category is held when the validation file has more than ``shots`` images of it.

    Examples:
        >>> train = {"cid2img": {c: [] for c in range(448)}}
        >>> val = {c: [{i: f"val2017/{i}.jpg"} for i in range(c % 3)] for c in range(448)}
        >>> paco_fold_categories(train, val, 1, 1)[:4]
        [5, 17, 29, 41]
    """
    categories = list(train["cid2img"])
    if len(categories) != PACO_CLASSES:
        raise ValueError(
            f"paco_part_train.pkl must list {PACO_CLASSES} part categories, got {len(categories)}"
        )
    held = {c for c, images in val_cid2img.items() if len(images) > shots}
    fold_all = [categories[fold + 4 * v] for v in range(PACO_CLASSES // 4)]
    return [c for c in fold_all if c in held]


def _unique_images(cid2img: dict) -> dict:
    """Each category's ``[{image id: path}]`` with an image listed once (its first entry)."""
    out = {}
    for c, images in cid2img.items():
        seen: set = set()
        out[c] = []
        for entry in images:
            key = next(iter(entry))
            if key not in seen:
                seen.add(key)
                out[c].append(entry)
    return out


def _short(path: str) -> str:
    """``.../val2017/<id>.jpg`` -> ``val2017/<id>.jpg`` (the images' place under ``coco``)."""
    return "/".join(str(path).split("/")[-2:])


class PACOPart(PeerBenchmark):
    """PACO-Part's test episodes of fold ``fold`` (layout in [fewzero.data.paco][fewzero.data.paco]).

    Episode class ids are the fold's, ``1..n``; ``classes`` holds their PACO category ids as
    text. An image name in the episodes is ``<image>#<object id>``: the image cropped to that
    object's box, the mask the object's part.

    Args:
        root: The ``PACO-Part`` folder.
        fold: 0..3.
        shots: Supports per episode.
        transform: Paired transform (INSID3: ``eval_transform(1024)``).
        protocol: ``"insid3"``: the peers' episodes (Matcher's, GF-SAM's, INSID3's).
        n_episodes: Episodes (``None``: 2500, the peers' count).
        seed: Seed (the peers': 0).
        episodes: A manifest to replay instead (``protocol=None``).

    Raises:
        FileNotFoundError: naming what the folder lacks.
        ValueError: for another fold, ``protocol=None`` without ``episodes``, or annotation
            files that are not PACO-Part's.
    """

    BENCHMARK = "paco"
    FOLDS = 4
    EPISODES = PACO_EPISODES
    OWN_DRAW = False
    LAYOUT = ("coco", "paco/paco_part_train.pkl", "paco/paco_part_val.pkl")

    def index(self, root: Path, shots: int) -> tuple[list[str], Files]:
        """The fold's categories (as text) and, per image, each object of the category."""
        assert self.fold is not None
        train, val = read_paco_annotations(root)
        self.cid2img, self.img2anno = _unique_images(val["cid2img"]), val["img2anno"]
        self.categories = paco_fold_categories(train, self.cid2img, self.fold, shots)
        self.objects: dict[tuple[int, str], tuple[list, list]] = {}  # boxes, segmentations
        files: Files = {}
        for j, c in enumerate(self.categories, 1):
            files[j] = {}
            for entry in self.cid2img[c]:
                image_id, path = next(iter(entry.items()))
                for obj, (boxes, segms) in self._objects_of(image_id, c).items():
                    stem = f"{_short(path)}#{obj}"
                    pkl = root / "paco" / "paco_part_val.pkl"
                    files[j][stem] = (root / "coco" / _short(path), pkl)
                    self.objects[(j, stem)] = (boxes, segms)
        return [str(c) for c in self.categories], files

    def _objects_of(self, image_id: Any, category: Any) -> dict[Any, tuple[list, list]]:
        """``{object id: (boxes, segmentations)}`` of ``category``'s parts in the image."""
        out: dict[Any, tuple[list, list]] = {}
        for anno in self.img2anno[image_id]:
            if anno["category_id"] == category:
                boxes, segms = out.setdefault(anno["obj_ann_id"], ([], []))
                boxes.append(anno["obj_bbox"])
                segms.append(anno["segmentation"])
        return out

    @staticmethod
    def _crop(box: Sequence[float]) -> tuple[slice, slice]:
        x, y, w, h = box
        return slice(int(y), int(y + h)), slice(int(x), int(x + w))

    def image_of(self, cid: int, stem: str) -> Image.Image:
        """The image cropped to the object's box (its first part's ``obj_bbox``)."""
        rows, cols = self._crop(self.objects[(cid, stem)][0][0])
        return Image.fromarray(np.asarray(read_image(self.files[(cid, stem)][0]))[rows, cols])

    def mask_of(self, cid: int, stem: str) -> np.ndarray:
        """The union of the object's part segmentations, cropped to its box, ``uint8`` 0/1."""
        boxes, segms = self.objects[(cid, stem)]
        with Image.open(self.files[(cid, stem)][0]) as img:
            width, height = img.size
        mask = np.zeros((height, width), bool)
        for segm in segms:
            mask |= segmentation_mask(segm, height, width)
        rows, cols = self._crop(boxes[0])
        return mask[rows, cols].astype(np.uint8)

    def _empty_crop(self, cid: int, stem: str) -> bool:
        with Image.open(self.files[(cid, stem)][0]) as img:
            width, height = img.size
        rows, cols = self._crop(self.objects[(cid, stem)][0][0])
        return 0 in np.empty((height, width), bool)[rows, cols].shape

    def _draw_object(self, rs: np.random.RandomState, entry: dict, category: Any) -> str:
        """``<image>#<object>``: one of ``category``'s objects in the image, drawn by ``rs``."""
        image_id, path = next(iter(entry.items()))
        objects = list(self._objects_of(image_id, category))
        return f"{_short(path)}#{objects[int(rs.choice(len(objects), 1, replace=False)[0])]}"

    def peer_episodes(
        self, protocol: str, n_episodes: int | None, seed: int
    ) -> list[dict[str, Any]]:
        """The peers' draw: a class, a query image and its object, supports with theirs.

        An episode with an empty crop is drawn again, as the peers' loader does.
        """
        rs = np.random.RandomState(seed)
        n = PACO_EPISODES if n_episodes is None else n_episodes
        out: list[dict[str, Any]] = []
        while len(out) < n:
            j = int(rs.choice(len(self.categories), 1, replace=False)[0]) + 1
            c = self.categories[j - 1]
            images = self.cid2img[c]
            query = self._draw_object(rs, images[int(rs.choice(len(images), 1, replace=False)[0])], c)
            supports: list[str] = []
            while len(supports) < self.shots:
                entry = images[int(rs.choice(len(images), 1, replace=False)[0])]
                if _short(next(iter(entry.values()))) != query.split("#")[0]:
                    supports.append(self._draw_object(rs, entry, c))
            if not any(self._empty_crop(j, s) for s in [query, *supports]):
                out.append({"index": len(out), "query": query, "class_id": j,
                            "supports": [supports]})  # fmt: skip
        return out


def read_paco_annotations(root: Path) -> tuple[dict, dict]:
    """The training and validation files, read without running code, their form checked.

    Raises:
        ValueError: naming the file that is not PACO-Part's.
    """
    out = []
    for split in ("train", "val"):
        path = root / "paco" / f"paco_part_{split}.pkl"
        anno = read_plain_pickle(path, f"PACO-Part's paco_part_{split}.pkl")
        keys = ("cid2img",) if split == "train" else ("cid2img", "img2anno")
        if not isinstance(anno, dict) or not all(isinstance(anno.get(k), dict) for k in keys):
            raise ValueError(
                f"{str(path)!r} must hold the dictionaries {list(keys)} (Matcher's "
                "PACO-Part files), got another content"
            )
        out.append(anno)
    return out[0], out[1]
