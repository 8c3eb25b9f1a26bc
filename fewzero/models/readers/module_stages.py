"""Module stages: timm's ``FeatureListNet`` bodies, modules in order, each stage by its kind."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..block_taps import read_block
from .base import BodyReader, Walk

__all__ = ["ModuleStages", "stage_parts"]


def stage_parts(module: nn.Module) -> tuple[nn.Module | None, nn.Sequential] | None:
    """A stage to read block by block: what runs before its blocks, and the blocks; else ``None``.

    ``nn.Sequential`` stages (ResNet's layers) and stages of a ``downsample`` then ``blocks``
    (timm's Swin and ConvNeXt). A stage that is one module otherwise is one map.
    """
    if isinstance(module, nn.Sequential):
        return None, module
    blocks = getattr(module, "blocks", None)
    before = getattr(module, "downsample", None)
    if isinstance(blocks, nn.Sequential) and isinstance(before, nn.Module) and len(blocks):
        return before, blocks
    return None


class ModuleStages(BodyReader):
    """``FeatureListNet`` bodies (ResNet, RegNet, DenseNet, ConvNeXt, Swin, ...).

    The modules run in order; a stage that is a sequence of blocks is read block by block, a
    stage that is one module gives one map. The low map is the last map before ``F_2``'s stage.
    """

    def __init__(self, body: nn.Module, levels: int) -> None:
        super().__init__(body, levels)
        groups: list[int] = []
        for g, name in enumerate(body.return_layers):
            parts = stage_parts(body[name])
            groups += [g] * (len(parts[1]) if parts is not None else 1)
        self.block_groups = groups
        self.per_block = len(groups) > levels

    @classmethod
    def reads(cls, body: nn.Module, levels: int) -> bool:
        """A timm ``FeatureDictNet`` (or ``FeatureListNet``) returning ``levels`` layers."""
        from timm.models import FeatureDictNet

        return isinstance(body, FeatureDictNet) and len(body.return_layers) == levels

    def low_path(self) -> list[nn.Module]:
        """The modules before the first returned layer."""
        first = next(iter(self.body.return_layers))
        modules = []
        for name, module in self.body.items():
            if name == first:
                return modules
            modules.append(module)
        return []

    def walk(self, x: torch.Tensor, taps: str, output_fmt: str) -> Walk:
        """The modules in order; the blocks of sequential stages read where ``taps`` says."""
        names = list(self.body.return_layers)
        low: Any = None  # the last map before F_2's stage
        feats: list[Any] = []
        ends: list[Any] = []
        for name, module in self.body.items():
            parts = stage_parts(module)
            if parts is None:  # one module, one map
                x = module(x)
                found = [x]
            else:
                before, blocks = parts
                x = before(x) if before is not None else x
                found = []
                for block in blocks:
                    tap, x = read_block(taps, block, x)
                    found.append(tap)
                found = found or [x]
            if name not in names:
                low = found[-1] if not feats else low
                continue
            feats += found
            ends.append(x)
            if name == names[-1]:
                break
        return low, feats, ends
