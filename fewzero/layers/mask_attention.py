"""Mask attention: query-to-support attention whose values are the support mask (DCAMA).

DCAMA (Shi et al., ECCV 2022) gives every query position the support mask's value averaged over
all support positions, weighted by the softmax of their feature similarity: a pixel-level
"how foreground is what I look like". Multi-head (the heads' outputs are averaged, as DCAMA's
code does); K shots are one longer key sequence, so the shots' order cannot matter.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_numbers, check_positive_int
from .positional import sine_positional_encoding

__all__ = ["MaskAttention", "attend_one_channel"]


class MaskAttention(nn.Module):
    """Attention from query positions to support positions with the support mask as the value.

    Shapes:
        ``query (B, C, Hq, Wq)``, ``support (B, K, C, Hs, Ws)``, ``support_masks (B, K, H, W)``
        -> ``(B, 1, Hq, Wq)`` in ``[0, 1]``.

    Args:
        channels: ``C`` of the features.
        heads: Attention heads; ``channels`` must be a multiple (default ``None``: the largest
            divisor of ``channels`` up to 8, DCAMA's 8 where the width allows).
        project: Learnt linear query/key projections (DCAMA's); ``False`` attends on the
            features themselves (training-free).
        mask_resize: How the mask reaches the support grid: ``"area"`` (the fraction of each
            cell that is foreground) or ``"bilinear"`` (``align_corners=True``, DCAMA's).
        positional: Add [sine encodings][fewzero.layers.sine_positional_encoding]
            of the flattened positions to queries and keys before the projections (DCAMA's;
            each shot's keys numbered from 0). Off by default: the positions of a query and of
            a support image are unrelated.
        dropout: In training, dropout on the (encoded) queries and keys and on the attention
            weights (DCAMA: 0.5).

    Ignore pixels (255) count as background. A support set without any foreground gives 0
    everywhere: every value is 0, whatever the attention.

    Examples:
        >>> import torch
        >>> att = MaskAttention(8, heads=2)
        >>> masks = torch.zeros(1, 3, 32, 32, dtype=torch.long)
        >>> masks[..., :16, :] = 1
        >>> att(torch.randn(1, 8, 4, 5), torch.randn(1, 3, 8, 4, 4), masks).shape
        torch.Size([1, 1, 4, 5])
    """

    def __init__(
        self,
        channels: int,
        heads: int | None = None,
        project: bool = True,
        mask_resize: str = "area",
        positional: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if mask_resize not in _MASK_RESIZE:
            raise ValueError(
                f"mask_resize must be one of {sorted(_MASK_RESIZE)}, got {mask_resize!r}"
            )
        self.mask_resize = mask_resize
        self.positional = bool(positional)
        check_numbers("MaskAttention", {"dropout": "probability"}, {"dropout": dropout})
        self.dropout = float(dropout)
        self.channels = check_positive_int("channels", channels)
        if heads is None:
            heads = max(h for h in range(1, 9) if channels % h == 0)
        self.heads = check_positive_int("heads", heads)
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be a multiple of heads ({heads})")
        self.query_proj: nn.Module = nn.Linear(channels, channels) if project else nn.Identity()
        self.key_proj: nn.Module = nn.Linear(channels, channels) if project else nn.Identity()

    def forward(
        self, query: torch.Tensor, support: torch.Tensor, support_masks: torch.Tensor
    ) -> torch.Tensor:
        """Return the attended mask ``(B, 1, Hq, Wq)`` (see the class docstring)."""
        if query.dim() != 4 or query.shape[1] != self.channels:
            raise ValueError(f"query must be (B, {self.channels}, H, W), got {tuple(query.shape)}")
        b = query.shape[0]
        if support.dim() != 5 or support.shape[:1] != (b,) or support.shape[2] != self.channels:
            raise ValueError(
                f"support must be ({b}, K, {self.channels}, H', W'), got {tuple(support.shape)}"
            )
        k = support.shape[1]
        if support_masks.dim() != 4 or tuple(support_masks.shape[:2]) != (b, k):
            raise ValueError(
                f"support_masks must be ({b}, {k}, H, W), got {tuple(support_masks.shape)}"
            )
        hq, wq = query.shape[-2:]
        hs, ws = support.shape[-2:]
        heads, d = self.heads, self.channels // self.heads
        q = query.flatten(2).transpose(1, 2)  # (B, Nq, C)
        keys = support.permute(0, 1, 3, 4, 2).reshape(b, k, hs * ws, -1)  # (B, K, Ns, C)
        if self.positional:
            pe = sine_positional_encoding(max(hq * wq, hs * ws), self.channels, query.device)
            q = q + pe[: hq * wq].to(q.dtype)
            keys = keys + pe[: hs * ws].to(keys.dtype)
        p = self.dropout if self.training else 0.0
        q = self.query_proj(F.dropout(q, p, self.training))
        keys = self.key_proj(F.dropout(keys.reshape(b, k * hs * ws, -1), p, self.training))
        fg = (support_masks == 1).to(q.dtype).flatten(0, 1)[:, None]
        value = _MASK_RESIZE[self.mask_resize](fg, (hs, ws)).reshape(b, k * hs * ws, 1)
        q = q.view(b, -1, heads, d).transpose(1, 2).reshape(b * heads, -1, d)
        keys = keys.view(b, -1, heads, d).transpose(1, 2).reshape(b * heads, -1, d)
        value = value.repeat_interleave(heads, dim=0)
        out = attend_one_channel(q, keys, value.to(q.dtype), d**-0.5, p)
        return out.view(b, heads, hq, wq).mean(dim=1, keepdim=True)

    def extra_repr(self) -> str:
        """Summarise the configuration in ``repr``."""
        return (
            f"channels={self.channels}, heads={self.heads}, mask_resize={self.mask_resize!r}, "
            f"positional={self.positional}"
        )


_LOWEST_EXP = -87.0
"""exp(-87) = 1.65e-38: the smallest exponent whose float32 exp is still a normal number."""


def attend_one_channel(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    dropout: float = 0.0,
    block: int = 1 << 22,
) -> torch.Tensor:
    """``softmax(q k^T scale) v`` for a value of one channel, a block of queries at a time.

    Shapes:
        ``q (B, L, D)``, ``k (B, S, D)``, ``v (B, S, 1)`` -> ``(B, L, 1)``.

    The softmax is normalised after the product: ``(e @ [v, 1])`` gives the weighted sum and
    the normaliser in one product (``e = exp(q k^T scale - max)``), one pass over the weights
    fewer than a softmax; queries are taken in blocks of about ``block`` weights, so memory
    stays bounded at any size. Exponents below -87 are raised to -87, so no weight is a float32
    subnormal (whose arithmetic costs many times a normal number's on x86): each such weight is
    below 1.7e-38 against a normaliser of at least 1. ``dropout`` (training) drops normalised weights, as attention
    dropout does.

    Examples:
        >>> import torch
        >>> q, k, v = torch.randn(2, 5, 4), torch.randn(2, 7, 4), torch.rand(2, 7, 1)
        >>> ref = torch.softmax(q @ k.transpose(1, 2) / 2, dim=-1) @ v
        >>> torch.allclose(attend_one_channel(q, k, v, 0.5), ref, atol=1e-6)
        True
    """
    rows = max(1, block // max(1, q.shape[0] * k.shape[1]))
    both = torch.cat([v, torch.ones_like(v)], dim=-1)
    keys = k.transpose(1, 2)
    outs = []
    for i in range(0, q.shape[1], rows):
        e = torch.bmm(q[:, i : i + rows] * scale, keys)
        # exp below -87 would give float32 subnormals, whose arithmetic is many times slower on
        # x86; at most 1.7e-38 of a normaliser of at least 1, they cannot change the result
        e = e.sub_(e.detach().amax(dim=-1, keepdim=True)).clamp_(min=_LOWEST_EXP).exp_()
        if dropout:
            outs.append(torch.bmm(F.dropout(e, dropout), v) / e.sum(dim=-1, keepdim=True))
        else:
            sums = torch.bmm(e, both)
            outs.append(sums[..., :1] / sums[..., 1:])
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)


def _bilinear(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(mask, size=size, mode="bilinear", align_corners=True)


_MASK_RESIZE = {"area": F.adaptive_avg_pool2d, "bilinear": _bilinear}
