"""Class word vectors from GloVe / fastText text files (the L-ZSSS baselines' class embeddings).

The paper used 300-d GloVe Common Crawl vectors; users supply the file. Only the words a label set
needs are kept. Multi-word class names are averaged ("potted plant" = mean of "potted" and
"plant"), and the paper's simplifications apply through ``aliases`` ("diningtable" -> "table").
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..checks import check_file

__all__ = ["DEFAULT_ALIASES", "class_words", "load_word_vectors"]

DEFAULT_ALIASES: dict[str, str] = {
    "diningtable": "table",
    "pottedplant": "potted plant",
    "tvmonitor": "tv monitor",
}
"""Label names whose words the vector files do not hold as written (PASCAL's glued names) -> the words to look up."""


def class_words(name: str, aliases: Mapping[str, str] = DEFAULT_ALIASES) -> list[str]:
    """Lower-cased words of a class name after aliasing (``"tvmonitor"`` -> ``["tv", "monitor"]``).

    Raises:
        ValueError: for a name that is not text or holds no word.
    """
    if not isinstance(name, str) or not name.split():
        raise ValueError(f"name must be a class name (text with a word), got {name!r}")
    name = aliases.get(name, name)
    return name.lower().replace("/", " ").replace("-", " ").replace("_", " ").split()


def _open(path: Path):
    return (
        gzip.open(path, "rt", encoding="utf-8")
        if path.suffix == ".gz"
        else open(path, encoding="utf-8")
    )


def load_word_vectors(
    path: str | os.PathLike[str],
    class_names: Sequence[str],
    aliases: Mapping[str, str] = DEFAULT_ALIASES,
    cache: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """Return the ``(len(class_names), d)`` class word-vector table.

    Args:
        path: GloVe ``.txt`` or fastText ``.vec`` file, optionally gzipped (``.gz``). A fastText
            header line (``"count dim"``) is skipped.
        class_names: Class names in class-id order.
        aliases: Name substitutions applied before splitting into words.
        cache: Optional ``.npz`` file: read if it exists and matches the names, else written.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: naming the file and every word that it lacks.
    """
    names = list(class_names)
    if cache is not None and Path(cache).is_file():
        data = np.load(cache, allow_pickle=False)
        if list(data["names"]) == names:
            return data["vectors"]
    path = check_file(path, "word vector file")
    wanted = {w for n in names for w in class_words(n, aliases)}
    found: dict[str, np.ndarray] = {}
    with _open(path) as f:
        for i, line in enumerate(f):
            parts = line.rstrip().split(" ")
            if i == 0 and len(parts) == 2:
                continue  # fastText header
            if parts[0] in wanted and parts[0] not in found:
                found[parts[0]] = np.asarray(parts[1:], dtype=np.float32)
                if len(found) == len(wanted):
                    break
    missing = sorted(wanted - set(found))
    if missing:
        raise ValueError(
            f"path {str(path)!r} lacks the words {missing}"
            + ("" if found else ": it holds none of them (is it a GloVe/fastText text file?)")
            + "; use a vector file that has them, or aliases= to name them otherwise"
        )
    table = np.stack([np.mean([found[w] for w in class_words(n, aliases)], axis=0) for n in names])
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, names=np.asarray(names), vectors=table)
    return table
