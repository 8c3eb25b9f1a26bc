"""Support-image class embeddings for few-shot segmentation: prototypes and the prior mask.

* [masked_average_pooling][fewzero.heads.prototype.masked_average_pooling] — PANet / CANet (Wang et al., ICCV 2019; Zhang et al., CVPR
  2019): the class prototype is the mean of a support feature map over the support mask, with the
  mask resized to the feature grid by area (each feature cell weighted by the fraction of its
  pixels that are foreground; ignore pixels count as neither class).
* [cosine_maps][fewzero.heads.prototype.cosine_maps] — PANet: the cosine similarity of every query position with each prototype
  (foreground and background), the per-position comparison a decoder can read directly.
* [alignment_loss][fewzero.heads.prototype.alignment_loss] — PANet's prototype alignment
  regularisation: prototypes of the query's predicted regions segment each support, scored
  against the support mask (a training loss that needs no query label).
* [prior_mask][fewzero.heads.prototype.prior_mask] — PFENet (Tian et al., TPAMI 2020): a training-free prior, the cosine
  similarity of each query position with its best-matching masked support position, min-max
  normalised per image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "alignment_loss",
    "cosine_maps",
    "foreground_weights",
    "grid_masks",
    "masked_average_pooling",
    "prior_mask",
    "support_prototypes",
]


def grid_masks(masks: torch.Tensor, size: tuple[int, int], stride: int | None) -> torch.Tensor:
    """``masks`` padded with 255 (or cropped) to the pixels a feature grid of ``stride`` covers.

    A backbone pads its input to whole cells (``h = ceil(H / stride)``); the padded pixels lie
    in no image, so they count as neither foreground nor background. Without ``stride``, or when
    the grid is not within one cell of the mask, ``masks`` come back as they are (the grid then
    spans the mask by area).

    Args:
        masks: ``(N, H, W)`` in ``{0, 1, 255}``.
        size: Feature grid ``(h, w)``.
        stride: Pixels per cell, or ``None``.

    Returns:
        ``(N, h * stride, w * stride)`` masks, or ``masks``.

    Examples:
        >>> import torch
        >>> grid_masks(torch.ones(1, 3, 3, dtype=torch.long), (2, 2), 2)[0]
        tensor([[  1,   1,   1, 255],
                [  1,   1,   1, 255],
                [  1,   1,   1, 255],
                [255, 255, 255, 255]])
    """
    if stride is None:
        return masks
    (h, w), (mh, mw) = size, masks.shape[-2:]
    ph, pw = h * stride - mh, w * stride - mw
    if (ph, pw) == (0, 0) or not (-stride < ph < stride and -stride < pw < stride):
        return masks
    masks = masks[..., : mh + min(ph, 0), : mw + min(pw, 0)]
    return F.pad(masks, (0, max(pw, 0), 0, max(ph, 0)), value=255)


def foreground_weights(
    masks: torch.Tensor, size: tuple[int, int], value: int = 1, stride: int | None = None
) -> torch.Tensor:
    """Area fraction of ``value`` pixels (1: foreground, 0: background) in each cell of a grid.

    Args:
        masks: ``(N, H, W)`` in ``{0, 1, 255}``.
        size: Feature grid ``(h, w)``.
        value: The mask value to weight (ignore pixels, 255, are never counted).
        stride: The grid's pixels per cell: the mask is first padded to whole cells
            ([grid_masks][fewzero.heads.prototype.grid_masks]), so each cell weighs exactly its
            own pixels. ``None``: the grid spans the mask by area.

    Returns:
        ``(N, 1, h, w)`` weights in ``[0, 1]`` (``adaptive_avg_pool2d`` of the region).
    """
    fg = (grid_masks(masks, size, stride) == value).to(torch.float32)[:, None]
    return F.adaptive_avg_pool2d(fg, size)


def masked_average_pooling(
    features: torch.Tensor, masks: torch.Tensor, value: int = 1, stride: int | None = None
) -> torch.Tensor:
    """Prototype of each support: the feature mean over its (area-resized) foreground.

    Args:
        features: ``(N, C, h, w)`` support features.
        masks: ``(N, H, W)`` support masks in ``{0, 1, 255}`` at any resolution.
        value: ``1`` (the foreground prototype) or ``0`` (the background prototype, PANet).
        stride: The feature grid's pixels per cell
            ([foreground_weights][fewzero.heads.prototype.foreground_weights]).

    Returns:
        ``(N, C)`` prototypes (in ``features``' dtype); zeros where the region is empty.

    Examples:
        >>> import torch
        >>> f = torch.arange(4.0).reshape(1, 1, 2, 2)
        >>> m = torch.tensor([[[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]])
        >>> masked_average_pooling(f, m)
        tensor([[0.]])
    """
    w = foreground_weights(masks, (features.shape[-2], features.shape[-1]), value, stride)
    num = (features.float() * w).sum(dim=(2, 3))
    den = w.sum(dim=(2, 3)).clamp_min(1e-6)
    return (num / den).to(features.dtype)


def support_prototypes(
    features: torch.Tensor,
    support_masks: torch.Tensor,
    values: tuple[int, ...] = (1,),
    stride: int | None = None,
) -> torch.Tensor:
    """K-shot prototypes: each region's masked average per shot, then the mean over the shots.

    Args:
        features: ``(B * K, C, h, w)`` support features.
        support_masks: ``(B, K, H, W)`` in ``{0, 1, 255}``.
        values: Regions to pool (``1`` foreground, ``0`` background), in output order.
        stride: The feature grid's pixels per cell (the backbone's
            [stride][fewzero.models.Backbone.stride]).

    Returns:
        ``(B, len(values), C)``, independent of the order of the shots.
    """
    b, k = support_masks.shape[:2]
    flat = support_masks.flatten(0, 1)
    protos = [masked_average_pooling(features, flat, v, stride).view(b, k, -1) for v in values]
    return torch.stack(protos, dim=1).mean(dim=2)


def cosine_maps(features: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each position of ``features`` with each prototype.

    Args:
        features: ``(B, C, h, w)`` query features.
        prototypes: ``(B, P, C)``: P prototypes per query (PANet: background, foreground).

    Returns:
        ``(B, P, h, w)`` in ``[-1, 1]`` (computed in float32, returned in ``features``' dtype).

    Examples:
        >>> import torch
        >>> f = torch.tensor([[[[1.0, 0.0]], [[0.0, 2.0]]]])  # (1, 2, 1, 2)
        >>> cosine_maps(f, torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]))[0, :, 0]
        tensor([[1., 0.],
                [0., 1.]])
    """
    if features.dim() != 4 or prototypes.dim() != 3 or prototypes.shape[0] != features.shape[0]:
        raise ValueError(
            f"features must be (B, C, h, w) and prototypes (B, P, C), got "
            f"{tuple(features.shape)} and {tuple(prototypes.shape)}"
        )
    if prototypes.shape[2] != features.shape[1]:
        raise ValueError(
            f"prototypes must have the features' {features.shape[1]} channels, got "
            f"{prototypes.shape[2]}"
        )
    f = F.normalize(features.float(), dim=1)
    p = F.normalize(prototypes.float(), dim=2)
    return torch.einsum("bchw,bpc->bphw", f, p).to(features.dtype)


def alignment_loss(
    query: torch.Tensor,
    query_probs: torch.Tensor,
    support: torch.Tensor,
    support_masks: torch.Tensor,
    scale: float,
    stride: int | None = None,
) -> torch.Tensor:
    """PANet's prototype alignment regularisation (PAR), with soft query regions.

    The query's predicted background and foreground (``query_probs``, not differentiated)
    average the query features into two prototypes; each support is segmented by them (``scale``
    times the cosine, as the forward comparison) and scored by cross-entropy against its mask
    (ignore pixels left out). Gradients reach the features on both sides: the comparison is
    trained in the reverse direction too, so a query prediction that spills onto another object
    makes prototypes that mis-segment the supports. PANet weights the query regions by the
    argmax of its prediction; here by the predicted probabilities (differentiable weights, the
    same at a confident prediction).

    Args:
        query: ``(B, C, h, w)`` query features.
        query_probs: ``(B, 2, h, w)`` background/foreground probabilities of the query.
        support: ``(B * K, C, h', w')`` support features (the same comparison space).
        support_masks: ``(B, K, H, W)`` in ``{0, 1, 255}``.
        scale: Logit scale of the cosines.
        stride: The support grid's pixels per cell.

    Returns:
        A scalar loss (float32).

    Examples:
        >>> import torch
        >>> q = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])  # (1, 2, 1, 2): fg left, bg right
        >>> probs = torch.tensor([[[[0.0, 1.0]], [[1.0, 0.0]]]])  # predicted fg left
        >>> masks = torch.tensor([[[[1, 0]]]])  # the support: fg left
        >>> float(alignment_loss(q, probs, q, masks, scale=20.0)) < 1e-6
        True
    """
    b, k = support_masks.shape[:2]
    weights = query_probs.detach().float()
    total = weights.sum(dim=(-2, -1)).clamp_min(1e-5)[..., None]  # (B, 2, 1)
    protos = torch.einsum("bphw,bchw->bpc", weights, query.float()) / total
    logits = scale * cosine_maps(support.float(), protos.repeat_interleave(k, dim=0))
    masks = grid_masks(support_masks.flatten(0, 1), support.shape[-2:], stride)
    logits = F.interpolate(logits, size=masks.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(logits, masks.long(), ignore_index=255)


@torch.no_grad()
def prior_mask(
    query: torch.Tensor,
    support: torch.Tensor,
    masks: torch.Tensor,
    shots: int,
    stride: int | None = None,
) -> torch.Tensor:
    """PFENet's training-free prior mask, averaged over the shots.

    Args:
        query: ``(B, C, h, w)`` query features (frozen high-level features).
        support: ``(B * K, C, h', w')`` support features.
        masks: ``(B * K, H', W')`` support masks in ``{0, 1, 255}``.
        shots: ``K``.
        stride: The support grid's pixels per cell.

    Returns:
        ``(B, 1, h, w)`` prior in ``[0, 1]``.
    """
    b, c, h, w = query.shape
    weights = foreground_weights(masks, (support.shape[-2], support.shape[-1]), stride=stride)
    s = F.normalize((support.float() * (weights > 0)).flatten(2), dim=1)  # (BK, C, n')
    q = F.normalize(query.float().flatten(2), dim=1)  # (B, C, n)
    s = s.view(b, shots, c, -1)
    sim = torch.einsum("bcn,bkcm->bknm", q, s).amax(dim=-1)  # (B, K, n)
    lo = sim.amin(dim=-1, keepdim=True)
    hi = sim.amax(dim=-1, keepdim=True)
    prior = (sim - lo) / (hi - lo).clamp_min(1e-7)
    return prior.mean(dim=1).view(b, 1, h, w).to(query.dtype)
