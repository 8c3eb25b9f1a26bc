"""Zero-shot episode datasets over a prepared folder (images, class-index masks, list files).

An episode pairs a query image with one target class. Training pairs every image with each of
its *seen* classes that covers at least ``min_pixels`` pixels; pixels of other classes become
background and 255 stays "ignore". Test episodes are a fixed list of ``n_episodes`` (image,
unseen class) pairs drawn once with ``seed``: identical across runs, machines and ``num_workers``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypedDict

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from .classes import IGNORE_INDEX
from .io import read_image, read_list, read_mask

__all__ = ["Episode", "EpisodeDataset", "binary_target", "collate_episodes"]


class Episode(TypedDict):
    """One zero-shot episode.

    Keys:
        image: Query image ``(3, H, W)`` float, normalised.
        mask: Target ``(H, W)`` int64 in {0, 1, 255}, aligned with ``image``.
        label: Target at the original image size ``(H0, W0)`` int64 in {0, 1, 255}.
        class_id: Target class id (1-based).
        name: Image id.
    """

    image: torch.Tensor
    mask: torch.Tensor
    label: torch.Tensor
    class_id: int
    name: str


def binary_target(mask: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Return 1 where ``mask`` is one of ``classes``, 255 where it is 255, else 0."""
    out = np.isin(mask, list(classes)).astype(np.uint8)
    out[mask == IGNORE_INDEX] = IGNORE_INDEX
    return out


def check_prepared_root(
    root: str | os.PathLike[str], split: str, dataset: str, prepare_hint: str
) -> Path:
    """Validate ``split`` and that the prepared ``root`` exists; returns ``Path(root)``.

    Raises:
        ValueError: for a split other than ``"train"``/``"val"``.
        FileNotFoundError: naming the missing root and the prepare command.
    """
    if split not in ("train", "val"):
        raise ValueError(f"split must be one of ('train', 'val'), got {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{dataset} root not found: {str(root)!r}; build it with: {prepare_hint}"
        )
    return root


def collate_episodes(batch: Sequence[Episode]) -> dict[str, Any]:
    """Stack images, masks and class ids; keep original-size labels and names as lists."""
    return {
        "image": torch.stack([e["image"] for e in batch]),
        "mask": torch.stack([e["mask"] for e in batch]),
        "class_id": torch.tensor([e["class_id"] for e in batch], dtype=torch.int64),
        "label": [e["label"] for e in batch],
        "name": [e["name"] for e in batch],
    }


class EpisodeDataset(Dataset):
    """Episodes over ``image_dir``, ``mask_dir`` and a list file.

    Args:
        image_dir: Folder of ``<name>.jpg`` images.
        mask_dir: Folder of ``<name>.png`` class-index masks.
        list_file: List file with class pixel counts (see :mod:`fewzero.data.io`).
        num_classes: Number of object classes (mask values 0..num_classes and 255).
        seen: Seen (training) class ids.
        unseen: Unseen (test) class ids.
        train: Training pairs over ``seen`` (``True``) or fixed test episodes over ``unseen``.
        transform: Paired transform ``(tv_tensors.Image, tv_tensors.Mask) -> (image, mask)``;
            defaults to converting to float in [0, 1] without resizing.
        min_pixels: Minimum class pixels for a pair (training and test).
        exclude_unseen: Training only: drop images that contain any unseen class.
        target: ``"class"`` (the episode's class is foreground, the paper's protocol) or
            ``"union"`` (training only: every seen class in the image is foreground).
        n_episodes: Number of test episodes (``None``: every test pair once, in order).
        seed: Seed of the test episode draw.
        prepare_hint: Command to mention when files are missing.
    """

    def __init__(
        self,
        image_dir: str | os.PathLike[str],
        mask_dir: str | os.PathLike[str],
        list_file: str | os.PathLike[str],
        num_classes: int,
        seen: Sequence[int],
        unseen: Sequence[int],
        train: bool,
        transform: Callable[..., Any] | None = None,
        min_pixels: int = 2 * 32 * 32,
        exclude_unseen: bool = False,
        target: str = "class",
        n_episodes: int | None = 1000,
        seed: int = 0,
        prepare_hint: str = "",
    ) -> None:
        self.image_dir = Path(image_dir)
        self.mask_dir = Path(mask_dir)
        for path, what in [
            (self.image_dir, "image folder"),
            (self.mask_dir, "mask folder"),
            (Path(list_file), "list file"),
        ]:
            if not path.exists():
                raise FileNotFoundError(
                    f"{what} not found: {str(path)!r}. Expected the prepared layout "
                    f"(images, masks, lists/<split>.txt){'; build it with: ' + prepare_hint if prepare_hint else ''}"
                )
        if target not in ("class", "union"):
            raise ValueError(f"target must be one of ('class', 'union'), got {target!r}")
        self.num_classes = num_classes
        self.seen, self.unseen = list(seen), list(unseen)
        self.train = train
        self.target = target
        self.transform = transform
        entries = read_list(list_file)
        self.classes_of = {name: counts for name, counts in entries}
        wanted = self.seen if train else self.unseen
        pairs: list[tuple[str, int]] = []
        for name, counts in entries:
            if train and exclude_unseen and any(c in counts for c in self.unseen):
                continue
            pairs += [(name, c) for c in wanted if counts.get(c, 0) >= min_pixels]
        if not pairs:
            raise ValueError(
                f"no (image, class) pair in {str(list_file)!r} for classes {wanted} with "
                f"min_pixels={min_pixels}"
            )
        if not train and n_episodes is not None:
            rng = np.random.default_rng(seed)
            reps = -(-n_episodes // len(pairs))
            order = np.concatenate([rng.permutation(len(pairs)) for _ in range(reps)])[:n_episodes]
            pairs = [pairs[i] for i in order]
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def classes(self) -> list[int]:
        """Class ids of the episodes (seen when training, unseen when testing)."""
        return self.seen if self.train else self.unseen

    def __getitem__(self, index: int) -> Episode:
        name, class_id = self.pairs[index]
        image = read_image(self.image_dir / f"{name}.jpg")
        mask = read_mask(self.mask_dir / f"{name}.png", self.num_classes)
        if mask.shape != (image.height, image.width):
            raise ValueError(
                f"mask {name}.png has size {mask.shape[::-1]}, image {name}.jpg has "
                f"{(image.width, image.height)}"
            )
        fg = self.seen if (self.train and self.target == "union") else [class_id]
        target = torch.from_numpy(binary_target(mask, fg)).long()
        img = tv_tensors.Image(v2.functional.pil_to_tensor(image))
        msk = tv_tensors.Mask(target)
        if self.transform is not None:
            img, msk = self.transform(img, msk)
        else:
            img = v2.functional.to_dtype(img, torch.float32, scale=True)
        return Episode(
            image=img.as_subclass(torch.Tensor),
            mask=msk.as_subclass(torch.Tensor).long(),
            label=target,
            class_id=class_id,
            name=name,
        )
