"""Spatial attention module (SAM) of SM-VCENet.

SAM compresses the multi-scale feature ``O_M`` (``5C -> C``, the compressor's first stage), runs a
non-local block with three ``C -> C/2`` branches, recovers ``C/2 -> C`` and returns
``E = cat(F_M, f(O_M))`` with ``2C`` channels (paper, "Class branch").

In [`VisualClassEmbedding`][fewzero.heads.VisualClassEmbedding] the compressor's first stage is fused into the
pyramid pooling (``PyramidPoolingAttention(project_channels=C)``, an exact rewrite), so SAM there
receives the compressed ``C``-channel map; pass ``in_channels`` to include the compressor here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..checks import check_feature_map
from ..layers import ConvNormAct, NonLocalBlock

__all__ = ["SpatialAttentionModule"]


class SpatialAttentionModule(nn.Module):
    """SAM: (optional compressor) -> non-local -> ``cat(F_M, compressed)``.

    Shapes:
        input ``(B, in_channels, h, w)`` -> output ``(B, 2 * channels, h, w)``.

    Args:
        channels: Width ``C`` of the compressed feature.
        in_channels: Input width (``5C`` for MAM's concatenation). ``None`` or ``channels``: the
            input is already compressed and no compressor is built.
        reduction: Non-local channel reduction (``C -> C / reduction``; the paper uses 2).
        attention: ``"channel"`` (the paper's equations, ``C/2 x C/2`` affinity) or
            ``"spatial"`` (Wang et al.'s ``N x N`` affinity).
        use_scale: Scale the affinity logits (see [`NonLocalBlock`][fewzero.layers.NonLocalBlock]).
        impl: ``"auto"``, ``"sdpa"`` or ``"matmul"`` (see [`NonLocalBlock`][fewzero.layers.NonLocalBlock]).
        act_layer: Activation of the compressor.

    Examples:
        >>> import torch
        >>> SpatialAttentionModule(8, in_channels=40)(torch.randn(2, 40, 5, 5)).shape
        torch.Size([2, 16, 5, 5])
    """

    def __init__(
        self,
        channels: int,
        in_channels: int | None = None,
        reduction: int = 2,
        attention: str = "channel",
        use_scale: bool = True,
        impl: str = "auto",
        act_layer: Callable[..., nn.Module] | None = nn.ReLU,
    ) -> None:
        super().__init__()
        in_channels = channels if in_channels is None else in_channels
        self.in_channels = in_channels
        self.channels = channels
        self.compressor: nn.Module = (
            nn.Identity()
            if in_channels == channels
            else ConvNormAct(in_channels, channels, 1, act_layer=act_layer)
        )
        self.non_local = NonLocalBlock(
            channels,
            reduction=reduction,
            attention=attention,
            use_scale=use_scale,
            residual=False,
            zero_init=False,
            impl=impl,
        )
        self.out_channels = 2 * channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``cat(F_M, f(x))`` ``(B, 2C, h, w)``."""
        check_feature_map(x, self.in_channels)
        x = self.compressor(x)
        return torch.cat([self.non_local(x), x], dim=1)
