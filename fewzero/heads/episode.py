"""The episode: one batch of encoded queries with their K support shots, and its one splitter.

"Episode" means this one thing in fewzero: what a model's encoder gave for the queries and for
their supports, by name, with the support masks. Every few-shot model runs on it (the few-shot
forward of [FewShotModel][fewzero.models.FewShotModel]), and so do the
[comparisons][fewzero.heads.comparisons]. A dataset's item is something else, an
[EpisodeSample][fewzero.data.EpisodeSample] of images and masks.

Where the shots are compared one by one (``shot_merge`` ``"mean"`` and ``"vote"``),
[Episode.one_shot][fewzero.heads.Episode.one_shot] splits a K-shot episode into K one-shot ones:
the only place fewzero does so.

Examples:
    >>> import torch
    >>> ep = Episode({"f": torch.arange(2.0)}, {"f": torch.zeros(6)}, torch.ones(2, 3, 4, 4))
    >>> one = ep.one_shot()
    >>> one.query["f"].tolist(), tuple(one.support_masks.shape), one.shots
    ([0.0, 0.0, 0.0, 1.0, 1.0, 1.0], (6, 1, 4, 4), 1)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

__all__ = ["Episode", "Features"]

Features = torch.Tensor | list[torch.Tensor]
"""One named feature of an episode: a map ``(N, C, h, w)``, or a list of them (one per block)."""


def _repeat(x: Features, k: int) -> Features:
    if isinstance(x, torch.Tensor):
        return x.repeat_interleave(k, dim=0)
    return [t.repeat_interleave(k, dim=0) for t in x]


@dataclass(frozen=True)
class Episode:
    """The encoded features of a batch of episodes, by name.

    Attributes:
        query: Name -> the queries' features, each ``(B, ...)`` or a list of them.
        support: Name -> the supports' features ``(B * K, ...)``, episode-major
            (``support_images.flatten(0, 1)``); empty for a zero-shot call.
        support_masks: ``(B, K, H', W')`` in ``{0, 1, 255}``; ``None`` for a zero-shot call.
        strides: Name -> pixels per cell of its grid (for
            [grid_masks][fewzero.heads.prototype.grid_masks]).
        size: The decoder's grid ``(h, w)`` (``(0, 0)`` where a model has none).
    """

    query: Mapping[str, Features]
    support: Mapping[str, Features] = field(default_factory=dict)
    support_masks: torch.Tensor | None = None
    strides: Mapping[str, int | None] = field(default_factory=dict)
    size: tuple[int, int] = (0, 0)

    @property
    def shots(self) -> int:
        """``K`` (0 for a zero-shot call)."""
        return 0 if self.support_masks is None else int(self.support_masks.shape[1])

    def align(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` resampled onto the decoder's grid (bilinear); a map already there passes."""
        if tuple(x.shape[-2:]) == tuple(self.size):
            return x
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)

    def support_by_shot(self, name: str) -> list[torch.Tensor]:
        """The supports' maps of ``name`` as ``(B, K, ...)`` (a list: one per block, or one)."""
        assert self.support_masks is not None
        b, k = self.support_masks.shape[:2]
        maps = self.support[name]
        maps = [maps] if isinstance(maps, torch.Tensor) else maps
        return [m.view(b, k, *m.shape[1:]) for m in maps]

    def one_shot(self) -> Episode:
        """The ``B * K`` one-shot episodes of this one (``shot_merge`` ``"mean"`` and ``"vote"``).

        Episode ``i * K + j`` is query ``i`` (its features repeated with
        ``repeat_interleave(K)``, not recomputed) with shot ``j`` alone: the masks become
        ``(B * K, 1, H', W')`` and the supports keep their episode-major order. An episode of
        at most one shot is returned as it is.
        """
        k = self.shots
        if k <= 1:
            return self
        assert self.support_masks is not None
        query = {name: _repeat(x, k) for name, x in self.query.items()}
        return replace(self, query=query, support_masks=self.support_masks.flatten(0, 1)[:, None])
