"""INSID3's matching of a query's regions to a support set, as functions on one episode.

From INSID3's published algorithm (``visinf/INSID3``, ``models/insid3.py``), written anew:

1. [support_grid_mask][fewzero.heads.cluster_matching.support_grid_mask]: each support mask on
   the feature grid (bilinear, then nearest, then the object's centre where it would vanish);
2. [foreground_prototype][fewzero.heads.cluster_matching.foreground_prototype]: the mean of each
   shot's masked (debiased) features, averaged over the shots and L2-normalised;
3. [locate_candidates][fewzero.heads.cluster_matching.locate_candidates]: query patches that
   are both closer to the prototype than orthogonal (forward) and whose nearest support patch
   lies in the support's mask for a majority of the shots (backward);
4. [seed_and_merge][fewzero.heads.cluster_matching.seed_and_merge]: among the query's clusters
   touched by a candidate, the one most like the prototype is the seed; every cluster whose
   score (likeness to the prototype times likeness to the seed, times the share of it that the
   candidates cover) exceeds ``merge_threshold`` joins the mask.

A class that is absent leaves no candidate (step 3), and the mask comes back empty.

Examples:
    >>> import torch
    >>> mask = torch.zeros(64, 64, dtype=torch.bool)
    >>> mask[28:31, 28:31] = True  # 9 pixels: gone at 4 x 4 by bilinear and nearest
    >>> support_grid_mask(mask, 4, 4).nonzero().tolist()
    [[1, 1]]
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "cluster_prototypes",
    "foreground_prototype",
    "locate_candidates",
    "seed_and_merge",
    "support_grid_mask",
]


def support_grid_mask(mask: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """A support mask ``(H, W)`` (bool) on the ``(h, w)`` feature grid, never empty.

    Bilinear resampling, kept where above 0.5; where nothing is left, nearest resampling; where
    nothing is left still, the cell of the object's centroid (its row and column divided by
    ``W // w``, as INSID3 computes it).
    """
    m = mask[None, None].float()
    down = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)[0, 0] > 0.5
    if not down.any():
        down = F.interpolate(m, size=(h, w), mode="nearest")[0, 0] > 0.5
        if not down.any() and mask.any():
            centre = torch.argwhere(mask).float().mean(dim=0)
            cy, cx = (centre / (mask.shape[-1] // w)).int().tolist()
            down[cy, cx] = True
    return down


def foreground_prototype(support: torch.Tensor, grid_masks: torch.Tensor) -> torch.Tensor:
    """The support set's unit prototype ``(C,)``.

    Args:
        support: ``(K, C, h, w)`` debiased, normalised support features.
        grid_masks: ``(K, h, w)`` bool ([support_grid_mask][fewzero.heads.cluster_matching.support_grid_mask]).
    """
    means = [s[:, m].mean(dim=1) for s, m in zip(support, grid_masks) if m.any()]
    return F.normalize(torch.stack(means).mean(dim=0), p=2, dim=0)


def locate_candidates(
    query: torch.Tensor, support: torch.Tensor, grid_masks: torch.Tensor, prototype: torch.Tensor
) -> torch.Tensor:
    """Query patches matched both ways, ``(h, w)`` bool.

    Args:
        query: ``(C, h, w)`` debiased, normalised query features.
        support: ``(K, C, hs, ws)`` debiased, normalised support features.
        grid_masks: ``(K, hs, ws)`` bool support masks on their grid.
        prototype: ``(C,)`` ([foreground_prototype][fewzero.heads.cluster_matching.foreground_prototype]).

    Forward: cosine to the prototype above 0 (where no patch is, the top 10%). Backward: for at
    least ``ceil(K / 2)`` shots, the query patch's most similar support patch is in that shot's
    mask.
    """
    c, h, w = query.shape
    forward = torch.einsum("chw,c->hw", query, prototype)
    chosen = forward > 0
    if not chosen.any():
        chosen = forward > float(torch.quantile(forward, 0.9))
    flat_query = query.reshape(c, h * w)
    votes = torch.zeros(h * w, dtype=torch.int32, device=query.device)
    for shot, mask in zip(support, grid_masks):
        nearest = torch.einsum("cs,cq->qs", shot.reshape(c, -1), flat_query).argmax(dim=1)
        votes += mask.reshape(-1)[nearest].to(torch.int32)
    backward = votes.view(h, w) >= math.ceil(len(support) / 2)
    return chosen & backward


def cluster_prototypes(features: torch.Tensor, labels: torch.Tensor, count: int) -> torch.Tensor:
    """Unit mean ``(count, C)`` of the rows of ``features`` ``(N, C)`` in each cluster of ``labels``."""
    sums = torch.zeros(count, features.shape[1], dtype=features.dtype, device=features.device)
    sums.index_add_(0, labels, features)
    sizes = torch.bincount(labels, minlength=count).clamp(min=1).to(features.dtype)
    return F.normalize(sums / sizes[:, None], p=2, dim=1)


def seed_and_merge(
    candidates: torch.Tensor,
    labels: torch.Tensor,
    query: torch.Tensor,
    query_debiased: torch.Tensor,
    prototype: torch.Tensor,
    merge_threshold: float,
) -> torch.Tensor:
    """The query's mask ``(h, w)`` bool: the seed cluster and the clusters that join it.

    Args:
        candidates: ``(h, w)`` bool ([locate_candidates][fewzero.heads.cluster_matching.locate_candidates]).
        labels: ``(h, w)`` cluster labels ``0 .. K-1`` of the query's patches.
        query: ``(C, h, w)`` normalised query features (the clusters' likeness to the seed).
        query_debiased: ``(C, h, w)`` debiased ones (their likeness to the prototype).
        prototype: ``(C,)``.
        merge_threshold: A cluster joins where its score exceeds it.

    Returns ``candidates`` itself where no candidate lies in a cluster.
    """
    count = int(labels.max()) + 1
    flat = labels.reshape(-1)
    hits = flat[candidates.reshape(-1)]
    if hits.numel() == 0:
        return candidates
    c = query.shape[0]
    covered = torch.bincount(hits, minlength=count).to(query.dtype)
    area = covered / torch.bincount(flat, minlength=count).to(query.dtype)
    debiased = query_debiased.reshape(c, -1).T
    touched = covered > 0
    likeness = cluster_prototypes(debiased, flat, count) @ prototype
    seed = int(torch.nonzero(touched).flatten()[likeness[touched].argmax()])
    plain = cluster_prototypes(query.reshape(c, -1).T, flat, count)
    to_seed = plain @ plain[seed]
    similarity = debiased @ prototype
    mean_similarity = torch.zeros(count, dtype=query.dtype, device=query.device)
    mean_similarity.index_add_(0, flat, similarity)
    mean_similarity = mean_similarity / torch.bincount(flat, minlength=count).to(query.dtype)
    area[seed] = 1.0
    score = mean_similarity * to_seed * area
    return (score > merge_threshold)[labels]
