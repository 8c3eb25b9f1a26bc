"""Episode plans: what a run draws from a dataset, apart from how the dataset lays out its files.

An [EpisodePlan][fewzero.data.plans.EpisodePlan] says what a training or evaluation run draws:
training pairs or test episodes, K shots, N ways, queries that show two classes
(``multi_class``), class-absent episodes, the peers' protocols (``protocol="hsnet"`` or
``"pfenet"``), or the exact episodes of a manifest (``episodes=``). It checks its own options
when it is made, and the functions here draw, replay and list the episodes for every dataset:
a dataset only lists its files and reads one sample.

Examples:
    >>> plan = EpisodePlan(shots=1, n_episodes=4)
    >>> plan.n_episodes, plan.seed, plan.train
    (4, 0, False)
    >>> EpisodePlan(protocol="pfenet").n_episodes  # the peer's count and seed unless given
    5000
    >>> EpisodePlan(absent=True)
    Traceback (most recent call last):
    ...
    ValueError: absent=True draws 1-way few-shot test episodes whose query does not show the class: it needs train=False, shots >= 1, ways=1, multi_class=False and no protocol, got train=False, shots=0, ways=1, multi_class=False, protocol=None
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .manifest import read_manifest
from .protocols import (
    PROTOCOLS,
    hsnet_coco_episodes,
    hsnet_episodes,
    pfenet_episodes,
    read_query_list,
)

__all__ = [
    "Drawn",
    "EpisodePlan",
    "ListIndex",
    "check_episode_args",
    "draw_episodes",
    "draw_supports",
    "index_list",
    "manifest_records",
    "protocol_records",
    "read_records",
]

Records = Sequence[dict[str, Any]]


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


@dataclass(frozen=True)
class EpisodePlan:
    """What a run draws from a dataset: its pairs or episodes, checked when the plan is made.

    Args:
        train: Training pairs over the seen classes (``True``) or fixed test episodes over the
            unseen ones.
        shots: Support images per episode (``0``: zero-shot episodes without supports).
        ways: Classes per episode (N-way, needs ``shots >= 1``); the query's other classes of
            the split are the first extra ways, then classes drawn from the rest of the split.
        n_episodes: Number of test episodes (``None``: every test pair once, in order;
            ``"protocol"``: the protocol's count, 1000 without one).
        seed: Seed of the test episode (and test support) draw (``None``: the protocol's, 0
            without one).
        min_pixels: Minimum class pixels for a pair (training and test).
        multi_class: Keep only queries that also show another class of the split (with at
            least ``min_pixels``): the support-swap protocol.
        multi_class_weight: Training only: each pair whose image also shows another class of
            the split appears this many times.
        absent: Test only: *class-absent* episodes, each query an image that shows no pixel of
            the episode's class, with a support set of that class.
        absent_fraction: Few-shot training only: the share of pairs whose query is replaced by
            a random image of the split that does not show the class.
        protocol: Test only: ``"hsnet"`` or ``"pfenet"``, the peer's own episode sequence
            ([`fewzero.data.protocols`][fewzero.data.protocols]); ``None``: fewzero's sampler.
        query_list: With ``protocol="hsnet"``: a query list in HSNet's ``name__class`` format.
        episodes: Test only: a manifest file or its episode records, scored exactly.
        exclude_unseen: Training only: drop images that contain any unseen class.
        target: ``"class"`` (the episode's class is foreground) or ``"union"`` (training only:
            every seen class in the image is foreground).

    Raises:
        ValueError: naming the option and the combination it needs.
    """

    train: bool = False
    shots: int = 0
    ways: int = 1
    n_episodes: int | None | str = "protocol"
    seed: int | None = None
    min_pixels: int = 2 * 32 * 32
    multi_class: bool = False
    multi_class_weight: int = 1
    absent: bool = False
    absent_fraction: float = 0.0
    protocol: str | None = None
    query_list: str | os.PathLike[str] | None = None
    episodes: str | os.PathLike[str] | Records | None = field(default=None, repr=False)
    exclude_unseen: bool = False
    target: str = "class"

    def __post_init__(self) -> None:
        if self.protocol is not None and self.protocol not in PROTOCOLS:
            raise ValueError(
                f"protocol must be one of {sorted(PROTOCOLS)} or None, got {self.protocol!r}"
            )
        spec = PROTOCOLS.get(self.protocol or "", {"n_episodes": 1000, "seed": 0})
        if self.n_episodes == "protocol":
            object.__setattr__(self, "n_episodes", spec["n_episodes"])
        if self.seed is None:
            object.__setattr__(self, "seed", spec["seed"])
        self._check_combinations()
        check_episode_args(self.min_pixels, self.n_episodes, self.shots, self.ways)  # type: ignore[arg-type]
        weight = self.multi_class_weight
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
            raise ValueError(f"multi_class_weight must be an int >= 1, got {weight!r}")
        if weight > 1 and not self.train:
            raise ValueError(
                f"multi_class_weight applies to training pairs only, got {weight} for "
                "test episodes (use multi_class=True for the support-swap test)"
            )
        if self.target not in ("class", "union"):
            raise ValueError(f"target must be one of ('class', 'union'), got {self.target!r}")

    def _check_combinations(self) -> None:
        train, shots, ways, multi, protocol = (
            self.train,
            self.shots,
            self.ways,
            self.multi_class,
            self.protocol,
        )
        if self.absent and (train or not shots or ways > 1 or multi or protocol is not None):
            raise ValueError(
                f"absent=True draws 1-way few-shot test episodes whose query does not show the "
                f"class: it needs train=False, shots >= 1, ways=1, multi_class=False and no "
                f"protocol, got train={train}, shots={shots}, ways={ways}, "
                f"multi_class={multi}, protocol={protocol!r}"
            )
        fraction = self.absent_fraction
        if isinstance(fraction, bool) or not 0.0 <= float(fraction) < 1.0:
            raise ValueError(f"absent_fraction must be in [0, 1), got {fraction!r}")
        if fraction and not (train and shots):
            raise ValueError(
                f"absent_fraction applies to few-shot training pairs (train=True, shots >= 1), "
                f"got train={train}, shots={shots}; test class-absent episodes with absent=True"
            )
        if protocol is not None and (train or ways > 1 or multi or self.episodes is not None):
            raise ValueError(
                f"protocol={protocol!r} draws the peer's 1-way test episodes: it needs "
                f"train=False, ways=1, multi_class=False and no episodes=, got train={train}, "
                f"ways={ways}, multi_class={multi}, episodes={self.episodes!r}"
            )
        if self.query_list is not None and protocol != "hsnet":
            raise ValueError(
                f"query_list is HSNet's format and needs protocol='hsnet', got protocol={protocol!r}"
            )


@dataclass
class ListIndex:
    """What a list file gives a plan: each image's classes, and the pairs the plan can draw.

    Attributes:
        classes_of: Image -> ``{class id: pixels}``.
        kept: The images the plan keeps, with their counts (training drops unseen-class images
            with ``exclude_unseen``).
        listed: Every (image, class) pair of the split with ``min_pixels`` (before the
            support and multi-class filters; HSNet's own list is built from it).
        pairs: The (image, class) pairs the plan draws from.
        candidates: Class -> the images that can be its supports.
        absent_queries: Training with ``absent_fraction``: class -> the images without it.
    """

    classes_of: dict[str, dict[int, int]]
    kept: list[tuple[str, dict[int, int]]]
    listed: list[tuple[str, int]]
    pairs: list[tuple[str, int]]
    candidates: dict[int, list[str]] = field(default_factory=dict)
    absent_queries: dict[int, list[str]] = field(default_factory=dict)


def _pairs_of(plan: EpisodePlan, counts: dict[int, int], name: str, wanted: Sequence[int]) -> list:
    if plan.absent:  # the classes of the split the image does not show at all
        return [(name, c) for c in wanted if counts.get(c, 0) == 0]
    present = [c for c in wanted if counts.get(c, 0) >= plan.min_pixels]
    if plan.multi_class and len(present) < 2:
        return []
    repeat = plan.multi_class_weight if len(present) >= 2 else 1
    return [(name, c) for c in present for _ in range(repeat)]


def index_list(
    plan: EpisodePlan,
    entries: Sequence[tuple[str, dict[int, int]]],
    wanted: Sequence[int],
    unseen: Sequence[int],
) -> ListIndex:
    """The pairs ``plan`` draws from a list file's ``entries`` over the ``wanted`` classes.

    Raises:
        ValueError: for more ways than classes with a support image.
    """
    if plan.ways > len(wanted):
        raise ValueError(
            f"ways must be at most the {len(wanted)} classes of the split, got {plan.ways}"
        )
    pairs: list[tuple[str, int]] = []
    kept: list[tuple[str, dict[int, int]]] = []
    for name, counts in entries:
        if plan.train and plan.exclude_unseen and any(c in counts for c in unseen):
            continue
        kept.append((name, counts))
        pairs += _pairs_of(plan, counts, name, wanted)
    index = ListIndex({n: c for n, c in entries}, kept, list(pairs), pairs)
    if plan.shots:
        for name, counts in kept:
            for c, n in counts.items():
                if n >= plan.min_pixels:
                    index.candidates.setdefault(c, []).append(name)
        # a pair whose class has no other image cannot have a support set
        need = 1 if plan.absent else 2  # an absent class's supports are all other images
        index.pairs = [(n, c) for n, c in pairs if len(index.candidates.get(c, [])) >= need]
        if plan.ways > 1:
            usable = [c for c in wanted if len(index.candidates.get(c, [])) >= 1]
            if len(usable) < plan.ways:
                raise ValueError(
                    f"ways={plan.ways} needs {plan.ways} classes with a support image, got {usable}"
                )
    if plan.absent_fraction:  # training: the images that do not show each class
        index.absent_queries = {
            c: [n for n, counts in kept if counts.get(c, 0) == 0] for c in wanted
        }
    return index


@dataclass
class Drawn:
    """The episodes a plan drew (or replayed).

    Attributes:
        pairs: Each episode's (query, class id).
        way_classes: N-way: each episode's classes, its own first (``None``: 1-way).
        supports: Test episodes: each one's support names of its class (``None``: training
            pairs, whose supports are drawn at each access).
        way_supports: N-way test episodes: the support names of ways 2..N.
    """

    pairs: list[tuple[str, int]]
    way_classes: list[list[int]] | None = None
    supports: list[list[str]] | None = None
    way_supports: list[list[list[str]]] | None = None

    def ways(self, index: int) -> list[int]:
        """The classes of episode ``index`` (its own first)."""
        return [self.pairs[index][1]] if self.way_classes is None else self.way_classes[index]


def _draw_ways(
    plan: EpisodePlan,
    index: ListIndex,
    wanted: Sequence[int],
    name: str,
    class_id: int,
    rng: np.random.Generator,
) -> list[int]:
    """The episode's class, then the query's other classes of the split, then drawn ones."""
    counts = index.classes_of[name]
    present = [c for c in wanted if c != class_id and counts.get(c, 0) >= plan.min_pixels]
    present = [present[int(i)] for i in rng.permutation(len(present))]
    rest = [c for c in wanted if c != class_id and c not in present and index.candidates.get(c)]
    rest = [rest[int(i)] for i in rng.permutation(len(rest))]
    return [class_id, *(present + rest)[: plan.ways - 1]]


def draw_episodes(plan: EpisodePlan, index: ListIndex, wanted: Sequence[int]) -> Drawn:
    """The seeded draw of fewzero: the test queries, then the ways (and the test supports).

    Training keeps every pair in order (the loader shuffles) and draws no support here.
    """
    rng = np.random.default_rng(plan.seed)
    pairs = index.pairs
    n_episodes = None if plan.train else plan.n_episodes
    if n_episodes is not None:
        reps = -(-int(n_episodes) // len(pairs))
        order = np.concatenate([rng.permutation(len(pairs)) for _ in range(reps)])[: int(n_episodes)]
        pairs = [pairs[i] for i in order]
    drawn = Drawn(pairs)
    if plan.ways > 1:
        drawn.way_classes = [_draw_ways(plan, index, wanted, n, c, rng) for n, c in pairs]
    if plan.shots and not plan.train:
        sets = [
            [draw_supports(index.candidates[w], name, plan.shots, rng) for w in drawn.ways(i)]
            for i, (name, _) in enumerate(pairs)
        ]
        drawn.supports = [s[0] for s in sets]
        if plan.ways > 1:
            drawn.way_supports = [s[1:] for s in sets]
    return drawn


def read_records(episodes: str | os.PathLike[str] | Records) -> tuple[str, Records]:
    """A manifest's records (or the records given) and how errors name them.

    Raises:
        ValueError: for a manifest without episodes.
    """
    where = "episodes"
    if isinstance(episodes, (str, os.PathLike)):
        where = repr(str(episodes))
        episodes = read_manifest(episodes)[1]
    if not episodes:
        raise ValueError(f"{where} holds no episode")
    return where, episodes


def manifest_records(drawn: Drawn, ways: int) -> list[dict[str, Any]]:
    """The test episodes as manifest records (see [`fewzero.data.manifest`][fewzero.data.manifest])."""
    out = []
    for i, (name, c) in enumerate(drawn.pairs):
        sets: list[list[str]] = [[] for _ in drawn.ways(i)]
        if drawn.supports is not None:
            extra = drawn.way_supports[i] if drawn.way_supports is not None else []
            sets = [list(drawn.supports[i])] + [list(s) for s in extra]
        record: dict[str, Any] = {"index": i, "query": name, "class_id": c, "supports": sets}
        if ways > 1:
            record["ways"] = list(drawn.ways(i))
        out.append(record)
    return out


def protocol_records(
    plan: EpisodePlan, index: ListIndex, wanted: Sequence[int], per_class: bool
) -> list[dict[str, Any]]:
    """The peer's episode records for ``plan.protocol`` (replayed like a manifest's).

    ``per_class``: HSNet's COCO-20i sampler (class, then query, drawn per episode) instead of
    its PASCAL-5i one (episode ``i`` is the query list's entry ``i % len``).

    Raises:
        ValueError: for ``protocol="hsnet"`` without a pair whose class has another image.
    """
    n_episodes = plan.n_episodes if isinstance(plan.n_episodes, int) else None
    if plan.protocol == "pfenet":
        data_list = [
            n for n, counts in index.kept if any(counts.get(c, 0) >= plan.min_pixels for c in wanted)
        ]
        present = {n: sorted(c for c in wanted if counts.get(c, 0) > 0) for n, counts in index.kept}
        files = {
            c: [n for n in data_list if index.classes_of[n].get(c, 0) >= plan.min_pixels]
            for c in wanted
        }
        n = len(data_list) if n_episodes is None else n_episodes
        return pfenet_episodes(data_list, present, files, plan.shots, n, int(plan.seed or 0))
    if plan.query_list is not None:
        queries = read_query_list(plan.query_list)
    else:  # a class with one image has no support: HSNet's sampler would loop forever
        per: dict[int, int] = {}
        for _, c in set(index.listed):
            per[c] = per.get(c, 0) + 1
        queries = sorted(p for p in set(index.listed) if per[p[1]] >= 2 or not plan.shots)
        if not queries:
            raise ValueError(
                f"protocol='hsnet' found no (image, class) pair for classes {list(wanted)} "
                f"with min_pixels={plan.min_pixels} whose class has another image"
            )
    n = len(queries) if n_episodes is None else n_episodes
    if per_class:
        return hsnet_coco_episodes(queries, list(wanted), plan.shots, n, int(plan.seed or 0))
    return hsnet_episodes(queries, plan.shots, n, int(plan.seed or 0))
