"""SAM's two-way transformer: prompt tokens and image tokens attend to each other in turn.

Written from the Segment Anything paper (Kirillov et al., 2023, §3 and appendix A) with the
parameter names of Meta's files, so that ``mask_decoder.transformer.*`` loads strictly. Each
block runs, in order: self-attention of the tokens, the tokens attending to the image, an MLP
on the tokens, and the image attending to the tokens; each step adds its residual and is
followed by a LayerNorm. Positional encodings are added to queries and keys at every step
(except the first block's self-attention), never to the values. The cross-attentions project to
half the width (``downsample_rate=2``). Attention runs through PyTorch's
``scaled_dot_product_attention``.

Examples:
    >>> import torch
    >>> net = TwoWayTransformer(depth=2, embedding_dim=32, num_heads=2, mlp_dim=64)
    >>> tokens, image = net(torch.randn(3, 32, 4, 4), torch.randn(3, 32, 4, 4), torch.randn(3, 5, 32))
    >>> tuple(tokens.shape), tuple(image.shape)
    ((3, 5, 32), (3, 16, 32))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DownsampledAttention", "TwoWayAttentionBlock", "TwoWayTransformer"]


class DownsampledAttention(nn.Module):
    """Multi-head attention whose queries, keys and values are projected to ``dim / rate``.

    Shapes: ``q (B, Nq, C)``, ``k`` and ``v (B, Nk, C)`` -> ``(B, Nq, C)``.

    Args:
        embedding_dim: ``C``.
        num_heads: Heads; must divide ``C / downsample_rate``.
        downsample_rate: The internal width is ``C // downsample_rate``.
    """

    def __init__(self, embedding_dim: int, num_heads: int, downsample_rate: int = 1) -> None:
        super().__init__()
        internal = embedding_dim // downsample_rate
        if internal % num_heads:
            raise ValueError(
                f"num_heads must divide embedding_dim // downsample_rate = {internal}, got "
                f"{num_heads}"
            )
        self.num_heads = num_heads
        self.q_proj = nn.Linear(embedding_dim, internal)
        self.k_proj = nn.Linear(embedding_dim, internal)
        self.v_proj = nn.Linear(embedding_dim, internal)
        self.out_proj = nn.Linear(internal, embedding_dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attend from ``q`` to ``k``, gathering ``v``."""
        out = F.scaled_dot_product_attention(
            self._heads(self.q_proj(q)), self._heads(self.k_proj(k)), self._heads(self.v_proj(v))
        )
        b, h, n, c = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * c))


class TokenMLP(nn.Module):
    """``lin2(act(lin1(x)))`` (Meta's key names)."""

    def __init__(self, embedding_dim: int, mlp_dim: int) -> None:
        super().__init__()
        self.lin1 = nn.Linear(embedding_dim, mlp_dim)
        self.lin2 = nn.Linear(mlp_dim, embedding_dim)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., C)`` -> ``(..., C)``."""
        return self.lin2(self.act(self.lin1(x)))


class TwoWayAttentionBlock(nn.Module):
    """Token self-attention, tokens to image, token MLP, image to tokens (each with a LayerNorm).

    Args:
        embedding_dim: Token width ``C``.
        num_heads: Attention heads.
        mlp_dim: The token MLP's hidden width.
        attention_downsample_rate: Of the two cross-attentions.
        skip_first_layer_pe: The self-attention neither adds the tokens' encoding nor a residual
            (SAM's first block).
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int = 2048,
        attention_downsample_rate: int = 2,
        skip_first_layer_pe: bool = False,
    ) -> None:
        super().__init__()
        rate = attention_downsample_rate
        self.self_attn = DownsampledAttention(embedding_dim, num_heads)
        self.norm1 = nn.LayerNorm(embedding_dim)
        self.cross_attn_token_to_image = DownsampledAttention(embedding_dim, num_heads, rate)
        self.norm2 = nn.LayerNorm(embedding_dim)
        self.mlp = TokenMLP(embedding_dim, mlp_dim)
        self.norm3 = nn.LayerNorm(embedding_dim)
        self.norm4 = nn.LayerNorm(embedding_dim)
        self.cross_attn_image_to_token = DownsampledAttention(embedding_dim, num_heads, rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        query_pe: torch.Tensor,
        key_pe: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``queries (B, Nq, C)``, ``keys (B, Nk, C)`` and their encodings -> both updated."""
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp(queries))
        q, k = queries + query_pe, keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """SAM's mask-decoder transformer: ``depth`` two-way blocks, then tokens to image once more.

    Shapes:
        ``image (B, C, h, w)``, ``image_pe (B, C, h, w)``, ``tokens (B, N, C)`` -> tokens
        ``(B, N, C)`` and image tokens ``(B, h w, C)``.

    Args:
        depth: Two-way blocks (SAM: 2).
        embedding_dim: ``C`` (SAM: 256).
        num_heads: Attention heads (SAM: 8).
        mlp_dim: The token MLP's hidden width (SAM: 2048).
        attention_downsample_rate: Of the cross-attentions (SAM: 2).
    """

    def __init__(
        self,
        depth: int,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        attention_downsample_rate: int = 2,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(
                embedding_dim, num_heads, mlp_dim, attention_downsample_rate, i == 0
            )
            for i in range(depth)
        )
        self.final_attn_token_to_image = DownsampledAttention(
            embedding_dim, num_heads, attention_downsample_rate
        )
        self.norm_final_attn = nn.LayerNorm(embedding_dim)

    def forward(
        self, image: torch.Tensor, image_pe: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the blocks (the module's page and the class docstring give the shapes)."""
        keys = image.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, key_pe)
        q, k = queries + tokens, keys + key_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys
