"""N-way prediction with any one-way few-shot model: one support set per class, one label map.

Each way's support set conditions the binary model on its own (one batched forward over the
ways); the score of way ``i`` at a pixel is its foreground probability ``p_i``, the background's
is ``1 - max_i p_i``, so the label map's argmax picks the most probable class wherever some class
is more likely than not, and background where none is.
"""

from __future__ import annotations

import torch

from .base import SegmentationModel

__all__ = ["nway_scores"]


def nway_scores(
    model: SegmentationModel,
    images: torch.Tensor,
    support_images: torch.Tensor,
    support_masks: torch.Tensor,
) -> torch.Tensor:
    """Per-class scores of an N-way episode batch; ``argmax(1)`` is the label map.

    Args:
        model: A few-shot model (``accepts_support``) with two output classes.
        images: ``(B, 3, H, W)`` queries.
        support_images: ``(B, N, K, 3, H', W')``: K shots of each of the N ways.
        support_masks: ``(B, N, K, H', W')`` in {0, 1, 255}.

    Returns:
        ``(B, N + 1, H, W)`` float scores: channel 0 background, channel ``i`` way ``i``.

    Raises:
        ValueError: for a model that takes no support set, or support tensors of another rank.
    """
    if not getattr(model, "accepts_support", False):
        raise ValueError(
            f"N-way prediction needs a few-shot model (accepts_support), got "
            f"{model.config.get('arch', type(model).__name__)!r}"
        )
    if support_images.dim() != 6 or support_masks.dim() != 5:
        raise ValueError(
            "support_images must be (B, N, K, 3, H', W') and support_masks (B, N, K, H', W') for "
            f"N-way episodes, got {tuple(support_images.shape)} and {tuple(support_masks.shape)}"
        )
    b, n = support_images.shape[:2]
    logits = model(
        images.repeat_interleave(n, dim=0),
        support_images.flatten(0, 1),
        support_masks.flatten(0, 1),
    )
    fg = logits.float().softmax(dim=1)[:, 1].view(b, n, *logits.shape[-2:])
    return torch.cat([1 - fg.amax(dim=1, keepdim=True), fg], dim=1)
