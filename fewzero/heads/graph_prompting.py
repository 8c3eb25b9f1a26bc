"""GF-SAM's steps: similarity priors, point prompts, the point-mask graph, growth and consistency.

From GF-SAM's published algorithm (Zhang et al., NeurIPS 2024; ``ANDYZAQ/GF-SAM``,
``matcher/GFSAM.py``), written anew as functions on one query. Grids are square (``g x g``
DINOv2 cells); points are ``(x, y)`` grid cells; SAM's masks are ``(P, H, W)`` bool.

1. [similarity_priors][fewzero.heads.graph_prompting.similarity_priors]: per shot, the cosine of
   every query cell with every support cell, weighted by the support mask on the grid; its max
   and its mask-normalised mean over the support, averaged over the shots;
2. [prompt_map][fewzero.heads.graph_prompting.prompt_map]: ``max x mean``, min-max normalised,
   zero where the background's mean prior is higher;
3. [select_points][fewzero.heads.graph_prompting.select_points]: the ``min(int(sum), 128)``
   highest cells become single-point prompts for SAM;
4. [point_mask_components][fewzero.heads.graph_prompting.point_mask_components]: mask ``i``
   covering point ``j`` is an edge; the weakly connected components group the masks;
5. [grow_components][fewzero.heads.graph_prompting.grow_components]: in each component, masks
   join in order of their mean prior while they cover more positive than negative cells;
6. [point_consistency][fewzero.heads.graph_prompting.point_consistency]: each point votes for
   the component whose region it is most like (cosine over distance); labels 1 (kept), 2
   (candidate) or 0;
7. [merge_kept][fewzero.heads.graph_prompting.merge_kept]: the union of the kept masks; where
   there is none, GF-SAM falls back to its best candidate mask (``fallback``).

Examples:
    >>> import torch
    >>> hot = torch.zeros(4, 4)
    >>> hot[1, 2] = hot[3, 0] = 1.0
    >>> select_points(hot)[0].tolist()  # (x, y), by x then y
    [[0, 3], [2, 1]]
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.sparse import csgraph

__all__ = [
    "grow_components",
    "merge_kept",
    "point_consistency",
    "point_mask_components",
    "prompt_map",
    "select_points",
    "similarity_priors",
]

MAX_POINTS = 128
"""GF-SAM's cap on the number of point prompts."""


def _cosine(support: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """``(Ns, C)``, ``(Nq, C)`` -> ``(Ns, Nq)`` cosines (GF-SAM's 1e-7 in the denominator)."""
    q = query.T
    norms = support.norm(dim=1, keepdim=True) @ q.norm(dim=0, keepdim=True)
    return (support @ q) / (norms + 1e-7)


def similarity_priors(
    query: torch.Tensor, supports: torch.Tensor, masks: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The max and mean priors ``(g, g)`` of a query against its shots.

    Args:
        query: ``(g g, C)`` query cells.
        supports: ``(K, g g, C)`` support cells.
        masks: ``(K, H, W)`` float support masks (resized to ``g x g`` bilinearly with
            ``align_corners=True``).
    """
    n = query.shape[0]
    g = int(math.isqrt(n))
    maxes, means = [], []
    for support, mask in zip(supports, masks):
        weight = F.interpolate(mask[None, None], (g, g), mode="bilinear", align_corners=True)
        weight = weight.flatten(2).transpose(1, 2)[0]  # (Ns, 1)
        sim = _cosine(support, query) * weight
        means.append(sim.mean(0).view(g, g) / (weight.sum() / n + 1e-7))
        maxes.append(sim.max(0)[0].view(g, g))
    return torch.stack(maxes).mean(0), torch.stack(means).mean(0)


def _minmax(x: torch.Tensor) -> torch.Tensor:
    return (x - x.min()) / (x.max() - x.min() + 1e-6)


def prompt_map(
    max_prior: torch.Tensor, mean_prior: torch.Tensor, background_mean: torch.Tensor
) -> torch.Tensor:
    """Where to prompt ``(g, g)``: ``max x mean`` normalised, zero where the background wins."""
    cross = _minmax(mean_prior * max_prior)
    return cross * ~(_minmax(background_mean) > cross)


def select_points(score: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompt cells: ``(P, 2)`` long ``(x, y)`` sorted by x then y, and the ``(g, g)`` map of them.

    ``P = min(int(score.sum()), 128)``, at least one where the sum is positive, none where it
    is zero.
    """
    total = float(score.sum())
    k = min(int(total), MAX_POINTS)
    if k == 0 and total > 0:
        k = 1
    hot = torch.zeros_like(score).flatten()
    hot[score.flatten().topk(k)[1]] = 1
    hot = hot.view_as(score)
    return torch.nonzero(hot.T > 0), hot


def point_mask_components(
    masks: torch.Tensor, points: torch.Tensor, hot: torch.Tensor
) -> tuple[int, np.ndarray]:
    """Weakly connected components of the graph "mask ``i`` covers point ``j``" (nearest-resized).

    Returns the count and each mask's component label ``(P,)``.
    """
    g = hot.shape[-1]
    small = F.interpolate(masks[:, None].float(), hot.shape, mode="nearest")[:, 0]
    covered = (small * (hot > 0).float()).flatten(1)[:, points[:, 1] * g + points[:, 0]]
    count, labels = csgraph.connected_components(
        covered.cpu().numpy(), directed=True, connection="weak", return_labels=True
    )
    return int(count), labels


def grow_components(
    masks: torch.Tensor,
    labels: torch.Tensor,
    count: int,
    positive: torch.Tensor,
    negative: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which masks join their component's region, and each mask's component score.

    Args:
        masks: ``(P, H, W)`` bool.
        labels: ``(P,)`` component of each mask.
        count: Components.
        positive: ``(g, g)`` map; a cell is positive where it is above ``negative``.
        negative: ``(g, g)`` map.

    Returns:
        ``(P,)`` long, 1 where the mask joined; ``(P,)`` float scores (positive minus negative
        area of the last mask tried in its component, as GF-SAM keeps it).
    """
    g = positive.shape[-1]
    joined = torch.zeros_like(labels)
    scores = torch.zeros(labels.shape, dtype=positive.dtype, device=positive.device)
    region = (positive > negative).float()
    gap = positive - negative
    pos = neg = torch.zeros((), device=positive.device)
    for c in range(count):
        members = torch.where(labels == c)[0]
        small = F.interpolate(
            masks[members, None].float(), (g, g), mode="bilinear", align_corners=False
        )
        mean = (small * gap).sum(dim=(-1, -2, -3)) / (small.sum(dim=(-1, -2, -3)) + 1e-6)
        inner = torch.zeros(1, g, g, dtype=small.dtype, device=small.device)
        for i in mean.argsort(descending=True):
            part = small[i] * (1 - inner)
            pos, neg = (region * part).sum(), ((1 - region) * part).sum()
            if pos > neg:
                inner = inner + part
                joined[members[i]] = 1
        scores[members] = pos - neg
    return joined, scores


def point_consistency(
    query: torch.Tensor,
    masks: torch.Tensor,
    labels: torch.Tensor,
    count: int,
    joined: torch.Tensor,
    points: torch.Tensor,
) -> torch.Tensor:
    """Each point's label: 1 kept, 2 candidate, 0 dropped ``(P,)``.

    A point is consistent where the component it belongs to is the one whose region (the mean
    prior of the query against that region) is highest at it, divided by the distance to that
    component's nearest point; a component whose points are mostly inconsistent loses all.
    """
    g = int(math.isqrt(query.shape[0]))
    likeness = []
    for c in range(count):
        members = torch.where(labels == c)[0]
        union = (masks[members].sum(0) > 0).float()
        union = F.interpolate(union[None, None], (g, g), mode="bilinear", align_corners=False)[0]
        likeness.append(similarity_priors(query, query[None], union)[1])
    at_points = torch.stack(likeness)[:, points[:, 1], points[:, 0]]  # (count, P)
    distance = torch.cdist(points.float(), points.float())
    nearest = torch.stack(
        [distance[:, torch.where(labels == c)[0]].min(dim=1)[0] for c in range(count)]
    )
    nearest[nearest == 0] = 1
    best = (at_points / nearest).max(dim=0)[1]
    consistent = (best == labels).long()
    for c in range(count):
        members = torch.where(labels == c)[0]
        agree = consistent[members].sum()
        if agree < len(members) - agree:
            consistent[members] = 0
    keep = (consistent * joined) > 0
    out = ((consistent + joined) > 0).long() * 2
    out[keep] = 1
    return out


def merge_kept(
    masks: torch.Tensor, point_labels: torch.Tensor, scores: torch.Tensor, fallback: bool
) -> torch.Tensor:
    """The union ``(H, W)`` bool of the kept masks (label 1).

    Where none is kept: with ``fallback``, GF-SAM's answer, the mask of the highest score among
    the candidates (label 2; the first mask where no score is positive); without, nothing.
    """
    kept = masks[point_labels == 1]
    merged = kept.any(dim=0) if len(kept) else torch.zeros_like(masks[0])
    if merged.any() or not fallback:
        return merged
    scores = torch.where(point_labels == 2, scores, torch.zeros_like(scores))
    return masks[int(scores.max(dim=0)[1])]
