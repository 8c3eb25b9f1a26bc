"""Cross-domain few-shot benchmarks in PATNet's layouts: Deepglobe, ISIC2018 and Chest X-ray.

PATNet (Lei et al., ECCV 2022) trains on PASCAL and tests on satellite, dermoscopic and X-ray
images (and FSS-1000, [`FSS1000`][fewzero.data.FSS1000] with ``protocol="hsnet"``). Its test
protocol, ``protocol="patnet"`` here: 600 episodes, episode ``i`` of class ``i % n_classes``,
query and supports drawn by NumPy's legacy generator seeded with 0
([`patnet_episodes`][fewzero.data.patnet_episodes]), images resized to 400x400 and scored against
the labels resized to 400x400 (nearest): ``label_size="resized"`` in
[`evaluate`][fewzero.engine.evaluate]. ``python -m fewzero.data.prepare check DATASET --root R``
says what a layout lacks; ``prepare deepglobe`` and ``prepare isic`` build the layouts from the
official downloads.

Layouts (``ROOT`` is the folder passed as ``root``)::

    Deepglobe   ROOT/<c>/test/origin/<id>.jpg         c in 1..6: urban, agriculture, rangeland,
                ROOT/<c>/test/groundtruth/<id>.png    forest, water, barren (PATNet's folders)
    ISIC2018    ROOT/ISIC2018_Task1-2_Training_Input/<c>/<id>.jpg     c in 1..3
                ROOT/ISIC2018_Task1_Training_GroundTruth/<id>_segmentation.png
    Chest X-ray ROOT/CXR_png/<id>.png                 (grey X-rays, read as RGB)
                ROOT/masks/<id>_mask.png              (or <id>.png: Montgomery's names)

Downloads: Deepglobe land cover, http://deepglobe.org/ (Kaggle:
``balraj98/deepglobe-land-cover-classification-dataset``); ISIC2018 task 1,
https://challenge.isic-archive.com/data#2018 (with PATNet's ``data/isic/class_id.csv``); Chest
X-ray masks and labels, Kaggle ``nikhilpandey360/chest-xray-masks-and-labels``.

Masks: Deepglobe's ground truth may be binary (white = the folder's class) or the land-cover
RGB code ([`DEEPGLOBE_PALETTE`][fewzero.data.DEEPGLOBE_PALETTE]), of which the folder's class
colour is taken; ISIC's and the X-rays' are white-on-black PNGs read by
[`read_binary_mask`][fewzero.data.readers.read_binary_mask]. PATNet reads every mask as grey
``>= 128``; on binary masks that is the same, on a colour-coded Deepglobe mask it would mark the
bright colours instead of the folder's class, which fewzero does not follow.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..checks import check_dir
from .folder_episodes import FolderEpisodes
from .isaid import ISAID5i
from .lvis import LVIS92i
from .paco import PACOPart
from .pascal_part import PascalPart
from .permis import PerMIS
from .protocols import PEER_PROTOCOLS, patnet_episodes
from .readers import read_binary_mask, read_rgb_class_mask
from .suim import SUIM

__all__ = [
    "CROSS_DOMAIN",
    "CROSS_DOMAIN_FOLDS",
    "DEEPGLOBE_CLASSES",
    "DEEPGLOBE_PALETTE",
    "ISIC_CLASSES",
    "ChestXray",
    "Deepglobe",
    "ISIC2018",
    "PatnetDataset",
]

DEEPGLOBE_CLASSES = ("urban", "agriculture", "rangeland", "forest", "water", "barren")
"""Deepglobe's land-cover classes in PATNet's folder order ``1..6`` (``unknown`` left out)."""

DEEPGLOBE_PALETTE: dict[tuple[int, int, int], int] = {
    (0, 0, 0): 0,  # unknown
    (0, 255, 255): 1,  # urban
    (255, 255, 0): 2,  # agriculture
    (255, 0, 255): 3,  # rangeland
    (0, 255, 0): 4,  # forest
    (0, 0, 255): 5,  # water
    (255, 255, 255): 6,  # barren
}
"""Deepglobe's RGB land-cover code: colour to class (0 unknown, 1..6 as ``DEEPGLOBE_CLASSES``)."""

ISIC_CLASSES = ("nevus", "melanoma", "seborrheic_keratosis")
"""ISIC2018 lesion classes in the folder order ``1..3`` that ``prepare isic`` writes."""

PATNET_EPISODES = int(PEER_PROTOCOLS["patnet"].n_episodes or 0)
"""Episodes of PATNet's cross-domain test (per dataset and shot count)."""


class PatnetDataset(FolderEpisodes):
    """A PATNet cross-domain dataset (the base of Deepglobe, ISIC2018 and ChestXray).

    Subclasses give ``find`` (``{class_id: {stem: paths}}``); the arguments are theirs (see
    [Deepglobe][fewzero.data.Deepglobe]).
    """

    PROTOCOL_NAMES = ("patnet",)
    CLASSES: tuple[str, ...] = ()

    def __init__(
        self,
        root: str | os.PathLike[str],
        shots: int = 1,
        transform: Callable[..., Any] | None = None,
        protocol: str | None = "patnet",
        n_episodes: int | None = PATNET_EPISODES,
        seed: int = 0,
        episodes: str | os.PathLike[str] | Sequence[dict[str, Any]] | None = None,
    ) -> None:
        root = check_dir(
            root, f"{self.BENCHMARK} root", "; see fewzero.data.crossdomain for the layout"
        )
        problems = class_problems(type(self), root)
        if problems:
            raise FileNotFoundError(
                f"{self.BENCHMARK} root {str(root)!r} is not in PATNet's layout: "
                + "; ".join(problems)
            )
        self.n_episodes = n_episodes
        self.setup(
            root,
            self.CLASSES,
            type(self).find(root),  # type: ignore[attr-defined]
            shots,
            transform,
            False,
            n_episodes,
            seed,
            protocol=protocol,
            episodes=episodes,
        )

    def peer_episodes(
        self, protocol: str, n_episodes: int | None, seed: int
    ) -> list[dict[str, Any]]:
        """PATNet's sequence ([`patnet_episodes`][fewzero.data.patnet_episodes])."""
        n = PATNET_EPISODES if n_episodes is None else n_episodes
        return patnet_episodes(self.classwise, self.shots, n, seed)


def _pairs(images: Path, suffix: str, mask_of: Callable[[str], list[Path]]) -> dict[str, Any]:
    out = {}
    for p in sorted(images.iterdir()):
        if p.is_file() and p.suffix.lower() == suffix:
            masks = [m for m in mask_of(p.stem) if m.is_file()]
            if masks:
                out[p.stem] = (p, masks[0])
    return out


class Deepglobe(PatnetDataset):
    """Deepglobe land cover in PATNet's layout (6 classes; layout in [fewzero.data.crossdomain][fewzero.data.crossdomain]).

    Args:
        root: The ``Deepglobe`` folder.
        shots: Supports per episode.
        transform: Paired transform (PATNet: ``eval_transform(400)``).
        protocol: ``"patnet"`` (default) or ``None`` for fewzero's seeded draw.
        n_episodes: Episodes (PATNet: 600).
        seed: Seed (PATNet: 0).
        episodes: A manifest to replay.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from PIL import Image
        >>> from fewzero.data import Deepglobe, eval_transform
        >>> root = Path(tempfile.mkdtemp())
        >>> truth = np.zeros((24, 24), np.uint8)
        >>> truth[4:20, 4:20] = 255  # binary ground truth: white = the folder's class
        >>> for c in range(1, 7):  # ROOT/<c>/test/origin/<id>.jpg and groundtruth/<id>.png
        ...     test_dir = root / str(c) / "test"
        ...     for sub in ("origin", "groundtruth"):
        ...         (test_dir / sub).mkdir(parents=True)
        ...     for i in range(3):
        ...         image = np.full((24, 24, 3), 40 * c, np.uint8)
        ...         Image.fromarray(image).save(test_dir / "origin" / f"{c}{i}.jpg")
        ...         Image.fromarray(truth).save(test_dir / "groundtruth" / f"{c}{i}.png")
        >>> test = Deepglobe(root, shots=1, transform=eval_transform(32))  # PATNet's 600 episodes
        >>> episode = test[7]
        >>> len(test), test.classes[episode["class_id"] - 1], episode["support_images"].shape
        (600, 'agriculture', torch.Size([1, 3, 32, 32]))
    """

    BENCHMARK = "deepglobe"
    CLASSES = DEEPGLOBE_CLASSES
    LAYOUT = tuple(f"{c}/test/{sub}" for c in range(1, 7) for sub in ("origin", "groundtruth"))

    @classmethod
    def find(cls, root: Path) -> dict[int, dict[str, tuple[Path, Path]]]:
        """Every ``<c>/test/origin/<id>.jpg`` with its ``groundtruth/<id>.png``."""
        return {
            c: _pairs(
                root / str(c) / "test" / "origin",
                ".jpg",
                lambda s, c=c: [root / str(c) / "test" / "groundtruth" / f"{s}.png"],
            )
            for c in range(1, 7)
        }

    @classmethod
    def read_mask(cls, path: Path, class_id: int) -> np.ndarray:
        """Binary (white = the class) or colour-coded (the class's colour) ground truth."""
        return read_rgb_class_mask(path, DEEPGLOBE_PALETTE, class_id)


class ISIC2018(PatnetDataset):
    """ISIC2018 task 1 lesions in PATNet's layout (3 classes; layout in [fewzero.data.crossdomain][fewzero.data.crossdomain]).

    Arguments as [`Deepglobe`][fewzero.data.Deepglobe]; ``root`` is the ``ISIC`` folder.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from PIL import Image
        >>> from fewzero.data import ISIC2018
        >>> root = Path(tempfile.mkdtemp())
        >>> truth = root / "ISIC2018_Task1_Training_GroundTruth"
        >>> truth.mkdir()
        >>> lesion = np.zeros((24, 24), np.uint8)
        >>> lesion[6:18, 6:18] = 255
        >>> for c in range(1, 4):  # Input/<c>/<id>.jpg, GroundTruth/<id>_segmentation.png
        ...     images = root / "ISIC2018_Task1-2_Training_Input" / str(c)
        ...     images.mkdir(parents=True)
        ...     for i in range(2):
        ...         name = f"ISIC_{c}{i}"
        ...         image = np.full((24, 24, 3), 50 * c, np.uint8)
        ...         Image.fromarray(image).save(images / f"{name}.jpg")
        ...         Image.fromarray(lesion).save(truth / f"{name}_segmentation.png")
        >>> test = ISIC2018(root, shots=1, n_episodes=6)  # PATNet's draw, 6 episodes
        >>> [test.classes[e["class_id"] - 1] for e in test.manifest()][:3]
        ['nevus', 'melanoma', 'seborrheic_keratosis']
    """

    BENCHMARK = "isic"
    CLASSES = ISIC_CLASSES
    LAYOUT = (*(f"ISIC2018_Task1-2_Training_Input/{c}" for c in range(1, 4)),
              "ISIC2018_Task1_Training_GroundTruth")  # fmt: skip

    @classmethod
    def find(cls, root: Path) -> dict[int, dict[str, tuple[Path, Path]]]:
        """Every ``ISIC2018_Task1-2_Training_Input/<c>/<id>.jpg`` with its segmentation PNG."""
        gt = root / "ISIC2018_Task1_Training_GroundTruth"
        return {
            c: _pairs(
                root / "ISIC2018_Task1-2_Training_Input" / str(c),
                ".jpg",
                lambda s: [gt / f"{s}_segmentation.png"],
            )
            for c in range(1, 4)
        }


class ChestXray(PatnetDataset):
    """Chest X-ray lungs (Shenzhen and Montgomery) in PATNet's layout (one class).

    Arguments as [`Deepglobe`][fewzero.data.Deepglobe]; ``root`` is the ``LungSegmentation``
    folder. PATNet lists the masks and derives each image's name by cutting ``_mask.png``; an
    image without a mask is not used (800 X-rays, 704 masks). Montgomery's masks, named as
    their image, are matched too (PATNet's name cut does not find their images).

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from PIL import Image
        >>> from fewzero.data import ChestXray
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "CXR_png").mkdir()
        >>> (root / "masks").mkdir()
        >>> lungs = np.zeros((24, 24), np.uint8)
        >>> lungs[4:20, 3:10] = lungs[4:20, 14:21] = 255
        >>> for i in range(3):  # CXR_png/<id>.png with masks/<id>_mask.png
        ...     xray = np.full((24, 24), 90 + i, np.uint8)
        ...     Image.fromarray(xray).save(root / "CXR_png" / f"x{i}.png")
        ...     Image.fromarray(lungs).save(root / "masks" / f"x{i}_mask.png")
        >>> episode = ChestXray(root, shots=1)[0]  # grey X-rays are read as RGB
        >>> episode["image"].shape, int(episode["label"].sum())
        (torch.Size([3, 24, 24]), 224)
    """

    BENCHMARK = "lung"
    LAYOUT = ("CXR_png", "masks")
    CLASSES = ("lung",)

    @classmethod
    def find(cls, root: Path) -> dict[int, dict[str, tuple[Path, Path]]]:
        """Every ``CXR_png/<id>.png`` with ``masks/<id>_mask.png`` (or ``masks/<id>.png``)."""
        masks = root / "masks"
        return {
            1: _pairs(
                root / "CXR_png", ".png", lambda s: [masks / f"{s}_mask.png", masks / f"{s}.png"]
            )
        }

    @classmethod
    def read_mask(cls, path: Path, class_id: int) -> np.ndarray:
        """White-on-black lungs (read by the mask rules)."""
        return read_binary_mask(path)


CROSS_DOMAIN: dict[str, type[FolderEpisodes]] = {
    "deepglobe": Deepglobe,
    "isic": ISIC2018,
    "lung": ChestXray,
    "suim": SUIM,
    "isaid": ISAID5i,
    "permis": PerMIS,
    "lvis": LVIS92i,
    "paco": PACOPart,
    "pascal_part": PascalPart,
}
"""The cross-domain datasets by their ``--dataset`` name (FSS-1000 is ``fss1000``): PATNet's
three; SUIM's underwater and iSAID-5i's aerial scenes, PerMIS's video frames, LVIS-92i's
long-tail categories, PACO-Part's and Pascal-Part's object parts (INSID3's)."""

CROSS_DOMAIN_FOLDS = {"isaid": 3, "lvis": 10, "paco": 4, "pascal_part": 4}
"""The cross-domain datasets cut into folds, and how many (``fold=`` and ``--fold``)."""


def class_problems(cls: type[FolderEpisodes], root: Path, thorough: bool = False) -> list[str]:
    """A folder dataset's layout (its ``LAYOUT`` parts), then each class's pairs.

    Returns:
        One line per missing part, per class with fewer than 2 image/mask pairs and (thorough)
        per pair whose mask does not fit its image or marks nothing.
    """
    problems = [f"missing {rel}" for rel in cls.LAYOUT if not (root / rel).exists()]
    if problems:
        return problems
    for c, pairs in cls.find(root).items():  # type: ignore[attr-defined]
        if len(pairs) < 2:
            problems.append(
                f"class {c} ({cls.CLASSES[c - 1]}) has {len(pairs)} image/mask pairs, needs >= 2"  # type: ignore[attr-defined]
            )
        if thorough:
            read = lambda p, c=c: cls.read_mask(p, c)  # noqa: E731
            problems += pair_problems(f"class {c}", pairs, read)
    return problems


def pair_problems(
    where: str, pairs: dict[str, tuple[Path, Path]], read: Callable[[Path], np.ndarray]
) -> list[str]:
    """Each pair whose mask has another size than its image, or marks no object (at most 5)."""
    out: list[str] = []
    for stem, (image_path, mask_path) in pairs.items():
        try:
            with Image.open(image_path) as img:
                size = img.size
            mask = read(mask_path)
        except (OSError, ValueError) as err:
            out.append(f"{where}: {stem}: {err}")
            continue
        if mask.shape[::-1] != size:
            out.append(
                f"{where}: mask {mask_path.name} has size {mask.shape[::-1]}, its image "
                f"{image_path.name} {size}"
            )
        elif not (mask == 1).any():
            out.append(f"{where}: mask {mask_path.name} marks no object pixel")
        if len(out) >= 5:
            out.append(f"{where}: ... (first problems only)")
            break
    return out
