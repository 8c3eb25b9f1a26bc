"""How a few-shot model combines its K support shots: one constant, one module.

Three rules, each a few-shot model's ``shot_merge`` argument:

* ``"prototype"``: the shots are pooled *inside* the comparison, before anything is decoded:
  PANet's and the paper's prototype is the mean of the shots' masked averages
  ([support_prototypes][fewzero.heads.prototype.support_prototypes]); DCAMA's attention reads
  the keys of all shots as one sequence. One decoder pass per query.
* ``"mean"``: each shot is a one-shot episode of the same query
  ([Episode.one_shot][fewzero.heads.Episode.one_shot]; the query's features are computed
  once and repeated), and the K episodes' logits are averaged
  ([merge_shots][fewzero.heads.shot_merge.merge_shots]). A shot that looks unlike the query
  votes alone instead of blurring a prototype.
* ``"vote"``: HSNet's rule (``predict_mask_nshot``): one-shot episodes as ``"mean"``; at
  evaluation each shot's mask is a vote and the votes decide
  ([vote_shots][fewzero.heads.shot_merge.vote_shots]). The vote is not differentiable, so in
  training the logits are averaged as ``"mean"``.

A model accepts the rules that make sense for it and refuses the others by name
([check_shot_merge][fewzero.heads.shot_merge.check_shot_merge]).

Examples:
    >>> import torch
    >>> logits = torch.randn(2 * 3, 2, 4, 4)  # 2 queries x 3 one-shot episodes, episode-major
    >>> merge_shots(logits, 3, "mean", training=False, size=(8, 8)).shape
    torch.Size([2, 2, 4, 4])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..checks import check_tensor

__all__ = [
    "SHOT_MERGES",
    "check_shot_merge",
    "merge_shots",
    "vote_shots",
]

SHOT_MERGES = ("prototype", "mean", "vote")
"""The K-shot rules: pool the shots in the comparison, average the one-shot episodes' logits, or vote their masks (HSNet)."""


def check_shot_merge(shot_merge: str, accepted: Sequence[str], model: str) -> str:
    """Return ``shot_merge`` if ``model`` accepts it; else raise ``ValueError`` naming the choices.

    Examples:
        >>> check_shot_merge("vote", ("mean", "vote"), "HSNet")
        'vote'
    """
    if shot_merge not in SHOT_MERGES:
        raise ValueError(
            f"shot_merge must be one of {SHOT_MERGES}, got {shot_merge!r}; {model} accepts "
            f"{tuple(accepted)}"
        )
    if shot_merge not in accepted:
        raise ValueError(
            f"shot_merge={shot_merge!r} does not apply to {model}, which accepts "
            f"{tuple(accepted)}; pass one of those"
        )
    return shot_merge


def vote_shots(logits: torch.Tensor) -> torch.Tensor:
    """HSNet's K-shot vote as logits whose argmax is the voted mask.

    Shapes:
        ``logits (K, B, 2, H, W)``, one binary prediction per shot -> ``(B, 2, H, W)``.

    Each shot's argmax is a vote; the votes are divided by the image's largest count (at least
    1) and the share ``f >= 1/2`` is foreground (HSNet's ``predict_mask_nshot``). The result is
    ``(0, 2 (f - t))`` with ``t = 1/2 - 1/(4K)``, so a share of exactly one half is foreground;
    its softmax ranks pixels (and ways, in N-way) by vote share but is not a probability.

    Examples:
        >>> import torch
        >>> shots = torch.zeros(3, 1, 2, 1, 3)
        >>> shots[:2, 0, 1, 0, 0] = 1  # two of three shots say foreground at the first pixel
        >>> shots[0, 0, 1, 0, 1] = 1  # one says so at the second
        >>> vote_shots(shots).argmax(1).tolist()
        [[[1, 1, 0]]]
    """
    check_tensor("logits", logits, dims=5)
    k, b = logits.shape[:2]
    votes = (logits[:, :, 1] > logits[:, :, 0]).sum(dim=0).to(logits.dtype)  # (B, H, W)
    most = votes.flatten(1).amax(dim=1).clamp(min=1).view(b, 1, 1)
    share = votes / most
    fg = 2 * (share - (0.5 - 0.25 / k))
    return torch.stack([torch.zeros_like(fg), fg], dim=1)


def merge_shots(
    logits: torch.Tensor,
    shots: int,
    shot_merge: str,
    training: bool,
    size: Sequence[int],
    align_corners: bool = False,
) -> torch.Tensor:
    """Merge the logits of the one-shot episodes into one prediction per query.

    Args:
        logits: ``(B * shots, C, h, w)``, episode-major (see
            [Episode.one_shot][fewzero.heads.Episode.one_shot]); with ``"prototype"``
            ``(B, C, h, w)``, returned as it is.
        shots: ``K`` one-shot episodes per query (0 or 1: nothing to merge).
        shot_merge: One of [SHOT_MERGES][fewzero.heads.shot_merge.SHOT_MERGES].
        training: The vote is not differentiable: in training it averages as ``"mean"``.
        size: The input's ``(H, W)``: the vote is taken there (HSNet votes full-size masks).
        align_corners: Of the bilinear upsampling to ``size`` before the vote (HSNet: ``True``).

    Returns:
        ``(B, C, h, w)`` (the mean), or ``(B, 2, H, W)`` (the vote).
    """
    if shot_merge == "prototype" or shots <= 1:
        return logits
    per_query = logits.view(-1, shots, *logits.shape[1:])
    if shot_merge == "mean" or training:
        return per_query.mean(dim=1)
    full = F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=align_corners)
    return vote_shots(full.view(-1, shots, *full.shape[1:]).transpose(0, 1))
