"""Where a backbone's block is read: its output, or its output before the last activation.

HSNet and DCAMA read every ResNet bottleneck *before* its last ReLU: the residual sum, negative
values included (their cosines and attentions are computed on it). A block reader is a function
``(block, x) -> (tap, out)``: the map to record and the block's true output, which the next block
reads. [BLOCK_TAPS][fewzero.models.block_taps.BLOCK_TAPS] names them:

* ``"output"``: the block's output (``tap is out``);
* ``"pre_activation"``: for timm's ResNet ``Bottleneck`` and ``BasicBlock``, the residual sum
  before the last activation (``out = act(tap)``); blocks that end without an activation
  (EfficientNet's, ConvNeXt's, Swin's) are read at their output.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from timm.models.resnet import BasicBlock, Bottleneck
from torch import nn

__all__ = ["BLOCK_TAPS", "BlockReader", "check_block_taps", "read_block"]

BlockReader = Callable[[nn.Module, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _output(block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    out = block(x)
    return out, out


def _residual_sum(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A timm ResNet block's residual sum: its forward up to, not including, the last activation."""
    shortcut = x if block.downsample is None else block.downsample(x)
    if isinstance(block, Bottleneck):
        y = block.act1(block.bn1(block.conv1(x)))
        y = block.aa(block.act2(block.drop_block(block.bn2(block.conv2(y)))))
        y = block.bn3(block.conv3(y))
    else:
        y = block.aa(block.act1(block.drop_block(block.bn1(block.conv1(x)))))
        y = block.bn2(block.conv2(y))
    if block.se is not None:
        y = block.se(y)
    if block.drop_path is not None:
        y = block.drop_path(y)
    return y + shortcut


def _pre_activation(block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(block, (Bottleneck, BasicBlock)):
        return _output(block, x)
    tap = _residual_sum(block, x)
    act = block.act3 if isinstance(block, Bottleneck) else block.act2
    return tap, act(tap.clone())  # the activation may be in place: the tap stays as it was


BLOCK_TAPS: dict[str, BlockReader] = {"output": _output, "pre_activation": _pre_activation}


def check_block_taps(block_taps: str) -> str:
    """Return ``block_taps`` if it names a reader, else raise ``ValueError`` listing them."""
    if block_taps not in BLOCK_TAPS:
        raise ValueError(
            f"block_taps must be one of {sorted(BLOCK_TAPS)}, got {block_taps!r}: 'output' reads "
            "each block's output, 'pre_activation' a ResNet block's residual sum (HSNet, DCAMA)"
        )
    return block_taps


def read_block(
    block_taps: str, block: nn.Module, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``block`` on ``x``; return the map ``block_taps`` records and the block's output.

    Examples:
        >>> import torch
        >>> from timm.models.resnet import BasicBlock
        >>> block = BasicBlock(4, 4).eval()
        >>> tap, out = read_block("pre_activation", block, torch.randn(1, 4, 5, 5))
        >>> bool((tap < 0).any()), bool(torch.equal(out, tap.relu()))
        (True, True)
    """
    return BLOCK_TAPS[block_taps](block, x)
