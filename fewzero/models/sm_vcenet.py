"""SM-VCENet and its ablation family (paper Fig. 2 and Table 3) over any timm backbone.

``SMVCENet`` = frozen [`Backbone`][fewzero.models.Backbone] + [`QueryBranch`][fewzero.heads.QueryBranch]
(eq. 2) + a class branch ([`VisualClassEmbedding`][fewzero.heads.VisualClassEmbedding], eq. 1, 3-5 and SAM) +
[`ClassComparisonModule`][fewzero.heads.ClassComparisonModule]. ``variant`` picks the row of Table 3:

==============  =============================  ======================
variant         class branch                   class embedding width
==============  =============================  ======================
``deeplab``     none                           0
``vcenet``      VCE (1x1 conv)                 C
``m_vcenet``    MAM + compressor               C
``sm_vcenet``   MAM + compressor + SAM         2C
==============  =============================  ======================

``C`` is the channel count of ``I_class`` (2048 for ResNet50) unless ``class_channels`` reduces it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import as_int_tuple, check_choice, check_positive_int
from ..heads import ClassComparisonModule, QueryBranch, VisualClassEmbedding
from ..heads.prototype import (
    alignment_loss,
    cosine_maps,
    grid_masks,
    prior_mask,
    support_prototypes,
)
from ..layers import MaskAttention, dense_correlation
from ._registry import check_not_fixed, register_architecture, register_model
from .backbone import Backbone
from .base import SegmentationModel

__all__ = [
    "CLASS_SOURCES",
    "FEWSHOT_DEFAULTS",
    "SM_SHOT_MERGES",
    "VARIANTS",
    "SMVCENet",
    "deeplab_efficientnet_lite0",
    "deeplab_resnet101",
    "deeplab_resnet50",
    "m_vcenet_efficientnet_lite0",
    "m_vcenet_resnet101",
    "m_vcenet_resnet50",
    "sm_vcenet_efficientnet_lite0",
    "sm_vcenet_fewshot_efficientnet_lite0",
    "sm_vcenet_fewshot_resnet101",
    "sm_vcenet_fewshot_resnet50",
    "sm_vcenet_resnet101",
    "sm_vcenet_resnet50",
    "vcenet_efficientnet_lite0",
    "vcenet_resnet101",
    "vcenet_resnet50",
]

VARIANTS: dict[str, tuple[bool, bool, bool]] = {
    # name: (class branch, MAM, SAM)
    "deeplab": (False, False, False),
    "vcenet": (True, False, False),
    "m_vcenet": (True, True, False),
    "sm_vcenet": (True, True, True),
}
"""Variant name -> (class branch, MAM, SAM): the rows of the paper's Table 3 (``deeplab`` has no class branch)."""


SM_SHOT_MERGES = ("prototype", "mean")
"""How SM-VCENet combines K > 1 shots (``shot_merge``): ``"prototype"`` averages the shots into
one prototype per comparison, ``"mean"`` runs each shot as its own one-shot episode and averages
the logits."""

CLASS_SOURCES = ("query", "support", "both")
"""Where the class embedding comes from: the query itself (zero-shot, the paper), the support set (few-shot), or both concatenated."""


class SMVCENet(SegmentationModel):
    """SM-VCENet family: frozen backbone, query branch, visual class embedding, CCM.

    Zero-shot (``class_source="query"``, the paper): the class embedding is the class branch's
    output on the query image itself. Few-shot (``"support"``): the class branch (the same MAM/SAM
    modules) runs on each support image, its output is averaged over the support mask (masked
    average pooling) and over the K shots, and the prototype is tiled over the query grid.
    ``"both"`` feeds the support prototype and the query's own embedding side by side. ``prior``
    adds PFENet's training-free prior mask as one more CCM input channel. ``similarity`` adds
    PANet's comparison: the cosine similarity of the query's features at every position with the
    support's foreground and background prototypes (two channels, scaled by
    ``similarity_scale``), so the decoder reads *where the query looks like the support* instead
    of having to learn that comparison from a tiled vector; ``similarity_residual`` also adds the
    two maps to the logits, which is what makes a trained model follow its support (the
    ``sm_vcenet_fewshot_*`` defaults).

    Shapes:
        images ``(B, 3, H, W)`` (normalised with ``encoder.mean``/``encoder.std``), for few-shot
        also ``support_images (B, K, 3, H', W')`` and ``support_masks (B, K, H', W')`` in
        ``{0, 1, 255}`` -> logits ``(B, num_classes, H, W)`` at input resolution (any
        ``H, W >= min_input_size``). ``class_ids`` is accepted and not used: the model is
        conditioned on images only.

    Args:
        backbone: timm model name or a module exposing ``feature_info``.
        variant: ``"sm_vcenet"``, ``"m_vcenet"``, ``"vcenet"`` or ``"deeplab"``.
        pretrained: ImageNet weights for the backbone (see [`Backbone`][fewzero.models.Backbone]).
        pretrained_file: Local backbone weights (path or state dict).
        class_source: ``"query"`` (zero-shot, default), ``"support"`` (few-shot) or ``"both"``.
        prior: Add the training-free prior mask (few-shot only).
        similarity: Add the foreground/background cosine-similarity maps (few-shot only):
            ``"query"`` compares the query features (the query branch's output on the query and
            on each support), ``"class"`` the class-branch embeddings; ``None``: none.
        similarity_scale: Factor of the cosine maps (PANet scales its logits by 20).
        similarity_channels: With ``similarity="query"``: compare a learned linear projection of
            the query features to this many channels (signed features; ``None``: the features).
        similarity_residual: Also add the scaled maps to the CCM's background/foreground logits,
            so the segmentation loss trains the comparison directly (PANet's loss) and the CCM
            learns a correction to it.
        alignment_weight: With ``similarity="query"``: in training, also return PANet's
            prototype alignment loss ([alignment_loss][fewzero.heads.prototype.alignment_loss]:
            the query's predicted regions as prototypes segment the supports) times this weight
            as ``losses["alignment"]`` (PANet: 1; ``0``: none).
        mask_attention: With ``similarity="query"``: also attend from every query position to
            every support position of the compared features, with the support mask as the value
            ([MaskAttention][fewzero.layers.MaskAttention], DCAMA's mechanism). The map is one
            more CCM input. Off by default: on the toy data (README preset, side by side with the
            default) it gave 57.75 / 65.17 mIoU at 1 / 5 shots against 56.57 / 67.00, with more
            leak (26.7% against 21.3%); added to the logits as well, it swamped them and training
            collapsed to background (14.1 mIoU).
        correlation: With ``similarity="query"``: also compare every query position with every
            support position of the compared features (HSNet's dense correlation, clamped at
            zero: [dense_correlation][fewzero.layers.dense_correlation]) and squeeze the 4D
            correlation to two maps, the best match among the support's background and among
            its foreground positions (averaged over the K shots, scaled by
            ``similarity_scale``): two more CCM inputs. Where a prototype averages the object
            away, the best match keeps its parts. HSNet squeezes the 4D tensor with learned
            center-pivot 4D convolutions ([CenterPivotConv4d][fewzero.layers.CenterPivotConv4d]);
            the max is the training-free squeeze (``hsnet`` is the full model).
        correlation_residual: With ``correlation``: also add the two best-match maps to the
            CCM's background/foreground logits, as ``similarity_residual`` does for the cosine
            maps.
        low_level_similarity: With ``similarity="query"``: also compare the backbone's
            low-level map ([forward_low_level][fewzero.models.Backbone.forward_low_level]: the
            map ``F_2``'s stage reads, stride 4 for ResNet and EfficientNet) of the query with
            the supports' foreground prototype, in a learned linear projection to
            ``low_level_channels``; the cosine map (scaled by ``similarity_scale``) is averaged
            onto the logits' grid and added to the foreground logit. The deeper levels
            abstract colour and texture away; this comparison keeps them. Only the foreground
            map: at this level the support's background prototype describes clutter, which an
            object of another class resembles less than it resembles the support's object, so
            a background map pushed such objects toward the foreground. On the toy data
            (README preset, side by side, seeds 0 / 1) it raised 1-shot mIoU from 59.8 / 62.4
            to 70.3 / 72.8 with a leak of 20.6% / 18.7% against 19.1% / 21.9%; with the
            background map as well 65.7 / 70.0, leak 21.6% / 22.6%. The toy's classes differ in
            colour and texture, so real data may gain less. Refused for a backbone without such
            a map (plain ViTs).
        low_level_channels: Width of the low-level comparison's projection (32).
        shot_merge: How K > 1 shots combine (one of
            [`SM_SHOT_MERGES`][fewzero.models.SM_SHOT_MERGES]), in training and evaluation alike.
            ``"prototype"`` (PANet's and the paper's way): every comparison averages the shots
            into one prototype. ``"mean"``: each shot is a one-shot episode of the same query and
            the K episodes' logits are averaged, so that a shot whose object looks unlike the
            query's votes alone instead of blurring the prototype (HSNet's ``"mean"`` merge; its
            default vote thresholds masks instead). The query's features are computed once;
            the comparisons and the CCM run K times where ``"prototype"`` runs them once. On
            the toy data (README preset, the few-shot defaults, side by side) the trained model
            scores 75.1 / 76.6 at 5 shots with ``"mean"`` against 74.0 / 75.2 with
            ``"prototype"`` (seeds 0 / 1), and leaks 17.6% / 16.8% against 20.8% / 18.8%;
            1-shot is the same.
        class_input: ``"layer4"`` (default): ``I_class = B_4(F_3)``, the frozen layer4 output.
            ``"concat"``: eq. 1 literally, ``I_class = B_4(adapter(F_2 ⊕ F_3))`` with a trainable
            1x1 adapter initialised to pass ``F_3`` through (timm ``FeatureListNet`` backbones).
        attention: SAM's non-local kind, ``"channel"`` (the paper's equations) or ``"spatial"``.
        class_channels: Width ``C`` of the class branch (default: ``I_class``'s channels).
        bins: MAM pyramid bins.
        query_channels: Query feature width (256).
        decoder_channels: CCM width (256).
        decoder_depth: CCM residual blocks (3).
        aspp_rates: CCM ASPP rates.
        num_classes: Output logits (2).
        pooled_projection: MAM's exact pooled projection (default) or concat-then-conv.
        backbone_kwargs: Extra arguments of [`Backbone`][fewzero.models.Backbone].

    Examples:
        >>> import torch
        >>> model = SMVCENet("resnet18", variant="sm_vcenet").eval()
        >>> model(torch.randn(1, 3, 65, 65)).shape
        torch.Size([1, 2, 65, 65])
        >>> fewshot = SMVCENet("resnet18", class_source="support").eval()
        >>> masks = torch.zeros(1, 2, 49, 49, dtype=torch.long)
        >>> masks[..., 10:30, 10:30] = 1
        >>> fewshot(torch.randn(1, 3, 65, 65), torch.randn(1, 2, 3, 49, 49), masks).shape
        torch.Size([1, 2, 65, 65])
    """

    def __init__(
        self,
        backbone: str | nn.Module = "resnet50",
        variant: str = "sm_vcenet",
        *,
        pretrained: bool = False,
        pretrained_file: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None,
        class_source: str = "query",
        prior: bool = False,
        similarity: str | None = None,
        similarity_scale: float = 10.0,
        similarity_residual: bool = False,
        similarity_channels: int | None = None,
        alignment_weight: float = 0.0,
        mask_attention: bool = False,
        correlation: bool = False,
        correlation_residual: bool = False,
        low_level_similarity: bool = False,
        low_level_channels: int = 32,
        shot_merge: str = "prototype",
        class_input: str = "layer4",
        attention: str = "channel",
        class_channels: int | None = None,
        bins: Sequence[int] | int = (1, 2, 3, 6),
        query_channels: int = 256,
        decoder_channels: int = 256,
        decoder_depth: int = 3,
        aspp_rates: Sequence[int] | int = (6, 12, 18),
        num_classes: int = 2,
        pooled_projection: bool = True,
        backbone_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.variant = check_choice("variant", variant, tuple(VARIANTS))
        self.class_source = check_choice("class_source", class_source, CLASS_SOURCES)
        self.class_input = check_choice("class_input", class_input, ("layer4", "concat"))
        self.shot_merge = check_choice("shot_merge", shot_merge, SM_SHOT_MERGES)
        has_class, mam, sam = VARIANTS[variant]
        if class_source != "query" and not has_class:
            raise ValueError(
                f"class_source={class_source!r} needs a class branch to embed the supports, got "
                f"variant={variant!r}; use 'vcenet', 'm_vcenet' or 'sm_vcenet'"
            )
        if prior and class_source == "query":
            raise ValueError(
                "prior=True compares the query with the support set, got class_source='query'; "
                "use class_source='support' or 'both'"
            )
        if similarity is not None:
            check_choice("similarity", similarity, ("query", "class"))
            if class_source == "query":
                raise ValueError(
                    f"similarity={similarity!r} compares the query with the support set, got "
                    "class_source='query'; use class_source='support' or 'both'"
                )
        if mask_attention and similarity != "query":
            raise ValueError(
                f"mask_attention=True attends on the compared query features, got similarity="
                f"{similarity!r}; use similarity='query'"
            )
        if correlation and similarity != "query":
            raise ValueError(
                f"correlation=True correlates the compared query features, got similarity="
                f"{similarity!r}; use similarity='query'"
            )
        self.correlation = bool(correlation)
        if correlation_residual and not correlation:
            raise ValueError(
                "correlation_residual=True adds the correlation maps: it needs correlation=True"
            )
        self.correlation_residual = bool(correlation_residual)
        if similarity_residual and similarity is None:
            raise ValueError("similarity_residual=True needs similarity='query' or 'class'")
        self.prior = bool(prior)
        self.similarity = similarity
        self.similarity_scale = float(similarity_scale)
        self.similarity_residual = bool(similarity_residual)
        if not alignment_weight >= 0:
            raise ValueError(f"alignment_weight must be >= 0, got {alignment_weight!r}")
        if alignment_weight and similarity != "query":
            raise ValueError(
                f"alignment_weight segments the supports in the compared query features, got "
                f"similarity={similarity!r}; use similarity='query'"
            )
        self.alignment_weight = float(alignment_weight)
        if similarity_channels is not None and similarity != "query":
            raise ValueError(
                f"similarity_channels projects the query features for similarity='query', got "
                f"similarity={similarity!r}"
            )
        self.requires_support = self.accepts_support = class_source != "query"
        bins, aspp_rates = as_int_tuple("bins", bins), as_int_tuple("aspp_rates", aspp_rates)
        self.encoder = Backbone(
            backbone,
            pretrained=pretrained,
            pretrained_file=pretrained_file,
            last_stage=has_class,  # DeepLab discards F_4: never build or run the last stage
            **dict(backbone_kwargs or {}),
        )
        c2, c3 = self.encoder.channels[:2]
        self.query = QueryBranch(c2 + c3, query_channels)
        # a linear (signed) projection for matching: cosines of ReLU features are all >= 0
        self.matcher: nn.Module | None = (
            None
            if similarity_channels is None
            else nn.Conv2d(
                query_channels, check_positive_int("similarity_channels", similarity_channels), 1
            )
        )
        match_channels = query_channels if similarity_channels is None else similarity_channels
        self.low_matcher: nn.Module | None = None
        self.low_level_stride: int | None = None
        """Stride of the low-level map compared (``None`` without ``low_level_similarity``)."""
        if low_level_similarity:
            if similarity != "query":
                raise ValueError(
                    "low_level_similarity=True compares the query with the support set next to "
                    f"the query features, got similarity={similarity!r}; use similarity='query'"
                )
            low_channels, self.low_level_stride = self.encoder.low_level_shape()
            self.low_matcher = nn.Conv2d(
                low_channels, check_positive_int("low_level_channels", low_level_channels), 1
            )
        self.mask_attention: MaskAttention | None = (
            MaskAttention(match_channels) if mask_attention else None
        )
        self.adapter: nn.Module | None = None
        if has_class and class_input == "concat":
            self.encoder.stage_split()  # fail early for backbones whose last stage cannot run alone
            self.adapter = nn.Conv2d(c2 + c3, c3, 1)
            with torch.no_grad():
                self.adapter.weight.zero_()
                self.adapter.bias.zero_()
                self.adapter.weight[:, c2:, 0, 0].copy_(torch.eye(c3))
        self.class_branch: VisualClassEmbedding | None = (
            VisualClassEmbedding(
                self.encoder.channels[2],
                class_channels,
                mam=mam,
                sam=sam,
                bins=bins,
                attention=attention,
                pooled_projection=pooled_projection,
            )
            if has_class
            else None
        )
        width = 0 if self.class_branch is None else self.class_branch.out_channels
        embed_channels = (
            (2 if class_source == "both" else 1) * width
            + int(self.prior)
            + 2 * (similarity is not None)
            + int(bool(mask_attention))
            + 2 * self.correlation
        )
        self.decoder = ClassComparisonModule(
            query_channels,
            embed_channels,
            channels=decoder_channels,
            depth=decoder_depth,
            aspp_rates=aspp_rates,
            num_classes=num_classes,
        )
        self.num_classes = num_classes

    def backbone_features(
        self, images: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Return ``F_2``, ``F_3`` (on one grid) and ``I_class`` (``None`` without a class branch)."""
        if self.adapter is not None:
            f2, f3 = self.encoder.forward_mid(images)
            return f2, f3, self.encoder.last_stage(self.adapter(torch.cat([f2, f3], dim=1)))
        feats = self.encoder(images)
        return feats[0], feats[1], (feats[2] if self.class_branch is not None else None)

    def support_prototype(
        self, i_class: torch.Tensor, support_masks: torch.Tensor, value: int = 1
    ) -> torch.Tensor:
        """Class prototype ``(B, out_channels)`` from the supports' ``I_class`` ``(B * K, C, h', w')``.

        The class branch embeds each support, masked average pooling reduces it to one vector per
        shot, and the mean over the ``K`` shots is the prototype (independent of the shots' order).
        ``value=0`` gives the background prototype instead.
        """
        assert self.class_branch is not None
        return support_prototypes(
            self.class_branch(i_class), support_masks, (value,), self.encoder.stride
        )[:, 0]

    def forward_features(
        self,
        images: torch.Tensor,
        support_images: torch.Tensor | None,
        support_masks: torch.Tensor | None,
        class_ids: torch.Tensor | None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return low-resolution logits ``(B, num_classes, h, w)`` and the auxiliary losses.

        The only auxiliary loss is ``"alignment"`` in training with ``alignment_weight > 0``.
        With ``shot_merge="mean"`` and K > 1 shots, the logits are the mean of the K one-shot
        episodes' (the query's features computed once, then ``B * K`` episodes compared).
        """
        b = images.shape[0]
        episodes = 1  # one-shot episodes per query: K with shot_merge="mean"
        if self.shot_merge == "mean" and support_masks is not None:
            episodes = support_masks.shape[1]
        support_i = support_query = None
        if support_images is not None:
            flat = support_images.flatten(0, 1)
            if flat.shape[-2:] == images.shape[-2:]:  # one backbone pass over query and supports
                f2, f3, i_all = self.backbone_features(torch.cat([images, flat]))
                i_class = None if i_all is None else i_all[:b]
                support_i = None if i_all is None else i_all[b:]
                if self.similarity == "query":
                    both = self.query(torch.cat([f2, f3], dim=1))
                    query, support_query = both[:b], both[b:]
                else:
                    query = self.query(torch.cat([f2[:b], f3[:b]], dim=1))
            else:
                f2, f3, i_class = self.backbone_features(images)
                query = self.query(torch.cat([f2, f3], dim=1))
                s2, s3, support_i = self.backbone_features(flat)
                if self.similarity == "query":
                    support_query = self.query(torch.cat([s2, s3], dim=1))
        else:
            f2, f3, i_class = self.backbone_features(images)
            query = self.query(torch.cat([f2, f3], dim=1))
        if episodes > 1:  # episode (i, j): query i with its shot j alone
            assert support_images is not None and support_masks is not None
            query = query.repeat_interleave(episodes, dim=0)
            i_class = None if i_class is None else i_class.repeat_interleave(episodes, dim=0)
            support_images = support_images.flatten(0, 1)[:, None]
            support_masks = support_masks.flatten(0, 1)[:, None]
            b = b * episodes
        size = query.shape[-2:]
        parts: list[torch.Tensor] = []
        fewshot = support_i is not None and support_masks is not None
        if fewshot:
            assert self.class_branch is not None and support_masks is not None
            proto = support_prototypes(
                self.class_branch(support_i), support_masks, (1,), self.encoder.stride
            )
            parts.append(proto[:, 0, :, None, None].expand(-1, -1, size[0], size[1]))
        query_embedding = None
        if self.class_branch is not None and (
            self.class_source in ("query", "both") or (fewshot and self.similarity == "class")
        ):
            assert i_class is not None
            query_embedding = self.class_branch(i_class)
            if query_embedding.shape[-2:] != size:
                query_embedding = self.encoder.align([query, query_embedding])[1]
        if self.class_source in ("query", "both") and query_embedding is not None:
            parts.append(query_embedding)
        similarity = best = q_feat = s_feat = None
        if fewshot and self.similarity is not None:
            assert support_masks is not None
            if self.similarity == "query":
                assert support_query is not None
                q_feat, s_feat = query, support_query
                if self.matcher is not None:
                    q_feat, s_feat = self.matcher(q_feat), self.matcher(s_feat)
            else:
                assert query_embedding is not None and self.class_branch is not None
                q_feat, s_feat = query_embedding, self.class_branch(support_i)
            # background, foreground
            protos = support_prototypes(s_feat, support_masks, (0, 1), self.encoder.stride)
            similarity = self.similarity_scale * cosine_maps(q_feat, protos)
            parts.append(similarity)
            if self.mask_attention is not None:
                k = support_masks.shape[1]
                cells = grid_masks(
                    support_masks.flatten(0, 1), s_feat.shape[-2:], self.encoder.stride
                )
                attended = self.mask_attention(
                    q_feat, s_feat.view(b, k, *s_feat.shape[1:]), cells.view(b, k, *cells.shape[1:])
                )
                parts.append(attended)  # a CCM input only: the residual stays the cosine maps
            if self.correlation:
                best = self.similarity_scale * self._best_matches(q_feat, s_feat, support_masks)
                parts.append(best)
        if self.prior and fewshot:
            assert i_class is not None and support_i is not None and support_masks is not None
            prior = prior_mask(
                i_class.detach(),
                support_i.detach(),
                support_masks.flatten(0, 1),
                support_masks.shape[1],
                self.encoder.stride,
            )
            if prior.shape[-2:] != size:
                prior = self.encoder.align([query, prior])[1]
            parts.append(prior)
        embedding = torch.cat(parts, dim=1) if parts else None
        logits = self.decoder(query, embedding)
        if similarity is not None and self.similarity_residual:
            logits = logits + similarity.to(logits.dtype)
        if best is not None and self.correlation_residual:
            logits = logits + best.to(logits.dtype)
        if fewshot and self.low_matcher is not None:
            assert support_images is not None and support_masks is not None
            low = self._low_level_maps(images, support_images, support_masks, episodes)
            low = F.adaptive_avg_pool2d(low, logits.shape[-2:]).to(logits.dtype)
            logits = logits + torch.cat([torch.zeros_like(low), low], dim=1)
        losses: dict[str, torch.Tensor] = {}
        if self.training and self.alignment_weight and q_feat is not None:
            assert s_feat is not None and support_masks is not None
            losses["alignment"] = self.alignment_weight * alignment_loss(
                q_feat,
                logits.float().softmax(dim=1),
                s_feat,
                support_masks,
                self.similarity_scale,
                self.encoder.stride,
            )
        if episodes > 1:
            logits = logits.view(-1, episodes, *logits.shape[1:]).mean(dim=1)
        return logits, losses

    def _low_level_maps(
        self,
        images: torch.Tensor,
        support_images: torch.Tensor,
        support_masks: torch.Tensor,
        episodes: int = 1,
    ) -> torch.Tensor:
        """Scaled cosine map ``(B * episodes, 1, h_low, w_low)`` of the low-level comparison.

        The foreground map; each query image serves ``episodes`` consecutive episodes.
        """
        assert self.low_matcher is not None
        b, flat = images.shape[0], support_images.flatten(0, 1)
        if flat.shape[-2:] == images.shape[-2:]:  # one pass over query and supports
            both = self.low_matcher(self.encoder.forward_low_level(torch.cat([images, flat])))
            query, support = both[:b], both[b:]
        else:
            query = self.low_matcher(self.encoder.forward_low_level(images))
            support = self.low_matcher(self.encoder.forward_low_level(flat))
        query = query.repeat_interleave(episodes, dim=0)
        protos = support_prototypes(support, support_masks, (1,), self.low_level_stride)
        return self.similarity_scale * cosine_maps(query, protos)

    @staticmethod
    def _best_matches(
        query: torch.Tensor, support: torch.Tensor, support_masks: torch.Tensor
    ) -> torch.Tensor:
        """The dense correlation squeezed by its max, ``(B, 2, h, w)``.

        Each query position's best clamped cosine with the support's background and with its
        foreground positions, averaged over the shots.
        """
        b, k = support_masks.shape[:2]
        q = query.repeat_interleave(k, dim=0)
        masks = support_masks.flatten(0, 1)
        maps = [
            dense_correlation(q, support, (masks == value).long()).flatten(3).amax(-1)
            for value in (0, 1)
        ]
        out = torch.stack(maps, dim=1)  # (B*K, 2, h, w)
        return out.view(b, k, *out.shape[1:]).mean(1).to(query.dtype)


for _variant in VARIANTS:
    register_architecture(_variant, SMVCENet, variant=_variant)


def _factory(
    name: str,
    variant: str,
    backbone: str,
    pretrained: bool,
    kwargs: dict[str, Any],
    defaults: Mapping[str, Any] | None = None,
    **fixed: Any,
) -> SMVCENet:
    """What every factory below does: ``variant`` (and ``fixed``) set, ``defaults`` overridable."""
    fixed = {"variant": variant, **fixed}
    check_not_fixed(name, kwargs, fixed)
    kwargs = {**dict(defaults or {}), **kwargs}
    return SMVCENet(kwargs.pop("backbone", backbone), pretrained=pretrained, **fixed, **kwargs)


FEWSHOT_DEFAULTS: dict[str, Any] = {
    "similarity": "query",
    "similarity_residual": True,
    "similarity_channels": 128,
    "alignment_weight": 1.0,
    "low_level_similarity": True,
    "shot_merge": "mean",
}
"""Defaults of the ``sm_vcenet_fewshot_*`` factories (measured on the toy data)."""


@register_model
def sm_vcenet_resnet50(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """SM-VCENet over a frozen ResNet50 (the paper's model)."""
    return _factory("sm_vcenet_resnet50", "sm_vcenet", "resnet50", pretrained, kwargs)


@register_model
def m_vcenet_resnet50(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """M-VCENet (MAM only, Table 3) over ResNet50."""
    return _factory("m_vcenet_resnet50", "m_vcenet", "resnet50", pretrained, kwargs)


@register_model
def vcenet_resnet50(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """VCENet (visual class embedding without MAM/SAM, Table 3) over ResNet50."""
    return _factory("vcenet_resnet50", "vcenet", "resnet50", pretrained, kwargs)


@register_model
def deeplab_resnet50(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """DeepLab baseline (no class branch, Tables 1-3) over ResNet50."""
    return _factory("deeplab_resnet50", "deeplab", "resnet50", pretrained, kwargs)


@register_model
def sm_vcenet_resnet101(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """SM-VCENet (MAM + SAM) over a frozen, dilated ResNet101."""
    return _factory("sm_vcenet_resnet101", "sm_vcenet", "resnet101", pretrained, kwargs)


@register_model
def m_vcenet_resnet101(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """M-VCENet (MAM only, Table 3) over ResNet101."""
    return _factory("m_vcenet_resnet101", "m_vcenet", "resnet101", pretrained, kwargs)


@register_model
def vcenet_resnet101(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """VCENet (visual class embedding without MAM/SAM, Table 3) over ResNet101."""
    return _factory("vcenet_resnet101", "vcenet", "resnet101", pretrained, kwargs)


@register_model
def deeplab_resnet101(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """DeepLab baseline (no class branch, Tables 1-3) over ResNet101."""
    return _factory("deeplab_resnet101", "deeplab", "resnet101", pretrained, kwargs)


@register_model
def sm_vcenet_efficientnet_lite0(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """SM-VCENet over a frozen EfficientNet-Lite0 (offline ImageNet weights: fewzero[weights])."""
    return _factory(
        "sm_vcenet_efficientnet_lite0", "sm_vcenet", "efficientnet_lite0", pretrained, kwargs
    )


@register_model
def m_vcenet_efficientnet_lite0(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """M-VCENet (MAM only, Table 3) over EfficientNet-Lite0."""
    return _factory(
        "m_vcenet_efficientnet_lite0", "m_vcenet", "efficientnet_lite0", pretrained, kwargs
    )


@register_model
def vcenet_efficientnet_lite0(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """VCENet (visual class embedding without MAM/SAM, Table 3) over EfficientNet-Lite0."""
    return _factory("vcenet_efficientnet_lite0", "vcenet", "efficientnet_lite0", pretrained, kwargs)


@register_model
def deeplab_efficientnet_lite0(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """DeepLab baseline (no class branch, Tables 1-3) over EfficientNet-Lite0."""
    return _factory(
        "deeplab_efficientnet_lite0", "deeplab", "efficientnet_lite0", pretrained, kwargs
    )


@register_model
def sm_vcenet_fewshot_resnet50(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """Few-shot SM-VCENet over ResNet50.

    The class embedding is the masked-average prototype of the support images' class-branch
    output (``class_source='support'``, fixed), and the cosine similarity of the query features
    with the support's foreground and background prototypes feeds the CCM and is added to its
    logits ([`FEWSHOT_DEFAULTS`][fewzero.models.FEWSHOT_DEFAULTS], overridable: ``similarity='query',
    similarity_residual=True``, compared in a learned 128-channel projection; the mechanism
    that makes the prediction follow the support, chosen by measurement, see the Few-shot
    guide). The backbone's low-level map (stride 4: ``layer1``) is compared the same way in a
    learned 32-channel projection, its foreground map added to the foreground logit
    (``low_level_similarity=True``).
    In training, PANet's prototype alignment loss (``alignment_weight=1.0``) also segments
    each support with the query's predicted regions.
    """
    return _factory(
        "sm_vcenet_fewshot_resnet50",
        "sm_vcenet",
        "resnet50",
        pretrained,
        kwargs,
        FEWSHOT_DEFAULTS,
        class_source="support",
    )


@register_model
def sm_vcenet_fewshot_resnet101(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """Few-shot SM-VCENet over ResNet101, as [`sm_vcenet_fewshot_resnet50`][fewzero.models.sm_vcenet_fewshot_resnet50]."""
    return _factory(
        "sm_vcenet_fewshot_resnet101",
        "sm_vcenet",
        "resnet101",
        pretrained,
        kwargs,
        FEWSHOT_DEFAULTS,
        class_source="support",
    )


@register_model
def sm_vcenet_fewshot_efficientnet_lite0(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """Few-shot SM-VCENet over EfficientNet-Lite0, as [`sm_vcenet_fewshot_resnet50`][fewzero.models.sm_vcenet_fewshot_resnet50]."""
    return _factory(
        "sm_vcenet_fewshot_efficientnet_lite0",
        "sm_vcenet",
        "efficientnet_lite0",
        pretrained,
        kwargs,
        FEWSHOT_DEFAULTS,
        class_source="support",
    )
