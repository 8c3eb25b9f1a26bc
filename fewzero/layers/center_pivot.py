"""HSNet's center-pivot 4D convolution (Min et al., ICCV 2021).

A 4D convolution over a correlation tensor ``(B, C, Hq, Wq, Hs, Ws)`` (query positions x support
positions) costs ``k^4`` per output; HSNet keeps only the kernel taps through the *center
pivots*: those whose support offset is the centre (a 2D kernel over the query pair of dimensions)
and those whose query offset is the centre (a 2D kernel over the support pair). The layer is the
sum of two 2D convolutions, equal to a dense 4D convolution whose kernel is zero off the two
center-pivot planes (its very centre weight is the sum of the two 2D kernels' centres).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..checks import check_positive_int

__all__ = ["CenterPivotConv4d"]


def _pair(name: str, value: int | Sequence[int]) -> tuple[int, int]:
    pair = tuple(value) if isinstance(value, Sequence) else (value, value)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in pair):
        raise ValueError(f"{name} must be a positive int or a pair of them, got {value!r}")
    return pair  # type: ignore[return-value]


class CenterPivotConv4d(nn.Module):
    """Center-pivot 4D convolution: a 2D convolution over each pair of dimensions, summed.

    Shapes:
        ``(B, C_in, Hq, Wq, Hs, Ws)`` -> ``(B, C_out, ceil(Hq / s_q), ceil(Wq / s_q),
        ceil(Hs / s_s), ceil(Ws / s_s))``, with "same" zero padding (``k // 2``, odd ``k``).

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        kernel_size: Odd kernel side of the query pair and of the support pair (an int, or
            ``(k_query, k_support)``).
        stride: Stride over the query pair and over the support pair (an int, or
            ``(s_query, s_support)``); HSNet strides the support pair only, ``(1, 2)``.
        bias: Add a bias (each 2D convolution has one; they are summed).

    Where a stride is set, the convolution over the other pair reads the center pivots at the
    strided positions (``0, s, 2s, ...``), exactly where a dense strided 4D convolution would
    centre its kernel. HSNet's code strides the support pair only; striding the query pair is
    our generalisation, with the same center-pivot rule.

    Examples:
        >>> import torch
        >>> conv = CenterPivotConv4d(2, 4, kernel_size=3, stride=(1, 2))
        >>> conv(torch.randn(1, 2, 5, 6, 7, 8)).shape
        torch.Size([1, 4, 5, 6, 4, 4])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Sequence[int] = 3,
        stride: int | Sequence[int] = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        self.out_channels = check_positive_int("out_channels", out_channels)
        kq, ks = _pair("kernel_size", kernel_size)
        if kq % 2 == 0 or ks % 2 == 0:
            raise ValueError(f"kernel_size must be odd (a centre pivot), got {kernel_size!r}")
        self.kernel_size = (kq, ks)
        self.stride = _pair("stride", stride)
        sq, ss = self.stride
        self.query_conv = nn.Conv2d(in_channels, out_channels, kq, sq, kq // 2, bias=bias)
        self.support_conv = nn.Conv2d(in_channels, out_channels, ks, ss, ks // 2, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the convolution.

        Args:
            x: Correlation tensor ``(B, C_in, Hq, Wq, Hs, Ws)``.

        Returns:
            ``(B, C_out, Hq', Wq', Hs', Ws')`` (see the class docstring).
        """
        if x.dim() != 6 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"x must be (B, {self.in_channels}, Hq, Wq, Hs, Ws), got {tuple(x.shape)}"
            )
        sq, ss = self.stride
        b, c = x.shape[:2]
        # over the query pair, at the support positions the strided output keeps
        pivots = x[..., ::ss, ::ss]
        hs, ws = pivots.shape[-2:]
        q_in = pivots.permute(0, 4, 5, 1, 2, 3).reshape(b * hs * ws, c, *x.shape[2:4])
        q_out = self.query_conv(q_in)
        hq, wq = q_out.shape[-2:]
        q_out = q_out.view(b, hs, ws, -1, hq, wq).permute(0, 3, 4, 5, 1, 2)
        # over the support pair, at the query positions the strided output keeps
        pivots = x[:, :, ::sq, ::sq]
        s_in = pivots.permute(0, 2, 3, 1, 4, 5).reshape(b * hq * wq, c, *x.shape[4:6])
        s_out = self.support_conv(s_in)
        s_out = s_out.view(b, hq, wq, -1, *s_out.shape[-2:]).permute(0, 3, 1, 2, 4, 5)
        return q_out + s_out

    def extra_repr(self) -> str:
        """Summarise the configuration in ``repr``."""
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
