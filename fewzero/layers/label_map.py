"""The label map of class scores: ``torch.argmax`` over the class dimension, by comparisons."""

from __future__ import annotations

import torch

from ..checks import check_tensor, is_exporting

__all__ = ["label_map"]


def label_map(scores: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """Index of the largest score along ``dim``, the first one on ties (``scores.argmax(dim)``).

    The same ``int64`` tensor as ``torch.argmax`` for finite scores, built from one comparison
    per class: on CPU, ``argmax`` over a short, strided class dimension runs as a generic
    reduction, many times slower than these comparisons on segmentation logits
    ``(B, 2, H, W)`` (``benchmarks/label_map.py`` measures both). Non-finite scores are refused
    (outside export and compile, where the check would break the graph).

    Shapes:
        ``scores (..., C, ...)`` with ``C`` at ``dim`` -> ``(..., ...)``, ``dim`` removed.

    Args:
        scores: Class scores (logits or probabilities), ``C >= 1`` along ``dim``.
        dim: The class dimension (negative counts from the end).

    Raises:
        TypeError: for ``scores`` that is not a tensor.
        ValueError: for integer or empty ``scores``, a ``dim`` it does not have, or a NaN or
            Inf score.

    Examples:
        >>> import torch
        >>> from fewzero.layers import label_map
        >>> logits = torch.tensor([[[[0.1, 2.0]], [[0.5, 2.0]]]])  # (1, 2, 1, 2), a tie at the end
        >>> label_map(logits).tolist()
        [[[1, 0]]]
        >>> torch.equal(label_map(logits), logits.argmax(1))
        True
    """
    check_tensor("scores", scores)
    if not -scores.dim() <= dim < scores.dim():
        raise ValueError(
            f"dim must name a dimension of scores, of shape {tuple(scores.shape)}: "
            f"{-scores.dim()} to {scores.dim() - 1}, got {dim}"
        )
    if not (is_exporting() or torch.compiler.is_compiling()) and not torch.isfinite(scores).all():
        raise ValueError(
            f"scores must be finite, got {int((~torch.isfinite(scores)).sum())} NaN/Inf values "
            f"(shape {tuple(scores.shape)})"
        )
    n = scores.shape[dim]
    best = scores.select(dim, 0)
    index = torch.zeros(best.shape, dtype=torch.int64, device=scores.device)
    for c in range(1, n):
        candidate = scores.select(dim, c)
        better = candidate > best
        index.masked_fill_(better, c)
        if c + 1 < n:
            best = torch.maximum(best, candidate)  # the same values as where(better, ...)
    return index
