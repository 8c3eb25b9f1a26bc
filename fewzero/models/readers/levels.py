"""Levels: a body read level by level (HRNet's hooks, a module of your own): its levels are its blocks."""

from __future__ import annotations

import torch
from torch import nn

from .base import BodyReader, Walk

__all__ = ["Levels"]


class Levels(BodyReader):
    """Any body: the three levels are the blocks, and there is no low map."""

    per_block = False
    checked = True

    @classmethod
    def reads(cls, body: nn.Module, levels: int) -> bool:
        """Every body (the registry's last resort)."""
        return True

    def walk(self, x: torch.Tensor, taps: str, output_fmt: str) -> Walk:
        """The body's own forward: its levels."""
        maps = list(self.body(x))[: self.levels]
        return None, maps, maps
