"""Pyramid pooling attention: SM-VCENet's multi-scale attention module (MAM).

Paper: Cha & Wang, "Zero-Shot Semantic Segmentation via Spatial and Multi-Scale Aware Visual
Class Embedding", eq. 3-5; after the pyramid pooling module of PSPNet (Zhao et al., CVPR 2017).

The input is average-pooled onto ``b x b`` grids for every bin ``b``, each pooled map is upsampled
bilinearly back to ``H x W`` and the maps are concatenated with the input. Unlike PSPNet, no bin
reduces its channels, so the output carries ``(len(bins) + 1) * C`` channels.

With ``project_channels=K`` the module also applies the 1x1 projection (SAM's compressor, the
first stage ``5C -> C``) that follows it in SM-VCENet. A 1x1 convolution and bilinear upsampling
are both linear and upsampling weights sum to one, so
``conv(cat(up(P_1), ..., up(P_k), x)) == sum_k up(conv_k(P_k)) + conv_x(x) + bias``: the pooled
maps are projected at ``b x b`` before being upsampled ("pooled projection"). The result is the
same tensor, computed with about ``(len(bins) + 1)``-times fewer multiply-adds for large maps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..checks import (
    as_int_tuple,
    check_choice,
    check_feature_map,
    check_positive_int,
    check_tensor,
    is_exporting,
)
from .conv_norm_act import make_act

__all__ = ["PyramidPoolingAttention", "adaptive_avg_pool2d_matmul", "pyramid_matrices"]


def _pool_matrix(size: int, bins: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Return the ``(bins, size)`` matrix of adaptive average pooling along one axis.

    Region ``i`` spans ``[floor(i * size / bins), ceil((i + 1) * size / bins))``, the same regions
    as ``torch.nn.functional.adaptive_avg_pool2d``.
    """
    idx = torch.arange(bins, device=device)
    start = torch.div(idx * size, bins, rounding_mode="floor")
    end = torch.div((idx + 1) * size + bins - 1, bins, rounding_mode="floor")
    pos = torch.arange(size, device=device)
    inside = (pos[None, :] >= start[:, None]) & (pos[None, :] < end[:, None])
    return inside.to(dtype) / (end - start).to(dtype)[:, None]


def _upsample_matrix(
    size: int, bins: int, align_corners: bool, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Return the ``(size, bins)`` matrix of 1-D linear interpolation from ``bins`` to ``size``.

    The same weights as ``F.interpolate(mode="bilinear")`` along one axis: source position
    ``(i + 0.5) * bins / size - 0.5`` clamped at 0 (``align_corners=False``) or
    ``i * (bins - 1) / (size - 1)`` (``align_corners=True``), split between its two neighbours.
    """
    i = torch.arange(size, device=device, dtype=torch.float64)
    if align_corners:
        src = i * ((bins - 1) / (size - 1)) if size > 1 else torch.zeros_like(i)
    else:
        src = ((i + 0.5) * (bins / size) - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=bins - 1)
    i1 = (i0 + 1).clamp(max=bins - 1)
    frac = src - i0.to(src.dtype)
    m = torch.zeros(size, bins, dtype=torch.float64, device=device)
    m.scatter_add_(1, i0[:, None], (1 - frac)[:, None])
    m.scatter_add_(1, i1[:, None], frac[:, None])
    return m.to(dtype)


def pyramid_matrices(
    height: int,
    width: int,
    bins: Sequence[int],
    align_corners: bool = False,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooling and upsampling of every pyramid bin as two fixed matrices over positions.

    Adaptive average pooling to ``b x b`` and bilinear upsampling back are linear maps of the
    ``N = height * width`` positions: ``pool = kron(P_h, P_w)`` and ``up = kron(U_h, U_w)``.
    Stacking the bins gives one pooling matrix ``(S, N)`` and one upsampling matrix ``(N, S)``
    with ``S = sum(b * b)``, so the whole pyramid is two GEMMs that run in the autocast dtype.

    Returns:
        ``pool (S, N)`` and ``up (N, S)``; rows/columns of bin ``k`` follow those of bin ``k-1``.
    """
    device = torch.device("cpu") if device is None else torch.device(device)
    pools, ups = [], []
    for b in bins:
        ph = _pool_matrix(height, b, torch.float64, device)
        pw = _pool_matrix(width, b, torch.float64, device)
        uh = _upsample_matrix(height, b, align_corners, torch.float64, device)
        uw = _upsample_matrix(width, b, align_corners, torch.float64, device)
        pools.append(torch.kron(ph, pw))
        ups.append(torch.kron(uh, uw))
    return torch.cat(pools).to(dtype), torch.cat(ups, dim=1).to(dtype)


def _memo_pyramid_matrices(
    memo: dict[tuple, tuple[torch.Tensor, torch.Tensor]],
    height: int,
    width: int,
    bins: tuple[int, ...],
    align_corners: bool,
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``pyramid_matrices``, built once per shape, dtype and device in eager mode, in ``memo``.

    The matrices are constants of the input size; eager forwards reuse them instead of running
    a dozen small kernels each call. ``memo`` belongs to one module (no process-wide state), and
    the matrices are always built as ordinary tensors outside autograd: an entry first made under
    ``torch.inference_mode()`` is still usable by a later training forward. Tracing, export and
    ``torch.compile`` build them in the graph.
    """
    if is_exporting() or torch.compiler.is_compiling():
        return pyramid_matrices(height, width, bins, align_corners, dtype, device)
    key = (height, width, bins, align_corners, dtype, device)
    if key not in memo:
        if len(memo) >= 16:  # many input sizes (e.g. multi-scale evaluation): start over
            memo.clear()
        with torch.inference_mode(False), torch.no_grad():
            memo[key] = pyramid_matrices(height, width, bins, align_corners, dtype, device)
    return memo[key]


def adaptive_avg_pool2d_matmul(x: torch.Tensor, bins: int) -> torch.Tensor:
    """Adaptive average pooling to ``bins x bins`` written as two matrix products.

    Numerically equal to ``F.adaptive_avg_pool2d(x, bins)`` but built from ``matmul`` only, so it
    exports to ONNX for any input size (ONNX has no adaptive pooling with non-dividing sizes).

    Args:
        x: Feature map ``(B, C, H, W)``.
        bins: Output grid size.

    Returns:
        Pooled map ``(B, C, bins, bins)``.
    """
    check_tensor("x", x, dims=4)
    check_positive_int("bins", bins)
    h, w = x.shape[-2:]
    ph = _pool_matrix(int(h), bins, x.dtype, x.device)
    pw = _pool_matrix(int(w), bins, x.dtype, x.device)
    return torch.matmul(torch.matmul(ph, x), pw.transpose(0, 1))


class PyramidPoolingAttention(nn.Module):
    """Multi-scale attention by pyramid pooling (the MAM of SM-VCENet).

    Shapes:
        input ``(B, C, H, W)`` -> output ``(B, out_channels, H, W)`` where ``out_channels`` is
        ``(len(bins) + 1) * C`` without projection and ``project_channels`` with it. ``H`` and
        ``W`` may be smaller than the largest bin; any batch size works (no batch statistics).

    Args:
        in_channels: Channels ``C`` of the input.
        bins: Pooling grid sizes (the paper's pooling ratios 1, 2, 3, 6); an int is one bin.
        project_channels: If given, apply a 1x1 convolution from ``(len(bins) + 1) * C`` to this
            many channels, followed by ``act_layer``.
        act_layer: Activation after the projection (ignored without projection).
        pooled_projection: Compute the projection on the pooled maps before upsampling (exact,
            faster). ``False`` materialises the concatenation first (the literal formula).
        pool_impl: How the un-projected pyramid (``project_channels=None``, and the literal
            ``pooled_projection=False``) pools: ``"adaptive"`` (``F.adaptive_avg_pool2d``),
            ``"matmul"`` (pooling matrices, ONNX-exportable) or ``"auto"`` (matmul while
            tracing/exporting, adaptive otherwise). The pooled projection always runs as the
            fixed-matrix GEMMs of [`pyramid_matrices`][fewzero.layers.pyramid_pooling.pyramid_matrices].
        align_corners: ``align_corners`` of the bilinear upsampling.

    Attributes:
        out_channels: Output channel count.

    Examples:
        >>> import torch
        >>> mam = PyramidPoolingAttention(8)
        >>> mam(torch.randn(2, 8, 5, 7)).shape
        torch.Size([2, 40, 5, 7])
        >>> PyramidPoolingAttention(8, project_channels=4)(torch.randn(1, 8, 3, 3)).shape
        torch.Size([1, 4, 3, 3])
    """

    def __init__(
        self,
        in_channels: int,
        bins: Sequence[int] | int = (1, 2, 3, 6),
        project_channels: int | None = None,
        act_layer: Callable[..., nn.Module] | None = nn.ReLU,
        pooled_projection: bool = True,
        pool_impl: str = "auto",
        align_corners: bool = False,
    ) -> None:
        super().__init__()
        self.in_channels = check_positive_int("in_channels", in_channels)
        bins = as_int_tuple("bins", bins)
        self.bins = bins
        self.pool_impl = check_choice("pool_impl", pool_impl, ("auto", "adaptive", "matmul"))
        self.align_corners = align_corners
        self.pooled_projection = pooled_projection
        # pooling/upsampling matrices per input shape, dtype and device (eager mode only)
        self._matrix_memo: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        cat_channels = (len(bins) + 1) * in_channels
        if project_channels is None:
            self.proj: nn.Conv2d | None = None
            self.act: nn.Module = nn.Identity()
            self.out_channels = cat_channels
        else:
            check_positive_int("project_channels", project_channels)
            self.proj = nn.Conv2d(cat_channels, project_channels, kernel_size=1)
            self.act = make_act(act_layer)
            self.out_channels = project_channels

    def _pool(self, x: torch.Tensor, b: int) -> torch.Tensor:
        if self.pool_impl == "matmul" or (self.pool_impl == "auto" and is_exporting()):
            return adaptive_avg_pool2d_matmul(x, b)
        return F.adaptive_avg_pool2d(x, b)

    def _up(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if x.shape[-2:] == (1, 1):
            return x.expand(-1, -1, size[0], size[1])
        return F.interpolate(x, size=size, mode="bilinear", align_corners=self.align_corners)

    def pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return the pooled maps ``[(B, C, b, b) for b in bins]``."""
        return [self._pool(x, b) for b in self.bins]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply pyramid pooling (and the projection, if any).

        Args:
            x: Feature map ``(B, C, H, W)``.

        Returns:
            ``(B, out_channels, H, W)``.
        """
        check_feature_map(x, self.in_channels)
        size = (int(x.shape[-2]), int(x.shape[-1]))
        if self.proj is not None and self.pooled_projection:
            return self.act(self._pooled_projection(x))
        cat = torch.cat([self._up(p, size) for p in self.pyramid(x)] + [x], dim=1)
        return cat if self.proj is None else self.act(self.proj(cat))

    def _pooled_projection(self, x: torch.Tensor) -> torch.Tensor:
        """``conv_x(x) + sum_k up(conv_k(pool_k(x)))`` as GEMMs over positions.

        One GEMM pools every bin (``(S, N)`` matrix), one small GEMM per bin projects its
        pooled map, one GEMM upsamples and sums all bins (``(N, S)`` matrix). Exact: the same
        weights as adaptive pooling and bilinear upsampling, in another order of summation.
        """
        assert self.proj is not None
        b, c, h, w = x.shape
        n_bins = len(self.bins)
        weight = self.proj.weight.flatten(1)  # (K, (len(bins) + 1) * C)
        pool, up = _memo_pyramid_matrices(
            self._matrix_memo, h, w, self.bins, self.align_corners, x.dtype, x.device
        )
        xt = rearrange(x, "b c h w -> b (h w) c")  # a view for NCHW and NHWC inputs
        pooled = torch.matmul(pool, xt)  # (B, S, C): every bin's pooled map, positions-major
        projected = []
        start = 0
        for i, size in enumerate(self.bins):
            rows = pooled[:, start : start + size * size]
            projected.append(F.linear(rows, weight[:, i * c : (i + 1) * c]))
            start += size * size
        summed = torch.matmul(up.to(projected[0].dtype), torch.cat(projected, dim=1))  # (B, N, K)
        out = F.linear(xt, weight[:, n_bins * c :], self.proj.bias) + summed
        return rearrange(out, "b (h w) k -> b k h w", h=h)

    def extra_repr(self) -> str:
        """Summarise the configuration in ``repr``."""
        return (
            f"in_channels={self.in_channels}, bins={self.bins}, out_channels={self.out_channels}, "
            f"pooled_projection={self.pooled_projection}, pool_impl={self.pool_impl!r}"
        )
