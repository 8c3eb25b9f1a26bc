"""PerMIS: personalized segmentation of one object instance in video frames (INSID3's layout).

PerMIS (Samuel et al., "Where's Waldo", the ``PerMIRS`` folders) takes three frames of a BURST
video in which several objects of one category appear; one instance is the target. The support
is frame 0 with the instance's mask; frames 1 and 2 are the queries. Layout::

    ROOT/<video>/0.jpg, 1.jpg, 2.jpg
    ROOT/<video>/masks.npz.npy         NumPy's saved list of three {track id: (H, W) bool mask}

Download and preparation: BURST's TAO frames and annotations with the generation script of
``dvirsamuel/PDM`` (``PerMIRS/permirs_gen_dataset.py``), as INSID3's ``docs/data.md`` says (216
videos). ``python -m fewzero.data.prepare check permis --root R`` says what a folder lacks.

The mask files are NumPy object arrays, which NumPy stores with Python's pickle; fewzero reads
them with an unpickler that builds NumPy arrays, their dtypes and Python's plain containers and
nothing else ([`fewzero.data.plain_pickle`][fewzero.data.plain_pickle]), so a file that would
run code is refused.

INSID3's protocol (``protocol="insid3"``, the only one: the episodes are the benchmark's):
per video, frame 0 supports frames 1 and 2, each frame's mask the first of its dictionary; one
class, all episodes' intersections and unions pooled; 1024 x 1024 inputs, labels resized to
1024 x 1024 (nearest), ``label_size="resized"``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .peer_benchmarks import Files, PeerBenchmark
from .plain_pickle import read_plain_npy

__all__ = ["PerMIS", "read_frame_masks"]

MASKS = "masks.npz.npy"
"""The name of a video's mask file (``np.save`` of ``masks.npz``)."""

def read_frame_masks(path: str | os.PathLike[str]) -> list[dict[Any, np.ndarray]]:
    """A PerMIS ``masks.npz.npy``: per frame, ``{track id: (H, W) mask}``, without running code.

    Raises:
        FileNotFoundError: naming the missing file.
        ValueError: naming the file when it is not a NumPy file of such dictionaries, or asks
            the unpickler for anything but plain containers and NumPy arrays
            ([`read_plain_npy`][fewzero.data.plain_pickle.read_plain_npy]).

    Examples:
        >>> import tempfile
        >>> import numpy as np
        >>> from pathlib import Path
        >>> path = Path(tempfile.mkdtemp()) / "masks.npz"
        >>> np.save(path, [{7: np.eye(3, dtype=bool)}] * 3)  # as PDM's script writes it
        >>> frames = read_frame_masks(f"{path}.npy")
        >>> len(frames), list(frames[0]), frames[0][7].sum()
        (3, [7], np.int64(3))
    """
    frames = list(read_plain_npy(path, "a PerMIS mask file").reshape(-1))
    if not frames or not all(isinstance(d, dict) and d for d in frames):
        raise ValueError(
            f"{str(path)!r} must hold one {{track id: mask}} dictionary per frame (PDM's "
            "permirs_gen_dataset.py), got another content"
        )
    return frames


class PerMIS(PeerBenchmark):
    """PerMIS's episodes: per video, frame 0 supports frames 1 and 2 (layout in [fewzero.data.permis][fewzero.data.permis]).

    Args:
        root: The ``PerMIRS`` folder.
        shots: 1 (the benchmark's one support frame).
        transform: Paired transform (INSID3: ``eval_transform(1024)``).
        protocol: ``"insid3"``: the benchmark's episodes.
        n_episodes: ``None`` (every episode); a count keeps the first ones.
        seed: Recorded in the manifest (nothing is drawn).
        episodes: A manifest to replay instead.

    Raises:
        FileNotFoundError: naming what the folder lacks.
        ValueError: for ``shots`` other than 1 or ``protocol=None`` without ``episodes``.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import numpy as np
        >>> from PIL import Image
        >>> from fewzero.data import PerMIS, eval_transform
        >>> root = Path(tempfile.mkdtemp())
        >>> for v in range(2):
        ...     video = root / str(v)
        ...     video.mkdir()
        ...     masks = []
        ...     for f in range(3):
        ...         Image.fromarray(np.full((20, 30, 3), 60 * f, np.uint8)).save(video / f"{f}.jpg")
        ...         mask = np.zeros((20, 30), bool)
        ...         mask[5:15, 4 + 5 * f : 14 + 5 * f] = True
        ...         masks.append({3: mask})
        ...     np.save(video / "masks.npz", masks)
        >>> test = PerMIS(root, transform=eval_transform(32))
        >>> [(e["query"], e["supports"]) for e in test.manifest()][:2]
        [('0/1', [['0/0']]), ('0/2', [['0/0']])]
        >>> len(test), test[3]["support_images"].shape
        (4, torch.Size([1, 3, 32, 32]))
    """

    BENCHMARK = "permis"
    CLASSES = ("object",)
    OWN_DRAW = False

    def index(self, root: Path, shots: int) -> tuple[list[str], Files]:
        """One class, ``object``: every video's three frames."""
        if isinstance(shots, bool) or shots != 1:
            raise ValueError(f"shots must be 1 for PerMIS (one support frame), got {shots!r}")
        self.videos = permis_videos(root)
        if not self.videos:
            raise FileNotFoundError(
                f"permis root {str(root)!r} holds no video folder with 0.jpg and {MASKS}; see "
                "fewzero.data.permis for the layout"
            )
        files = {1: {f"{v}/{f}": (root / v / f"{f}.jpg", root / v / MASKS)
                     for v in self.videos for f in range(3)}}  # fmt: skip
        return list(self.CLASSES), files

    def mask_of(self, cid: int, stem: str) -> np.ndarray:
        """Frame ``f`` of ``<video>/<f>``: the first mask of its dictionary, as ``uint8`` 0/1."""
        video, frame = stem.rsplit("/", 1)
        masks = read_frame_masks(self.files[(cid, stem)][1])
        if int(frame) >= len(masks):
            raise ValueError(f"{video}/{MASKS} holds {len(masks)} frames, frame {frame} is asked")
        return np.asarray(next(iter(masks[int(frame)].values()))).astype(bool).astype(np.uint8)

    def peer_episodes(
        self, protocol: str, n_episodes: int | None, seed: int
    ) -> list[dict[str, Any]]:
        """Per video in name order, frame 0 supporting frames 1 and 2 (the first ``n_episodes``)."""
        records = [
            {"index": 2 * i + k, "query": f"{v}/{k + 1}", "class_id": 1, "supports": [[f"{v}/0"]]}
            for i, v in enumerate(self.videos)
            for k in range(2)
        ]
        return records if n_episodes is None else records[:n_episodes]


def permis_videos(root: Path) -> list[str]:
    """The video folders of a PerMIS root: those with a ``0.jpg`` and a mask file, by name."""
    return sorted(
        p.name for p in root.iterdir() if (p / "0.jpg").is_file() and (p / MASKS).is_file()
    )
