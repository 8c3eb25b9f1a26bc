"""N-way prediction with any one-way few-shot model: one support set per class, one label map.

Each way's support set conditions the binary model on its own (one batched forward over the
ways with the same shot count); the score of way ``i`` at a pixel is its foreground probability
``p_i``, the background's is ``1 - max_i p_i``, so the label map's argmax picks the most probable
class wherever some class is more likely than not, and background where none is. Each way's K
shots merge by the model's own rule (``shot_merge``), so a class's probabilities do not depend
on the other classes or on how many shots they have.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import SegmentationModel

__all__ = ["nway_scores"]


def nway_scores(
    model: SegmentationModel,
    images: torch.Tensor,
    support_images: torch.Tensor | Sequence[torch.Tensor],
    support_masks: torch.Tensor | Sequence[torch.Tensor],
) -> torch.Tensor:
    """Per-class scores of an N-way episode batch; ``argmax(1)`` is the label map.

    Args:
        model: A few-shot model (``accepts_support``) with two output classes.
        images: ``(B, 3, H, W)`` queries.
        support_images: ``(B, N, K, 3, H', W')``: K shots of each of the N ways; or a list of
            N ``(B, K_i, 3, H', W')``, ways with their own shot counts.
        support_masks: ``(B, N, K, H', W')`` in {0, 1, 255}; or a list of N ``(B, K_i, H', W')``.

    Returns:
        ``(B, N + 1, H, W)`` float scores: channel 0 background, channel ``i`` way ``i``.

    Raises:
        ValueError: for a model that takes no support set, or support tensors of another rank.

    Examples:
        >>> import torch
        >>> from fewzero.models import create_model
        >>> model = create_model("prototype", backbone="resnet18").eval()
        >>> masks = [torch.zeros(1, k, 32, 32, dtype=torch.long) for k in (1, 3)]
        >>> for m in masks:
        ...     m[..., 8:24, 8:24] = 1
        >>> images = [torch.randn(1, k, 3, 32, 32) for k in (1, 3)]  # 1 and 3 shots
        >>> nway_scores(model, torch.randn(1, 3, 32, 32), images, masks).shape
        torch.Size([1, 3, 32, 32])
    """
    if not getattr(model, "accepts_support", False):
        raise ValueError(
            f"N-way prediction needs a few-shot model (accepts_support), got "
            f"{model.config.get('arch', type(model).__name__)!r}"
        )
    if isinstance(support_images, torch.Tensor) and isinstance(support_masks, torch.Tensor):
        if support_images.dim() != 6 or support_masks.dim() != 5:
            raise ValueError(
                "support_images must be (B, N, K, 3, H', W') and support_masks (B, N, K, H', W') "
                f"for N-way episodes, got {tuple(support_images.shape)} and "
                f"{tuple(support_masks.shape)}"
            )
        ways = list(zip(support_images.unbind(1), support_masks.unbind(1)))
    else:
        ways = list(zip(support_images, support_masks))
        if not ways or len(ways) != len(support_images) or len(ways) != len(support_masks):
            raise ValueError(
                "support_images and support_masks must be lists of one (B, K_i, 3, H', W') and "
                f"one (B, K_i, H', W') tensor per way, got {len(support_images)} and "
                f"{len(support_masks)}"
            )
    by_shots: dict[int, list[int]] = {}
    for i, (s_img, _) in enumerate(ways):
        by_shots.setdefault(int(s_img.shape[1]), []).append(i)
    b = images.shape[0]
    fg: list[torch.Tensor | None] = [None] * len(ways)
    for idx in by_shots.values():  # one batched forward per shot count
        n = len(idx)
        logits = model(
            images.repeat_interleave(n, dim=0),
            torch.stack([ways[i][0] for i in idx], dim=1).flatten(0, 1),
            torch.stack([ways[i][1] for i in idx], dim=1).flatten(0, 1),
        )
        probs = logits.float().softmax(dim=1)[:, 1].view(b, n, *logits.shape[-2:])
        for j, i in enumerate(idx):
            fg[i] = probs[:, j]
    way_fg = torch.stack([p for p in fg if p is not None], dim=1)
    return torch.cat([1 - way_fg.amax(dim=1, keepdim=True), way_fg], dim=1)
