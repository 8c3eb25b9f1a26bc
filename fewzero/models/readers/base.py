"""What a body reader is, and the registry that picks one for a body."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

__all__ = [
    "READERS",
    "BodyReader",
    "Walk",
    "check_walk",
    "dry_run",
    "reader_for",
    "register_reader",
]

Walk = tuple[Any, list[Any], list[Any]]
"""``(low, blocks, ends)``: the map before ``F_2``'s stage (or ``None``), every block's map, and
each level's output (what the body's own forward returns there, for the check)."""


class BodyReader(ABC):
    """How one kind of body is read block by block.

    Args:
        body: The feature model (timm's ``features_only`` model, or a module of your own).
        levels: How many levels the backbone reads (3, or 2 without the last stage).

    Attributes:
        block_groups: The level (0: ``F_2``'s stage, 1: ``F_3``'s, 2: ``F_4``'s) of each map
            [walk][fewzero.models.readers.BodyReader.walk] returns.
        per_block: Whether blocks are read one by one (else the levels are the blocks).
        checked: Whether the block-by-block walk is trusted as it is (``False``: the backbone
            checks on a dry run that the blocks add up to their levels, and reads the levels
            otherwise).
    """

    per_block: bool = True
    checked: bool = False

    def __init__(self, body: nn.Module, levels: int) -> None:
        self.body, self.levels = body, levels
        self.block_groups: list[int] = list(range(levels))

    @classmethod
    @abstractmethod
    def reads(cls, body: nn.Module, levels: int) -> bool:
        """Whether this reader reads ``body``."""

    @abstractmethod
    def walk(self, x: torch.Tensor, taps: str, output_fmt: str) -> Walk:
        """Run the body block by block; blocks read where ``taps`` says."""

    def low_path(self) -> list[nn.Module]:
        """The body's modules before ``F_2``'s stage, in order (empty: none)."""
        return []

    def run_low(self, x: torch.Tensor) -> torch.Tensor:
        """The map just before ``F_2``'s stage."""
        for module in self.low_path():
            x = module(x)
        return x


READERS: list[type[BodyReader]] = []
"""The registered readers, in the order they are asked."""


def register_reader(reader: type[BodyReader], first: bool = False) -> type[BodyReader]:
    """Register a reader (asked after the others, or before them with ``first``).

    Raises:
        ValueError: for a class registered twice.
    """
    if reader in READERS:
        raise ValueError(f"reader {reader.__name__} is already registered")
    READERS.insert(0, reader) if first else READERS.append(reader)
    return reader


def reader_for(body: nn.Module, levels: int) -> BodyReader:
    """The first registered reader that reads ``body``.

    Raises:
        ValueError: when none does (the fallback reader reads every body).
    """
    for reader in READERS:
        if reader.reads(body, levels):
            return reader(body, levels)
    raise ValueError(f"no registered body reader reads a {type(body).__name__}")


def dry_run(body: nn.Module, side: int, run: Callable[[torch.Tensor], Any]) -> Any:
    """``run`` on a zero ``side`` x ``side`` image with ``body`` in eval mode (no statistics change)."""
    training = body.training
    body.eval()
    with torch.no_grad():
        maps = run(torch.zeros(1, 3, side, side))
    body.train(training)
    return maps


def _blocks_fit(maps: Sequence[object], groups: Sequence[int], nhwc: bool) -> bool:
    """Whether block-by-block maps are tensors, each on the grid of its level's last map."""
    if not all(isinstance(m, torch.Tensor) for m in maps):
        return False
    grids = [tuple(m.shape[1:3] if nhwc else m.shape[-2:]) for m in maps]  # type: ignore[union-attr]
    last = {g: grids[i] for i, g in enumerate(groups)}
    return len(grids) == len(groups) and all(grids[i] == last[g] for i, g in enumerate(groups))


def check_walk(
    reader: BodyReader, taps: str, output_fmt: str, side: int
) -> tuple[list[int], int | None] | None:
    """A reader's contract on a dry run: its blocks add up to the levels the body returns.

    The walk's maps must be tensors on their level's grid, and each level must end where the
    body's own forward does. Returns the blocks' widths and the skip map's (``None``: none), or
    ``None`` where the walk fails the contract (the body is then read level by level).
    """
    try:
        low, maps, ends = dry_run(reader.body, side, lambda x: reader.walk(x, taps, output_fmt))
    except Exception:  # a stage whose blocks cannot run on their own (layout changes)
        return None
    nhwc = output_fmt == "NHWC"
    if not _blocks_fit(maps, reader.block_groups, nhwc):
        return None
    levels = dry_run(reader.body, side, lambda x: list(reader.body(x))[: reader.levels])
    if len(ends) != len(levels) or not all(
        isinstance(e, torch.Tensor) and e.shape == f.shape and torch.allclose(e, f, atol=1e-4)
        for e, f in zip(ends, levels)
    ):
        return None
    widths = [int(m.shape[-1 if nhwc else 1]) for m in maps]
    skip = int(low.shape[-1 if nhwc else 1]) if isinstance(low, torch.Tensor) else None
    return widths, skip
