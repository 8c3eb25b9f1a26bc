"""iSAID-5i aerial scenes, 15 classes in three folds, in the layout INSID3 evaluates on.

iSAID (Waqas Zamir et al., CVPR Workshops 2019) labels aerial photographs with 15 object
classes; iSAID-5i cuts them into 896 x 896 patches (PATNet's and DR-Adapter's preparation) and
three folds of five classes: fold ``k`` tests classes ``5k+1 .. 5k+5``. Layout::

    ROOT/val/images/<id>.png
    ROOT/val/semantic_png/<id>_instance_color_RGB.png    class indices: 0 background,
                                                          1..15 the classes, 255 boundaries
    ROOT/splits/val/fold<k>.txt                          the fold's queries, <id>__<class>

Download: the patches and the splits INSID3's ``docs/data.md`` names (6363 validation patches).
``python -m fewzero.data.prepare check isaid --root R`` says what a folder lacks.

INSID3's protocol (``protocol="insid3"``): every line of the fold's list once, in file order,
its supports drawn as HSNet's PASCAL sampler draws them, by NumPy's legacy generator seeded with
0 ([`hsnet_episodes`][fewzero.data.hsnet_episodes] over the list); the boundary pixels (255)
are not scored; 1024 x 1024 inputs, labels resized to 1024 x 1024 (nearest),
``label_size="resized"``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .classes import IGNORE_INDEX
from .peer_benchmarks import Files, PeerBenchmark
from .protocols import hsnet_episodes, read_query_list

__all__ = ["ISAID5i", "ISAID_CLASSES"]

ISAID_CLASSES = (
    "ship", "storage_tank", "baseball_diamond", "tennis_court", "basketball_court",
    "ground_track_field", "bridge", "large_vehicle", "small_vehicle", "helicopter",
    "swimming_pool", "roundabout", "soccer_ball_field", "plane", "harbor",
)  # fmt: skip
"""iSAID's classes ``1..15`` (its label values); fold ``k`` holds ``5k+1 .. 5k+5``."""

FOLDS = 3
"""iSAID-5i's folds."""


def read_class_mask(path: Path, class_id: int) -> np.ndarray:
    """``class_id``'s pixels of a class-index PNG as ``uint8 (H, W)``: 1, else 0; 255 kept.

    Raises:
        ValueError: naming the file when it is not one channel of class indices.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from PIL import Image
        >>> path = Path(tempfile.mkdtemp()) / "m.png"
        >>> Image.fromarray(np.array([[0, 3, 4, 255]], np.uint8)).save(path)
        >>> read_class_mask(path, 3).tolist()
        [[0, 1, 0, 255]]
    """
    with Image.open(path) as img:
        labels = np.asarray(img)
    if labels.ndim != 2:
        raise ValueError(
            f"{str(path)!r} must hold one channel of class indices (0 background, 1..15, 255 "
            f"boundaries), got shape {labels.shape}: use iSAID-5i's semantic_png patches"
        )
    out = (labels == class_id).astype(np.uint8)
    out[labels == IGNORE_INDEX] = IGNORE_INDEX
    return out


class ISAID5i(PeerBenchmark):
    r"""iSAID-5i's test episodes of fold ``fold`` (layout in [fewzero.data.isaid][fewzero.data.isaid]).

    Episode class ids are the fold's, ``1..5`` (``classes`` names them); the masks are read
    with the class's iSAID value ``5 * fold + class_id``.

    Args:
        root: The ``iSAID`` folder.
        fold: 0, 1 or 2.
        shots: Supports per episode.
        transform: Paired transform (INSID3: ``eval_transform(1024)``).
        protocol: ``"insid3"`` (default: INSID3's episodes) or ``None`` for fewzero's draw.
        n_episodes: Episodes (``None``: INSID3's count, every line of the fold's list once).
        seed: Seed (INSID3: 0).
        episodes: A manifest to replay.

    Raises:
        FileNotFoundError: naming what the folder lacks.
        ValueError: for another fold, or a list line of a class outside the fold.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from PIL import Image
        >>> from fewzero.data import ISAID5i, eval_transform
        >>> root = Path(tempfile.mkdtemp())
        >>> for sub in ("val/images", "val/semantic_png", "splits/val"):
        ...     (root / sub).mkdir(parents=True)
        >>> lines = []
        >>> for c in range(1, 6):  # fold 0: ship .. basketball_court
        ...     for i in range(2):
        ...         name = f"P{c}{i}"
        ...         labels = np.zeros((24, 24), np.uint8)
        ...         labels[4:20, 4:20], labels[4, :] = c, 255  # the class, a boundary
        ...         Image.fromarray(np.full((24, 24, 3), 40 * c, np.uint8)).save(
        ...             root / "val/images" / f"{name}.png")
        ...         Image.fromarray(labels).save(
        ...             root / "val/semantic_png" / f"{name}_instance_color_RGB.png")
        ...         lines.append(f"{name}__{c}")
        >>> _ = (root / "splits/val/fold0.txt").write_text("\n".join(lines) + "\n")
        >>> test = ISAID5i(root, 0, shots=1, transform=eval_transform(32))  # INSID3's episodes
        >>> episode = test[3]
        >>> len(test), test.classes[episode["class_id"] - 1], sorted(episode["label"].unique().tolist())
        (10, 'storage_tank', [0, 1, 255])
    """

    BENCHMARK = "isaid"
    FOLDS = FOLDS

    def layout(self) -> list[str]:
        """The images, the labels and the fold's list."""
        return isaid_layout(self.fold)

    def index(self, root: Path, shots: int) -> tuple[list[str], Files]:
        """The fold's five classes and the patches its list names."""
        assert self.fold is not None
        self.offset = 5 * self.fold
        self.queries = fold_queries(root, self.fold)
        files: Files = {c: {} for c in range(1, 6)}
        for name, c in self.queries:
            files[c - self.offset][name] = isaid_pair(root, name)
        return list(ISAID_CLASSES[self.offset : self.offset + 5]), files

    def stem_order(self, files: Files) -> Callable[[str], Any]:
        """The list's order."""
        return {name: i for i, (name, _) in enumerate(self.queries)}.__getitem__

    def read_mask(self, path: Path, class_id: int) -> np.ndarray:  # type: ignore[override]
        """The fold's class ``class_id`` (iSAID value ``5 * fold + class_id``); 255 kept."""
        return read_class_mask(path, self.offset + class_id)

    def peer_episodes(
        self, protocol: str, n_episodes: int | None, seed: int
    ) -> list[dict[str, Any]]:
        """INSID3's sequence: the fold's list once, in file order, unless ``n_episodes`` says."""
        n = len(self.queries) if n_episodes is None else n_episodes
        records = hsnet_episodes(self.queries, self.shots, n, seed)
        return [{**r, "class_id": r["class_id"] - self.offset} for r in records]


def isaid_pair(root: Path, name: str) -> tuple[Path, Path]:
    """A patch's image and its class-index label."""
    return (
        root / "val" / "images" / f"{name}.png",
        root / "val" / "semantic_png" / f"{name}_instance_color_RGB.png",
    )


def fold_queries(root: Path, fold: int) -> list[tuple[str, int]]:
    """The fold's list as ``(name, iSAID class)`` pairs, each class checked to be the fold's.

    Raises:
        ValueError: naming the line's class and the fold's.
    """
    queries = read_query_list(root / "splits" / "val" / f"fold{fold}.txt")
    wrong = sorted({c for _, c in queries if not 5 * fold < c <= 5 * fold + 5})
    if wrong:
        raise ValueError(
            f"splits/val/fold{fold}.txt lists classes {wrong}, fold {fold} holds "
            f"{5 * fold + 1}..{5 * fold + 5}"
        )
    return queries


def isaid_layout(fold: int | None = None) -> list[str]:
    """The folders and lists an iSAID root holds (``fold``: that fold's list only)."""
    folds = range(FOLDS) if fold is None else [fold]
    return ["val/images", "val/semantic_png", *(f"splits/val/fold{k}.txt" for k in folds)]
