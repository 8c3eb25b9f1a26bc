"""The one episode encoder: a function over query and supports, in one pass when it can.

Every few-shot model (SM-VCENet, HSNet, DCAMA, the prototype baseline) encodes an episode the
same way: the supports ``(B, K, 3, H', W')`` are flattened episode-major to ``B * K`` images,
and one backbone pass runs over query and supports together when their sizes match (two
passes otherwise). The query's features are computed once for its K shots: a model that
compares shot by shot repeats them ([Episode.one_shot][fewzero.heads.comparisons.Episode.one_shot]).
A frozen backbone reads both halves from its feature cache, as any call does.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["encode_pair"]


def encode_pair(
    run: Callable[[torch.Tensor], list[torch.Tensor]],
    query: torch.Tensor,
    support: torch.Tensor | None,
) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
    """``run`` over ``query`` and ``support``: one call on both when their shapes match.

    Args:
        run: Maps a batch ``(N, ...)`` to a list of maps ``(N, ...)`` (a backbone, a branch).
        query: ``(B, ...)``.
        support: ``(B * K, ...)`` (episode-major), or ``None`` (the query alone).

    Returns:
        ``run(query)`` and ``run(support)`` (``None`` without a support).

    Examples:
        >>> import torch
        >>> q, s = encode_pair(lambda x: [2 * x], torch.ones(1, 3), torch.zeros(2, 3))
        >>> q[0].tolist(), s[0].tolist()
        ([[2.0, 2.0, 2.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    """
    if support is None:
        return run(query), None
    if support.shape[1:] == query.shape[1:]:
        b = query.shape[0]
        both = run(torch.cat([query, support]))
        return [x[:b] for x in both], [x[b:] for x in both]
    return run(query), run(support)
