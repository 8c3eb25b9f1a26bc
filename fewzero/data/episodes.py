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
from typing import Any, TypedDict

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..checks import check_dir
from .classes import IGNORE_INDEX
from .io import read_image, read_list, read_mask
from .manifest import read_manifest
from .protocols import (
    PROTOCOLS,
    hsnet_coco_episodes,
    hsnet_episodes,
    pfenet_episodes,
    read_query_list,
)

__all__ = [
    "EpisodeSample",
    "EpisodeDataset",
    "FewShotSample",
    "NWaySample",
    "binary_target",
    "check_episode_args",
    "collate_episodes",
    "draw_supports",
    "stack_if_same_size",
    "transform_pair",
]


class EpisodeSample(TypedDict):
    """A dataset's item: one query with its target (zero-shot).

    Not to be confused with the encoded [Episode][fewzero.heads.Episode] a model runs on.

    Keys:
        image: Query image ``(3, H, W)`` float, normalised.
        mask: Target ``(H, W)`` int64 in {0, 1, 255}, aligned with ``image``.
        label: Target at the original image size ``(H0, W0)`` int64 in {0, 1, 255}.
        class_id: Target class id (1-based).
        name: Image id.
        other: ``(H0, W0)`` int64 in {0, 1, 255}: 1 where another class of the split lies.
    """

    image: torch.Tensor
    mask: torch.Tensor
    label: torch.Tensor
    class_id: int
    name: str
    other: torch.Tensor


class FewShotSample(EpisodeSample):
    """An episode with its K-shot support set (``shots=K``).

    Keys (besides [`EpisodeSample`][fewzero.data.EpisodeSample]'s):
        support_images: ``(K, 3, H, W)`` float, normalised, same transform as the query. Without
            a resizing transform the supports keep their own sizes: a list of K ``(3, H_k, W_k)``
            when those differ.
        support_masks: ``(K, H, W)`` int64 in {0, 1, 255}: 1 = the episode's class (a list of
            K ``(H_k, W_k)`` when the sizes differ).
        support_names: Image ids of the K supports.
    """

    support_images: torch.Tensor | list[torch.Tensor]
    support_masks: torch.Tensor | list[torch.Tensor]
    support_names: list[str]


class NWaySample(TypedDict):
    """An N-way K-shot episode (``ways=N``).

    Keys:
        image: Query image ``(3, H, W)``.
        mask: ``(H, W)`` int64: ``i`` where the i-th way's class lies (1-based), 0 background,
            255 ignore.
        label: The same at the original size ``(H0, W0)``.
        class_ids: ``(N,)`` int64 class ids of the ways; ``class_ids[0]`` is the episode's class.
        name: Image id.
        support_images: ``(N, K, 3, H, W)``.
        support_masks: ``(N, K, H, W)`` in {0, 1, 255}: 1 = the way's class.
        support_names: ``N`` lists of ``K`` image ids.
    """

    image: torch.Tensor
    mask: torch.Tensor
    label: torch.Tensor
    class_ids: torch.Tensor
    name: str
    support_images: torch.Tensor
    support_masks: torch.Tensor
    support_names: list[list[str]]


def check_episode_args(
    min_pixels: int,
    n_episodes: int | None,
    shots: int,
    ways: int = 1,
    transform: object = None,
) -> None:
    """Validate the episode arguments shared by every episode dataset.

    Raises:
        ValueError: ``min_pixels < 1`` (a class absent from the image would make a pair),
            ``n_episodes < 1`` or ``shots < 0``.
        TypeError: a ``transform`` that is not callable.
    """
    if transform is not None and not callable(transform):
        raise TypeError(
            "transform must be a callable (image, mask) -> (image, mask), such as "
            f"fewzero.data.eval_transform(size), or None; got {transform!r}"
        )
    if isinstance(min_pixels, bool) or not isinstance(min_pixels, int) or min_pixels < 1:
        raise ValueError(
            f"min_pixels must be an int >= 1 (a pair needs its class in the image), got {min_pixels!r}"
        )
    if n_episodes is not None and (not isinstance(n_episodes, int) or n_episodes < 1):
        raise ValueError(f"n_episodes must be an int >= 1 or None (every pair), got {n_episodes!r}")
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 0:
        raise ValueError(f"shots must be an int >= 0 (0: zero-shot episodes), got {shots!r}")
    if isinstance(ways, bool) or not isinstance(ways, int) or ways < 1:
        raise ValueError(f"ways must be an int >= 1, got {ways!r}")
    if ways > 1 and shots < 1:
        raise ValueError(f"ways={ways} needs support sets: shots must be >= 1, got {shots}")


def draw_supports(
    candidates: Sequence[str], query: str, shots: int, rng: np.random.Generator | None
) -> list[str]:
    """Draw ``shots`` support names among ``candidates`` other than ``query``.

    Without replacement when there are enough candidates, with replacement otherwise (a class
    with fewer than ``shots + 1`` images). ``rng=None`` draws from torch's global generator.

    Raises:
        ValueError: if no candidate other than the query exists.
    """
    others = [c for c in candidates if c != query]
    if not others:
        raise ValueError(
            f"no support image for query {query!r}: its class has no other image in the split"
        )
    replace = len(others) < shots
    if rng is not None:
        idx = rng.choice(len(others), size=shots, replace=replace)
    elif replace:
        idx = torch.randint(len(others), (shots,))
    else:
        idx = torch.randperm(len(others))[:shots]
    return [others[int(i)] for i in idx]


def transform_pair(
    image: Image.Image, target: torch.Tensor, transform: Callable[..., Any] | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply a paired transform to a PIL image and its ``(H, W)`` target.

    Returns the float image ``(3, H', W')`` and the int64 target ``(H', W')``; without a
    transform the image is only converted to float in ``[0, 1]``.
    """
    img = tv_tensors.Image(v2.functional.pil_to_tensor(image))
    msk = tv_tensors.Mask(target)
    if transform is not None:
        img, msk = transform(img, msk)
    else:
        img = v2.functional.to_dtype(img, torch.float32, scale=True)
    return img.as_subclass(torch.Tensor), msk.as_subclass(torch.Tensor).long()


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
    root = check_dir(root, f"{dataset} root", f"; build it with: {prepare_hint}")
    return root


def stack_if_same_size(items: Sequence[Any]) -> torch.Tensor | list[Any]:
    """``torch.stack(items)`` when every item is a tensor of one shape, else ``list(items)``.

    Episodes without a resizing transform keep every image at its own size; this is how they
    travel (see [`collate_episodes`][fewzero.data.collate_episodes]).
    """
    if all(isinstance(x, torch.Tensor) for x in items) and len({x.shape for x in items}) == 1:
        return torch.stack(list(items))
    return list(items)


def collate_episodes(batch: Sequence[EpisodeSample]) -> dict[str, Any]:
    """Stack images, masks, class ids (and supports); keep original-size labels and names as lists.

    Few-shot episodes add ``support_images (B, K, 3, H, W)``, ``support_masks (B, K, H, W)`` and
    ``support_names`` (a list of lists); N-way episodes stack to ``(B, N, K, ...)`` and give
    ``class_ids (B, N)`` instead of ``class_id`` and ``other``. Images of different sizes (a
    dataset without a resizing transform) stay lists, which the models refuse with the rule:
    resize them to one size first (``transform=eval_transform(size)``, or
    [`stack_supports`][fewzero.data.stack_supports]).
    """
    out: dict[str, Any] = {
        "image": stack_if_same_size([e["image"] for e in batch]),
        "mask": stack_if_same_size([e["mask"] for e in batch]),
        "label": [e["label"] for e in batch],
        "name": [e["name"] for e in batch],
    }
    if "class_ids" in batch[0]:  # N-way
        out["class_ids"] = torch.stack([e["class_ids"] for e in batch])  # type: ignore[typeddict-item]
    else:
        out["class_id"] = torch.tensor([e["class_id"] for e in batch], dtype=torch.int64)
        out["other"] = [e["other"] for e in batch]
    if "support_images" in batch[0]:
        out["support_images"] = stack_if_same_size([e["support_images"] for e in batch])  # type: ignore[typeddict-item]
        out["support_masks"] = stack_if_same_size([e["support_masks"] for e in batch])  # type: ignore[typeddict-item]
        out["support_names"] = [e["support_names"] for e in batch]  # type: ignore[typeddict-item]
    return out


class EpisodeDataset(Dataset):
    """Episodes over ``image_dir``, ``mask_dir`` and a list file.

    Args:
        image_dir: Folder of ``<name>.jpg`` images.
        mask_dir: Folder of ``<name>.png`` class-index masks.
        list_file: List file with class pixel counts (see ``fewzero.data.io``).
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
        n_episodes: Number of test episodes (``None``: every test pair once, in order;
            ``"protocol"``: the protocol's count, 1000 without one).
        seed: Seed of the test episode (and test support) draw (``None``: the protocol's,
            0 without one).
        shots: Support images per episode (``0``: zero-shot episodes without supports).
        support_transform: Paired transform of the supports (default: ``transform``). Training
            recipes pass a resize without random crop, so a support keeps its whole object.
        multi_class: Keep only queries that also show another class of the split (with at
            least ``min_pixels``): the support-swap protocol, where only the support tells
            which object is meant.
        ways: Classes per episode (N-way, needs ``shots >= 1``); the query's other classes of
            the split are the first extra ways, then classes drawn from the rest of the split.
        multi_class_weight: Training only: each pair whose image also shows another class of
            the split appears this many times (``1``: every pair once), so that more training
            queries can only be solved by reading the support.
        prepare_hint: Command to mention when files are missing.
        absent: Test only: *class-absent* episodes, each query an image that shows no pixel of
            the episode's class, with a support set of that class (its target all background;
            [AbsentMeter][fewzero.metrics.AbsentMeter] scores what a model marks there). Needs
            ``shots >= 1``, ``ways=1`` and ``multi_class=False``.
        absent_fraction: Few-shot training only: the share of pairs whose query is replaced by
            a random image of the split that does not show the class (target all background),
            so that the model learns to mark nothing where the support's class is absent.
        protocol: Test only: ``"hsnet"`` or ``"pfenet"``, the peer's own episode sequence
            ([`fewzero.data.protocols`][fewzero.data.protocols]); ``None`` (default): fewzero's
            sampler. Needs ``ways=1`` and ``multi_class=False``.
        query_list: With ``protocol="hsnet"``: a query list in HSNet's ``name__class`` format
            (its ``data/splits/pascal/val/fold{i}.txt``). Without one the list is every
            (image, test class) pair with ``min_pixels``, sorted by name then class, less the
            pairs whose class has no other image (HSNet's sampler would never end on them).
            HSNet's shipped lists were filtered by their authors; where an image's class
            area is near ``min_pixels`` the two lists can differ, and then so do the episodes.
        episodes: Test only: a manifest file (see [`fewzero.data.manifest`][fewzero.data.manifest])
            or its episode records, scored exactly instead of the seeded draw. Every query and
            support must be in ``list_file`` with its file present, every class in ``unseen``
            and every support set ``shots`` long (a zero-shot dataset ignores the supports).

    Examples:
        Your own data set: images, class-index masks and a list file.

        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from PIL import Image
        >>> from fewzero.data import EpisodeDataset, class_pixel_counts, write_list, write_mask
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
        >>> test = EpisodeDataset(root / "images", root / "masks", root / "val.txt", num_classes=3,
        ...                       seen=[1], unseen=[2, 3], train=False, shots=1, min_pixels=16,
        ...                       n_episodes=None)
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
        num_classes: int,
        seen: Sequence[int],
        unseen: Sequence[int],
        train: bool,
        transform: Callable[..., Any] | None = None,
        min_pixels: int = 2 * 32 * 32,
        exclude_unseen: bool = False,
        target: str = "class",
        n_episodes: int | None | str = "protocol",
        seed: int | None = None,
        shots: int = 0,
        support_transform: Callable[..., Any] | None = None,
        multi_class: bool = False,
        ways: int = 1,
        multi_class_weight: int = 1,
        prepare_hint: str = "",
        protocol: str | None = None,
        query_list: str | os.PathLike[str] | None = None,
        episodes: str | os.PathLike[str] | Sequence[dict[str, Any]] | None = None,
        absent: bool = False,
        absent_fraction: float = 0.0,
    ) -> None:
        if protocol is not None and protocol not in PROTOCOLS:
            raise ValueError(
                f"protocol must be one of {sorted(PROTOCOLS)} or None, got {protocol!r}"
            )
        spec = PROTOCOLS.get(protocol or "", {"n_episodes": 1000, "seed": 0})
        n_episodes = spec["n_episodes"] if n_episodes == "protocol" else n_episodes
        seed = spec["seed"] if seed is None else seed
        if absent and (train or not shots or ways > 1 or multi_class or protocol is not None):
            raise ValueError(
                f"absent=True draws 1-way few-shot test episodes whose query does not show the "
                f"class: it needs train=False, shots >= 1, ways=1, multi_class=False and no "
                f"protocol, got train={train}, shots={shots}, ways={ways}, "
                f"multi_class={multi_class}, protocol={protocol!r}"
            )
        if isinstance(absent_fraction, bool) or not 0.0 <= float(absent_fraction) < 1.0:
            raise ValueError(f"absent_fraction must be in [0, 1), got {absent_fraction!r}")
        if absent_fraction and not (train and shots):
            raise ValueError(
                f"absent_fraction applies to few-shot training pairs (train=True, shots >= 1), "
                f"got train={train}, shots={shots}; test class-absent episodes with absent=True"
            )
        if protocol is not None and (train or ways > 1 or multi_class or episodes is not None):
            raise ValueError(
                f"protocol={protocol!r} draws the peer's 1-way test episodes: it needs "
                f"train=False, ways=1, multi_class=False and no episodes=, got train={train}, "
                f"ways={ways}, multi_class={multi_class}, episodes={episodes!r}"
            )
        if query_list is not None and protocol != "hsnet":
            raise ValueError(
                f"query_list is HSNet's format and needs protocol='hsnet', got protocol={protocol!r}"
            )
        check_episode_args(min_pixels, n_episodes, shots, ways, transform)
        if (
            isinstance(multi_class_weight, bool)
            or not isinstance(multi_class_weight, int)
            or (multi_class_weight < 1)
        ):
            raise ValueError(f"multi_class_weight must be an int >= 1, got {multi_class_weight!r}")
        if multi_class_weight > 1 and not train:
            raise ValueError(
                f"multi_class_weight applies to training pairs only, got {multi_class_weight} for "
                "test episodes (use multi_class=True for the support-swap test)"
            )
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
        self.list_file = Path(list_file)
        self.min_pixels, self.seed, self.protocol = min_pixels, seed, protocol
        self.replayed = episodes is not None
        self.seen, self.unseen = list(seen), list(unseen)
        self.train = train
        self.target = target
        self.transform = transform
        entries = read_list(list_file)
        self.classes_of = {name: counts for name, counts in entries}
        wanted = self.seen if train else self.unseen
        if ways > len(wanted):
            raise ValueError(
                f"ways must be at most the {len(wanted)} classes of the split, got {ways}"
            )
        self.wanted, self.ways, self.multi_class = list(wanted), ways, bool(multi_class)
        self.absent, self.absent_fraction = bool(absent), float(absent_fraction)
        pairs: list[tuple[str, int]] = []
        kept: list[tuple[str, dict[int, int]]] = []
        for name, counts in entries:
            if train and exclude_unseen and any(c in counts for c in self.unseen):
                continue
            kept.append((name, counts))
            present = [c for c in wanted if counts.get(c, 0) >= min_pixels]
            if absent:  # the classes of the split the image does not show at all
                pairs += [(name, c) for c in wanted if counts.get(c, 0) == 0]
                continue
            if multi_class and len(present) < 2:
                continue
            repeat = multi_class_weight if len(present) >= 2 else 1
            pairs += [(name, c) for c in present for _ in range(repeat)]
        listed = list(pairs)
        self.shots = shots
        self.support_transform = support_transform
        self.candidates: dict[int, list[str]] = {}
        if shots:
            for name, counts in kept:
                for c, n in counts.items():
                    if n >= min_pixels:
                        self.candidates.setdefault(c, []).append(name)
            # a pair whose class has no other image cannot have a support set
            need = 1 if absent else 2  # an absent class's supports are all other images
            pairs = [(n, c) for n, c in pairs if len(self.candidates.get(c, [])) >= need]
            if ways > 1:
                usable = [c for c in wanted if len(self.candidates.get(c, [])) >= 1]
                if len(usable) < ways:
                    raise ValueError(
                        f"ways={ways} needs {ways} classes with a support image, got {usable}"
                    )
        # training: the images that do not show each class, queries of class-absent pairs
        self.absent_queries = (
            {c: [n for n, counts in kept if counts.get(c, 0) == 0] for c in wanted}
            if absent_fraction
            else {}
        )
        self.pairs = pairs
        self.way_classes: list[list[int]] | None = None
        self.supports: list[list[str]] | None = None  # the episode's class (way 1)
        self.way_supports: list[list[list[str]]] | None = None  # ways 2..N
        if protocol is not None:
            episodes = self._protocol_episodes(
                protocol, query_list, n_episodes, seed, min_pixels, listed, kept
            )
        if episodes is not None:
            self._replay(episodes)
            return
        if not pairs:
            raise ValueError(
                f"no (image, class) pair in {str(list_file)!r} for classes {wanted} with "
                f"min_pixels={min_pixels}"
                + (" and another image of the class" if shots else "")
                + (" in an image that shows another class of the split" if multi_class else "")
                + (" in an image that does not show it" if absent else "")
            )
        self._draw(None if train else n_episodes, seed, min_pixels)

    def _draw(self, n_episodes: int | None, seed: int, min_pixels: int) -> None:
        """The seeded fewzero draw: the test queries, then the ways (and the test supports)."""
        rng = np.random.default_rng(seed)
        pairs = self.pairs
        if n_episodes is not None:
            reps = -(-n_episodes // len(pairs))
            order = np.concatenate([rng.permutation(len(pairs)) for _ in range(reps)])[:n_episodes]
            pairs = [pairs[i] for i in order]
        self.pairs = pairs
        if self.ways > 1:
            self.way_classes = [self._draw_ways(name, c, min_pixels, rng) for name, c in pairs]
        if self.shots and not self.train:
            drawn = [
                [draw_supports(self.candidates[w], name, self.shots, rng) for w in self._ways(i)]
                for i, (name, _) in enumerate(pairs)
            ]
            self.supports = [d[0] for d in drawn]
            if self.ways > 1:
                self.way_supports = [d[1:] for d in drawn]

    def _protocol_episodes(
        self,
        protocol: str,
        query_list: str | os.PathLike[str] | None,
        n_episodes: int | None,
        seed: int,
        min_pixels: int,
        listed: list[tuple[str, int]],
        kept: list[tuple[str, dict[int, int]]],
    ) -> list[dict[str, Any]]:
        """The peer's episode records (checked and installed by ``_replay``)."""
        if protocol == "pfenet":
            data_list = [
                n for n, counts in kept if any(counts.get(c, 0) >= min_pixels for c in self.wanted)
            ]
            present = {
                n: sorted(c for c in self.wanted if counts.get(c, 0) > 0) for n, counts in kept
            }
            files = {
                c: [n for n in data_list if self.classes_of[n].get(c, 0) >= min_pixels]
                for c in self.wanted
            }
            n = len(data_list) if n_episodes is None else n_episodes
            return pfenet_episodes(data_list, present, files, self.shots, n, seed)
        if query_list is not None:
            queries = read_query_list(query_list)
        else:  # a class with one image has no support: HSNet's sampler would loop forever
            per_class: dict[int, int] = {}
            for _, c in set(listed):
                per_class[c] = per_class.get(c, 0) + 1
            queries = sorted(p for p in set(listed) if per_class[p[1]] >= 2 or not self.shots)
            if not queries:
                raise ValueError(
                    f"protocol='hsnet' found no (image, class) pair for classes {self.wanted} "
                    f"with min_pixels={min_pixels} whose class has another image"
                )
        n = len(queries) if n_episodes is None else n_episodes
        if self.HSNET_SAMPLING == "per_class":
            return hsnet_coco_episodes(queries, self.wanted, self.shots, n, seed)
        return hsnet_episodes(queries, self.shots, n, seed)

    def _replay(self, episodes: str | os.PathLike[str] | Sequence[dict[str, Any]]) -> None:
        """Replace the drawn test episodes by ``episodes`` after checking each one."""
        where = "episodes"
        if isinstance(episodes, (str, os.PathLike)):
            where = repr(str(episodes))
            episodes = read_manifest(episodes)[1]
        if self.train:
            raise ValueError(f"episodes= replays test episodes; got train=True with {where}")
        if not episodes:
            raise ValueError(f"{where} holds no episode")
        pairs, supports, ways_of = [], [], []
        found: set[str] = set()
        for i, ep in enumerate(episodes):
            name, c = str(ep["query"]), int(ep["class_id"])
            sets = [list(map(str, s)) for s in ep.get("supports") or [[]]]
            ways = [int(w) for w in ep.get("ways") or [c]]
            if ways[0] != c or len(ways) != self.ways:
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
            named = [(name, c)] + (
                [(x, w) for s, w in zip(sets, ways) for x in s] if self.shots else []
            )
            for j, (n, w) in enumerate(named):
                if n not in self.classes_of:
                    raise ValueError(f"{where} episode {i}: image {n!r} is not in the list file")
                if self.absent and j == 0 and self.classes_of[n].get(w, 0) > 0:
                    raise ValueError(
                        f"{where} episode {i}: query {n!r} shows class {w}, but the episodes "
                        "are class-absent ones (absent=True)"
                    )
                if not (self.absent and j == 0) and self.classes_of[n].get(w, 0) == 0:
                    raise ValueError(
                        f"{where} episode {i}: image {n!r} shows no pixel of class {w} "
                        f"(its classes: {sorted(self.classes_of[n])})"
                    )
                if n in found:
                    continue
                for path in (self.image_dir / f"{n}.jpg", self.mask_dir / f"{n}.png"):
                    if not path.is_file():
                        raise FileNotFoundError(f"{where} episode {i}: {str(path)!r} not found")
                found.add(n)
            pairs.append((name, c))
            supports.append(sets)
            ways_of.append(ways)
        self.pairs = pairs
        self.way_classes = ways_of if self.ways > 1 else None
        if self.shots:
            self.supports = [s[0] for s in supports]
            self.way_supports = [s[1:] for s in supports] if self.ways > 1 else None

    def manifest_header(self) -> dict[str, Any]:
        """What the episodes depend on, for a manifest's header (see [`write_manifest`][fewzero.data.write_manifest]).

        Keys: ``list_file`` (its name), ``list_sha256``, ``train``, ``classes`` (the split's),
        ``min_pixels``, ``seed``, ``protocol`` (``"manifest"`` when replayed from one), ``shots``,
        ``ways``, ``multi_class``, ``absent``.
        """
        return {
            "list_file": self.list_file.name,
            "list_sha256": hashlib.sha256(self.list_file.read_bytes()).hexdigest(),
            "train": self.train,
            "classes": list(self.wanted),
            "min_pixels": self.min_pixels,
            "seed": self.seed,
            "protocol": "manifest" if self.replayed else (self.protocol or "fewzero"),
            "shots": self.shots,
            "ways": self.ways,
            "multi_class": self.multi_class,
            "absent": self.absent,
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
        out = []
        for i, (name, c) in enumerate(self.pairs):
            sets: list[list[str]] = [[] for _ in self._ways(i)]
            if self.supports is not None:
                extra = self.way_supports[i] if self.way_supports is not None else []
                sets = [list(self.supports[i])] + [list(s) for s in extra]
            record: dict[str, Any] = {"index": i, "query": name, "class_id": c, "supports": sets}
            if self.ways > 1:
                record["ways"] = list(self._ways(i))
            out.append(record)
        return out

    def _draw_ways(
        self, name: str, class_id: int, min_pixels: int, rng: np.random.Generator
    ) -> list[int]:
        """The episode's class, then the query's other classes of the split, then drawn ones."""
        counts = self.classes_of[name]
        present = [c for c in self.wanted if c != class_id and counts.get(c, 0) >= min_pixels]
        present = [present[int(i)] for i in rng.permutation(len(present))]
        rest = [
            c for c in self.wanted if c != class_id and c not in present and self.candidates.get(c)
        ]
        rest = [rest[int(i)] for i in rng.permutation(len(rest))]
        return [class_id, *(present + rest)[: self.ways - 1]]

    def _ways(self, index: int) -> list[int]:
        return [self.pairs[index][1]] if self.way_classes is None else self.way_classes[index]

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
        if self.absent_fraction and np.random.random() < self.absent_fraction:
            others = self.absent_queries.get(class_id) or [name]  # a query without the class:
            name = others[np.random.randint(len(others))]  # its target is all background
        fg = self.seen if (self.train and self.target == "union") else [class_id]
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
                self.way_supports[index][w]
                if self.way_supports is not None
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
