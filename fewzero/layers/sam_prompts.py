"""SAM's prompt encoder: points, boxes and masks as tokens and a dense map for the mask decoder.

Written from the Segment Anything paper (§3, appendix A) with the parameter names of Meta's
files, so that ``prompt_encoder.*`` loads strictly. A point ``(x, y)`` in input pixels is moved
to its pixel's centre (``+ 0.5``), scaled to ``[0, 1]`` by the input size and encoded with
random Fourier features (a fixed Gaussian matrix, a buffer of Meta's file); a learned embedding
is added for its label (0 negative, 1 positive; -1 a padding point, whose encoding is replaced
by ``not_a_point_embed``). Points without a box get one padding point. A mask prompt is
downscaled by two strided convolutions; without one, every cell gets ``no_mask_embed``.

Examples:
    >>> import torch
    >>> enc = SamPromptEncoder(32, (8, 8), (128, 128), mask_in_chans=16)
    >>> sparse, dense = enc(points=(torch.tensor([[[10.0, 20.0]]]), torch.ones(1, 1)))
    >>> tuple(sparse.shape), tuple(dense.shape), tuple(enc.dense_positions().shape)
    ((1, 2, 32), (1, 32, 8, 8), (1, 32, 8, 8))
"""

from __future__ import annotations

import math

import torch
from timm.layers import LayerNorm2d
from torch import nn

__all__ = ["RandomFourierPositions", "SamPromptEncoder"]


class RandomFourierPositions(nn.Module):
    """Positions in ``[0, 1]²`` as ``[sin, cos](2π (2p - 1) G)`` with a fixed Gaussian ``G``.

    Args:
        num_feats: Columns of ``G`` (the encoding has twice as many channels).
    """

    def __init__(self, num_feats: int = 128) -> None:
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, num_feats))

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        """``(..., 2)`` positions in ``[0, 1]`` (x, y) -> ``(..., 2 num_feats)``."""
        projected = 2 * math.pi * ((2 * coords - 1) @ self.positional_encoding_gaussian_matrix)
        return torch.cat([projected.sin(), projected.cos()], dim=-1)

    def grid(self, size: tuple[int, int]) -> torch.Tensor:
        """The encoding of every cell centre of an ``(h, w)`` grid, ``(2 num_feats, h, w)``."""
        h, w = size
        device = self.positional_encoding_gaussian_matrix.device
        ones = torch.ones((h, w), device=device)
        y = (ones.cumsum(dim=0) - 0.5) / h
        x = (ones.cumsum(dim=1) - 0.5) / w
        return self.encode(torch.stack([x, y], dim=-1)).permute(2, 0, 1)

    def points(self, coords: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
        """Pixel positions ``(B, N, 2)`` (x, y) in an ``(H, W)`` image -> ``(B, N, 2 num_feats)``."""
        scale = torch.tensor([image_size[1], image_size[0]], device=coords.device)
        return self.encode(coords.float() / scale)


class SamPromptEncoder(nn.Module):
    """SAM's prompts as sparse tokens ``(B, N, C)`` and a dense map ``(B, C, h, w)``.

    Args:
        embed_dim: ``C`` (SAM: 256).
        image_embedding_size: The image embedding's ``(h, w)`` (SAM: 64 x 64).
        input_image_size: The encoder's padded input ``(H, W)`` (SAM: 1024 x 1024).
        mask_in_chans: Hidden channels of the mask downscaling (SAM: 16).
    """

    def __init__(
        self,
        embed_dim: int = 256,
        image_embedding_size: tuple[int, int] = (64, 64),
        input_image_size: tuple[int, int] = (1024, 1024),
        mask_in_chans: int = 16,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.image_embedding_size = tuple(image_embedding_size)
        self.input_image_size = tuple(input_image_size)
        self.pe_layer = RandomFourierPositions(embed_dim // 2)
        self.point_embeddings = nn.ModuleList(nn.Embedding(1, embed_dim) for _ in range(4))
        self.not_a_point_embed = nn.Embedding(1, embed_dim)
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, mask_in_chans // 4, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans // 4),
            nn.GELU(),
            nn.Conv2d(mask_in_chans // 4, mask_in_chans, kernel_size=2, stride=2),
            LayerNorm2d(mask_in_chans),
            nn.GELU(),
            nn.Conv2d(mask_in_chans, embed_dim, kernel_size=1),
        )
        self.no_mask_embed = nn.Embedding(1, embed_dim)

    def dense_positions(self) -> torch.Tensor:
        """The image embedding's positional encoding ``(1, C, h, w)``."""
        return self.pe_layer.grid(self.image_embedding_size)[None]

    def embed_points(self, coords: torch.Tensor, labels: torch.Tensor, pad: bool) -> torch.Tensor:
        """Points ``(B, N, 2)`` (x, y pixels) and labels ``(B, N)`` -> ``(B, N (+1), C)``."""
        coords = coords + 0.5
        if pad:
            b = coords.shape[0]
            coords = torch.cat([coords, coords.new_zeros(b, 1, 2)], dim=1)
            labels = torch.cat([labels, labels.new_full((b, 1), -1)], dim=1)
        encoded = self.pe_layer.points(coords, self.input_image_size)
        labels = labels[..., None]
        encoded = torch.where(labels == -1, self.not_a_point_embed.weight, encoded)
        encoded = encoded + (labels == 0) * self.point_embeddings[0].weight
        return encoded + (labels == 1) * self.point_embeddings[1].weight

    def embed_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """Boxes ``(B, 4)`` (x0, y0, x1, y1 pixels) -> two corner tokens ``(B, 2, C)``."""
        corners = self.pe_layer.points((boxes + 0.5).reshape(-1, 2, 2), self.input_image_size)
        weights = torch.cat([self.point_embeddings[2].weight, self.point_embeddings[3].weight])
        return corners + weights

    def forward(
        self,
        points: tuple[torch.Tensor, torch.Tensor] | None = None,
        boxes: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The prompts' tokens ``(B, N, C)`` and dense map ``(B, C, h, w)``.

        Args:
            points: ``(coords (B, N, 2), labels (B, N))``.
            boxes: ``(B, 4)``.
            masks: ``(B, 1, 4h, 4w)`` mask logits.
        """
        given = next((t for t in (points and points[0], boxes, masks) if t is not None), None)
        b = 1 if given is None else given.shape[0]
        device = self.no_mask_embed.weight.device
        parts = [torch.empty((b, 0, self.embed_dim), device=device)]
        if points is not None:
            parts.append(self.embed_points(points[0], points[1], pad=boxes is None))
        if boxes is not None:
            parts.append(self.embed_boxes(boxes))
        if masks is not None:
            dense = self.mask_downscaling(masks)
        else:
            h, w = self.image_embedding_size
            dense = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(b, -1, h, w)
        return torch.cat(parts, dim=1), dense
