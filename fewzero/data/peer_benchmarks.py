"""The base of the benchmarks whose test a peer defines with its own episodes (INSID3's).

SUIM, iSAID-5i, PerMIS, LVIS-92i and PACO-Part are built the same way: check the fold and the
protocol, check the root's parts, index the classes' files, then draw (or replay) the episodes.
A benchmark states what differs as class attributes (``FOLDS``, ``EPISODES``, ``OWN_DRAW``,
``LAYOUT``) and indexes its files in [`index`][fewzero.data.peer_benchmarks.PeerBenchmark.index].
"""

from __future__ import annotations

import os
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .folder_episodes import FolderEpisodes

__all__ = ["PeerBenchmark"]

Files = dict[int, dict[str, tuple[Path, Path]]]


class PeerBenchmark(FolderEpisodes, metaclass=ABCMeta):
    """A folder benchmark drawn by a peer's protocol (``protocol="insid3"`` by default).

    Args:
        root: The benchmark's folder.
        fold: The fold, for a benchmark cut into ``FOLDS`` folds (default 0); ``None`` otherwise.
        shots: Supports per episode.
        transform: Paired transform of query and supports.
        protocol: The peer's protocol, or ``None`` for fewzero's draw (where ``OWN_DRAW``).
        n_episodes: Episodes (``None``: the peer's count, ``EPISODES``, or every item once).
        seed: Seed of the draw.
        episodes: A manifest to replay instead.

    Raises:
        FileNotFoundError: naming what the folder lacks.
        ValueError: for a fold the benchmark does not have, or ``protocol=None`` without
            ``episodes`` where only the peer's episodes make sense.
    """

    PROTOCOL_NAMES = ("insid3",)
    FOLDS = 0
    """Folds the benchmark is cut into (0: none)."""
    EPISODES: int | None = None
    """The peer's episode count (``None``: every item once)."""
    OWN_DRAW = True
    """Whether fewzero's draw makes sense (not where the benchmark fixes its episodes, as
    PerMIS's frames, or draws them with their objects, as PACO-Part)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        fold: int | None = None,
        *,
        shots: int = 1,
        transform: Callable[..., Any] | None = None,
        protocol: str | None = "insid3",
        n_episodes: int | None = None,
        seed: int = 0,
        episodes: str | os.PathLike[str] | Sequence[dict[str, Any]] | None = None,
    ) -> None:
        name = type(self).__name__
        if self.FOLDS:
            fold = 0 if fold is None else fold
            if isinstance(fold, bool) or not isinstance(fold, int) or fold not in range(self.FOLDS):
                raise ValueError(f"fold must be one of 0..{self.FOLDS - 1} ({name}'s folds), "
                                 f"got {fold!r}")  # fmt: skip
        elif fold is not None:
            raise ValueError(f"{name} has no folds, got fold={fold!r}: give shots= and the other "
                             "arguments by name")  # fmt: skip
        if protocol is None and episodes is None and not self.OWN_DRAW:
            raise ValueError(
                f"protocol must be {self.PROTOCOL_NAMES[0]!r} for {name} (its episodes are the "
                "benchmark's own), or give episodes= to replay a manifest; got None"
            )
        self.fold = fold
        root = self.checked_root(root, self.layout())
        classes, files = self.index(root, shots)
        count = self.EPISODES if n_episodes is None else n_episodes
        self.setup(root, classes, files, shots, transform, False, count, seed,
                   protocol=protocol, episodes=episodes, order=self.stem_order(files))  # fmt: skip

    def layout(self) -> Sequence[str]:
        """The parts the root holds (``LAYOUT``; a folded benchmark may name its fold's)."""
        return self.LAYOUT

    @abstractmethod
    def index(self, root: Path, shots: int) -> tuple[list[str], Files]:
        """The class names and ``{class_id: {stem: (image, annotation)}}`` of ``self.fold``."""

    def stem_order(self, files: Files) -> Callable[[str], Any] | None:
        """How a class's stems sort for fewzero's draw (default: as strings)."""
        return None
