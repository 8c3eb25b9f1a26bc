"""Heads of the language-model-based zero-shot baselines (L-ZSSS) that the paper compares with.

* [`SemanticProjection`][fewzero.heads.SemanticProjection] — SPNet (Xian et al., CVPR 2019): pixel features projected into the
  word-embedding space and scored against fixed class word vectors.
* [`VariationalClassEmbedding`][fewzero.heads.VariationalClassEmbedding] — ZSVM (Kato et al., ICCVW 2019): a variational mapping from
  a class word vector to a visual class embedding, compared with the query feature.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_feature_map, check_numbers, check_positive_int

__all__ = ["SemanticProjection", "VariationalClassEmbedding"]


class SemanticProjection(nn.Module):
    """Score projected pixel features against a class word vector and a learnt background vector.

    Shapes:
        ``features (B, D, h, w)`` (already projected to the word dimension ``D``) and
        ``class_vectors (B, D)`` -> logits ``(B, 2, h, w)`` (background, class).

    Args:
        embedding_dim: Word-vector dimension ``D``.
        init_scale: Initial temperature multiplying the cosine-normalised class vectors.

    Examples:
        >>> import torch
        >>> head = SemanticProjection(8)
        >>> head(torch.randn(2, 8, 5, 5), torch.randn(2, 8)).shape
        torch.Size([2, 2, 5, 5])
    """

    def __init__(self, embedding_dim: int, init_scale: float = 1.0) -> None:
        super().__init__()
        self.embedding_dim = check_positive_int("embedding_dim", embedding_dim)
        check_numbers("SemanticProjection", {"init_scale": "positive_float"}, {"init_scale": init_scale})
        self.background = nn.Parameter(torch.randn(embedding_dim) * 0.02)
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)))

    def forward(self, features: torch.Tensor, class_vectors: torch.Tensor) -> torch.Tensor:
        """Return ``(B, 2, h, w)`` logits: ``<phi, bg>`` and ``<phi, w_c>`` (unit-norm vectors)."""
        check_feature_map(features, self.embedding_dim, name="features")
        if class_vectors.shape != (features.shape[0], self.embedding_dim):
            raise ValueError(
                f"class_vectors must be ({features.shape[0]}, {self.embedding_dim}), got "
                f"{tuple(class_vectors.shape)}"
            )
        w = F.normalize(class_vectors.to(features.dtype), dim=-1) * self.log_scale.exp()
        bg = F.normalize(self.background.to(features.dtype), dim=0) * self.log_scale.exp()
        fg_logit = torch.einsum("bdhw,bd->bhw", features, w)
        bg_logit = torch.einsum("bdhw,d->bhw", features, bg)
        return torch.stack([bg_logit, fg_logit], dim=1)


class VariationalClassEmbedding(nn.Module):
    """Map a word vector to a Gaussian over visual class embeddings (ZSVM).

    In training the embedding is sampled (reparameterisation, ``mu + sigma * eps``); in
    evaluation it is the mean ``mu``, so test predictions are deterministic. ``kl`` is
    ``KL(N(mu, sigma^2) || N(0, I))`` averaged over the batch.

    Shapes:
        ``word_vectors (B, D)`` -> ``(embedding (B, out_channels), kl ())``.

    Args:
        embedding_dim: Word-vector dimension ``D``.
        out_channels: Visual class-embedding width.
        hidden: Hidden width of the mapping.

    Examples:
        >>> import torch
        >>> z, kl = VariationalClassEmbedding(8, 4).eval()(torch.randn(3, 8))
        >>> z.shape, kl.shape
        (torch.Size([3, 4]), torch.Size([]))
    """

    def __init__(self, embedding_dim: int, out_channels: int = 256, hidden: int = 512) -> None:
        super().__init__()
        self.embedding_dim = check_positive_int("embedding_dim", embedding_dim)
        self.out_channels = check_positive_int("out_channels", out_channels)
        check_positive_int("hidden", hidden)
        self.mlp = nn.Sequential(nn.Linear(embedding_dim, hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, out_channels)
        self.logvar = nn.Linear(hidden, out_channels)

    def forward(self, word_vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the (sampled or mean) class embedding and the KL term."""
        if word_vectors.dim() != 2 or word_vectors.shape[1] != self.embedding_dim:
            raise ValueError(
                f"word_vectors must be (B, {self.embedding_dim}), got {tuple(word_vectors.shape)}"
            )
        h = self.mlp(word_vectors)
        mu, logvar = self.mu(h), self.logvar(h).clamp(-10.0, 10.0)
        kl = -0.5 * torch.mean(torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1))
        if self.training:
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        else:
            z = mu
        return z, kl
