"""Episode datasets over a prepared folder (images, class-index masks, list files).

An episode pairs a query image with one target class. Training pairs every image with each of
its *seen* classes that covers at least ``min_pixels`` pixels; pixels of other classes become
background and 255 stays "ignore". Test episodes are a fixed list of ``n_episodes`` (image,
unseen class) pairs drawn once with ``seed``: identical across runs, machines and ``num_workers``.

With ``shots=K`` every episode also carries a K-shot support set: K other images of the
episode's class from the same split, each holding at least ``min_pixels`` of it, with their
binary masks. Test supports are drawn once, after the queries, from the same seeded generator
(so the 1-shot and 5-shot tests share their queries); training supports are drawn at each access
from torch's global generator, which the trainer seeds per epoch. The protocols of the few-shot
literature are [`PROTOCOLS`][fewzero.data.PROTOCOLS]: ``protocol="hsnet"`` or ``"pfenet"`` gives
the peer's own episode sequence (HSNet's 1000 with seed 0, PFENet's 5000 with seed 321), drawn
by its published algorithm ([`fewzero.data.protocols`][fewzero.data.protocols]); without one,
fewzero's sampler draws 1000 episodes with seed 0.

Every episode also carries ``other``: the pixels of the *other* classes of the evaluated split
(seen ones in training, unseen ones in test) at the original size. A model that segments "any
object" instead of the episode's class predicts them as foreground; the share it does is the
*leak* that [`fewzero.engine.evaluate`][fewzero.engine.evaluate] reports. ``multi_class=True`` keeps only the queries
that show such another class (each (image, class) pair of a two-class image once per class: the
support-swap protocol), and ``ways=N`` makes N-way episodes (PANet's protocol): N support sets
of N classes, with the query's other classes of the split among them first.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..checks import check_dir
from .classes import IGNORE_INDEX
from .io import read_image, read_list, read_mask
from .plans import (
    Drawn,
    EpisodePlan,
    check_episode_args,
    draw_episodes,
    draw_supports,
    index_list,
    manifest_records,
    protocol_records,
    read_records,
)
from .samples import (
    EpisodeSample,
    FewShotSample,
    NWaySample,
    binary_target,
    stack_if_same_size,
    transform_pair,
)

__all__ = ["ClassSplit", "EpisodeDataset", "check_prepared_root", "dataset_options"]


class ClassSplit(NamedTuple):
    """A data set's classes: how many, and which are seen in training and unseen in test."""

    num_classes: int
    seen: Sequence[int]
    unseen: Sequence[int]


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
    root = check_dir(root, f"{dataset} root", f"; build it with: {prepare_hint}")
    return root


def dataset_options(train: bool, options: dict[str, Any]) -> tuple[EpisodePlan, dict[str, Any]]:
    """A data set's keyword options split into its plan and its reading options.

    ``transform`` and ``support_transform`` are how samples are read; every other option is
    the [EpisodePlan][fewzero.data.plans.EpisodePlan]'s (``train`` follows the split), or
    ``plan=`` gives the whole plan.

    Raises:
        TypeError: for an option that is neither (naming it).
    """
    reading = {k: options.pop(k) for k in ("transform", "support_transform") if k in options}
    plan = options.pop("plan", None)
    if plan is not None:
        if options:
            raise TypeError(f"plan= is given: {sorted(options)} must be set in it, not beside it")
        return plan, reading
    try:
        return EpisodePlan(train=train, **options), reading
    except TypeError as err:
        known = ["plan", "transform", "support_transform", *EpisodePlan.__dataclass_fields__]
        raise TypeError(f"{err}; the options are {known}") from err


class EpisodeDataset(Dataset):
    """Episodes over ``image_dir``, ``mask_dir`` and a list file.

    Args:
        image_dir: Folder of ``<name>.jpg`` images.
        mask_dir: Folder of ``<name>.png`` class-index masks.
        list_file: List file with class pixel counts (see ``fewzero.data.io``).
        split: The classes: how many (mask values ``0..num_classes`` and 255), which are seen
            (training) and which unseen (test).
        plan: What is drawn: training pairs or test episodes, shots, ways, the peers'
            protocols, a manifest's episodes ([EpisodePlan][fewzero.data.plans.EpisodePlan];
            default: fewzero's 1000 zero-shot test episodes with seed 0).
        transform: Paired transform ``(tv_tensors.Image, tv_tensors.Mask) -> (image, mask)``;
            defaults to converting to float in [0, 1] without resizing.
        support_transform: Paired transform of the supports (default: ``transform``). Training
            recipes pass a resize without random crop, so a support keeps its whole object.
        prepare_hint: Command to mention when files are missing.

    Examples:
        Your own data set: images, class-index masks and a list file.

        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from PIL import Image
        >>> from fewzero.data import ClassSplit, EpisodeDataset, EpisodePlan
        >>> from fewzero.data import class_pixel_counts, write_list, write_mask
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "images").mkdir()
        >>> entries = []
        >>> for i in range(6):  # classes 1, 2, 3 on two images each
        ...     mask = np.zeros((32, 32), np.uint8)
        ...     mask[8:24, 8:24] = 1 + i % 3
        ...     image = np.full((32, 32, 3), 40 * i, np.uint8)
        ...     Image.fromarray(image).save(root / "images" / f"im{i}.jpg")
        ...     write_mask(root / "masks" / f"im{i}.png", mask)
        ...     entries.append((f"im{i}", class_pixel_counts(mask)))
        >>> write_list(root / "val.txt", entries)  # one line an image: name and class pixel counts
        >>> split = ClassSplit(num_classes=3, seen=[1], unseen=[2, 3])
        >>> plan = EpisodePlan(shots=1, min_pixels=16, n_episodes=None)
        >>> test = EpisodeDataset(root / "images", root / "masks", root / "val.txt", split, plan)
        >>> len(test), sorted({episode["class_id"] for episode in test})  # every test pair once
        (4, [2, 3])
    """

    HSNET_SAMPLING: str = "query_list"
    """HSNet's sampler for this dataset: ``"query_list"`` (PASCAL-5i: episode ``i`` is the list's
    entry ``i % len``) or ``"per_class"`` (COCO-20i: class, then query, drawn per episode)."""

    def __init__(
        self,
        image_dir: str | os.PathLike[str],
        mask_dir: str | os.PathLike[str],
        list_file: str | os.PathLike[str],
        split: ClassSplit,
        plan: EpisodePlan | None = None,
        transform: Callable[..., Any] | None = None,
        support_transform: Callable[..., Any] | None = None,
        prepare_hint: str = "",
    ) -> None:
        plan = EpisodePlan() if plan is None else plan
        if not isinstance(plan, EpisodePlan):
            raise TypeError(
                f"plan must be a fewzero.data.EpisodePlan, got {type(plan).__name__}: build "
                "one with EpisodePlan(shots=..., n_episodes=...)"
            )
        check_episode_args(1, None, 0, transform=transform)
        if not isinstance(split, ClassSplit):
            raise TypeError(
                f"split must be a fewzero.data.ClassSplit (num_classes, seen, unseen), got "
                f"{type(split).__name__}: build it with fold_split(fold) or coco_split(fold)"
            )
        self.image_dir, self.mask_dir, self.list_file = Path(image_dir), Path(mask_dir), Path(list_file)
        for path, what in [
            (self.image_dir, "image folder"),
            (self.mask_dir, "mask folder"),
            (self.list_file, "list file"),
        ]:
            if path.exists() and path.is_dir() != (what != "list file"):
                raise FileNotFoundError(
                    f"{what} {str(path)!r} is a {'folder' if path.is_dir() else 'file'}: give "
                    f"the {what} of the prepared layout"
                )
            if not path.exists():
                raise FileNotFoundError(
                    f"{what} not found: {str(path)!r}. Expected the prepared layout "
                    f"(images, masks, lists/<split>.txt){'; build it with: ' + prepare_hint if prepare_hint else ''}"
                )
        self.plan, self.num_classes = plan, split.num_classes
        self.seen, self.unseen = list(split.seen), list(split.unseen)
        self.transform = transform
        self.support_transform = support_transform
        self.wanted = self.seen if plan.train else self.unseen
        self.index = index_list(plan, read_list(self.list_file), self.wanted, self.unseen)
        self.drawn = self._episodes()

    def _episodes(self) -> Drawn:
        """The plan's episodes: a manifest's or the peer's, replayed, else fewzero's draw."""
        plan = self.plan
        episodes = plan.episodes
        if plan.protocol is not None:
            per_class = self.HSNET_SAMPLING == "per_class"
            episodes = protocol_records(plan, self.index, self.wanted, per_class)
        if episodes is not None:
            return self._replay(episodes)
        if not self.index.pairs:
            raise ValueError(
                f"no (image, class) pair in {str(self.list_file)!r} for classes {self.wanted} "
                f"with min_pixels={plan.min_pixels}"
                + (" and another image of the class" if plan.shots else "")
                + (" in an image that shows another class of the split" if plan.multi_class else "")
                + (" in an image that does not show it" if plan.absent else "")
            )
        return draw_episodes(plan, self.index, self.wanted)

    # what the plan and its draw decided, under the names every caller reads
    train = property(lambda self: self.plan.train, doc="Training pairs (else test episodes).")
    shots = property(lambda self: self.plan.shots, doc="Supports per episode.")
    ways = property(lambda self: self.plan.ways, doc="Classes per episode.")
    seed = property(lambda self: self.plan.seed, doc="Seed of the test draw.")
    min_pixels = property(lambda self: self.plan.min_pixels, doc="Pixels a pair's class covers.")
    protocol = property(lambda self: self.plan.protocol, doc="The peer's sampler, or None.")
    absent = property(lambda self: self.plan.absent, doc="Class-absent test episodes.")
    pairs = property(lambda self: self.drawn.pairs, doc="Each episode's (image, class id).")
    supports = property(lambda self: self.drawn.supports, doc="Test supports of each episode.")
    classes_of = property(lambda self: self.index.classes_of, doc="Image -> class pixels.")
    candidates = property(lambda self: self.index.candidates, doc="Class -> support images.")
    multi_class = property(lambda self: self.plan.multi_class, doc="Two-class queries only.")
    way_classes = property(lambda self: self.drawn.way_classes, doc="N-way: each one's classes.")
    way_supports = property(lambda self: self.drawn.way_supports, doc="N-way: ways 2..N's supports.")

    def _replay(self, episodes: str | os.PathLike[str] | Sequence[dict[str, Any]]) -> Drawn:
        """The episodes of a manifest (or the peer's), each checked against the list and files."""
        where, records = read_records(episodes)
        if self.train:
            raise ValueError(f"episodes= replays test episodes; got train=True with {where}")
        pairs, supports, ways_of = [], [], []
        found: set[str] = set()
        for i, ep in enumerate(records):
            name, c = str(ep["query"]), int(ep["class_id"])
            sets = [list(map(str, s)) for s in ep.get("supports") or [[]]]
            ways = [int(w) for w in ep.get("ways") or [c]]
            self._check_record(where, i, ways, sets)
            named = [(name, c)] + ([(x, w) for s, w in zip(sets, ways) for x in s] if self.shots else [])
            for j, (n, w) in enumerate(named):
                self._check_image(where, i, n, w, query=j == 0)
                if n not in found:
                    for path in (self.image_dir / f"{n}.jpg", self.mask_dir / f"{n}.png"):
                        if not path.is_file():
                            raise FileNotFoundError(f"{where} episode {i}: {str(path)!r} not found")
                    found.add(n)
            pairs.append((name, c))
            supports.append(sets)
            ways_of.append(ways)
        drawn = Drawn(pairs, ways_of if self.ways > 1 else None)
        if self.shots:
            drawn.supports = [s[0] for s in supports]
            drawn.way_supports = [s[1:] for s in supports] if self.ways > 1 else None
        return drawn

    def _check_record(self, where: str, i: int, ways: list[int], sets: list[list[str]]) -> None:
        c = ways[0]
        if len(ways) != self.ways:
            raise ValueError(
                f"{where} episode {i}: ways {ways} do not fit class_id {c} and ways={self.ways}"
            )
        for w in ways:
            if w not in self.wanted:
                raise ValueError(
                    f"{where} episode {i}: class {w} is not one of the split's {self.wanted}"
                )
        if self.shots and (len(sets) != len(ways) or any(len(s) != self.shots for s in sets)):
            raise ValueError(
                f"{where} episode {i}: expected {len(ways)} support set(s) of "
                f"shots={self.shots}, got {[len(s) for s in sets]}"
            )

    def _check_image(self, where: str, i: int, name: str, class_id: int, query: bool) -> None:
        if name not in self.classes_of:
            raise ValueError(f"{where} episode {i}: image {name!r} is not in the list file")
        shown = self.classes_of[name].get(class_id, 0)
        if self.absent and query and shown > 0:
            raise ValueError(
                f"{where} episode {i}: query {name!r} shows class {class_id}, but the episodes "
                "are class-absent ones (absent=True)"
            )
        if not (self.absent and query) and shown == 0:
            raise ValueError(
                f"{where} episode {i}: image {name!r} shows no pixel of class {class_id} "
                f"(its classes: {sorted(self.classes_of[name])})"
            )

    def manifest_header(self) -> dict[str, Any]:
        """What the episodes depend on, for a manifest's header (see [`write_manifest`][fewzero.data.write_manifest]).

        Keys: ``list_file`` (its name), ``list_sha256``, ``train``, ``classes`` (the split's),
        ``min_pixels``, ``seed``, ``protocol`` (``"manifest"`` when replayed from one), ``shots``,
        ``ways``, ``multi_class``, ``absent``.
        """
        plan = self.plan
        return {
            "list_file": self.list_file.name,
            "list_sha256": hashlib.sha256(self.list_file.read_bytes()).hexdigest(),
            "train": plan.train,
            "classes": list(self.wanted),
            "min_pixels": plan.min_pixels,
            "seed": plan.seed,
            "protocol": "manifest" if plan.episodes is not None else (plan.protocol or "fewzero"),
            "shots": plan.shots,
            "ways": plan.ways,
            "multi_class": plan.multi_class,
            "absent": plan.absent,
        }

    def manifest(self) -> list[dict[str, Any]]:
        """The test episodes as manifest records (see [`fewzero.data.manifest`][fewzero.data.manifest]).

        ``write_manifest(path, dataset.manifest())`` saves them; ``episodes=path`` replays them.

        Raises:
            ValueError: for training pairs, whose supports are drawn anew at every access.
        """
        if self.train:
            raise ValueError(
                "manifest() lists test episodes; training supports are drawn at each access"
            )
        return manifest_records(self.drawn, self.ways)

    def _ways(self, index: int) -> list[int]:
        return self.drawn.ways(index)

    def __len__(self) -> int:
        return len(self.pairs)

    def _read(self, name: str) -> tuple[Image.Image, np.ndarray]:
        image = read_image(self.image_dir / f"{name}.jpg")
        mask = read_mask(self.mask_dir / f"{name}.png", self.num_classes)
        if mask.shape != (image.height, image.width):
            raise ValueError(
                f"mask {name}.png has size {mask.shape[::-1]}, image {name}.jpg has "
                f"{(image.width, image.height)}"
            )
        return image, mask

    def _load(
        self,
        name: str,
        class_id: int,
        foreground: Sequence[int] | None = None,
        transform: Callable[..., Any] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return the transformed image, transformed target and original-size target."""
        image, mask = self._read(name)
        target = torch.from_numpy(binary_target(mask, foreground or [class_id])).long()
        return (*transform_pair(image, target, transform or self.transform), target)

    def load_target(self, name: str, class_id: int) -> torch.Tensor:
        """Binary target ``(H0, W0)`` int64 of ``class_id`` in image ``name`` (original size)."""
        return self._load(name, class_id)[2]

    def _support_set(self, index: int, name: str, class_id: int) -> tuple[torch.Tensor, ...]:
        names = (
            self.supports[index]
            if self.supports is not None
            else draw_supports(self.candidates[class_id], name, self.shots, None)
        )
        loaded = [self._load(n, class_id, transform=self.support_transform)[:2] for n in names]
        images = stack_if_same_size([im for im, _ in loaded])
        return images, stack_if_same_size([m for _, m in loaded]), names

    def __getitem__(self, index: int) -> EpisodeSample | NWaySample:
        name, class_id = self.pairs[index]
        if self.ways > 1:
            return self._nway(index)
        fraction = self.plan.absent_fraction
        if fraction and np.random.random() < fraction:
            others = self.index.absent_queries.get(class_id) or [name]  # a query without it:
            name = others[np.random.randint(len(others))]  # its target is all background
        fg = self.seen if (self.train and self.plan.target == "union") else [class_id]
        image, mask = self._read(name)
        label = torch.from_numpy(binary_target(mask, fg)).long()
        others = [c for c in self.wanted if c not in fg]
        other = torch.from_numpy(binary_target(mask, others)).long()
        image, target = transform_pair(image, label, self.transform)
        episode = EpisodeSample(
            image=image, mask=target, label=label, class_id=class_id, name=name, other=other
        )
        if not self.shots:
            return episode
        s_images, s_masks, names = self._support_set(index, name, class_id)
        return FewShotSample(
            **episode, support_images=s_images, support_masks=s_masks, support_names=names
        )

    def _nway(self, index: int) -> NWaySample:
        name, _ = self.pairs[index]
        ways = self._ways(index)
        image, mask = self._read(name)
        label = np.zeros(mask.shape, dtype=np.int64)
        for i, c in enumerate(ways):
            label[mask == c] = i + 1
        label[mask == IGNORE_INDEX] = IGNORE_INDEX
        label_t = torch.from_numpy(label)
        image_t, target = transform_pair(image, label_t, self.transform)
        sets = [self._support_set(index, name, ways[0])]
        for w, c in enumerate(ways[1:]):
            names = (
                self.drawn.way_supports[index][w]
                if self.drawn.way_supports is not None
                else draw_supports(self.candidates[c], name, self.shots, None)
            )
            loaded = [self._load(n, c, transform=self.support_transform)[:2] for n in names]
            images = stack_if_same_size([im for im, _ in loaded])
            sets.append((images, stack_if_same_size([m for _, m in loaded]), names))
        return NWaySample(
            image=image_t,
            mask=target,
            label=label_t,
            class_ids=torch.tensor(ways, dtype=torch.int64),
            name=name,
            support_images=stack_if_same_size([s[0] for s in sets]),
            support_masks=stack_if_same_size([s[1] for s in sets]),
            support_names=[s[2] for s in sets],
        )
