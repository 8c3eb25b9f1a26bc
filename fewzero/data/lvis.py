"""LVIS-92i: LVIS's long-tail categories in ten folds, in the layout Matcher, GF-SAM and INSID3 use.

LVIS-92i (Matcher, ICLR 2024) keeps LVIS v1's validation categories with more images than the
shot count and cuts them into ten folds by position: fold ``k`` holds categories ``k, k+10,
k+20, ...`` of that list (about 92 each). Layout (``ROOT`` is the ``LVIS`` folder)::

    ROOT/coco/train2017/<id>.jpg, ROOT/coco/val2017/<id>.jpg      COCO 2017's images
    ROOT/lvis_val.pkl        {category id: {image name: {"annotations": [{"segmentation": ..}]}}}

Download: COCO 2017's images and the ``lvis.zip`` annotations Matcher, GF-SAM and INSID3 name
(their ``docs``). ``python -m fewzero.data.prepare check lvis --root R`` says what a folder
lacks. The annotation file is a Python pickle: fewzero reads it with an unpickler that builds
plain containers and NumPy arrays only ([`fewzero.data.plain_pickle`][fewzero.data.plain_pickle]).

Their protocol (``protocol="insid3"``): 2300 episodes, episode ``i`` of the fold's category
``i % n``, query and supports drawn from that category's images in the file's order by NumPy's
legacy generator seeded with 0 (the draw of [`patnet_episodes`][fewzero.data.patnet_episodes]);
a mask is the union of the category's polygons (or RLE) in the image; 1024 x 1024 inputs and
labels resized to 1024 (INSID3's scoring).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

from .peer_benchmarks import Files, PeerBenchmark
from .plain_pickle import read_plain_pickle
from .protocols import patnet_episodes

__all__ = ["LVIS92i", "lvis_fold_categories", "segmentation_mask"]

LVIS_EPISODES = 2300
"""Test episodes of LVIS-92i's protocol (per fold and shot count)."""

FOLDS = 10
"""LVIS-92i's folds."""


def lvis_fold_categories(annotations: dict[Any, dict[str, Any]], fold: int, shots: int) -> list:
    """Fold ``fold``'s categories: of those with more than ``shots`` images, every tenth from ``fold``.

    Examples:
        >>> anno = {c: {f"{c}_{i}.jpg": {} for i in range(1 + c % 3)} for c in range(40)}
        >>> lvis_fold_categories(anno, 1, 1)  # 26 categories of 2 or 3 images: 2 a fold
        [2, 17]
    """
    kept = [c for c in annotations if len(annotations[c]) > shots]
    return [kept[fold + FOLDS * v] for v in range(len(kept) // FOLDS)]


def segmentation_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """One annotation's mask ``bool (height, width)``: COCO polygons, an RLE or a mask array.

    Raises:
        ValueError: for another kind of segmentation, or a mask array of another size.

    Examples:
        >>> segmentation_mask([[1, 1, 6, 1, 6, 4, 1, 4]], 6, 8).sum()  # COCO's rasterisation
        np.int64(15)
    """
    if isinstance(segmentation, list):  # polygons
        if not segmentation:
            return np.zeros((height, width), bool)
        polygons = [np.asarray(p, dtype=np.float64) for p in segmentation]
        rle = mask_util.merge(mask_util.frPyObjects(polygons, height, width))
        return mask_util.decode(rle).astype(bool)
    if isinstance(segmentation, dict):  # COCO RLE
        return np.asarray(mask_util.decode(segmentation)).astype(bool)
    if isinstance(segmentation, np.ndarray) and segmentation.shape == (height, width):
        return segmentation.astype(bool)
    raise ValueError(
        f"a segmentation must be COCO polygons, an RLE or a ({height}, {width}) mask, got "
        f"{type(segmentation).__name__}"
    )


class LVIS92i(PeerBenchmark):
    """LVIS-92i's test episodes of fold ``fold`` (layout in [fewzero.data.lvis][fewzero.data.lvis]).

    Episode class ids are the fold's, ``1..n`` in the fold's order; ``classes`` holds their LVIS
    category ids as text. The fold's categories depend on ``shots`` (those with more images).

    Args:
        root: The ``LVIS`` folder.
        fold: 0..9.
        shots: Supports per episode.
        transform: Paired transform (INSID3: ``eval_transform(1024)``).
        protocol: ``"insid3"`` (default: Matcher's, GF-SAM's and INSID3's episodes) or ``None``
            for fewzero's draw.
        n_episodes: Episodes (``None``: 2300, the peers' count).
        seed: Seed (the peers': 0).
        episodes: A manifest to replay.

    Raises:
        FileNotFoundError: naming what the folder lacks.
        ValueError: for another fold, or an annotation file that is not LVIS-92i's.

    Examples:
        >>> import pickle, tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from PIL import Image
        >>> from fewzero.data import LVIS92i, eval_transform
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "coco/val2017").mkdir(parents=True)
        >>> anno = {}
        >>> for c in range(20):  # two images per category, a square polygon each
        ...     anno[100 + c] = {}
        ...     for i in range(2):
        ...         name = f"val2017/{c:03d}{i}.jpg"
        ...         Image.fromarray(np.full((16, 20, 3), 9 * c, np.uint8)).save(root / "coco" / name)
        ...         square = [[2, 2, 12, 2, 12, 10, 2, 10]]
        ...         anno[100 + c][name] = {"annotations": [{"segmentation": square}]}
        >>> _ = (root / "lvis_val.pkl").write_bytes(pickle.dumps(anno))
        >>> test = LVIS92i(root, 3, transform=eval_transform(32))  # the peers' 2300 episodes
        >>> len(test), test.classes, test[1]["label"].sum().item()
        (2300, ['103', '113'], 80)
    """

    BENCHMARK = "lvis"
    FOLDS = FOLDS
    EPISODES = LVIS_EPISODES
    LAYOUT = ("coco", "lvis_val.pkl")

    def index(self, root: Path, shots: int) -> tuple[list[str], Files]:
        """The fold's categories (as text) and the images each is annotated in."""
        assert self.fold is not None
        self.annotations = read_lvis_annotations(root / "lvis_val.pkl")
        self.categories = lvis_fold_categories(self.annotations, self.fold, shots)
        if not self.categories:
            raise ValueError(
                f"fold {self.fold} holds no category: lvis_val.pkl has fewer than 10 categories "
                f"with more than shots={shots} images (LVIS-92i's has about 920)"
            )
        files = {
            j: {name: (root / "coco" / name, root / "lvis_val.pkl") for name in self.annotations[c]}
            for j, c in enumerate(self.categories, 1)
        }
        return [str(c) for c in self.categories], files

    def mask_of(self, cid: int, stem: str) -> np.ndarray:
        """The union of the category's segmentations in image ``stem``, ``uint8`` 0/1."""
        with Image.open(self.files[(cid, stem)][0]) as img:
            width, height = img.size
        entry = self.annotations[self.categories[cid - 1]][stem]
        mask = np.zeros((height, width), bool)
        for annotation in entry.get("annotations", []):
            mask |= segmentation_mask(annotation["segmentation"], height, width)
        return mask.astype(np.uint8)

    def peer_episodes(
        self, protocol: str, n_episodes: int | None, seed: int
    ) -> list[dict[str, Any]]:
        """The peers' sequence: episode ``i`` of the fold's category ``i % n``."""
        classwise = [list(self.annotations[c]) for c in self.categories]
        n = LVIS_EPISODES if n_episodes is None else n_episodes
        return patnet_episodes(classwise, self.shots, n, seed)


def read_lvis_annotations(path: Path) -> dict[Any, dict[str, Any]]:
    """``lvis_val.pkl`` read without running code, its form checked.

    Raises:
        ValueError: naming the file when it is not ``{category: {image name: {...}}}``.
    """
    anno = read_plain_pickle(path, "LVIS-92i's lvis_val.pkl")
    if not isinstance(anno, dict) or not all(
        isinstance(v, dict) and all(isinstance(n, str) for n in v) for v in anno.values()
    ):
        raise ValueError(
            f"{str(path)!r} must map each category to {{image name: {{'annotations': [...]}}}} "
            "(Matcher's lvis_val.pkl), got another content"
        )
    return anno
