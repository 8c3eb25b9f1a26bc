"""The peers' test protocols in one place: their settings and their episode samplers.

[`PEER_PROTOCOLS`][fewzero.data.PEER_PROTOCOLS] holds every peer protocol's settings (the
datasets it applies to, episode count, seed, test input size and label size); the datasets
([`Pascal5i`][fewzero.data.Pascal5i], [`Coco20i`][fewzero.data.Coco20i], the cross-domain and
FSS-1000 datasets) and ``fewzero-eval`` read them from here, and
[`PROTOCOLS`][fewzero.data.PROTOCOLS] is the PASCAL-5i/COCO-20i ones as dataset arguments.

Each sampler is written from the peer's published test code and returns the episodes as
manifest records (see [`fewzero.data.manifest`][fewzero.data.manifest]), which
[`EpisodeDataset`][fewzero.data.EpisodeDataset] checks and scores exactly
(``protocol="hsnet"`` / ``"pfenet"``).

- **HSNet, PASCAL-5i** ([`hsnet_episodes`][fewzero.data.hsnet_episodes]): episode
  ``i`` is the query list's entry ``i % len(list)`` over 1000 episodes; each support is one
  ``np.random.choice`` from the class's images in the list (in list order), drawn again when it
  is the query, from NumPy's legacy generator seeded with 0 (HSNet's ``fix_randseed(0)``
  before the test loop, ``nworker=0``).
- **HSNet, COCO-20i** ([`hsnet_coco_episodes`][fewzero.data.hsnet_coco_episodes]):
  the index is ignored; each episode draws its class uniformly among the fold's test classes,
  then its query among the class's images, then the supports as above.
- **PFENet** ([`pfenet_episodes`][fewzero.data.pfenet_episodes]): Python's ``random``
  seeded with 321; the queries cycle through the val list's images that hold a test class with
  at least 2048 pixels, in list order; the class is drawn among the test classes present in the
  query (any pixel, ascending); each support index is drawn with ``randint(1, n) - 1`` and drawn
  again while it is the query or already chosen. PFENet's first draw of a support is always
  followed by a second one (its loop compares the query with itself first), which is kept.
  This is PFENet's sequence with ``workers=0``; its configs load with ``workers > 0``, where each
  worker's ``random`` is reseeded from torch's generator state after the model is built, so no
  sampler outside that process can give those episodes.
- **PATNet, cross-domain** ([`patnet_episodes`][fewzero.data.patnet_episodes]; Deepglobe, ISIC2018,
  Chest X-ray): episode ``i`` takes class ``i % n_classes``; its query is one
  ``np.random.choice`` among the class's images (sorted by path), each support another, drawn
  again when it is the query (supports may repeat one another, as in PATNet), from NumPy's legacy
  generator seeded with 0 (PATNet's ``fix_randseed(0)``; 600 episodes, ``nworker=0``).
- **HSNet and PATNet, FSS-1000** ([`hsnet_fss_episodes`][fewzero.data.hsnet_fss_episodes]):
  every image of the test classes once, class by class in the split file's order, each class's
  images sorted by file name as strings (``1.jpg, 10.jpg, 2.jpg, ...``); each support is
  ``np.random.choice(range(1, 11))`` (the class's images in numeric order), drawn again when it
  is the query (supports may repeat one another).
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..checks import check_numbers

__all__ = [
    "PEER_PROTOCOLS",
    "PROTOCOLS",
    "PeerProtocol",
    "hsnet_coco_episodes",
    "hsnet_episodes",
    "hsnet_fss_episodes",
    "cross_domain_protocol",
    "patnet_episodes",
    "pfenet_episodes",
    "read_query_list",
]


@dataclass(frozen=True)
class PeerProtocol:
    """A peer's test protocol: where it applies and the settings its published test code uses.

    Attributes:
        name: The protocol (a dataset's ``protocol=`` and ``fewzero-eval --protocol``).
        datasets: The datasets whose peer sequence it draws.
        n_episodes: Test episodes (``None``: every image once, as HSNet's FSS-1000 test).
        seed: Seed of the peer's draw.
        size: Test input side of the peer's code, or ``None`` where fewzero scores at the
            checkpoint's own size.
        label_size: ``"resized"`` (labels at the input size, the peer's scoring) or ``None``
            (fewzero's default: the labels at their original size).
    """

    name: str
    datasets: tuple[str, ...]
    n_episodes: int | None
    seed: int
    size: int | None = None
    label_size: str | None = None

    def dataset_kwargs(self) -> dict[str, Any]:
        """``protocol``, ``n_episodes`` and ``seed``: the arguments a dataset takes for it."""
        return {"protocol": self.name, "n_episodes": self.n_episodes, "seed": self.seed}


PEER_PROTOCOLS: dict[str, PeerProtocol] = {
    "hsnet": PeerProtocol("hsnet", ("pascal5i", "coco20i", "fss1000"), 1000, 0),
    "pfenet": PeerProtocol("pfenet", ("pascal5i",), 5000, 321),
    "patnet": PeerProtocol(
        "patnet", ("deepglobe", "isic", "lung", "fss1000"), 600, 0, 400, "resized"
    ),
    "insid3": PeerProtocol(
        "insid3", ("suim", "isaid", "permis", "lvis", "paco", "pascal_part"), None, 0, 1024,
        "resized",
    ),
}
"""Every peer protocol's settings (HSNet's, PFENet's, PATNet's, INSID3's), by name: the one
table the datasets and the evaluation command read."""

def cross_domain_protocol(dataset: str) -> str:
    """The peer protocol that defines a cross-domain benchmark's test: PATNet's or INSID3's.

    Examples:
        >>> cross_domain_protocol("deepglobe"), cross_domain_protocol("suim")
        ('patnet', 'insid3')
    """
    for name in ("patnet", "insid3"):
        if dataset in PEER_PROTOCOLS[name].datasets:
            return name
    raise ValueError(f"dataset {dataset!r} is not a cross-domain benchmark of a peer protocol")


PROTOCOLS: dict[str, dict[str, Any]] = {
    name: p.dataset_kwargs() for name, p in PEER_PROTOCOLS.items() if "pascal5i" in p.datasets
}
"""The peers' PASCAL-5i/COCO-20i protocols as dataset arguments (sampler, episode count, seed):
``Pascal5i(root, fold, "val", shots=1, **PROTOCOLS["pfenet"])`` gives PFENet's 5000 episodes."""


def read_query_list(path: str | os.PathLike[str]) -> list[tuple[str, int]]:
    """Read a query list in HSNet's format: one ``name__class`` a line, the class 1-based.

    Returns:
        ``(name, class_id)`` pairs in file order (HSNet's ``data/splits/pascal/val/fold0.txt``
        holds lines such as ``2007_000033__01``).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: naming the file and line for a line of another form or a class below 1.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"query list not found: {str(path)!r}")
    out = []
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        name, sep, cls = line.strip().rpartition("__")
        if not sep or not name or not cls.isdigit() or int(cls) < 1:
            raise ValueError(
                f"{str(path)!r} line {i + 1}: expected 'name__class' with a 1-based class "
                f"(HSNet's format, e.g. 2007_000033__01), got {line!r}"
            )
        out.append((name, int(cls)))
    if not out:
        raise ValueError(f"query list {str(path)!r} is empty")
    return out


def _classwise(queries: Sequence[tuple[str, int]]) -> dict[int, list[str]]:
    classwise: dict[int, list[str]] = {}
    for name, c in queries:
        classwise.setdefault(c, []).append(name)
    return classwise


def _hsnet_supports(
    rs: np.random.RandomState, candidates: Sequence[str], query: str, shots: int
) -> list[str]:
    if not any(n != query for n in candidates):
        raise ValueError(f"no support for query {query!r}: its class has no other image")
    names: list[str] = []
    while len(names) < shots:
        name = str(rs.choice(candidates, 1, replace=False)[0])
        if name != query:
            names.append(name)
    return names


def _record(i: int, name: str, c: int, supports: list[str]) -> dict[str, Any]:
    return {"index": i, "query": name, "class_id": int(c), "supports": [supports]}


def hsnet_episodes(
    queries: Sequence[tuple[str, int]], shots: int, n_episodes: int = 1000, seed: int = 0
) -> list[dict[str, Any]]:
    """HSNet's PASCAL-5i test episodes over ``queries`` (``(name, class_id)``, 1-based).

    ``shots=0`` draws no supports (and so consumes no random numbers).
    """
    check_numbers(
        "hsnet_episodes",
        {"shots": "nonnegative_int", "n_episodes": "positive_int"},
        {"shots": shots, "n_episodes": n_episodes},
    )
    rs = np.random.RandomState(seed)
    classwise = _classwise(queries)
    out = []
    for i in range(n_episodes):
        name, c = queries[i % len(queries)]
        supports = _hsnet_supports(rs, classwise[c], name, shots) if shots else []
        out.append(_record(i, name, c, supports))
    return out


def hsnet_coco_episodes(
    queries: Sequence[tuple[str, int]],
    class_ids: Sequence[int],
    shots: int,
    n_episodes: int = 1000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """HSNet's COCO-20i test episodes: class, then query, then supports, each drawn anew.

    Args:
        queries: ``(name, class_id)`` pairs; each class's images, in this order, are its
            candidates (HSNet's ``img_metadata_classwise``).
        class_ids: The fold's test classes (1-based) in HSNet's order (ascending).
        shots: Supports per episode.
        n_episodes: Episodes (HSNet: 1000).
        seed: NumPy legacy seed (HSNet: 0).
    """
    check_numbers(
        "hsnet_coco_episodes",
        {"shots": "nonnegative_int", "n_episodes": "positive_int"},
        {"shots": shots, "n_episodes": n_episodes},
    )
    classwise = _classwise(queries)
    missing = [c for c in class_ids if not classwise.get(c)]
    if missing:
        raise ValueError(
            f"HSNet's COCO sampler needs images of every test class, none for {missing}"
        )
    rs = np.random.RandomState(seed)
    out = []
    for i in range(n_episodes):
        c = int(rs.choice(list(class_ids), 1, replace=False)[0])
        name = str(rs.choice(list(classwise[c]), 1, replace=False)[0])
        supports = _hsnet_supports(rs, list(classwise[c]), name, shots) if shots else []
        out.append(_record(i, name, c, supports))
    return out


def pfenet_episodes(
    data_list: Sequence[str],
    present: Mapping[str, Sequence[int]],
    class_files: Mapping[int, Sequence[str]],
    shots: int,
    n_episodes: int = 5000,
    seed: int = 321,
) -> list[dict[str, Any]]:
    """PFENet's test episodes.

    Args:
        data_list: The val list's images that hold a test class with at least 2048 pixels, in
            list order (PFENet's ``make_dataset``).
        present: Each image's test classes with any pixel, ascending (``np.unique`` of its label).
        class_files: Each test class's images in ``data_list`` order, those with at least 2048
            pixels of it (PFENet's ``sub_class_file_list``).
        shots: Supports per episode.
        n_episodes: Episodes (PFENet: 5000 on PASCAL-5i).
        seed: Python ``random`` seed (PFENet: 321).
    """
    check_numbers(
        "pfenet_episodes",
        {"shots": "nonnegative_int", "n_episodes": "positive_int"},
        {"shots": shots, "n_episodes": n_episodes},
    )
    rng = random.Random(seed)
    out = []
    for i in range(n_episodes):
        name = data_list[i % len(data_list)]
        classes = list(present[name])
        c = classes[rng.randint(1, len(classes)) - 1]
        files = list(class_files.get(c, []))
        if len([f for f in files if f != name]) < shots:
            raise ValueError(
                f"PFENet's sampler needs {shots} images of class {c} besides {name!r}, the split "
                f"has {len(files)} in all"
            )
        chosen: list[int] = []
        for _ in range(shots):
            idx = rng.randint(1, len(files)) - 1
            support = name
            while support == name or idx in chosen:
                idx = rng.randint(1, len(files)) - 1
                support = files[idx]
            chosen.append(idx)
        out.append(_record(i, name, c, [files[j] for j in chosen]))
    return out


def patnet_episodes(
    classwise: Sequence[Sequence[str]], shots: int, n_episodes: int = 600, seed: int = 0
) -> list[dict[str, Any]]:
    """PATNet's cross-domain test episodes (Deepglobe, ISIC2018, Chest X-ray).

    Args:
        classwise: Each class's images in PATNet's order (sorted paths); class ``j`` (0-based)
            is ``class_id = j + 1`` in the records.
        shots: Supports per episode (``>= 1``).
        n_episodes: Episodes (PATNet: 600).
        seed: NumPy legacy seed (PATNet: 0).

    Raises:
        ValueError: for a class with fewer than 2 images (PATNet's loop would never end).
    """
    check_numbers(
        "patnet_episodes",
        {"shots": "nonnegative_int", "n_episodes": "positive_int"},
        {"shots": shots, "n_episodes": n_episodes},
    )
    small = [j + 1 for j, names in enumerate(classwise) if len(set(names)) < 2]
    if small or not classwise:
        raise ValueError(
            f"PATNet's sampler needs at least 2 images in every class, classes {small} have fewer"
            if classwise
            else "PATNet's sampler needs at least one class, got none"
        )
    rs = np.random.RandomState(seed)
    out = []
    for i in range(n_episodes):
        j = i % len(classwise)
        names = list(classwise[j])
        name = str(rs.choice(names, 1, replace=False)[0])
        out.append(_record(i, name, j + 1, _hsnet_supports(rs, names, name, shots)))
    return out


def hsnet_fss_episodes(
    classwise: Sequence[Sequence[str]], shots: int, seed: int = 0
) -> list[dict[str, Any]]:
    """HSNet's (and PATNet's) FSS-1000 test episodes: every image of every class once.

    Args:
        classwise: Each class's image stems; the queries run through them sorted as file names
            (``"1" < "10" < "2"``), the supports are drawn from them in numeric order (HSNet's
            ``range(1, 11)``). Class ``j`` (0-based) is ``class_id = j + 1``.
        shots: Supports per episode (``>= 1``).
        seed: NumPy legacy seed (HSNet: 0).
    """
    check_numbers("hsnet_fss_episodes", {"shots": "nonnegative_int"}, {"shots": shots})
    rs = np.random.RandomState(seed)
    out: list[dict[str, Any]] = []
    for j, stems in enumerate(classwise):
        numeric = sorted(stems, key=lambda s: (int(s), s) if s.isdigit() else (10**9, s))
        for name in sorted(stems, key=lambda s: s + ".jpg"):
            supports = _hsnet_supports(rs, numeric, name, shots)
            out.append(_record(len(out), name, j + 1, supports))
    return out
