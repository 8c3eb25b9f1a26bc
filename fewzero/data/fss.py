"""FSS-1000 (Li et al., CVPR 2020) and the same folder layout for your own classes.

Layout::

    ROOT/<class>/<n>.jpg        an image of <class> (.jpg or .jpeg, any case)
    ROOT/<class>/<n>.png        its mask, read by [`fewzero.data.read_binary_mask`][fewzero.data.readers.read_binary_mask]'s rules
                                (white or 1 = the class, black = background, 255 in a 0/1 mask
                                = ignore)
    ROOT/splits/<split>.txt     optional: the class names of a split, one per line

FSS-1000's official class split (520 train / 240 val / 240 test classes, the lists that HSNet
and the later few-shot work use) goes in ``ROOT/splits/{train,val,test}.txt``; ``classes=``
gives a split explicitly, and ``split="all"`` takes every class folder, which is how a folder of
your own classes (a few annotated images each) becomes a few-shot test set.

Episodes: a query image of a class and ``shots`` other images of the same class with their
masks. Test episodes (``n_episodes``) and their supports are drawn once with ``seed``; training
episodes are every (class, image) pair with supports drawn at each access.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..checks import check_dir
from .episodes import (
    Episode,
    FewShotEpisode,
    check_episode_args,
    draw_supports,
    transform_pair,
)
from .readers import IMAGE_SUFFIXES, read_binary_mask, read_image

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


class FSS1000(Dataset):
    """Few-shot episodes over the FSS-1000 folder layout.

    Args:
        root: Dataset folder (see the module docstring).
        split: ``"train"``, ``"val"``, ``"test"`` (class list from ``root/splits/<split>.txt``) or
            ``"all"`` (every class folder).
        shots: Support images per episode (``K >= 1``).
        transform: Paired transform of query and supports (see ``fewzero.data.transforms``).
        classes: Class names to use instead of a split file.
        train: Training episodes (every image, supports drawn at each access); default: ``split
            == "train"``.
        n_episodes: Number of test episodes (default 1000, HSNet's protocol).
        seed: Seed of the test draw.

    Raises:
        FileNotFoundError: for a missing root, split file, class folder, or an image without
            its mask (named, never dropped).
        ValueError: for an unknown split, a class with fewer than ``shots + 1`` images (no
            support is ever repeated), or bad arguments.
    """

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
    ) -> None:
        check_episode_args(1, n_episodes, shots, transform=transform)
        if shots < 1:
            raise ValueError(f"shots must be >= 1 for FSS-1000 episodes, got {shots}")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if shots >= 2 and transform is None:
            raise ValueError(
                f"shots={shots} needs a transform that gives every support image one size, got "
                "None: pass transform=fewzero.data.eval_transform(size)"
            )
        self.root = check_dir(root, "FSS-1000 root")
        if classes is None:
            if split == "all":
                classes = sorted(
                    p.name for p in self.root.iterdir() if p.is_dir() and p.name != "splits"
                )
                if not classes:
                    raise ValueError(
                        f"FSS-1000 root {str(self.root)!r} holds no class folder: expected "
                        "ROOT/<class>/<n>.jpg with <n>.png masks"
                    )
            else:
                split_file = self.root / "splits" / f"{split}.txt"
                if not split_file.is_file():
                    raise FileNotFoundError(
                        f"split file not found: {str(split_file)!r}; put the official FSS-1000 "
                        "class list there, pass classes=[...], or use split='all'"
                    )
                classes = [ln.strip() for ln in split_file.read_text().splitlines() if ln.strip()]
        self.classes = list(classes)
        self.split, self.shots, self.transform = split, shots, transform
        self.train = split == "train" if train is None else train
        self.images: dict[int, list[str]] = {}
        self.files: dict[tuple[int, str], tuple[Path, Path]] = {}
        for cid, name in enumerate(self.classes, 1):
            folder = self.root / name
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
            if len(found) < shots + 1:
                raise ValueError(
                    f"class {name!r} has {len(found)} images with masks; {shots}-shot episodes "
                    f"need {shots + 1} (a query and {shots} distinct supports), in "
                    f"{str(folder)!r}"
                )
            self.images[cid] = sorted(found)
            self.files.update({(cid, stem): paths for stem, paths in found.items()})
        pairs = [(stem, cid) for cid, stems in self.images.items() for stem in stems]
        self.supports: list[list[str]] | None = None
        if not self.train:
            rng = np.random.default_rng(seed)
            if n_episodes is not None:
                idx = rng.choice(len(pairs), size=n_episodes, replace=n_episodes > len(pairs))
                pairs = [pairs[int(i)] for i in idx]
            self.supports = [draw_supports(self.images[c], s, shots, rng) for s, c in pairs]
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def _load(self, cid: int, stem: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image_path, mask_path = self.files[(cid, stem)]
        image = read_image(image_path)
        mask = read_binary_mask(mask_path)
        if mask.shape != (image.height, image.width):
            raise ValueError(
                f"mask {str(mask_path)!r} has size {mask.shape[::-1]}, its image "
                f"{str(image_path)!r} has {(image.width, image.height)}"
            )
        target = torch.from_numpy(mask).long()
        return (*transform_pair(image, target, self.transform), target)

    def __getitem__(self, index: int) -> FewShotEpisode:
        stem, cid = self.pairs[index]
        image, mask, label = self._load(cid, stem)
        names = (
            self.supports[index]
            if self.supports is not None
            else draw_supports(self.images[cid], stem, self.shots, None)
        )
        loaded = [self._load(cid, n)[:2] for n in names]
        name = f"{self.classes[cid - 1]}/{stem}"
        return FewShotEpisode(
            **Episode(
                image=image,
                mask=mask,
                label=label,
                class_id=cid,
                name=name,
                other=torch.zeros_like(label),  # one class per image
            ),
            support_images=torch.stack([im for im, _ in loaded]),
            support_masks=torch.stack([m for _, m in loaded]),
            support_names=[f"{self.classes[cid - 1]}/{n}" for n in names],
        )
