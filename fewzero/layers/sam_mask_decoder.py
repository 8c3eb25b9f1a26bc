"""SAM's mask decoder: prompt tokens and an image embedding to mask logits and IoU estimates.

Written from the Segment Anything paper (§3, appendix A) with the parameter names of Meta's
files, so that ``mask_decoder.*`` loads strictly. An IoU token and ``num_multimask_outputs + 1``
mask tokens are put before the prompt tokens; the [two-way
transformer][fewzero.layers.two_way_transformer.TwoWayTransformer] runs over them and the image
embedding (plus the dense prompt); the image tokens are upscaled 4x by two transposed
convolutions, and each mask token's MLP gives the weights of its mask over those channels.
Token 0's mask is the single-mask answer; tokens 1.. are the three ambiguity-aware ones.

Examples:
    >>> import torch
    >>> dec = SamMaskDecoder(transformer_dim=32, num_heads=2, mlp_dim=64, iou_head_hidden_dim=32)
    >>> masks, iou = dec(torch.randn(1, 32, 8, 8), torch.randn(1, 32, 8, 8),
    ...                  torch.randn(5, 2, 32), torch.randn(5, 32, 8, 8), multimask_output=False)
    >>> tuple(masks.shape), tuple(iou.shape)
    ((5, 1, 32, 32), (5, 1))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d
from torch import nn

from .two_way_transformer import TwoWayTransformer

__all__ = ["SamMaskDecoder", "StackedLinear"]


class StackedLinear(nn.Module):
    """``num_layers`` linear layers with ReLU between them (``layers.i`` in Meta's files)."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        widths = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., input_dim)`` -> ``(..., output_dim)``."""
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return self.layers[-1](x)


class SamMaskDecoder(nn.Module):
    """Mask logits ``(N, M, 4h, 4w)`` and IoU estimates ``(N, M)`` from prompts and an image.

    Args:
        transformer_dim: Token and image-embedding width ``C`` (SAM: 256).
        num_multimask_outputs: Ambiguity-aware masks (SAM: 3).
        transformer_depth: Two-way blocks (SAM: 2).
        num_heads: Their attention heads (SAM: 8).
        mlp_dim: Their token MLP's hidden width (SAM: 2048).
        iou_head_depth: Layers of the IoU head (SAM: 3).
        iou_head_hidden_dim: Its hidden width (SAM: 256).
    """

    def __init__(
        self,
        transformer_dim: int = 256,
        num_multimask_outputs: int = 3,
        transformer_depth: int = 2,
        num_heads: int = 8,
        mlp_dim: int = 2048,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
    ) -> None:
        super().__init__()
        c = transformer_dim
        self.transformer = TwoWayTransformer(transformer_depth, c, num_heads, mlp_dim)
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = nn.Embedding(1, c)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, c)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(c, c // 4, kernel_size=2, stride=2),
            LayerNorm2d(c // 4),
            nn.GELU(),
            nn.ConvTranspose2d(c // 4, c // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(
            StackedLinear(c, c, c // 8, 3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = StackedLinear(
            c, iou_head_hidden_dim, self.num_mask_tokens, iou_head_depth
        )

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decode every prompt against its image.

        Args:
            image_embeddings: ``(1, C, h, w)`` (one image, every prompt) or ``(N, C, h, w)``.
            image_pe: ``(1, C, h, w)``.
            sparse_prompt_embeddings: ``(N, T, C)``.
            dense_prompt_embeddings: ``(N, C, h, w)`` (or ``(1, C, h, w)``).
            multimask_output: The three ambiguity-aware masks instead of the single one.
        """
        n = sparse_prompt_embeddings.shape[0]
        own = torch.cat([self.iou_token.weight, self.mask_tokens.weight])
        tokens = torch.cat([own.expand(n, -1, -1), sparse_prompt_embeddings], dim=1)
        src = image_embeddings.expand(n, -1, -1, -1) + dense_prompt_embeddings
        pos = image_pe.expand(n, -1, -1, -1)
        b, c, h, w = src.shape
        hs, src = self.transformer(src, pos, tokens)
        upscaled = self.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
        hyper = torch.stack(
            [mlp(hs[:, 1 + i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        b, c, h, w = upscaled.shape
        masks = (hyper @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
        iou = self.iou_prediction_head(hs[:, 0])
        keep = slice(1, None) if multimask_output else slice(0, 1)
        return masks[:, keep], iou[:, keep]
