"""Query branch of SM-VCENet (paper eq. 2): ``F_query = ReLU(conv3x3(F_2 ⊕ F_3))``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..checks import check_feature_map
from ..layers import ConvNormAct

__all__ = ["QueryBranch"]


class QueryBranch(nn.Module):
    """A 3x3 convolution (and ReLU) over the concatenated mid-level backbone features.

    Shapes:
        input ``(B, in_channels, h, w)`` (``F_2 ⊕ F_3``) -> ``(B, out_channels, h, w)``.

    Args:
        in_channels: Channels of the concatenated features (``512 + 1024`` for ResNet50).
        out_channels: Query feature channels (256 in the paper).
        norm_layer: Optional normalisation (``None``: BN-free).
        act_layer: Activation class.

    Examples:
        >>> import torch
        >>> QueryBranch(12, 4)(torch.randn(1, 12, 5, 5)).shape
        torch.Size([1, 4, 5, 5])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 256,
        norm_layer: Callable[..., nn.Module] | None = None,
        act_layer: Callable[..., nn.Module] | None = nn.ReLU,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.conv = ConvNormAct(
            in_channels, out_channels, 3, norm_layer=norm_layer, act_layer=act_layer
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the query feature ``(B, out_channels, h, w)``."""
        check_feature_map(x, self.in_channels, name="query features")
        return self.conv(x)
