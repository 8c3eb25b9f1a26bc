"""Agglomerative clustering of feature vectors by cosine distance (average linkage).

INSID3 splits a query's patches into regions this way: clusters merge, closest first by the mean
cosine distance between their members, while that distance is below ``1 - tau``. SciPy's
hierarchical clustering (a well-kept, exact implementation) builds the tree; the cut keeps the
merges strictly below the threshold, as scikit-learn's ``distance_threshold`` does.

Examples:
    >>> import torch
    >>> x = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]]), dim=1)
    >>> cosine_clusters(x, tau=0.6).tolist()
    [0, 0, 1]
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

__all__ = ["cosine_clusters"]


def cosine_clusters(features: torch.Tensor, tau: float) -> torch.Tensor:
    """Average-linkage clusters of ``features`` whose cosine distances stay below ``1 - tau``.

    Args:
        features: ``(N, C)`` L2-normalised vectors.
        tau: Cosine similarity in ``(-1, 1]`` two clusters must exceed on average to merge.

    Returns:
        ``(N,)`` long labels ``0 .. K-1`` on ``features``' device, in the tree's order.

    Raises:
        ValueError: ``features`` not ``(N, C)`` or ``tau`` out of range.
    """
    if features.dim() != 2:
        raise ValueError(f"features must be (N, C), got shape {tuple(features.shape)}")
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not -1.0 < tau <= 1.0:
        raise ValueError(f"tau must be a cosine similarity in (-1, 1], got {tau!r}")
    n = features.shape[0]
    if n < 2:
        return torch.zeros(n, dtype=torch.long, device=features.device)
    distance = (1.0 - (features @ features.T).clamp(-1, 1)).cpu().numpy()
    condensed = squareform(distance, force="tovector", checks=False)  # rows i < j, row-major
    tree = linkage(condensed.astype(np.float64), method="average")
    below = np.nextafter(np.float64(1.0 - tau), -np.inf)  # merges strictly below 1 - tau
    flat = fcluster(tree, t=below, criterion="distance")
    return torch.from_numpy(np.unique(flat, return_inverse=True)[1].astype(np.int64)).to(
        features.device
    )
