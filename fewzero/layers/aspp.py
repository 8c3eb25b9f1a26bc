"""Atrous spatial pyramid pooling (ASPP), BN-free by default.

Paper: Chen et al., "Rethinking Atrous Convolution for Semantic Image Segmentation" (DeepLabv3,
2017). SM-VCENet's class comparison module ends with it. Without a norm layer the image-pooling
branch works at batch size 1 (no "Expected more than 1 value per channel" failure).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import as_int_tuple, check_feature_map, check_positive_int
from .conv_norm_act import ConvNormAct

__all__ = ["ASPP"]


class ASPP(nn.Module):
    """DeepLabv3 ASPP: a 1x1 branch, one dilated 3x3 branch per rate, and image pooling.

    The branch outputs are concatenated and projected by a 1x1 convolution to ``out_channels``.

    A 3x3 branch whose rate is at least the map's height and width (rate 12 and 18 on the
    12x12 grid of a 96 px input at stride 8) reads only zero padding outside its centre tap;
    it runs as the 1x1 convolution with the centre weights, which is the same function (equal
    to rounding, same gradients) at a ninth of the cost.

    Shapes:
        input ``(B, in_channels, H, W)`` -> output ``(B, out_channels, H, W)``.

    Args:
        in_channels: Input channels.
        out_channels: Channels of every branch and of the output.
        rates: Dilation rates of the 3x3 branches.
        image_pooling: Add the global-average-pooling branch.
        norm_layer: Normalisation class or ``None`` (default, BN-free).
        act_layer: Activation class.
        dropout: Dropout probability after the projection.

    Examples:
        >>> import torch
        >>> ASPP(8, 4, rates=(1, 2))(torch.randn(1, 8, 5, 5)).shape
        torch.Size([1, 4, 5, 5])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 256,
        rates: Sequence[int] | int = (6, 12, 18),
        image_pooling: bool = True,
        norm_layer: Callable[..., nn.Module] | None = None,
        act_layer: Callable[..., nn.Module] | None = nn.ReLU,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        self.rates = as_int_tuple("rates", rates)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        kw = dict(norm_layer=norm_layer, act_layer=act_layer)
        branches = [ConvNormAct(in_channels, out_channels, 1, **kw)]
        branches += [
            ConvNormAct(in_channels, out_channels, 3, dilation=r, **kw) for r in self.rates
        ]
        self.branches = nn.ModuleList(branches)
        self.pool = ConvNormAct(in_channels, out_channels, 1, **kw) if image_pooling else None
        n = len(branches) + (1 if image_pooling else 0)
        self.project = ConvNormAct(n * out_channels, out_channels, 1, **kw)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply ASPP to ``x`` ``(B, in_channels, H, W)``; returns ``(B, out_channels, H, W)``."""
        check_feature_map(x, self.in_channels)
        outs = [self._branch(branch, x) for branch in self.branches]
        if self.pool is not None:
            pooled = self.pool(x.mean(dim=(2, 3), keepdim=True))
            outs.append(pooled.expand(-1, -1, x.shape[2], x.shape[3]))
        return self.dropout(self.project(torch.cat(outs, dim=1)))

    @staticmethod
    def _branch(branch: ConvNormAct, x: torch.Tensor) -> torch.Tensor:
        conv = branch.conv
        h, w = x.shape[-2:]
        if (
            conv.kernel_size == (3, 3)
            and conv.stride == (1, 1)
            and conv.dilation[0] >= h
            and conv.dilation[1] >= w
        ):
            y = F.conv2d(x, conv.weight[:, :, 1:2, 1:2], conv.bias)
            for layer in list(branch)[1:]:  # the norm and activation after the convolution
                y = layer(y)
            return y
        return branch(x)
