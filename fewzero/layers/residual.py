"""BN-free basic residual blocks (He et al., "Deep Residual Learning", CVPR 2016).

SM-VCENet's class comparison module compares the query feature with the class embedding through
three of them; every convolution is followed by a ReLU and no normalisation.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..checks import check_feature_map, check_positive_int
from .conv_norm_act import ConvNormAct, make_act

__all__ = ["ResidualBlock", "ResidualStack"]


class ResidualBlock(nn.Module):
    """Basic residual block ``act(x + conv2(act(conv1(x))))`` with two 3x3 convolutions.

    Shapes:
        input ``(B, C, H, W)`` -> output ``(B, C, H, W)``.

    Args:
        channels: Channels ``C``.
        dilation: Dilation of both convolutions.
        norm_layer: Normalisation class or ``None`` (default, BN-free).
        act_layer: Activation class.
        zero_init_last: Zero-initialise the second convolution so that the block starts as
            ``act(x)``.

    Examples:
        >>> import torch
        >>> ResidualBlock(4)(torch.randn(2, 4, 3, 5)).shape
        torch.Size([2, 4, 3, 5])
    """

    def __init__(
        self,
        channels: int,
        dilation: int = 1,
        norm_layer: Callable[..., nn.Module] | None = None,
        act_layer: Callable[..., nn.Module] | None = nn.ReLU,
        zero_init_last: bool = False,
    ) -> None:
        super().__init__()
        self.channels = check_positive_int("channels", channels)
        check_positive_int("dilation", dilation)
        kw = dict(dilation=dilation, norm_layer=norm_layer)
        self.conv1 = ConvNormAct(channels, channels, 3, act_layer=act_layer, **kw)
        self.conv2 = ConvNormAct(channels, channels, 3, act_layer=None, **kw)
        self.act = make_act(act_layer)
        if zero_init_last:
            nn.init.zeros_(self.conv2.conv.weight)
            if self.conv2.conv.bias is not None:
                nn.init.zeros_(self.conv2.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block to ``x`` ``(B, C, H, W)``."""
        check_feature_map(x, self.channels)
        return self.act(x + self.conv2(self.conv1(x)))


class ResidualStack(nn.Sequential):
    """``depth`` [`ResidualBlock`][fewzero.layers.ResidualBlock] in sequence (the CCM uses three).

    Shapes:
        input ``(B, C, H, W)`` -> output ``(B, C, H, W)``.

    Args:
        channels: Channels ``C``.
        depth: Number of blocks.
        **kwargs: Passed to every [`ResidualBlock`][fewzero.layers.ResidualBlock].

    Examples:
        >>> import torch
        >>> len(ResidualStack(4, depth=3))
        3
    """

    def __init__(self, channels: int, depth: int = 3, **kwargs: object) -> None:
        check_positive_int("depth", depth)
        super().__init__(*[ResidualBlock(channels, **kwargs) for _ in range(depth)])  # type: ignore[arg-type]
        self.channels = channels
        self.out_channels = channels
