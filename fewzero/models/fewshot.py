"""The one few-shot forward: encode, episode, compare and decode, merge the shots, resize once.

Every model that reads a support set (SM-VCENet and its few-shot variants, HSNet, DCAMA, the
prototype baseline, ...) is a [FewShotModel][fewzero.models.FewShotModel] and writes only its
own parts:

* ``encode(images)``: its features of a batch of images, by name (one backbone pass);
* ``decode(episode)``: its comparison and decoder on an [Episode][fewzero.heads.Episode],
  giving low-resolution logits and auxiliary losses;
* ``shot_merge`` and the merges it accepts, ``shot_merges``.

The base class runs, in this order, for every such model:

1. the call's checks ([SegmentationModel.check_inputs][fewzero.models.SegmentationModel.check_inputs]);
2. one encoder pass over the query and its supports
   ([encode_pair][fewzero.models.encode_pair]: one call where their sizes match);
3. the episode, split into one-shot episodes where the shots are compared one by one
   ([Episode.one_shot][fewzero.heads.Episode.one_shot]);
4. the model's ``decode``;
5. the shot merge ([merge_shots][fewzero.heads.shot_merge.merge_shots]);
6. one resize to the input's size.

A model whose encoding of an episode depends on what its comparisons read (SM-VCENet) overrides
``encode_episode`` instead of step 2 alone.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping

import torch

from ..heads.episode import Episode, Features
from ..heads.shot_merge import SHOT_MERGES, merge_shots
from .base import Losses, SegmentationModel

__all__ = ["FewShotModel", "encode_pair"]

Encoded = Mapping[str, Features]


def _head(features: Encoded, n: int, tail: bool) -> dict[str, Features]:
    def cut(x: torch.Tensor) -> torch.Tensor:
        return x[n:] if tail else x[:n]

    return {
        k: cut(v) if isinstance(v, torch.Tensor) else [cut(t) for t in v]
        for k, v in features.items()
    }


def encode_pair(
    run: Callable[[torch.Tensor], Encoded],
    query: torch.Tensor,
    support: torch.Tensor | None,
) -> tuple[dict[str, Features], dict[str, Features] | None]:
    """``run`` over ``query`` and ``support``: one call on both when their shapes match.

    Args:
        run: Maps a batch ``(N, ...)`` to named features, each ``(N, ...)`` or a list of them
            (a backbone, a branch).
        query: ``(B, ...)``.
        support: ``(B * K, ...)`` (episode-major), or ``None`` (the query alone).

    Returns:
        ``run(query)`` and ``run(support)`` (``None`` without a support).

    Examples:
        >>> import torch
        >>> q, s = encode_pair(lambda x: {"f": 2 * x}, torch.ones(1, 3), torch.zeros(2, 3))
        >>> q["f"].tolist(), s["f"].tolist()
        ([[2.0, 2.0, 2.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    """
    if support is None:
        return dict(run(query)), None
    if support.shape[1:] == query.shape[1:]:
        b = query.shape[0]
        both = run(torch.cat([query, support]))
        return _head(both, b, False), _head(both, b, True)
    return dict(run(query)), dict(run(support))


class FewShotModel(SegmentationModel):
    """Base class of the models that read a support set: the one few-shot forward.

    A subclass implements [encode][fewzero.models.FewShotModel.encode] and
    [decode][fewzero.models.FewShotModel.decode] and sets ``shot_merge`` (checked against its
    ``shot_merges``); ``forward`` runs check, encode, episode, decode, merge and one resize
    (the module's page lists the order). A model that needs no support in some configurations
    (SM-VCENet with ``comparisons=["self"]``) sets ``requires_support`` and
    ``accepts_support`` per instance: its episode then has no supports.

    Attributes:
        shot_merges: The K-shot rules the model accepts, of
            [SHOT_MERGES][fewzero.heads.shot_merge.SHOT_MERGES] (its ``shot_merge`` argument is
            checked against them).
        shot_merge: The rule this model merges its shots by.

    Examples:
        >>> import torch
        >>> from fewzero.models import PrototypeMatcher
        >>> model = PrototypeMatcher("resnet18").eval()
        >>> masks = torch.zeros(1, 3, 64, 64, dtype=torch.long)
        >>> masks[..., 16:48, 16:48] = 1
        >>> model(torch.randn(1, 3, 64, 64), torch.randn(1, 3, 3, 64, 64), masks).shape
        torch.Size([1, 2, 64, 64])
    """

    requires_support = True
    accepts_support = True
    shot_merges: tuple[str, ...] = SHOT_MERGES
    shot_merge: str = "prototype"

    @abstractmethod
    def encode(self, images: torch.Tensor) -> Encoded:
        """The model's features of a batch of images ``(N, 3, H, W)``, by name (``(N, ...)`` each)."""

    @abstractmethod
    def decode(self, episode: Episode) -> tuple[torch.Tensor, Losses]:
        """Compare and decode: low-resolution logits ``(N, num_classes, h, w)`` and losses.

        ``N`` is the episode's batch: ``B``, or ``B * K`` after
        [Episode.one_shot][fewzero.heads.Episode.one_shot].
        """

    def encode_episode(
        self,
        images: torch.Tensor,
        support_images: torch.Tensor | None,
        support_masks: torch.Tensor | None,
    ) -> Episode:
        """The [Episode][fewzero.heads.Episode] of a call: one encoder pass over query and supports."""
        flat = None if support_images is None else support_images.flatten(0, 1)
        query, support = encode_pair(self.encode, images, flat)
        return Episode(query, support or {}, support_masks)

    def forward_features(
        self,
        images: torch.Tensor,
        support_images: torch.Tensor | None,
        support_masks: torch.Tensor | None,
        class_ids: torch.Tensor | None,
    ) -> tuple[torch.Tensor, Losses]:
        """Encode, split into one-shot episodes where the rule needs it, decode, merge the shots.

        Returns the merged logits ``(B, num_classes, h, w)`` (the vote's at the input's size)
        and the losses.
        """
        episode = self.encode_episode(images, support_images, support_masks)
        shots = episode.shots if self.shot_merge != "prototype" else 1
        if shots > 1:
            episode = episode.one_shot()
        logits, losses = self.decode(episode)
        size = images.shape[-2:]
        merged = merge_shots(
            logits, shots, self.shot_merge, self.training, size, self.align_corners
        )
        return merged, losses
