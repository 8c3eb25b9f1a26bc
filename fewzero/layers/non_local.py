"""Non-local blocks: embedded-Gaussian spatial attention and its channel variant.

Papers: Wang et al., "Non-local Neural Networks" (CVPR 2018) for the spatial (``N x N``) block;
the SM-VCENet paper's SAM equations multiply ``F_A (C x N)`` by ``F_B^T (N x C)``, a ``C x C``
channel affinity (as DANet's channel attention), offered here as ``attention="channel"``.

Argument names follow mmcv's ``NonLocal2d`` (``in_channels``, ``reduction``, ``use_scale``,
zero-initialised output convolution). Scale: with ``use_scale=True`` the logits are divided by the
square root of the dimension they are summed over: ``inter_channels`` for spatial attention (as
mmcv and ``scaled_dot_product_attention``; timm's ``NonLocalAttn`` uses ``in_channels`` instead)
and ``N = H * W`` for channel attention.

Spatial attention calls ``torch.nn.functional.scaled_dot_product_attention``, whose flash and
memory-efficient kernels never materialise the ``N x N`` affinity (memory linear in ``N``).
Channel attention (head dimension ``N``, which no fused kernel takes) runs as two batched matmuls
in the autocast dtype with the softmax in fp32. ``impl="matmul"`` is the explicit
``softmax(Q K^T * scale) V`` reference for both.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..checks import (
    check_choice,
    check_feature_map,
    check_numbers,
    check_positive_int,
    is_exporting,
)

__all__ = ["NonLocalBlock", "dot_product_attention"]


def dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    scale: float,
    impl: str = "sdpa",
    dropout: float = 0.0,
) -> torch.Tensor:
    """Softmax attention ``softmax(q @ k^T * scale) @ v`` over the last two dimensions.

    Args:
        q: Queries ``(B, L, D)``.
        k: Keys ``(B, S, D)``.
        v: Values ``(B, S, Dv)``.
        scale: Multiplier of the logits.
        impl: ``"sdpa"`` (fused ``scaled_dot_product_attention``) or ``"matmul"``: explicit
            batched matmuls in the input dtype (the autocast dtype under autocast) with the
            softmax in fp32, materialising the ``(B, L, S)`` affinity.
        dropout: Dropout probability on the attention weights (pass 0 outside training).

    Returns:
        ``(B, L, Dv)`` in the dtype of ``v`` (of the matmuls under autocast).
    """
    check_choice("impl", impl, ("sdpa", "matmul"))
    if not (is_exporting() or torch.compiler.is_compiling()):  # a traced scale is a tensor
        check_numbers("dot_product_attention", {"scale": "positive_float", "dropout": "probability"},
                      {"scale": scale, "dropout": dropout})  # fmt: skip
    return _attend(q, k, v, scale, impl, dropout)


def _attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, impl: str, dropout: float
) -> torch.Tensor:
    """[dot_product_attention][fewzero.layers.dot_product_attention] on checked arguments."""
    if impl == "sdpa":
        out = F.scaled_dot_product_attention(
            q[:, None], k[:, None], v[:, None], scale=scale, dropout_p=dropout
        )
        return out[:, 0]
    logits = torch.bmm(q, k.transpose(1, 2))
    wide = torch.promote_types(logits.dtype, torch.float32)  # fp32 for half types, fp64 stays
    attn = torch.softmax(logits.to(wide) * scale, dim=-1).to(logits.dtype)
    return torch.bmm(F.dropout(attn, dropout) if dropout else attn, v)


def _fused_kernel_accepts(q: torch.Tensor) -> bool:
    """Whether SDPA has a fused (flash / memory-efficient) kernel for this head dimension.

    CUDA's fused kernels take head dimensions up to 256 (and their CPU counterpart any); beyond
    that SDPA falls back to its math path, which upcasts half precision to fp32.
    """
    return q.device.type == "cpu" or q.shape[-1] <= 256


def _naive_faster(q: torch.Tensor) -> bool:
    """fp32 spatial attention on CUDA: materialising ``N x N`` is faster while it is small.

    On an H200, SDPA's fp32 kernels ran 0.69-0.82x the speed of the explicit matmul block at
    N = 3600-8100 (commit d4a8e1d, ``benchmarks/results/nvidia-h200-before-d4a8e1d``); the
    explicit path is used there while the affinity fits in 1 GiB.
    """
    if q.device.type != "cuda" or q.dtype != torch.float32 or torch.is_autocast_enabled("cuda"):
        return False
    b, n = q.shape[0], q.shape[1]
    return b * n * n * 4 <= 2**30


class NonLocalBlock(nn.Module):
    """Embedded-Gaussian non-local block over positions (``"spatial"``) or channels.

    One 1x1 projection ``qkv`` gives ``theta``, ``phi`` and ``g`` (``C -> 3C'``,
    ``C' = inter_channels``); the attended map is projected back ``C' -> C`` by ``conv_out`` and
    added to the input when ``residual=True``. With ``zero_init=True`` (default) ``conv_out``
    starts at zero, so a fresh residual block is the identity. Both kinds run in one
    positions-major layout ``(B, N, C)`` (a view of a channels_last input), so no weight is
    concatenated and no feature map is transposed per forward.

    * ``attention="spatial"``: affinity ``(N x N)`` between positions, ``N = H * W``.
    * ``attention="channel"``: affinity ``(C' x C')`` between the reduced channels, each channel a
      vector of its ``N`` values (the product written in the SM-VCENet paper).

    ``impl="auto"`` (default) routes attention through ``scaled_dot_product_attention`` where a
    fused kernel accepts the shape, and through explicit batched matmuls with an fp32 softmax
    elsewhere: spatial attention (head dimension ``C' <= 256``) takes SDPA, except fp32 on CUDA
    while the ``N x N`` affinity fits in 1 GiB; channel attention (head dimension ``N``, beyond
    CUDA's fused kernels) takes the matmuls, except on the CPU outside autocast where SDPA's fused
    CPU kernel accepts it. Under bf16 autocast every matmul so runs in bf16 instead of SDPA's math
    fallback computing in fp32.

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
        impl: ``"auto"`` (default), ``"sdpa"`` (always SDPA) or ``"matmul"`` (explicit reference).
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
        impl: str = "auto",
        norm_layer: Callable[..., nn.Module] | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        check_positive_int("reduction", reduction)
        if inter_channels is None:
            inter_channels = max(in_channels // reduction, 1)
        self.inter_channels = check_positive_int("inter_channels", inter_channels)
        self.attention = check_choice("attention", attention, ("spatial", "channel"))
        self.impl = check_choice("impl", impl, ("auto", "sdpa", "matmul"))
        self.use_scale = use_scale
        self.residual = residual
        self.qkv = nn.Conv2d(in_channels, 3 * inter_channels, 1)
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

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        """Read checkpoints of the earlier layout (separate ``theta``, ``phi``, ``g``)."""
        names = [f"{prefix}{n}.{p}" for n in ("theta", "phi", "g") for p in ("weight", "bias")]
        if f"{prefix}qkv.weight" not in state_dict and all(n in state_dict for n in names):
            for p in ("weight", "bias"):
                parts = [state_dict.pop(f"{prefix}{n}.{p}") for n in ("theta", "phi", "g")]
                state_dict[f"{prefix}qkv.{p}"] = torch.cat(parts)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Args:
            x: Feature map ``(B, C, H, W)``.

        Returns:
            ``(B, C, H, W)`` (channels_last strides).
        """
        check_feature_map(x, self.in_channels)
        h = x.shape[2]
        xt = rearrange(x, "b c h w -> b (h w) c")  # a view for NCHW and NHWC inputs alike
        qkv = F.linear(xt, self.qkv.weight.flatten(1), self.qkv.bias)  # (B, N, 3C')
        q, k, v = qkv.split(self.inter_channels, dim=-1)
        if self.attention == "spatial":
            scale = self.inter_channels**-0.5 if self.use_scale else 1.0
            impl = self.impl
            if impl == "auto":
                impl = "sdpa" if _fused_kernel_accepts(q) and not _naive_faster(q) else "matmul"
            y = _attend(q, k, v, scale, impl, 0.0)  # (B, N, C'): checked at construction
        else:
            # channels are the sequence: (B, C', N) views of the positions-major projections
            qc, kc, vc = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
            scale = q.shape[1] ** -0.5 if self.use_scale else 1.0
            impl = self.impl
            if impl == "auto":  # a fused kernel for head dimension N exists on the CPU only
                fused = _fused_kernel_accepts(qc) and not torch.is_autocast_enabled(qc.device.type)
                impl = "sdpa" if fused else "matmul"
            y = _attend(qc, kc, vc, scale, impl, 0.0).transpose(1, 2)  # (B, N, C')
        del qkv, q, k, v  # free before the output projection (lower peak memory)
        w_out = self.conv_out.weight.flatten(1)  # (C, C')
        if self.residual and isinstance(self.norm, nn.Identity):
            # x + W y in one batched GEMM: no separate (B, N, C) projection tensor
            out = torch.baddbmm(xt.to(y.dtype), y, w_out.t().to(y.dtype).expand(y.shape[0], -1, -1))
            if self.conv_out.bias is not None:
                out = out + self.conv_out.bias.to(out.dtype)
            return rearrange(out, "b (h w) c -> b c h w", h=h)
        z = rearrange(F.linear(y, w_out, self.conv_out.bias), "b (h w) c -> b c h w", h=h)
        z = self.norm(z)
        return x + z if self.residual else z

    def extra_repr(self) -> str:
        """Summarise the configuration in ``repr``."""
        return (
            f"attention={self.attention!r}, inter_channels={self.inter_channels}, "
            f"use_scale={self.use_scale}, residual={self.residual}, impl={self.impl!r}"
        )
