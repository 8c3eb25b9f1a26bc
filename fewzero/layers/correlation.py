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

from ..checks import check_tensor, is_exporting

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
    check_tensor("query", query, dims=4)
    check_tensor("support", support, dims=4)
    if query.dim() != 4 or support.dim() != 4 or query.shape[:2] != support.shape[:2]:
        raise ValueError(
            "query and support must be (B, C, H, W) with the same B and C, got "
            f"{tuple(query.shape)} and {tuple(support.shape)}"
        )
    if support_mask.dim() != 3 or support_mask.shape[0] != support.shape[0]:
        raise ValueError(
            f"support_mask must be ({support.shape[0]}, H, W), got {tuple(support_mask.shape)}"
        )
    fg = _resized_mask(support_mask, support.shape[-2:], query.dtype)
    b, _, hq, wq = query.shape
    return _correlate(query, support, fg, eps).view(b, hq, wq, *support.shape[-2:])


def _resized_mask(mask: torch.Tensor, size: Sequence[int], dtype: torch.dtype) -> torch.Tensor:
    """The foreground (1) of ``mask (B, H, W)`` resized bilinearly (``align_corners=True``)."""
    fg = (mask == 1).to(torch.promote_types(dtype, torch.float32))[:, None]
    return F.interpolate(fg, size=tuple(size), mode="bilinear", align_corners=True)


def _kept_columns(fg: torch.Tensor) -> torch.Tensor | None:
    """Support positions some episode's mask touches, when skipping the others pays (else None).

    Every other position's masked feature is 0, so its cosine is exactly 0 (``0 / (0 + eps)``):
    leaving it out of the product changes nothing. Not under compile or export (the count is
    data-dependent).
    """
    if torch.compiler.is_compiling() or is_exporting():
        return None
    keep = fg.flatten(1).amax(dim=0) > 0
    count = int(keep.sum())
    return keep.nonzero().squeeze(1) if count < 0.75 * keep.numel() else None


def _correlate(
    query: torch.Tensor, support: torch.Tensor, fg: torch.Tensor, eps: float
) -> torch.Tensor:
    """``(B, Nq, Ns)``: the clamped cosines of the query and the masked support positions."""
    dtype = fg.dtype
    q = query.to(dtype).flatten(2)
    s = (support.to(dtype) * fg).flatten(2)
    q = q / (q.norm(dim=1, keepdim=True) + eps)
    s = s / (s.norm(dim=1, keepdim=True) + eps)
    cols = _kept_columns(fg)
    if cols is None:
        return torch.bmm(q.transpose(1, 2), s).clamp(min=0).to(dtype)
    kept = torch.bmm(q.transpose(1, 2), s.index_select(2, cols)).clamp(min=0).to(dtype)
    out = kept.new_zeros(s.shape[0], q.shape[2], s.shape[2])
    return out.index_copy(2, cols, kept)


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
    check_tensor("support_mask", support_mask, dims=3, floating=False)
    if not (len(query_feats) == len(support_feats) == len(groups)) or not groups:
        raise ValueError(
            f"query_feats, support_feats and groups must have one entry per layer, got "
            f"{len(query_feats)}, {len(support_feats)} and {len(groups)}"
        )
    fg = _resized_mask(support_mask, support_feats[0].shape[-2:], query_feats[0].dtype)
    out = []
    for g in sorted(set(int(g) for g in groups)):
        layers = [i for i, gi in enumerate(groups) if int(gi) == g]
        q, s = query_feats[layers[0]], support_feats[layers[0]]
        if tuple(fg.shape[-2:]) != tuple(s.shape[-2:]):
            fg = _resized_mask(support_mask, s.shape[-2:], q.dtype)
        maps = [_correlate(query_feats[i], support_feats[i], fg, 1e-5) for i in layers]
        out.append(
            torch.stack(maps, dim=1).view(q.shape[0], len(layers), *q.shape[-2:], *s.shape[-2:])
        )
    return out
