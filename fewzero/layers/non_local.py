"""Non-local blocks: embedded-Gaussian spatial attention and its channel variant.

Papers: Wang et al., "Non-local Neural Networks" (CVPR 2018) for the spatial (``N x N``) block;
the SM-VCENet paper's SAM equations multiply ``F_A (C x N)`` by ``F_B^T (N x C)``, a ``C x C``
channel affinity (as DANet's channel attention), offered here as ``attention="channel"``.

Argument names follow mmcv's ``NonLocal2d`` (``in_channels``, ``reduction``, ``use_scale``,
zero-initialised output convolution). Scale: with ``use_scale=True`` the logits are divided by the
square root of the dimension they are summed over: ``inter_channels`` for spatial attention (as
mmcv and ``scaled_dot_product_attention``; timm's ``NonLocalAttn`` uses ``in_channels`` instead)
and ``N = H * W`` for channel attention.

The default implementation calls ``torch.nn.functional.scaled_dot_product_attention``, whose flash
and memory-efficient kernels never materialise the ``N x N`` affinity (memory linear in ``N``);
``impl="matmul"`` is the explicit ``softmax(Q K^T * scale) V`` reference.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ._validate import check_choice, check_feature_map, check_positive_int

__all__ = ["NonLocalBlock", "dot_product_attention"]


def dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    impl: str = "sdpa",
) -> torch.Tensor:
    """Softmax attention ``softmax(q @ k^T * scale) @ v`` over the last two dimensions.

    Args:
        q: Queries ``(B, L, D)``.
        k: Keys ``(B, S, D)``.
        v: Values ``(B, S, Dv)``.
        scale: Multiplier of the logits.
        impl: ``"sdpa"`` (fused ``scaled_dot_product_attention``) or ``"matmul"`` (reference that
            materialises the ``(B, L, S)`` affinity).

    Returns:
        ``(B, L, Dv)``.
    """
    if impl == "sdpa":
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], scale=scale)
        return out[:, 0]
    attn = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * scale, dim=-1)
    return torch.matmul(attn, v)


class NonLocalBlock(nn.Module):
    """Embedded-Gaussian non-local block over positions (``"spatial"``) or channels.

    ``theta``, ``phi`` and ``g`` are 1x1 convolutions ``C -> C'`` (``C' = inter_channels``); the
    attended map is projected back ``C' -> C`` by ``conv_out`` and added to the input when
    ``residual=True``. With ``zero_init=True`` (default) ``conv_out`` starts at zero, so a fresh
    residual block is the identity.

    * ``attention="spatial"``: affinity ``(N x N)`` between positions, ``N = H * W``.
    * ``attention="channel"``: affinity ``(C' x C')`` between the reduced channels, each channel a
      vector of its ``N`` values (the product written in the SM-VCENet paper).

    Shapes:
        input ``(B, C, H, W)`` -> output ``(B, C, H, W)``.

    Args:
        in_channels: Input (and output) channels ``C``.
        inter_channels: Reduced channels ``C'``; defaults to ``max(in_channels // reduction, 1)``.
        reduction: Channel reduction used when ``inter_channels`` is ``None``.
        attention: ``"spatial"`` or ``"channel"``.
        use_scale: Divide logits by ``sqrt(C')`` (spatial) or ``sqrt(N)`` (channel).
        residual: Return ``x + conv_out(y)``; otherwise ``conv_out(y)``.
        zero_init: Zero-initialise ``conv_out`` (its norm's weight, when a norm is used).
        impl: ``"sdpa"`` (fused kernels, default) or ``"matmul"`` (explicit reference).
        norm_layer: Optional normalisation after ``conv_out`` (``None``: BN-free).

    Raises:
        ValueError: on a non-positive channel count, an unknown ``attention``/``impl``, or an
            input whose rank or channel count does not match.

    Examples:
        >>> import torch
        >>> block = NonLocalBlock(16, attention="spatial")
        >>> x = torch.randn(2, 16, 5, 6)
        >>> torch.equal(block(x), x)  # zero-initialised residual block is the identity
        True
    """

    def __init__(
        self,
        in_channels: int,
        inter_channels: int | None = None,
        reduction: int = 2,
        attention: str = "spatial",
        use_scale: bool = True,
        residual: bool = True,
        zero_init: bool = True,
        impl: str = "sdpa",
        norm_layer: Callable[..., nn.Module] | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        check_positive_int("reduction", reduction)
        if inter_channels is None:
            inter_channels = max(in_channels // reduction, 1)
        self.inter_channels = check_positive_int("inter_channels", inter_channels)
        self.attention = check_choice("attention", attention, ("spatial", "channel"))
        self.impl = check_choice("impl", impl, ("sdpa", "matmul"))
        self.use_scale = use_scale
        self.residual = residual
        self.theta = nn.Conv2d(in_channels, inter_channels, 1)
        self.phi = nn.Conv2d(in_channels, inter_channels, 1)
        self.g = nn.Conv2d(in_channels, inter_channels, 1)
        self.conv_out = nn.Conv2d(inter_channels, in_channels, 1, bias=norm_layer is None)
        self.norm = nn.Identity() if norm_layer is None else norm_layer(in_channels)
        self.out_channels = in_channels
        if zero_init:
            if norm_layer is None:
                nn.init.zeros_(self.conv_out.weight)
                if self.conv_out.bias is not None:
                    nn.init.zeros_(self.conv_out.bias)
            elif getattr(self.norm, "weight", None) is not None:
                nn.init.zeros_(self.norm.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Args:
            x: Feature map ``(B, C, H, W)``.

        Returns:
            ``(B, C, H, W)``.
        """
        check_feature_map(x, self.in_channels)
        b, _, h, w = x.shape
        if self.attention == "spatial":
            # Positions-major layout from the start: one fused projection gives q, k, v as
            # (B, N, C') with unit last stride, which the fused SDPA kernels need (a transposed
            # conv output would send SDPA to its math fallback, which materialises N x N).
            weight = torch.cat([self.theta.weight, self.phi.weight, self.g.weight]).flatten(1)
            bias = torch.cat([self.theta.bias, self.phi.bias, self.g.bias])
            xt = x.flatten(2).transpose(1, 2)  # (B, N, C) view
            qkv = F.linear(xt, weight, bias)  # (B, N, 3C')
            q, k, v = qkv.split(self.inter_channels, dim=-1)
            scale = self.inter_channels**-0.5 if self.use_scale else 1.0
            y = dot_product_attention(q, k, v, scale, self.impl)  # (B, N, C')
            del qkv, q, k, v  # free before the output projection (lower peak memory)
            w_out = self.conv_out.weight.flatten(1)  # (C, C')
            if self.residual and isinstance(self.norm, nn.Identity):
                # x + W y in one batched GEMM: no separate (B, N, C) projection tensor
                out = torch.baddbmm(xt, y, w_out.t().expand(b, -1, -1))
                if self.conv_out.bias is not None:
                    out = out.add_(self.conv_out.bias)  # in place: baddbmm needs not its output
                return out.transpose(1, 2).unflatten(2, (h, w))  # channels_last strides
            z = F.linear(y, w_out, self.conv_out.bias).transpose(1, 2).unflatten(2, (h, w))
        else:
            q = self.theta(x).flatten(2)  # (B, C', N): channels are the sequence
            k = self.phi(x).flatten(2)
            v = self.g(x).flatten(2)
            scale = q.shape[2] ** -0.5 if self.use_scale else 1.0
            y = dot_product_attention(q, k, v, scale, self.impl)
            z = self.conv_out(y.reshape(b, self.inter_channels, h, w))
        z = self.norm(z)
        return x + z if self.residual else z

    def extra_repr(self) -> str:
        """Summarise the configuration in ``repr``."""
        return (
            f"attention={self.attention!r}, inter_channels={self.inter_channels}, "
            f"use_scale={self.use_scale}, residual={self.residual}, impl={self.impl!r}"
        )
