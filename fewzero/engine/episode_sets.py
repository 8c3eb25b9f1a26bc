"""The manifests of an evaluation: every dataset it scores writes its episodes, or replays them.

Each dataset an evaluation scores has a key, such as ``pascal5i-fold0-1shot``,
``pascal5i-fold0-1shot-swap``, ``pascal5i-fold0-1shot-2way``, ``coco20i-fold3-0shot`` or
``deepglobe-1shot``. [`EpisodeSet`][fewzero.engine.episode_sets.EpisodeSet] writes each scored
dataset's episodes to ``<folder>/<key>.jsonl`` (a manifest, see
[`fewzero.data.manifest`][fewzero.data.manifest]; its header holds the key and every setting
the episodes depend on), or replays a set of manifests written by another run: a dataset whose
key the set holds scores exactly those episodes, and one whose key it lacks is left out.

Manifests are staged, not written in place: [`commit`][fewzero.engine.episode_sets.EpisodeSet.commit]
moves them into the folder (each file replaced atomically, only the keys this evaluation
scored) when the results they belong to are written, and
[`discard`][fewzero.engine.episode_sets.EpisodeSet.discard] drops them when the evaluation stops
before any result. Other datasets' manifests in the folder are never touched, and an interrupted
evaluation leaves either the old manifest of a dataset or the new one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import episodes_sha256, read_manifest, write_manifest

__all__ = ["EpisodeSet", "read_episode_set"]


def read_episode_set(path: str | os.PathLike[str]) -> dict[str, Path]:
    """The manifests at ``path`` (one file, or a folder of ``*.jsonl``) by their header's key.

    Raises:
        FileNotFoundError: if ``path`` does not exist or a folder holds no manifest.
        ValueError: for a manifest without a ``key`` in its header, a bad manifest, or two
            manifests of one key.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--episodes: no such manifest file or folder {str(path)!r}")
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"--episodes: folder {str(path)!r} holds no *.jsonl manifest")
    out: dict[str, Path] = {}
    for f in files:
        header = read_manifest(f)[0]
        key = header.get("key")
        if not key:
            raise ValueError(
                f"manifest {str(f)!r} has no 'key' in its header: it does not say which dataset "
                "it holds (manifests written by fewzero's evaluation do)"
            )
        if key in out:
            raise ValueError(f"manifests {str(out[key])!r} and {str(f)!r} both hold {key!r}")
        out[key] = f
    return out


@dataclass
class EpisodeSet:
    """Where an evaluation writes the manifests of what it scored, and what it replays.

    Args:
        write_dir: Folder for ``<key>.jsonl`` of every scored dataset (``None``: write none).
        replay: ``{key: manifest}`` to score instead of drawing (``None``: draw); a key not in
            it is left out of the evaluation.
        check_only: Build every dataset (which checks each replayed episode's images, classes
            and supports against the root) and score none: the check before any work.
    """

    write_dir: Path | None = None
    replay: dict[str, Path] | None = None
    check_only: bool = False
    written: dict[str, str] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)
    replayed: list[str] = field(default_factory=list)
    staged: dict[str, Path] = field(default_factory=dict)

    @property
    def staging_dir(self) -> Path | None:
        """Where manifests wait for [commit][fewzero.engine.episode_sets.EpisodeSet.commit] (this process's own)."""
        if self.write_dir is None:
            return None
        return self.write_dir.parent / f".{self.write_dir.name}.staging-{os.getpid()}"

    def source(self, key: str) -> tuple[bool, Path | None]:
        """``(score it, manifest to replay or None)`` for the dataset of ``key``."""
        if self.replay is None:
            return True, None
        if key not in self.replay:
            self.left_out.append(key)
            return False, None
        self.replayed.append(key)
        return True, self.replay[key]

    def record(self, key: str, dataset: Any, settings: dict[str, Any]) -> str:
        """Stage ``dataset``'s episodes as ``<key>.jsonl``; returns their SHA-256."""
        header = {**dataset.manifest_header(), **settings, "key": key}
        episodes = dataset.manifest()
        staging = self.staging_dir
        if staging is None:
            digest = episodes_sha256(episodes)
        else:
            staging.mkdir(parents=True, exist_ok=True)
            path = staging / f"{key}.jsonl"
            digest = write_manifest(path, episodes, header)
            self.staged[key] = path
        self.written[key] = digest
        return digest

    def commit(self, keys: Iterable[str] | None = None) -> list[Path]:
        """Move the staged manifests into ``write_dir``, each replacing its key's file atomically.

        Args:
            keys: The keys to commit (an interrupted evaluation: those of its finished rows);
                ``None``: every staged one. The others are dropped.

        Returns the manifests written. Manifests of other keys in ``write_dir`` are kept.
        """
        if self.write_dir is None or not self.staged:
            return []
        wanted = set(self.staged) if keys is None else set(keys) & set(self.staged)
        self.write_dir.mkdir(parents=True, exist_ok=True)
        done = []
        for key in sorted(wanted):
            target = self.write_dir / f"{key}.jsonl"
            os.replace(self.staged[key], target)
            done.append(target)
        self.staged = {}
        self.discard()
        return done

    def discard(self) -> None:
        """Drop the manifests not committed (an evaluation that wrote no result)."""
        self.staged = {}
        staging = self.staging_dir
        if staging is not None and staging.is_dir():
            shutil.rmtree(staging, ignore_errors=True)
