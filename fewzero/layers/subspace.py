"""Removing a subspace from feature maps: INSID3's positional debiasing of a frozen ViT.

A ViT's patch tokens carry where a patch is as well as what it shows. INSID3 estimates the
"where" directions from an image with no content (a black image, every patch alike): the
leading left singular vectors of its centred, L2-normalised tokens span them. Projecting the
features onto the orthogonal complement of that span, and normalising again, leaves what a
patch shows, so that matching across images stops favouring patches at the same place.

Examples:
    >>> import torch
    >>> tokens = torch.nn.functional.normalize(torch.randn(1, 8, 4, 4), dim=1)
    >>> basis = principal_subspace(tokens, 2)
    >>> tuple(basis.shape), tuple(remove_subspace(tokens, basis).shape)
    ((8, 2), (1, 8, 4, 4))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..checks import check_tensor

__all__ = ["principal_subspace", "remove_subspace"]


def principal_subspace(features: torch.Tensor, components: int) -> torch.Tensor:
    """The ``components`` leading directions of ``features`` over all positions.

    Args:
        features: ``(B, C, h, w)`` maps (INSID3: L2-normalised tokens of a black image).
        components: How many directions, ``1 <= components < C``.

    Returns:
        ``(C, components)`` orthonormal columns: the left singular vectors of the ``(C, B h w)``
        matrix of the features, centred over the positions, by decreasing singular value.

    Raises:
        ValueError: ``components`` not in ``[1, C)`` (removing every direction leaves nothing).
    """
    c = features.shape[1]
    if isinstance(components, bool) or not isinstance(components, int) or not 1 <= components < c:
        raise ValueError(
            f"components must be an int in [1, {c}) for {c}-channel features (removing all "
            f"{c} directions leaves nothing to match), got {components!r}"
        )
    e = features.permute(1, 0, 2, 3).reshape(c, -1)
    e = e - e.mean(dim=1, keepdim=True)
    u, _, _ = torch.linalg.svd(e, full_matrices=False)
    return u[:, :components].contiguous()


def remove_subspace(features: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """``features`` projected off the span of ``basis`` and L2-normalised over the channels.

    Args:
        features: ``(N, C, h, w)``.
        basis: ``(C, k)`` orthonormal columns ([principal_subspace][fewzero.layers.subspace.principal_subspace]).

    Returns:
        ``(N, C, h, w)``: ``normalize((I - basis basisᵀ) x)`` at every position.
    """
    check_tensor("features", features, dims=4)
    n, c, h, w = features.shape
    basis = basis.to(features)
    keep = torch.eye(c, device=features.device, dtype=features.dtype) - basis @ basis.T
    projected = torch.matmul(keep.unsqueeze(0), features.reshape(n, c, h * w))
    return F.normalize(projected.reshape(n, c, h, w), p=2, dim=1)
