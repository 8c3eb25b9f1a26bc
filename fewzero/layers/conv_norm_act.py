"""Convolution followed by an optional normalisation and an optional activation.

The building brick of every fewzero head. Layers are BN-free by default (``norm_layer=None``): in
zero- and few-shot segmentation each sample of a batch may target a different class, and batch
statistics smear that signal (SM-VCENet paper, "Class comparison module").
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from torch import nn

from ..checks import check_positive_int

__all__ = ["ConvNormAct", "make_act"]

LayerFactory = Callable[..., nn.Module]


ACTIVATIONS: dict[str, LayerFactory] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "mish": nn.Mish,
    "hardswish": nn.Hardswish,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "identity": nn.Identity,
}
"""The activations [make_act][fewzero.layers.make_act] builds by name."""


def make_act(act_layer: LayerFactory | str | None) -> nn.Module:
    """Instantiate ``act_layer``: a class such as ``nn.ReLU``, a name of [ACTIVATIONS][fewzero.layers.ACTIVATIONS], or ``None`` (``nn.Identity``).

    Raises:
        ValueError: for an unknown name (with the close ones); ``TypeError`` for a value that
            is neither a name nor callable.

    Examples:
        >>> make_act("gelu")
        GELU(approximate='none')
    """
    if act_layer is None:
        return nn.Identity()
    if isinstance(act_layer, str):
        if act_layer not in ACTIVATIONS:
            close = difflib.get_close_matches(act_layer, list(ACTIVATIONS), n=2)
            hint = f" (did you mean {close}?)" if close else ""
            raise ValueError(
                f"act_layer must be one of {sorted(ACTIVATIONS)} or an nn.Module class, got "
                f"{act_layer!r}{hint}"
            )
        act_layer = ACTIVATIONS[act_layer]
    if not callable(act_layer):
        raise TypeError(
            f"act_layer must be a class such as nn.ReLU, a name such as 'relu', or None, got "
            f"{act_layer!r}"
        )
    return act_layer()


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
        check_positive_int("stride", stride)
        check_positive_int("dilation", dilation)
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
