"""Episode manifests: the exact test episodes of a run, written to a file and replayed.

A manifest is a JSON-lines file. Its first line is a header::

    {"fewzero_manifest": 1, "n_episodes": 1000, "shots": 1, "ways": 1,
     "episodes_sha256": "...", ...}

(plus whatever the writer records: dataset, fold, split, seed, ``min_pixels``). Every other line
is one episode, in order::

    {"index": 0, "query": "2008_000123", "class_id": 3, "supports": [["2009_001234"]]}

``class_id`` is 1-based; ``supports`` holds one list of image ids per way (the episode's class
first), empty lists for a zero-shot episode; ``ways`` lists the way classes of an N-way
episode. ``episodes_sha256`` is the SHA-256 of the episode lines in their canonical form, so
two runs scored the same episodes exactly when their hashes are equal.
[`EpisodeDataset.manifest`][fewzero.data.EpisodeDataset.manifest] gives a dataset's episodes and
``EpisodeDataset(..., episodes=path)`` scores exactly those.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..files import make_parent, replace_atomically

__all__ = [
    "MANIFEST_VERSION",
    "episodes_sha256",
    "read_manifest",
    "write_manifest",
]

MANIFEST_VERSION = 1
"""Version written in (and required from) a manifest's ``fewzero_manifest`` header key."""


def _canonical(episode: Mapping[str, Any]) -> str:
    return json.dumps(dict(episode), sort_keys=True, separators=(",", ":"))


def episodes_sha256(episodes: Sequence[Mapping[str, Any]]) -> str:
    """SHA-256 (hex) of ``episodes`` in canonical JSON, one line each: equal iff same episodes."""
    if not isinstance(episodes, Sequence) or isinstance(episodes, (str, bytes)):
        raise TypeError(f"episodes must be a list of episode records, got a {type(episodes).__name__}")
    digest = hashlib.sha256()
    for episode in episodes:
        digest.update((_canonical(episode) + "\n").encode())
    return digest.hexdigest()


def write_manifest(
    path: str | os.PathLike[str],
    episodes: Sequence[Mapping[str, Any]],
    header: Mapping[str, Any] | None = None,
) -> str:
    """Write ``episodes`` (with ``header``'s extra keys) to ``path`` atomically; returns the hash.

    An existing file is replaced only when it holds the very same episodes.

    Raises:
        FileExistsError: if ``path`` holds a manifest of other episodes.
    """
    path = Path(path)
    digest = episodes_sha256(episodes)
    if path.exists():
        old = read_manifest(path)[0].get("episodes_sha256")
        if old != digest:
            raise FileExistsError(
                f"{str(path)!r} already holds other episodes (episodes_sha256 {old}, new "
                f"{digest}); choose another path or remove it"
            )
    first = dict(episodes[0]) if episodes else {}
    head = {
        **dict(header or {}),
        "fewzero_manifest": MANIFEST_VERSION,
        "n_episodes": len(episodes),
        "shots": len(first.get("supports", [[]])[0]) if first.get("supports") else 0,
        "ways": len(first.get("supports") or [None]),
        "episodes_sha256": digest,
    }
    lines = [json.dumps(head, sort_keys=True)] + [_canonical(e) for e in episodes]
    make_parent(path)
    replace_atomically(path, lambda tmp: tmp.write_text("\n".join(lines) + "\n"))
    return digest


def read_manifest(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read a manifest; returns ``(header, episodes)`` after checking its form and hash.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: naming the file and line for a missing header, a wrong version, an episode
            without ``query``/``class_id``/``supports``, or a hash that does not match.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"episode manifest not found: {str(path)!r}")
    numbered = [(i, ln) for i, ln in enumerate(path.read_text().splitlines(), 1) if ln.strip()]
    records, where = [], []
    for number, line in numbered:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            cut = " (the file ends there: truncated)" if number == numbered[-1][0] else ""
            raise ValueError(
                f"{str(path)!r} line {number} is not JSON{cut}: {err.msg} at column {err.colno}"
            ) from err
        where.append(number)
    if not records or records[0].get("fewzero_manifest") != MANIFEST_VERSION:
        raise ValueError(
            f"{str(path)!r}: expected a header line with fewzero_manifest={MANIFEST_VERSION}, "
            f"got {records[0] if records else 'an empty file'!r}"
        )
    header, episodes = records[0], records[1:]
    for number, episode in zip(where[1:], episodes):
        missing = [k for k in ("query", "class_id", "supports") if k not in episode]
        if missing:
            raise ValueError(f"{str(path)!r} line {number}: episode lacks {missing}")
    expected = header.get("n_episodes")
    if isinstance(expected, int) and expected != len(episodes):
        raise ValueError(
            f"{str(path)!r}: its header says {expected} episodes, the file holds "
            f"{len(episodes)} (lines 2 to {where[-1]}): the file was truncated or edited"
        )
    digest = episodes_sha256(episodes)
    if header.get("episodes_sha256") != digest:
        raise ValueError(
            f"{str(path)!r}: episodes_sha256 in the header is {header.get('episodes_sha256')}, "
            f"the episodes hash to {digest} (the file was edited or truncated)"
        )
    return header, episodes
