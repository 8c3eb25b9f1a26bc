"""Convolution followed by an optional normalisation and an optional activation.

The building brick of every fewzero head. Layers are BN-free by default (``norm_layer=None``): in
zero- and few-shot segmentation each sample of a batch may target a different class, and batch
statistics smear that signal (SM-VCENet paper, "Class comparison module").
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..checks import check_positive_int

__all__ = ["ConvNormAct", "make_act"]

LayerFactory = Callable[..., nn.Module]


def make_act(act_layer: LayerFactory | None) -> nn.Module:
    """Instantiate ``act_layer`` (a class such as ``nn.ReLU``) or return ``nn.Identity``."""
    return nn.Identity() if act_layer is None else act_layer()


class ConvNormAct(nn.Sequential):
    """``Conv2d -> norm -> act`` with "same" padding for odd kernels.

    Shapes:
        input ``(B, in_channels, H, W)`` -> output ``(B, out_channels, H', W')`` where
        ``H' = ceil(H / stride)`` for odd ``kernel_size``.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Square kernel size.
        stride: Convolution stride.
        dilation: Dilation; padding grows with it so the size is kept.
        bias: Convolution bias; defaults to ``True`` without a norm layer, ``False`` with one.
        norm_layer: Normalisation class taking the channel count (e.g. ``nn.BatchNorm2d``) or
            ``None`` (default, BN-free).
        act_layer: Activation class or ``None`` for no activation.

    Examples:
        >>> import torch
        >>> ConvNormAct(8, 4, kernel_size=3)(torch.zeros(2, 8, 5, 7)).shape
        torch.Size([2, 4, 5, 7])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        dilation: int = 1,
        bias: bool | None = None,
        norm_layer: LayerFactory | None = None,
        act_layer: LayerFactory | None = nn.ReLU,
    ) -> None:
        check_positive_int("in_channels", in_channels)
        check_positive_int("out_channels", out_channels)
        check_positive_int("kernel_size", kernel_size)
        if bias is None:
            bias = norm_layer is None
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=padding,
                dilation=dilation,
                bias=bias,
            ),
            nn.Identity() if norm_layer is None else norm_layer(out_channels),
            make_act(act_layer),
        )
        self.in_channels = in_channels
        self.out_channels = out_channels

    @property
    def conv(self) -> nn.Conv2d:
        """The convolution."""
        return self[0]  # type: ignore[return-value]
