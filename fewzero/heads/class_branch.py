"""Visual class embedding (VCE) branches of the SM-VCENet family (paper Table 3).

A class branch turns the class-branch input ``I_class`` (the frozen ``B_4`` output) into a
pixel-wise class embedding ``E``. Contract shared by every class branch (zero-shot today,
support-image few-shot later): ``forward(i_class (B, in_channels, h, w)) -> (B, out_channels, h, w)``
and an ``out_channels`` attribute, so [`ClassComparisonModule`][fewzero.heads.ClassComparisonModule] can be sized
from it.

* VCE: ``E = ReLU(conv1x1(I))`` (``C`` channels).
* M-VCE: ``E = f(O_M)``, ``O_M`` the pyramid pooling of ``I`` and ``f`` the ``5C -> C`` compressor
  (``C`` channels).
* SM-VCE: ``E = cat(F_M, f(O_M))`` with ``F_M`` the non-local output (``2C`` channels).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..checks import check_feature_map, check_positive_int
from ..layers import ConvNormAct, PyramidPoolingAttention
from .sam import SpatialAttentionModule

__all__ = ["VisualClassEmbedding"]


class VisualClassEmbedding(nn.Module):
    """Visual class embedding branch with optional MAM and SAM.

    Shapes:
        input ``(B, in_channels, h, w)`` -> output ``(B, out_channels, h, w)`` with
        ``out_channels = 2C`` when ``sam`` else ``C``.

    Args:
        in_channels: Channels of ``I_class``.
        channels: Width ``C``. Defaults to ``in_channels`` (the paper: no reduction); a smaller
            value adds a 1x1 reduction of ``I_class``.
        mam: Use the multi-scale attention module (pyramid pooling).
        sam: Use the spatial attention module (requires ``mam``, as in the paper's ablation).
        bins: Pyramid bins of MAM.
        attention: Non-local kind of SAM, ``"channel"`` (default, the paper's equations) or
            ``"spatial"``.
        reduction: Non-local channel reduction of SAM.
        pooled_projection: Use the exact pooled projection in MAM (faster, same numbers).
        impl: Non-local implementation, ``"auto"``, ``"sdpa"`` or ``"matmul"``.

    Examples:
        >>> import torch
        >>> branch = VisualClassEmbedding(16, mam=True, sam=True)
        >>> branch(torch.randn(2, 16, 7, 7)).shape
        torch.Size([2, 32, 7, 7])
    """

    def __init__(
        self,
        in_channels: int,
        channels: int | None = None,
        mam: bool = True,
        sam: bool = True,
        bins: Sequence[int] = (1, 2, 3, 6),
        attention: str = "channel",
        reduction: int = 2,
        pooled_projection: bool = True,
        impl: str = "auto",
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        c = in_channels if channels is None else check_positive_int("channels", channels)
        if sam and not mam:
            raise ValueError(
                "sam=True requires mam=True (SAM attends over MAM's output), got mam=False"
            )
        self.channels = c
        self.reduce: nn.Module = (
            nn.Identity() if c == in_channels else ConvNormAct(in_channels, c, 1)
        )
        if mam:
            self.compress: nn.Module = PyramidPoolingAttention(
                c, bins=bins, project_channels=c, pooled_projection=pooled_projection
            )
        else:
            self.compress = ConvNormAct(c, c, 1)
        self.sam = (
            SpatialAttentionModule(c, reduction=reduction, attention=attention, impl=impl)
            if sam
            else None
        )
        self.out_channels = self.output_channels(in_channels, channels, sam)

    @staticmethod
    def output_channels(in_channels: int, channels: int | None = None, sam: bool = True) -> int:
        """``out_channels`` of a branch built with these arguments (``2C`` with SAM, else ``C``)."""
        c = in_channels if channels is None else channels
        return 2 * c if sam else c

    def forward(self, i_class: torch.Tensor) -> torch.Tensor:
        """Return the class embedding ``(B, out_channels, h, w)`` of ``I_class``."""
        check_feature_map(i_class, self.in_channels, name="i_class")
        x = self.compress(self.reduce(i_class))
        return x if self.sam is None else self.sam(x)
