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

``C`` is the channel count of ``I_class`` (2048 for ResNet50) unless ``class_branch={"channels": ...}`` reduces it.

What the decoder (CCM) reads beside the query features is a list of
[comparisons][fewzero.heads.comparisons]: the paper's zero-shot model has one, ``"self"`` (the
query's own class embedding); few-shot models compare the query with a support set
(``"prototype"``, ``"cosine"``, ``"low_level"``, ...). The forward is the same for both:
encode the episode, compare, decode, add the comparisons' residuals, merge the shots.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..checks import as_int_tuple, check_choice
from ..heads import ClassComparisonModule, QueryBranch, VisualClassEmbedding
from ..heads.comparisons import (
    Comparisons,
    ComparisonSpec,
    FeatureSources,
    MissingSourceError,
    add_residuals,
)
from ..heads.episode import Episode, Features
from ..heads.shot_merge import SHOT_MERGES, check_shot_merge
from ._registry import register_architecture
from .backbone import Backbone
from .families import Family, Variant, build_variant
from .fewshot import FewShotModel, encode_pair
from .legacy import legacy_key_names, upgrade_sm_vcenet
from .options import CLASS_BRANCH_OPTIONS, DECODER_OPTIONS
from .stage_split import mid_levels, run_last_stage, split_last_stage

__all__ = [
    "FEWSHOT_DEFAULTS",
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


class SMVCENet(FewShotModel):
    """SM-VCENet family: frozen backbone, query branch, class branch, comparisons, CCM.

    Zero-shot (``comparisons=["self"]``, the paper, the default with a class branch): the class
    embedding is the class branch's output on the query image itself. Few-shot: the
    comparisons read the support set, e.g. ``["prototype", "cosine", "low_level"]`` (the
    ``sm_vcenet_fewshot_*`` defaults, [FEWSHOT_DEFAULTS][fewzero.models.FEWSHOT_DEFAULTS]):
    the class branch's masked-average prototype of the supports, PANet's cosine maps of the
    query features against the support's background and foreground prototypes (also added to
    the logits, trained with PANet's alignment loss), and the backbone's low-level map
    compared the same way. Any registered comparison, or one of your own
    ([register_comparison][fewzero.heads.comparisons.register_comparison]), plugs in by name
    or dict; the model's config holds each one's full settings.

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
        comparisons: What the decoder reads beside the query features, in order: names, dicts
            (``{"name": "cosine", "channels": 64}``) or built comparisons
            ([fewzero.heads.comparisons][fewzero.heads.comparisons]). ``None``: ``["self"]``
            (zero-shot, the paper), or none for ``variant="deeplab"``. A model with a
            comparison that reads the support set is few-shot.
        shot_merge: How K > 1 shots combine, one of
            [SHOT_MERGES][fewzero.heads.shot_merge.SHOT_MERGES]: ``"prototype"`` (each
            comparison pools the shots), ``"mean"`` (K one-shot episodes, logits averaged) or
            ``"vote"`` (HSNet's vote of the one-shot masks at evaluation).
        class_branch: The class branch's options, a dict of
            [CLASS_BRANCH_OPTIONS][fewzero.models.options.CLASS_BRANCH_OPTIONS]' keys
            (``input``, ``attention``, ``channels``, ``bins``, ``pooled_projection``); the
            others keep their defaults.
        query_channels: Query feature width (256).
        decoder: The CCM's options, a dict of
            [DECODER_OPTIONS][fewzero.models.options.DECODER_OPTIONS]' keys (``channels``,
            ``depth``, ``aspp_rates``).
        num_classes: Output logits (2; a comparison with a logit residual needs 2).
        backbone_kwargs: Extra arguments of [`Backbone`][fewzero.models.Backbone].

    Examples:
        >>> import torch
        >>> model = SMVCENet("resnet18", variant="sm_vcenet").eval()
        >>> model(torch.randn(1, 3, 65, 65)).shape
        torch.Size([1, 2, 65, 65])
        >>> fewshot = SMVCENet("resnet18", comparisons=["prototype", "cosine"]).eval()
        >>> masks = torch.zeros(1, 2, 49, 49, dtype=torch.long)
        >>> masks[..., 10:30, 10:30] = 1
        >>> fewshot(torch.randn(1, 3, 65, 65), torch.randn(1, 2, 3, 49, 49), masks).shape
        torch.Size([1, 2, 65, 65])
    """

    shot_merges: tuple[str, ...] = SHOT_MERGES
    """The K-shot rules this model accepts."""

    number_rules = {"query_channels": "positive_int", "num_classes": "positive_int"}
    option_groups = {"class_branch": CLASS_BRANCH_OPTIONS, "decoder": DECODER_OPTIONS}

    def __init__(
        self,
        backbone: str | nn.Module = "resnet50",
        variant: str = "sm_vcenet",
        *,
        pretrained: bool = False,
        pretrained_file: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None,
        comparisons: Sequence[ComparisonSpec] | None = None,
        shot_merge: str = "prototype",
        class_branch: Mapping[str, Any] | None = None,
        query_channels: int = 256,
        decoder: Mapping[str, Any] | None = None,
        num_classes: int = 2,
        backbone_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.variant = check_choice("variant", variant, tuple(VARIANTS))
        branch = self.resolve_options("class_branch", class_branch)
        head = self.resolve_options("decoder", decoder)
        self.class_input = branch["input"]
        self.shot_merge = check_shot_merge(shot_merge, self.shot_merges, "SMVCENet")
        has_class, mam, sam = VARIANTS[variant]
        bins = as_int_tuple("class_branch.bins", branch["bins"])
        aspp_rates = as_int_tuple("decoder.aspp_rates", head["aspp_rates"])
        self.encoder = Backbone(
            backbone,
            pretrained=pretrained,
            pretrained_file=pretrained_file,
            last_stage=has_class,  # DeepLab discards F_4: never build or run the last stage
            **dict(backbone_kwargs or {}),
        )
        c2, c3, *c4 = self.encoder.channels
        self.query = QueryBranch(c2 + c3, query_channels)
        sources = self._sources(query_channels, branch["channels"], num_classes)
        if isinstance(comparisons, (str, Mapping)):
            comparisons = [comparisons]
        default = ["self"] if has_class else []
        self.comparisons = Comparisons(default if comparisons is None else comparisons, sources)
        self.strides = self._strides()
        """Pixels per cell of each source's grid (the comparisons' masks are resized by them)."""
        self.requires_support = self.accepts_support = self.comparisons.needs_support
        _check_merge_reads_support(shot_merge, self.comparisons)
        self.adapter = self._adapter(c2, c3) if has_class and self.class_input == "concat" else None
        self.class_branch: VisualClassEmbedding | None = (
            VisualClassEmbedding(c4[0], branch["channels"], mam=mam, sam=sam, bins=bins,
                                 attention=branch["attention"],
                                 pooled_projection=branch["pooled_projection"])
            if has_class
            else None
        )  # fmt: skip
        self.decoder = ClassComparisonModule(
            query_channels, self.comparisons.out_channels, channels=head["channels"],
            depth=head["depth"], aspp_rates=aspp_rates, num_classes=num_classes,
        )  # fmt: skip
        self.num_classes = num_classes

    def _strides(self) -> dict[str, int]:
        """Pixels per cell of each source's grid (the low-level map's only when read)."""
        strides = {s: int(self.encoder.stride) for s in ("query", "class", "f4")}
        if "low_level" in self.comparisons.reads("query") | self.comparisons.reads("support"):
            strides["low_level"] = self.encoder.low_level_shape()[1]
        return strides

    def _adapter(self, c2: int, c3: int) -> nn.Conv2d:
        """Eq. 1's trainable 1x1 adapter of ``F_2 ⊕ F_3``, initialised to pass ``F_3`` through."""
        split_last_stage(self.encoder)  # fail early: a last stage that cannot run alone
        adapter = nn.Conv2d(c2 + c3, c3, 1)
        with torch.no_grad():
            adapter.weight.zero_()
            adapter.bias.zero_()
            adapter.weight[:, c2:, 0, 0].copy_(torch.eye(c3))
        return adapter

    def _sources(
        self, query_channels: int, class_channels: int | None, num_classes: int
    ) -> FeatureSources:
        """The features this model offers its comparisons."""
        channels: dict[str, Any] = {
            "query": query_channels,
            "low_level": lambda: self.encoder.low_level_shape()[0],
        }
        has_class, _, sam = VARIANTS[self.variant]
        if has_class:
            c4 = self.encoder.channels[2]
            channels["f4"] = c4
            channels["class"] = VisualClassEmbedding.output_channels(c4, class_channels, sam)
        no_class = (
            f"variant={self.variant!r} has no class branch; use 'vcenet', 'm_vcenet' or 'sm_vcenet'"
        )
        return FeatureSources(channels, {"class": no_class, "f4": no_class}, num_classes)

    def config_from_arguments(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """``config`` with each comparison's full settings (see ``SegmentationModel``)."""
        return super().config_from_arguments({**arguments, "comparisons": self.comparisons.configs})

    @classmethod
    def upgrade_state(
        cls, config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]
    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """A config and state dict of an earlier fewzero in today's terms (see ``legacy``)."""
        return super().upgrade_state(*upgrade_sm_vcenet(config, state_dict))

    @classmethod
    def file_key_names(cls, config: Mapping[str, Any]) -> dict[str, str]:
        """Today's key prefix -> an old file's (see ``legacy``)."""
        return legacy_key_names(config)

    def backbone_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Return ``[F_2, F_3]`` (on one grid), and ``I_class`` with a class branch."""
        if self.adapter is not None:
            f2, f3 = mid_levels(self.encoder, images)
            return [f2, f3, run_last_stage(self.encoder, self.adapter(torch.cat([f2, f3], 1)))]
        return self.encoder(images)[: 2 + (self.class_branch is not None)]

    def encode(self, images: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """The backbone's levels ([backbone_features][fewzero.models.SMVCENet.backbone_features])."""
        return {"levels": self.backbone_features(images)}

    def encode_episode(
        self,
        images: torch.Tensor,
        support_images: torch.Tensor | None = None,
        support_masks: torch.Tensor | None = None,
    ) -> Episode:
        """Encode an episode: the sources the comparisons read, of the query and the supports.

        One backbone pass over query and supports when their sizes match
        ([encode_pair][fewzero.models.encode_pair]); the query branch always runs on the query
        (the decoder reads it), every other source only where a comparison reads it.
        """
        need_q, need_s = self.comparisons.reads("query"), self.comparisons.reads("support")
        flat = None if support_images is None or not need_s else support_images.flatten(0, 1)
        levels = flat if need_s - {"low_level"} else None  # the supports' levels, if read
        q_enc, s_enc = encode_pair(self.encode, images, levels)
        q_maps = q_enc["levels"]
        s_maps = None if s_enc is None else s_enc["levels"]
        assert isinstance(q_maps, list) and (s_maps is None or isinstance(s_maps, list))
        query, support = encode_pair(
            lambda x: {"query": self.query(x)},
            torch.cat(q_maps[:2], 1),
            None if s_maps is None or "query" not in need_s else torch.cat(s_maps[:2], 1),
        )
        q: dict[str, Features] = dict(query)
        s: dict[str, Features] = {} if support is None else dict(support)
        q_query = q["query"]
        assert isinstance(q_query, torch.Tensor)
        size = q_query.shape[-2:]
        if "f4" in need_q | need_s:
            q["f4"] = q_maps[2]
            if s_maps is not None:
                s["f4"] = s_maps[2]
        if "class" in need_q:
            assert self.class_branch is not None
            q["class"] = self.encoder.align([q_query, self.class_branch(q_maps[2])])[1]
        if "class" in need_s and s_maps is not None:
            assert self.class_branch is not None
            s["class"] = self.class_branch(s_maps[2])
        if "low_level" in need_q | need_s:
            low_q, low_s = encode_pair(
                lambda x: {"low_level": self.encoder.features(x, ("low",))["low"]}, images, flat
            )
            q.update(low_q)
            if low_s is not None:
                s.update(low_s)
        return Episode(q, s, support_masks, self.strides, (int(size[0]), int(size[1])))

    def decode(self, episode: Episode) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Compare, decode (CCM) and add the comparisons' residuals: ``(N, num_classes, h, w)``.

        Auxiliary losses (the comparisons', e.g. ``"alignment"``) come back in training only.
        """
        maps, residuals = self.comparisons(episode)
        query = episode.query["query"]
        assert isinstance(query, torch.Tensor)
        logits = add_residuals(self.decoder(query, maps), residuals)
        losses = self.comparisons.losses(episode, logits) if self.training else {}
        return logits, losses


def _check_merge_reads_support(shot_merge: str, comparisons: Comparisons) -> None:
    """A shot merge other than the default needs a comparison that reads the support."""
    if shot_merge != "prototype" and not comparisons.needs_support:
        raise ValueError(
            f"shot_merge={shot_merge!r} merges the shots of a support set, but comparisons "
            f"{[c.get('name') for c in comparisons.configs]} read none (a zero-shot "
            "model): drop shot_merge, or add a comparison that reads the support, e.g. "
            "comparisons=['prototype', 'cosine']"
        )


for _variant in VARIANTS:
    register_architecture(_variant, SMVCENet, variant=_variant)


def _build(name: str, variant: Variant, pretrained: bool, kwargs: dict[str, Any]) -> nn.Module:
    """A row of the table; a default ``low_level`` comparison is left out where a body has none."""
    try:
        return build_variant(name, variant, pretrained, kwargs)
    except MissingSourceError as err:
        if kwargs.get("comparisons") is not None or "comparisons" not in variant.defaults:
            raise
        if err.source != "low_level":
            raise
    # a default comparison the backbone cannot feed (no map before F_2's stage: plain ViTs)
    fewer = [c for c in variant.defaults["comparisons"] if c != "low_level"]
    backbone = kwargs.get("backbone", variant.backbone)
    warnings.warn(
        f"{name}: backbone {backbone!r} has no low-level map; built without the 'low_level' "
        f"comparison (comparisons={fewer})",
        stacklevel=3,
    )
    return build_variant(name, variant, pretrained, {**kwargs, "comparisons": fewer})


FEWSHOT_DEFAULTS: dict[str, Any] = {
    "comparisons": ["prototype", "cosine", "low_level"],
    "shot_merge": "mean",
}
"""Defaults of the ``sm_vcenet_fewshot_*`` factories (chosen by measurement on the toy data:
the docs' results page): the class branch's support prototype, PANet's cosine maps in a learned
128-channel projection (added to the logits, with the alignment loss), the low-level map, and
the K shots as one-shot episodes whose logits are averaged."""


SM_VCENET_FAMILY = Family(
    "sm_vcenet",
    {
        "sm_vcenet_resnet50": Variant("sm_vcenet", "resnet50"),
        "m_vcenet_resnet50": Variant("m_vcenet", "resnet50"),
        "vcenet_resnet50": Variant("vcenet", "resnet50"),
        "deeplab_resnet50": Variant("deeplab", "resnet50"),
        "sm_vcenet_resnet101": Variant("sm_vcenet", "resnet101"),
        "m_vcenet_resnet101": Variant("m_vcenet", "resnet101"),
        "vcenet_resnet101": Variant("vcenet", "resnet101"),
        "deeplab_resnet101": Variant("deeplab", "resnet101"),
        "sm_vcenet_efficientnet_lite0": Variant("sm_vcenet", "efficientnet_lite0"),
        "m_vcenet_efficientnet_lite0": Variant("m_vcenet", "efficientnet_lite0"),
        "vcenet_efficientnet_lite0": Variant("vcenet", "efficientnet_lite0"),
        "deeplab_efficientnet_lite0": Variant("deeplab", "efficientnet_lite0"),
        "sm_vcenet_fewshot_resnet50": Variant("sm_vcenet", "resnet50", FEWSHOT_DEFAULTS),
        "sm_vcenet_fewshot_resnet101": Variant("sm_vcenet", "resnet101", FEWSHOT_DEFAULTS),
        "sm_vcenet_fewshot_efficientnet_lite0": Variant(
            "sm_vcenet", "efficientnet_lite0", FEWSHOT_DEFAULTS
        ),
    },
    _build,
)
"""The SM-VCENet family's factories: architecture (the variant), backbone and defaults."""


@SM_VCENET_FAMILY.factory
def sm_vcenet_resnet50(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """SM-VCENet over a frozen ResNet50 (the paper's model)."""


@SM_VCENET_FAMILY.factory
def m_vcenet_resnet50(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """M-VCENet (MAM only, Table 3) over ResNet50."""


@SM_VCENET_FAMILY.factory
def vcenet_resnet50(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """VCENet (visual class embedding without MAM/SAM, Table 3) over ResNet50."""


@SM_VCENET_FAMILY.factory
def deeplab_resnet50(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """DeepLab baseline (no class branch, Tables 1-3) over ResNet50."""


@SM_VCENET_FAMILY.factory
def sm_vcenet_resnet101(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """SM-VCENet (MAM + SAM) over a frozen, dilated ResNet101."""


@SM_VCENET_FAMILY.factory
def m_vcenet_resnet101(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """M-VCENet (MAM only, Table 3) over ResNet101."""


@SM_VCENET_FAMILY.factory
def vcenet_resnet101(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """VCENet (visual class embedding without MAM/SAM, Table 3) over ResNet101."""


@SM_VCENET_FAMILY.factory
def deeplab_resnet101(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """DeepLab baseline (no class branch, Tables 1-3) over ResNet101."""


@SM_VCENET_FAMILY.factory
def sm_vcenet_efficientnet_lite0(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """SM-VCENet over a frozen EfficientNet-Lite0 (offline ImageNet weights: fewzero[weights])."""


@SM_VCENET_FAMILY.factory
def m_vcenet_efficientnet_lite0(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """M-VCENet (MAM only, Table 3) over EfficientNet-Lite0."""


@SM_VCENET_FAMILY.factory
def vcenet_efficientnet_lite0(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """VCENet (visual class embedding without MAM/SAM, Table 3) over EfficientNet-Lite0."""


@SM_VCENET_FAMILY.factory
def deeplab_efficientnet_lite0(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """DeepLab baseline (no class branch, Tables 1-3) over EfficientNet-Lite0."""


@SM_VCENET_FAMILY.factory
def sm_vcenet_fewshot_resnet50(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """Few-shot SM-VCENet over ResNet50 ([FEWSHOT_DEFAULTS][fewzero.models.FEWSHOT_DEFAULTS]: prototype, cosine and low-level comparisons, shots averaged)."""


@SM_VCENET_FAMILY.factory
def sm_vcenet_fewshot_resnet101(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """Few-shot SM-VCENet over ResNet101 ([FEWSHOT_DEFAULTS][fewzero.models.FEWSHOT_DEFAULTS])."""


@SM_VCENET_FAMILY.factory
def sm_vcenet_fewshot_efficientnet_lite0(pretrained: bool = False, **kwargs: Any) -> SMVCENet:
    """Few-shot SM-VCENet over EfficientNet-Lite0 ([FEWSHOT_DEFAULTS][fewzero.models.FEWSHOT_DEFAULTS])."""
