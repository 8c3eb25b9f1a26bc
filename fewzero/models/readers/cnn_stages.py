"""CNN stages: a stem, then ``blocks`` of ``nn.Sequential`` stages (timm's EfficientNet, MobileNet)."""

from __future__ import annotations

import torch
from torch import nn

from ..block_taps import read_block
from .base import BodyReader, Walk

__all__ = ["CnnStages"]


def stage_outputs(body: nn.Module) -> list[int] | None:
    """The stage index of each level in a stem-and-``blocks`` body, else ``None``."""
    blocks = getattr(body, "blocks", None)
    info = getattr(body, "feature_info", None)
    if (
        not isinstance(blocks, nn.Sequential)
        or not all(isinstance(stage, nn.Sequential) for stage in blocks)
        or getattr(body, "feature_hooks", None) is not None
        or not hasattr(info, "module_name")
    ):
        return None
    names = list(info.module_name())
    picks = [n.split(".", 1)[1] for n in names if n.startswith("blocks.")]
    if len(picks) != len(names) or not all(p.isdigit() for p in picks):
        return None
    return [int(p) for p in picks]


class CnnStages(BodyReader):
    """Every block of ``F_2``'s stage and of the stages up to ``F_3``'s and ``F_4``'s.

    13 blocks for EfficientNet-Lite0, as ResNet-50's 13 bottlenecks. The low map is the output
    of the stem and the stages before ``F_2``'s.
    """

    def __init__(self, body: nn.Module, levels: int) -> None:
        super().__init__(body, levels)
        stages = stage_outputs(body)
        assert stages is not None
        self.stages = stages
        firsts = [stages[0], *[s + 1 for s in stages[:-1]]]
        self.block_groups = [
            g
            for g, (a, b) in enumerate(zip(firsts, stages))
            for stage in range(a, b + 1)
            for _ in range(len(body.blocks[stage]))
        ]
        self.per_block = len(self.block_groups) > levels

    @classmethod
    def reads(cls, body: nn.Module, levels: int) -> bool:
        """A stem and ``blocks`` of sequential stages whose features are stage outputs."""
        return stage_outputs(body) is not None

    def low_path(self) -> list[nn.Module]:
        """The stem's modules and the stages before ``F_2``'s."""
        modules = []
        for name, module in self.body.named_children():
            if name == "blocks":
                break
            modules.append(module)
        return modules + list(self.body.blocks[: self.stages[0]])

    def walk(self, x: torch.Tensor, taps: str, output_fmt: str) -> Walk:
        """The stem and early stages, then block by block; each stage's end is a level's."""
        x = low = self.run_low(x)
        feats, ends = [], []
        first = self.stages[0]
        for stage in self.body.blocks[first : self.stages[-1] + 1]:
            for block in stage:
                tap, x = read_block(taps, block, x)
                feats.append(tap)
            ends.append(x)
        return low, feats, [ends[s - first] for s in self.stages]
