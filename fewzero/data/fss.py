"""FSS-1000 (Li et al., CVPR 2020) and the same folder layout for your own classes.

Layout::

    ROOT/<class>/<n>.jpg        an image of <class> (.jpg or .jpeg, any case)
    ROOT/<class>/<n>.png        its mask: white or 1 = the class, black = background,
                                255 in a 0/1 mask = ignore
    ROOT/splits/<split>.txt     optional: the class names of a split, one per line

Masks are read by [`read_binary_mask`][fewzero.data.readers.read_binary_mask]'s rules.

FSS-1000's official class split (520 train / 240 val / 240 test classes, the lists that HSNet
and the later few-shot work use) goes in ``ROOT/splits/{train,val,test}.txt``; ``classes=``
gives a split explicitly, and ``split="all"`` takes every class folder, which is how a folder of
your own classes (a few annotated images each) becomes a few-shot test set.

Episodes: a query image of a class and ``shots`` other images of the same class with their
masks. Test episodes (``n_episodes``) and their supports are drawn once with ``seed``; training
episodes are every (class, image) pair with supports drawn at each access. ``protocol="hsnet"``
gives HSNet's test sequence (also PATNet's, the cross-domain benchmark's): every image of the
split once (2400 episodes on the official test split), supports from NumPy's legacy generator
seeded with 0 ([`hsnet_fss_episodes`][fewzero.data.hsnet_fss_episodes]); HSNet and PATNet score
it at 400x400 with the labels resized (``label_size="resized"`` in
[`evaluate`][fewzero.engine.evaluate]). Without a transform, supports keep their own sizes (a
list per episode).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..checks import check_dir
from .folder_episodes import FolderEpisodes
from .protocols import hsnet_fss_episodes
from .readers import IMAGE_SUFFIXES

__all__ = ["FSS1000"]

SPLITS = ("train", "val", "test", "all")


def _image_mask_pairs(folder: Path) -> dict[str, tuple[Path, Path]]:
    """``{stem: (image, mask)}``: images ``.jpg``/``.jpeg`` with a ``<stem>.png`` mask (any case)."""
    masks = {p.stem: p for p in folder.iterdir() if p.suffix.lower() == ".png"}
    return {
        p.stem: (p, masks[p.stem])
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and p.stem in masks
    }


def _split_classes(root: Path, split: str) -> list[str]:
    """The classes of ``split``: every class folder (``"all"``), or the split file's list."""
    if split == "all":
        classes = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != "splits")
        if not classes:
            raise ValueError(
                f"FSS-1000 root {str(root)!r} holds no class folder: expected "
                "ROOT/<class>/<n>.jpg with <n>.png masks"
            )
        return classes
    split_file = root / "splits" / f"{split}.txt"
    if not split_file.is_file():
        raise FileNotFoundError(
            f"split file not found: {str(split_file)!r}; put the official FSS-1000 "
            "class list there, pass classes=[...], or use split='all'"
        )
    classes = [ln.strip() for ln in split_file.read_text().splitlines() if ln.strip()]
    if not classes:
        raise ValueError(
            f"split file {str(split_file)!r} lists no class (an empty split): one "
            "class folder name a line"
        )
    return classes


def _class_files(
    root: Path, name: str, shots: int, protocol: str | None
) -> dict[str, tuple[Path, Path]]:
    """A class folder's ``{stem: (image, mask)}``, every image with its mask, enough of them."""
    folder = root / name
    if not folder.is_dir():
        raise FileNotFoundError(f"class folder not found: {str(folder)!r}")
    found = _image_mask_pairs(folder)
    unmasked = sorted(
        p.name
        for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_SUFFIXES and p.stem not in found
    )
    if unmasked:
        raise FileNotFoundError(
            f"class {name!r}: {len(unmasked)} image(s) in {str(folder)!r} have no "
            f"<n>.png mask: {unmasked[:5]}; add the masks or remove the images"
        )
    if len(found) < 2:
        others = sorted({p.suffix for p in folder.iterdir() if p.is_file()})
        raise ValueError(
            f"class {name!r} needs at least 2 images with masks (a query and a support; "
            f"<n>.jpg/.jpeg with <n>.png in {str(folder)!r}), got {len(found)}"
            + (f" (file suffixes found: {others})" if others else "")
        )
    if len(found) < shots + 1 and protocol is None:
        raise ValueError(
            f"class {name!r} has {len(found)} images with masks; {shots}-shot episodes "
            f"need {shots + 1} (a query and {shots} distinct supports), in {str(folder)!r}"
        )
    return found


class FSS1000(FolderEpisodes):
    """Few-shot episodes over the FSS-1000 folder layout.

    Args:
        root: Dataset folder (layout in [fewzero.data.fss][fewzero.data.fss]).
        split: ``"train"``, ``"val"``, ``"test"`` (class list from ``root/splits/<split>.txt``) or
            ``"all"`` (every class folder).
        shots: Support images per episode (``K >= 1``).
        transform: Paired transform of query and supports (see ``fewzero.data.transforms``).
        classes: Class names to use instead of a split file.
        train: Training episodes (every image, supports drawn at each access); default: ``split
            == "train"``.
        n_episodes: Number of test episodes (default 1000; ``None``: every image once; with
            ``protocol="hsnet"`` every image once, as HSNet).
        seed: Seed of the test draw.
        protocol: ``"hsnet"`` for HSNet's (and PATNet's) test sequence, or ``None``.
        episodes: A manifest (path or records) to score exactly.

    Raises:
        FileNotFoundError: for a missing root, split file, class folder, or an image without
            its mask (named, never dropped).
        ValueError: for an unknown split, a class with fewer than ``shots + 1`` images (no
            support is ever repeated), or bad arguments.

    Examples:
        A folder of your own classes, a few annotated images each:

        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from PIL import Image
        >>> from fewzero.data import FSS1000
        >>> root = Path(tempfile.mkdtemp())
        >>> mask = np.zeros((32, 40), np.uint8)
        >>> mask[8:24, 10:30] = 255  # white: the class
        >>> for name in ("cat", "dog"):  # ROOT/<class>/<n>.jpg with its <n>.png mask
        ...     (root / name).mkdir()
        ...     for n in range(1, 4):
        ...         image = np.full((32, 40, 3), 60 * n, np.uint8)
        ...         Image.fromarray(image).save(root / name / f"{n}.jpg")
        ...         Image.fromarray(mask).save(root / name / f"{n}.png")
        >>> test = FSS1000(root, split="all", shots=2, n_episodes=4)
        >>> episode = test[0]  # no transform: the supports keep their sizes, as a list
        >>> test.classes, episode["image"].shape, len(episode["support_images"])
        (['cat', 'dog'], torch.Size([3, 32, 40]), 2)
    """

    BENCHMARK = "fss1000"
    PROTOCOL_NAMES = ("hsnet",)

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "test",
        shots: int = 1,
        transform: Callable[..., Any] | None = None,
        classes: Sequence[str] | None = None,
        train: bool | None = None,
        n_episodes: int | None = 1000,
        seed: int = 0,
        protocol: str | None = None,
        episodes: str | os.PathLike[str] | Sequence[dict[str, Any]] | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        root = check_dir(root, "FSS-1000 root")
        if classes is None:
            classes = _split_classes(root, split)
        self.split = split
        files = {
            cid: _class_files(root, name, shots, protocol) for cid, name in enumerate(classes, 1)
        }
        self.setup(
            root,
            classes,
            files,
            shots,
            transform,
            split == "train" if train is None else train,
            n_episodes,
            seed,
            protocol=protocol,
            episodes=episodes,
        )

    def peer_episodes(
        self, protocol: str, n_episodes: int | None, seed: int
    ) -> list[dict[str, Any]]:
        """HSNet's sequence ([`hsnet_fss_episodes`][fewzero.data.hsnet_fss_episodes]).

        Every image once, so ``n_episodes`` is ignored.
        """
        return hsnet_fss_episodes(self.classwise, self.shots, seed)

    def manifest_header(self) -> dict[str, Any]:
        """[`FolderEpisodes.manifest_header`][fewzero.data.FolderEpisodes.manifest_header] plus ``split``."""
        return {**super().manifest_header(), "split": self.split}
