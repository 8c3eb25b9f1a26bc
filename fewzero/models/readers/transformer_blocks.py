"""Transformer blocks: bodies over timm's intermediate-layer API (``FeatureGetterNet``)."""

from __future__ import annotations

import torch
from torch import nn

from .base import BodyReader, Walk

__all__ = ["TransformerBlocks"]


class TransformerBlocks(BodyReader):
    """Plain ViTs and kin: blocks ``n/4 + 1`` .. ``n`` (1-based) through ``forward_intermediates``.

    The levels' blocks are the ones up to each selected index, the first level as many before
    its index as lie between the first two; maps come out before the final norm.
    """

    checked = True

    def __init__(self, body: nn.Module, levels: int) -> None:
        super().__init__(body, levels)
        picks = [int(i) for i in body.out_indices]
        span = picks[1] - picks[0] if len(picks) > 1 else 1
        starts = [max(0, picks[0] - span + 1), *[p + 1 for p in picks[:-1]]]
        self.block_groups = [
            g for g, (a, b) in enumerate(zip(starts, picks)) for _ in range(a, b + 1)
        ]
        self.indices = list(range(starts[0], picks[-1] + 1))

    @classmethod
    def reads(cls, body: nn.Module, levels: int) -> bool:
        """A ``FeatureGetterNet``: ``out_indices`` over a model with ``forward_intermediates``."""
        model = getattr(body, "model", None)
        return hasattr(body, "out_indices") and hasattr(model, "forward_intermediates")

    def walk(self, x: torch.Tensor, taps: str, output_fmt: str) -> Walk:
        """The blocks' outputs (a transformer block has no tap but its output); no low map."""
        maps = self.body.model.forward_intermediates(
            x, indices=self.indices, intermediates_only=True, norm=False, output_fmt=output_fmt
        )
        return None, list(maps), []
