"""Where a comparison's outputs enter fewzero: checked against what it declares, by name.

A comparison of your own ([Comparison][fewzero.heads.comparisons.Comparison]) declares its
``out_channels`` and whether it gives a ``residual``; [checked_output][fewzero.heads.comparisons.boundary.checked_output]
holds what it returns to that, so a slip in user code is reported naming the comparison and the
fix, not as a failure deep in the decoder or as silently wrong logits:

* ``forward`` returns ``(maps, residual)``;
* ``maps`` is ``None`` exactly when ``out_channels == 0``, else ``(N, out_channels, h, w)`` on
  the decoder's grid;
* ``residual`` is ``None`` unless ``residual = True``, then ``(N, 2, h', w')``;
* both are finite (checked for comparisons defined outside fewzero, not under
  ``torch.compile`` or export: it reads the values).
"""

from __future__ import annotations

from typing import Any

import torch

from ...checks import is_exporting
from ..episode import Episode

__all__ = ["check_declared_sources", "checked_output"]


def check_declared_sources(comparison: Any, sources: tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming ``comparison`` if it declares a source fewzero has not."""
    for side in ("query_reads", "support_reads"):
        unknown = [s for s in getattr(comparison, side) if s not in sources]
        if unknown:
            raise ValueError(
                f"comparison {comparison.name or type(comparison).__name__!r} declares "
                f"{side}={tuple(getattr(comparison, side))}, of which {unknown} is no source: "
                f"read some of {sources}"
            )


def _name(comparison: Any) -> str:
    return repr(comparison.name or type(comparison).__name__)


def checked_output(comparison: Any, output: Any, episode: Episode) -> tuple[Any, Any]:
    """``comparison``'s ``(maps, residual)``, checked against its declarations.

    Raises:
        TypeError: for an output that is not a ``(maps, residual)`` pair.
        ValueError: for maps or a residual of the wrong shape, channels or grid, given where
            none is declared, or holding NaN/Inf.
    """
    name = _name(comparison)
    if not isinstance(output, tuple) or len(output) != 2:
        raise TypeError(
            f"comparison {name}'s forward must return (maps, residual), each a tensor or None, "
            f"got a {type(output).__name__}; return (maps, None) for maps alone"
        )
    maps, residual = output
    batch = _batch(episode)
    if comparison.out_channels == 0 and maps is not None:
        raise ValueError(
            f"comparison {name} returned maps but declares out_channels=0: declare their "
            "channels, or return None"
        )
    if comparison.out_channels and maps is None:
        raise ValueError(
            f"comparison {name} declares out_channels={comparison.out_channels} but returned no "
            "maps (None)"
        )
    if maps is not None:
        want = (batch, comparison.out_channels, *episode.size)
        if not isinstance(maps, torch.Tensor) or tuple(maps.shape) != want:
            got = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
            raise ValueError(
                f"comparison {name}'s maps must be {want} (batch, its out_channels, the "
                f"decoder's grid), got {got}; resample onto episode.size with episode.align(x)"
            )
    if residual is not None:
        if not comparison.residual:
            raise ValueError(
                f"comparison {name} returned a residual but declares residual=False: declare "
                "residual = True, or return None"
            )
        if not isinstance(residual, torch.Tensor) or residual.dim() != 4 or (
            tuple(residual.shape[:2]) != (batch, 2)
        ):
            got = tuple(residual.shape) if isinstance(residual, torch.Tensor) else type(residual)
            raise ValueError(
                f"comparison {name}'s residual must be ({batch}, 2, h, w) (background and "
                f"foreground terms), got {got}"
            )
    if not type(comparison).__module__.startswith("fewzero.") and _reads_values():
        for what, x in (("maps", maps), ("residual", residual)):
            if x is not None and not bool(torch.isfinite(x).all()):
                raise ValueError(f"comparison {name}'s {what} hold NaN or Inf")
    return maps, residual


def _batch(episode: Episode) -> int:
    query = next(iter(episode.query.values()))
    return int((query[0] if isinstance(query, list) else query).shape[0])


def _reads_values() -> bool:
    return not (is_exporting() or torch.compiler.is_compiling())
