"""Dense query-support correlation over many backbone layers (HSNet, Min et al., ICCV 2021).

For each layer, every query position is compared with every *masked* support position by the
cosine of their features, clamped at zero (HSNet: negative correlations carry no match); layers
of one stride are stacked as channels of one 4D tensor, ready for
[CenterPivotConv4d][fewzero.layers.CenterPivotConv4d].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["dense_correlation", "multilayer_correlation"]


def dense_correlation(
    query: torch.Tensor, support: torch.Tensor, support_mask: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    """Clamped cosine correlation of every query position with every masked support position.

    Args:
        query: ``(B, C, Hq, Wq)`` query features.
        support: ``(B, C, Hs, Ws)`` support features.
        support_mask: ``(B, H, W)`` support mask (1 foreground; 0 and 255 are not), resized to
            the support grid bilinearly (``align_corners=True``, as HSNet) and multiplied into
            the support features before the cosine.
        eps: Added to the norms (a masked-out position correlates 0 with everything).

    Returns:
        ``(B, Hq, Wq, Hs, Ws)`` in ``[0, 1]`` (fp32 under autocast, else the features' dtype).

    Examples:
        >>> import torch
        >>> q = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])  # (1, 2, 1, 2)
        >>> dense_correlation(q, q, torch.ones(1, 1, 2))[0, 0, :, 0]
        tensor([[1.0000, 0.0000],
                [0.0000, 1.0000]])
    """
    if query.dim() != 4 or support.dim() != 4 or query.shape[:2] != support.shape[:2]:
        raise ValueError(
            "query and support must be (B, C, H, W) with the same B and C, got "
            f"{tuple(query.shape)} and {tuple(support.shape)}"
        )
    if support_mask.dim() != 3 or support_mask.shape[0] != support.shape[0]:
        raise ValueError(
            f"support_mask must be ({support.shape[0]}, H, W), got {tuple(support_mask.shape)}"
        )
    dtype = torch.promote_types(query.dtype, torch.float32)
    fg = (support_mask == 1).to(dtype)[:, None]
    fg = F.interpolate(fg, size=support.shape[-2:], mode="bilinear", align_corners=True)
    s = support.to(dtype) * fg
    q = query.to(dtype)
    b, c, hq, wq = q.shape
    hs, ws = s.shape[-2:]
    q = q.flatten(2)
    s = s.flatten(2)
    q = q / (q.norm(dim=1, keepdim=True) + eps)
    s = s / (s.norm(dim=1, keepdim=True) + eps)
    corr = torch.bmm(q.transpose(1, 2), s).clamp(min=0)  # (B, Nq, Ns)
    return corr.view(b, hq, wq, hs, ws)


def multilayer_correlation(
    query_feats: Sequence[torch.Tensor],
    support_feats: Sequence[torch.Tensor],
    support_mask: torch.Tensor,
    groups: Sequence[int],
) -> list[torch.Tensor]:
    """[dense_correlation][fewzero.layers.dense_correlation] of every layer, stacked per group.

    Args:
        query_feats: ``L`` maps ``(B, C_l, H_l, W_l)`` of the query.
        support_feats: The support's ``L`` maps, same shapes.
        support_mask: ``(B, H, W)`` support mask.
        groups: Group of each layer (layers of one stride share a group); groups in order.

    Returns:
        One ``(B, L_g, Hq, Wq, Hs, Ws)`` tensor per group, ``L_g`` its layers in order.
    """
    if not (len(query_feats) == len(support_feats) == len(groups)) or not groups:
        raise ValueError(
            f"query_feats, support_feats and groups must have one entry per layer, got "
            f"{len(query_feats)}, {len(support_feats)} and {len(groups)}"
        )
    out: dict[int, list[torch.Tensor]] = {}
    for q, s, g in zip(query_feats, support_feats, groups):
        out.setdefault(int(g), []).append(dense_correlation(q, s, support_mask))
    return [torch.stack(out[g], dim=1) for g in sorted(out)]
