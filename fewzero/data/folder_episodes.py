"""Few-shot test episodes over classes of image/mask file pairs: one base for every folder dataset.

[`FSS1000`][fewzero.data.FSS1000] and the cross-domain datasets
([`Deepglobe`][fewzero.data.Deepglobe], [`ISIC2018`][fewzero.data.ISIC2018],
[`ChestXray`][fewzero.data.ChestXray]) find their files; this base draws the episodes (fewzero's
seeded draw, the peer's own sequence, or a manifest), lists them as a manifest, and loads them.
A query's class is its folder's: every episode is 1-way, its ``other`` empty.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..checks import check_dir
from .plans import Drawn, check_episode_args, draw_supports, manifest_records, read_records
from .readers import read_binary_mask, read_image
from .samples import EpisodeSample, FewShotSample, stack_if_same_size, transform_pair

__all__ = ["FolderEpisodes"]


class FolderEpisodes(Dataset):
    """Base of the folder datasets: classes of ``(image, mask)`` files, 1-way K-shot episodes.

    A subclass finds its files and calls [`setup`][fewzero.data.FolderEpisodes.setup]; it may
    override [`read_mask`][fewzero.data.FolderEpisodes.read_mask] (default: the mask rules of
    [`read_binary_mask`][fewzero.data.readers.read_binary_mask]) and ``peer_episodes`` (the
    peer's own sequence for ``protocol=``).

    Attributes:
        classes: Class names; class ``j`` (0-based) is ``class_id = j + 1``.
        images: ``{class_id: [stem, ...]}`` in the dataset's order.
        pairs: The episodes' ``(stem, class_id)``.
        supports: Each test episode's support stems (``None`` for training episodes).
    """

    BENCHMARK = "folder"
    """Name of the dataset in manifests and result files."""

    PROTOCOL_NAMES: tuple[str, ...] = ()
    """The peers' protocols this dataset can reproduce (``protocol=``)."""

    LAYOUT: tuple[str, ...] = ()
    """The folders and files under ``root`` that the dataset reads (``layout_problems``)."""

    @classmethod
    def checked_root(cls, root: str | os.PathLike[str], parts: Sequence[str]) -> Path:
        """``root`` as a folder that holds every one of ``parts`` (paths relative to it).

        Raises:
            FileNotFoundError: naming ``root`` and what it lacks, and the module with the layout.
        """
        where = f"; see {cls.__module__} for the layout"
        folder = check_dir(root, f"{cls.BENCHMARK} root", where)
        lacking = [rel for rel in parts if not (folder / rel).exists()]
        if lacking:
            raise FileNotFoundError(
                f"{cls.BENCHMARK} root {str(folder)!r} lacks {', '.join(lacking)}{where}"
            )
        return folder

    def setup(
        self,
        root: Path,
        classes: Sequence[str],
        files: dict[int, dict[str, tuple[Path, Path]]],
        shots: int,
        transform: Callable[..., Any] | None,
        train: bool,
        n_episodes: int | None,
        seed: int,
        protocol: str | None = None,
        episodes: str | os.PathLike[str] | Sequence[dict[str, Any]] | None = None,
        order: Callable[[str], Any] | None = None,
    ) -> None:
        """Check the classes and draw (or replay) the episodes.

        Args:
            root: The dataset's folder.
            classes: Class names (``class_id = index + 1``).
            files: ``{class_id: {stem: (image, mask)}}``.
            shots: Supports per episode (``>= 1``).
            transform: Paired transform of query and supports.
            train: Training episodes (every image, supports drawn at each access).
            n_episodes: Test episodes of fewzero's draw (``None``: every image once).
            seed: Seed of the draw.
            protocol: One of ``PROTOCOL_NAMES`` for the peer's sequence, or ``None``.
            episodes: A manifest (path or records) to replay instead of any draw.
            order: Sort key of a class's stems (default: as strings).

        Raises:
            ValueError: for bad arguments, a class with fewer than 2 images, or a manifest
                episode naming an image or class that the root lacks.
        """
        check_episode_args(1, n_episodes, shots, transform=transform)
        if shots < 1:
            raise ValueError(f"shots must be >= 1 for {self.BENCHMARK} episodes, got {shots}")
        if protocol is not None and protocol not in self.PROTOCOL_NAMES:
            raise ValueError(
                f"protocol must be one of {list(self.PROTOCOL_NAMES)} or None for "
                f"{self.BENCHMARK}, got {protocol!r}"
            )
        if (protocol is not None or episodes is not None) and train:
            raise ValueError(
                f"protocol= and episodes= give test episodes; got train=True with "
                f"protocol={protocol!r}, episodes={episodes!r}"
            )
        self.root, self.classes, self.shots = root, list(classes), shots
        self.transform, self.train, self.seed, self.protocol = transform, train, seed, protocol
        self.replayed = episodes is not None
        self.files = {(c, s): p for c, stems in files.items() for s, p in stems.items()}
        self.images = {c: sorted(stems, key=order) for c, stems in files.items()}
        for cid, stems in self.images.items():
            if len(stems) < 2:
                raise ValueError(
                    f"class {self.classes[cid - 1]!r} needs at least 2 images with masks (a "
                    f"query and a support) under {str(root)!r}, got {len(stems)}"
                )
        pairs = [(s, c) for c, stems in self.images.items() for s in stems]
        self.supports: list[list[str]] | None = None
        if episodes is None and protocol is not None:
            episodes = self.peer_episodes(protocol, n_episodes, seed)
        if episodes is not None:
            self._replay(episodes)
            return
        if not train:
            rng = np.random.default_rng(seed)
            if n_episodes is not None:
                idx = rng.choice(len(pairs), size=n_episodes, replace=n_episodes > len(pairs))
                pairs = [pairs[int(i)] for i in idx]
            self.supports = [draw_supports(self.images[c], s, shots, rng) for s, c in pairs]
        self.pairs = pairs

    @property
    def classwise(self) -> list[list[str]]:
        """Each class's image stems in the dataset's order, class ``1`` first."""
        return [self.images[c] for c in range(1, len(self.classes) + 1)]

    def peer_episodes(
        self, protocol: str, n_episodes: int | None, seed: int
    ) -> list[dict[str, Any]]:
        """The peer's episode records for ``protocol`` (a subclass with ``PROTOCOL_NAMES``)."""
        raise ValueError(f"{self.BENCHMARK} has no peer protocol, got {protocol!r}")

    def _replay(self, episodes: str | os.PathLike[str] | Sequence[dict[str, Any]]) -> None:
        where, records = read_records(episodes)
        pairs, supports = [], []
        for i, ep in enumerate(records):
            name, c = str(ep["query"]), int(ep["class_id"])
            sets = ep.get("supports") or [[]]
            if not 1 <= c <= len(self.classes):
                raise ValueError(
                    f"{where} episode {i}: class_id {c} is not one of 1..{len(self.classes)} "
                    f"({self.BENCHMARK} classes {self.classes})"
                )
            if len(sets) != 1 or len(sets[0]) != self.shots:
                raise ValueError(
                    f"{where} episode {i}: expected one support set of shots={self.shots}, got "
                    f"{[len(s) for s in sets]}"
                )
            for n in [name, *map(str, sets[0])]:
                if (c, n) not in self.files:
                    raise FileNotFoundError(
                        f"{where} episode {i}: image {n!r} of class {self.classes[c - 1]!r} "
                        f"is not under {str(self.root)!r}"
                    )
            pairs.append((name, c))
            supports.append([str(s) for s in sets[0]])
        self.pairs, self.supports = pairs, supports

    def manifest_header(self) -> dict[str, Any]:
        """What the episodes depend on, for a manifest's header.

        Keys: ``dataset``, ``classes``, ``files_sha256`` (of the sorted relative paths of every
        image and mask), ``seed``, ``protocol``, ``shots``, ``ways``.
        """
        digest = hashlib.sha256()
        for key in sorted(self.files):
            for path in self.files[key]:
                digest.update((str(Path(path).relative_to(self.root)) + "\n").encode())
        return {
            "dataset": self.BENCHMARK,
            "classes": list(self.classes),
            "files_sha256": digest.hexdigest(),
            "seed": self.seed,
            "protocol": "manifest" if self.replayed else (self.protocol or "fewzero"),
            "shots": self.shots,
            "ways": 1,
        }

    def manifest(self) -> list[dict[str, Any]]:
        """The test episodes as manifest records (``query`` and ``supports`` are file stems).

        Raises:
            ValueError: for training episodes, whose supports are drawn at each access.
        """
        if self.supports is None:
            raise ValueError(
                "manifest() lists test episodes; training supports are drawn at each access"
            )
        return manifest_records(Drawn(self.pairs, supports=self.supports), ways=1)

    @classmethod
    def read_mask(cls, path: Path, class_id: int) -> np.ndarray:
        """The binary mask ``uint8 (H, W)`` in ``{0, 1, 255}`` of ``class_id`` in ``path``."""
        return read_binary_mask(path)

    def image_of(self, cid: int, stem: str) -> Image.Image:
        """The RGB image of ``stem`` in class ``cid``: its file (a part benchmark: a crop of it)."""
        return read_image(self.files[(cid, stem)][0])

    def mask_of(self, cid: int, stem: str) -> np.ndarray:
        """The mask of image ``stem`` in class ``cid``: its file read by ``read_mask``.

        A dataset whose masks are not one file an image overrides this (PerMIS: a frame of a
        video's mask array).
        """
        return self.read_mask(self.files[(cid, stem)][1], cid)

    def __len__(self) -> int:
        return len(self.pairs)

    def _load(self, cid: int, stem: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image_path, mask_path = self.files[(cid, stem)]
        image = self.image_of(cid, stem)
        mask = self.mask_of(cid, stem)
        if mask.shape != (image.height, image.width):
            raise ValueError(
                f"mask {str(mask_path)!r} has size {mask.shape[::-1]}, its image "
                f"{str(image_path)!r} has {(image.width, image.height)}"
            )
        target = torch.from_numpy(mask).long()
        return (*transform_pair(image, target, self.transform), target)

    def __getitem__(self, index: int) -> FewShotSample:
        stem, cid = self.pairs[index]
        image, mask, label = self._load(cid, stem)
        names = (
            self.supports[index]
            if self.supports is not None
            else draw_supports(self.images[cid], stem, self.shots, None)
        )
        loaded = [self._load(cid, n)[:2] for n in names]
        cls = self.classes[cid - 1]
        return FewShotSample(
            **EpisodeSample(
                image=image,
                mask=mask,
                label=label,
                class_id=cid,
                name=f"{cls}/{stem}",
                other=torch.zeros_like(label),  # one class per episode
            ),
            support_images=stack_if_same_size([im for im, _ in loaded]),  # type: ignore[typeddict-item]
            support_masks=stack_if_same_size([m for _, m in loaded]),  # type: ignore[typeddict-item]
            support_names=[f"{cls}/{n}" for n in names],
        )
