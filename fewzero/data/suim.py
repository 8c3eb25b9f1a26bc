"""SUIM underwater scenes, seven classes, in the layout INSID3 and ABCDFSS evaluate on.

SUIM (Islam et al., IROS 2020) labels underwater photographs with fish and vertebrates (``FV``),
human divers (``HD``), plants and sea-grass (``PF``), reefs and invertebrates (``RI``), robots
(``RO``), sea-floor and rocks (``SR``) and wrecks and ruins (``WR``). The few-shot layout holds
one binary mask per image and class::

    ROOT/images/<id>.jpg
    ROOT/masks/<CLASS>/<id>.<ext>        CLASS in FV, HD, PF, RI, RO, SR, WR; white = the class

Download: the merged layout of Kaggle's ``heyoujue/suim-merged`` (1635 images), as INSID3's
``docs/data.md`` prepares it. ``python -m fewzero.data.prepare check suim --root R`` says what a
folder lacks.

INSID3's protocol (``protocol="insid3"``): a mask counts when it marks any pixel (grey
``>= 128``); each class's masks in file-name order; one episode per counted mask, episode ``i``
of class ``i % 7``, query and supports drawn by NumPy's legacy generator seeded with 0
([`patnet_episodes`][fewzero.data.patnet_episodes]: INSID3's SUIM loader draws as PATNet's
does); 1024 x 1024 inputs, labels resized to 1024 x 1024 (nearest), ``label_size="resized"``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .peer_benchmarks import Files, PeerBenchmark
from .protocols import patnet_episodes

__all__ = ["SUIM", "SUIM_CLASSES"]

SUIM_CLASSES = ("FV", "HD", "PF", "RI", "RO", "SR", "WR")
"""SUIM's classes in INSID3's order ``1..7``: fish and vertebrates, human divers, plants and
sea-grass, reefs and invertebrates, robots, sea-floor and rocks, wrecks and ruins."""


def read_grey_mask(path: Path) -> np.ndarray:
    """A white-on-black mask as ``uint8 (H, W)`` in ``{0, 1}``: grey ``>= 128`` is the class.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from PIL import Image
        >>> path = Path(tempfile.mkdtemp()) / "m.bmp"
        >>> Image.fromarray(np.array([[0, 127, 128, 255]], np.uint8)).save(path)
        >>> read_grey_mask(path).tolist()
        [[0, 0, 1, 1]]
    """
    with Image.open(path) as img:
        return (np.asarray(img.convert("L")) >= 128).astype(np.uint8)


class SUIM(PeerBenchmark):
    """SUIM's seven underwater classes (layout in [fewzero.data.suim][fewzero.data.suim]).

    Args:
        root: The ``SUIM`` folder.
        shots: Supports per episode.
        transform: Paired transform (INSID3: ``eval_transform(1024)``).
        protocol: ``"insid3"`` (default: INSID3's episodes) or ``None`` for fewzero's draw.
        n_episodes: Episodes (``None``: INSID3's count, one per mask that marks the class).
        seed: Seed (INSID3: 0).
        episodes: A manifest to replay.

    Raises:
        FileNotFoundError: naming what the folder lacks.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from PIL import Image
        >>> from fewzero.data import SUIM, eval_transform
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "images").mkdir()
        >>> fish = np.zeros((24, 24), np.uint8)
        >>> fish[6:18, 6:18] = 255
        >>> for c, name in enumerate(["FV", "HD", "PF", "RI", "RO", "SR", "WR"]):
        ...     (root / "masks" / name).mkdir(parents=True)
        ...     for i in range(3):  # images/<id>.jpg and masks/<CLASS>/<id>.bmp
        ...         Image.fromarray(np.full((24, 24, 3), 30 * c, np.uint8)).save(
        ...             root / "images" / f"d{c}_{i}.jpg")
        ...         Image.fromarray(fish).save(root / "masks" / name / f"d{c}_{i}.bmp")
        >>> test = SUIM(root, shots=1, transform=eval_transform(32))  # INSID3's episodes
        >>> episode = test[8]
        >>> len(test), test.classes[episode["class_id"] - 1], episode["support_images"].shape
        (21, 'HD', torch.Size([1, 3, 32, 32]))
    """

    BENCHMARK = "suim"
    CLASSES = SUIM_CLASSES
    LAYOUT = ("images", *(f"masks/{name}" for name in SUIM_CLASSES))

    def index(self, root: Path, shots: int) -> tuple[list[str], Files]:
        """SUIM's seven classes and their masks that mark any pixel."""
        return list(self.CLASSES), self.find(root)

    def stem_order(self, files: Files) -> Callable[[str], Any]:
        """A class's masks in file-name order (INSID3's ``sorted(glob)``)."""
        names = {stem: m.name for pairs in files.values() for stem, (_, m) in pairs.items()}
        return names.__getitem__

    @classmethod
    def find(cls, root: Path) -> dict[int, dict[str, tuple[Path, Path]]]:
        """Each class's masks that mark any pixel, with their ``images/<id>.jpg``.

        An image that does not exist is listed too:
        [`layout_problems`][fewzero.data.layout_problems] names it.
        """
        out: dict[int, dict[str, tuple[Path, Path]]] = {}
        for c, name in enumerate(cls.CLASSES, 1):
            out[c] = {}
            for mask in sorted((root / "masks" / name).iterdir()):
                image = root / "images" / f"{mask.name.split('.')[0]}.jpg"
                if mask.is_file() and read_grey_mask(mask).any():
                    out[c][image.stem] = (image, mask)
        return out

    @classmethod
    def read_mask(cls, path: Path, class_id: int) -> np.ndarray:
        """Grey ``>= 128`` is the class (INSID3's and ABCDFSS's rule)."""
        return read_grey_mask(path)

    def peer_episodes(
        self, protocol: str, n_episodes: int | None, seed: int
    ) -> list[dict[str, Any]]:
        """INSID3's sequence: one episode per counted mask unless ``n_episodes`` says otherwise."""
        n = sum(len(names) for names in self.classwise) if n_episodes is None else n_episodes
        return patnet_episodes(self.classwise, self.shots, n, seed)
