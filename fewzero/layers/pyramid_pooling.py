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
from torch import nn

from ._validate import (
    as_int_tuple,
    check_choice,
    check_feature_map,
    check_positive_int,
    is_exporting,
)
from .conv_norm_act import make_act

__all__ = ["PyramidPoolingAttention", "adaptive_avg_pool2d_matmul"]


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
        pool_impl: ``"adaptive"`` (``F.adaptive_avg_pool2d``), ``"matmul"`` (pooling matrices,
            ONNX-exportable) or ``"auto"`` (matmul while tracing/exporting, adaptive otherwise).
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
        pooled = self.pyramid(x)
        if self.proj is None:
            return torch.cat([self._up(p, size) for p in pooled] + [x], dim=1)
        if not self.pooled_projection:
            cat = torch.cat([self._up(p, size) for p in pooled] + [x], dim=1)
            return self.act(self.proj(cat))
        c = self.in_channels
        weight = self.proj.weight
        out = F.conv2d(x, weight[:, len(self.bins) * c :], self.proj.bias)
        for i, p in enumerate(pooled):
            out = out + self._up(F.conv2d(p, weight[:, i * c : (i + 1) * c]), size)
        return self.act(out)

    def extra_repr(self) -> str:
        """Summarise the configuration in ``repr``."""
        return (
            f"in_channels={self.in_channels}, bins={self.bins}, out_channels={self.out_channels}, "
            f"pooled_projection={self.pooled_projection}, pool_impl={self.pool_impl!r}"
        )
