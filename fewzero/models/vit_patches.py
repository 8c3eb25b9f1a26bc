"""Frozen patch-token maps of a foundation ViT (DINOv2, DINOv3), loaded from Meta's own files.

The training-free models ([INSID3][fewzero.models.INSID3]) match the patch tokens of a frozen
self-supervised ViT. [ViTPatches][fewzero.models.ViTPatches] builds timm's model of that name
(``vit_large_patch16_dinov3``, ``vit_large_patch14_dinov2``, ...) and loads the ``.pth`` file
Meta publishes (``dinov3_vitl16_pretrain_lvd1689m-8aa4cbdd.pth``,
``dinov2_vitl14_pretrain.pth``) through timm's own key filter, strictly: a missing, extra or
misshapen tensor is named, as is a file of another model (a SAM file, DINOv2 given for DINOv3, a
ViT-B given for a ViT-L).

Where the maps are read (``tap``):

* ``"final_norm"``: the last block's tokens after the final LayerNorm (DINOv3's
  ``get_intermediate_layers(x, n=1, norm=True)``, what INSID3 reads);
* ``"last_block"``: the last block's tokens before it (DINOv2's ``x_prenorm``, what GF-SAM reads).

The class token and the register tokens are dropped; the rest is the ``(B, C, h, w)`` grid.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import Any

import timm
import torch
from torch import nn

from ..checks import IMAGENET_MEAN, IMAGENET_STD, check_file
from .feature_cache import FeatureCache, through_cache, weights_fingerprint
from .readers.fixed_size import pad_run_crop
from .weights import check_finite_state, key_mismatches, labelled_state, timm_filter

__all__ = ["VIT_TAPS", "ViTPatches", "describe_vit_file"]

VIT_TAPS = ("final_norm", "last_block")
"""Where [ViTPatches][fewzero.models.ViTPatches] reads the tokens: after or before the final norm."""


def describe_vit_file(state_dict: Mapping[str, torch.Tensor]) -> str:
    """What a weights file is, in words, from its keys: ``"DINOv3 ViT (width 1024, 24 blocks)"``.

    Recognises Meta's SAM (``image_encoder.*``), DINOv3 (``storage_tokens``) and DINOv2
    (``mask_token`` and ``pos_embed``) layouts; anything else is ``"an unknown layout"``.

    Examples:
        >>> import torch
        >>> describe_vit_file({"image_encoder.pos_embed": torch.zeros(1, 4, 4, 8)})
        'a SAM file (image encoder width 8)'
    """
    if any(k.startswith("image_encoder.") for k in state_dict):
        width = state_dict.get("image_encoder.pos_embed", torch.zeros(1, 1, 1, 0)).shape[-1]
        return f"a SAM file (image encoder width {width})"
    blocks = {k.split(".")[1] for k in state_dict if k.startswith("blocks.")}
    cls = state_dict.get("cls_token")
    width = int(cls.shape[-1]) if isinstance(cls, torch.Tensor) else 0
    if "storage_tokens" in state_dict:
        return f"a DINOv3 ViT file (width {width}, {len(blocks)} blocks)"
    if "mask_token" in state_dict and "pos_embed" in state_dict:
        return f"a DINOv2 ViT file (width {width}, {len(blocks)} blocks)"
    return "an unknown layout"


def _family(name: str) -> str:
    return "DINOv3" if "dinov3" in name else "DINOv2" if "dinov2" in name else "timm"


class ViTPatches(nn.Module):
    """A frozen timm ViT read as one patch-token map, from Meta's DINOv2/DINOv3 files.

    Shapes:
        images ``(B, 3, H, W)`` -> ``(B, C, ceil(H / p), ceil(W / p))`` (``p`` the patch; sides
        are padded with zeros, the normalised mean colour, to a multiple of ``p`` and the grid
        cropped back to the cells that cover the input).

    Args:
        name: A timm ViT name: ``vit_{small,base,large}_patch16_dinov3`` (their ``_qkvb``
            variants, for files whose attention has biases), ``vit_*_patch14_dinov2``.
        weights_file: Meta's ``.pth`` (or a ``.safetensors``) of that model; ``None``: random
            weights (tests).
        tap: Where the tokens are read, of [VIT_TAPS][fewzero.models.vit_patches.VIT_TAPS].
        argument: How errors name ``weights_file`` (the model's argument, e.g. ``dinov3_file``).
        **timm_kwargs: Passed to ``timm.create_model`` (``depth``, ``embed_dim``, ...).

    Attributes:
        name, mean, std, stride: The timm name, the input normalisation and the patch size.
        channels: The width ``C``.
        frozen: Always ``True``; ``cache``: a [FeatureCache][fewzero.models.FeatureCache] or
            ``None``.

    Raises:
        FileNotFoundError: ``weights_file`` does not exist.
        ValueError: a file of another model or size (named, with what it holds), non-finite
            weights, or a ``tap`` not in ``VIT_TAPS``.

    Examples:
        >>> import torch
        >>> vit = ViTPatches("vit_small_patch16_dinov3", depth=1, embed_dim=32, num_heads=2)
        >>> tuple(vit(torch.randn(1, 3, 40, 64)).shape)
        (1, 32, 3, 4)
    """

    frozen = True

    def __init__(
        self,
        name: str,
        weights_file: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None,
        *,
        tap: str = "final_norm",
        argument: str = "weights_file",
        **timm_kwargs: Any,
    ) -> None:
        super().__init__()
        if tap not in VIT_TAPS:
            raise ValueError(f"tap must be one of {VIT_TAPS}, got {tap!r}")
        if isinstance(weights_file, (str, os.PathLike)):
            check_file(weights_file, argument)
        self.name, self.tap, self.cache = name, tap, None
        self.cache: FeatureCache | None
        kwargs = {"num_classes": 0, "dynamic_img_size": True, **timm_kwargs}
        self.body = timm.create_model(name, pretrained=False, **kwargs)
        if weights_file is not None:
            self._load(weights_file, argument)
        for p in self.body.parameters():
            p.requires_grad_(False)
        self.body.eval()
        cfg = getattr(self.body, "pretrained_cfg", None) or {}
        self.mean = tuple(float(v) for v in cfg.get("mean", IMAGENET_MEAN))
        self.std = tuple(float(v) for v in cfg.get("std", IMAGENET_STD))
        patch = self.body.patch_embed.patch_size
        self.stride = int(patch[0] if isinstance(patch, (tuple, list)) else patch)
        self.channels = int(self.body.embed_dim)
        self._settings = f"{name}|{tap}|{sorted(timm_kwargs.items())!r}"

    def _load(
        self, source: str | os.PathLike[str] | Mapping[str, torch.Tensor], argument: str
    ) -> None:
        """Meta's state dict through timm's filter for this model, strictly, every problem named."""
        label, state = labelled_state(source, argument)
        own = self.body.state_dict()
        want = f"a {_family(self.name)} ViT (width {self.body.embed_dim}, {len(self.body.blocks)} blocks)"
        held = describe_vit_file(state)
        try:
            filtered = timm_filter(self.body)(state, self.body)
        except Exception:  # another layout entirely: the key check below names it
            filtered = state
        problems = key_mismatches(own, filtered)
        if problems:
            raise ValueError(
                f"{label} holds {held}, but {self.name!r} is {want}: "
                + "; ".join(problems)
                + f". Give {argument} Meta's file of this model, or choose the model that "
                "matches the file"
            )
        loaded = {k: filtered[k] for k in own}
        check_finite_state(loaded, label)
        self.body.load_state_dict(loaded, strict=True)

    @property
    def min_input_size(self) -> int:
        """Smallest input side: one patch."""
        return self.stride

    def size_rule(self) -> str:
        """The input-size constraint in words, for error messages."""
        return (
            f"{self.name!r} needs sides >= {self.stride} (one patch); other sides are padded to "
            f"a multiple of {self.stride}"
        )

    def train(self, mode: bool = True) -> ViTPatches:
        """Set training mode; the frozen body stays in ``eval()``."""
        super().train(mode)
        self.body.eval()
        return self

    def cache_owner(self) -> str:
        """The cache key's encoder half: the weights' content and the settings."""
        settings = hashlib.blake2b(self._settings.encode(), digest_size=8).hexdigest()
        return f"{weights_fingerprint(self.body)}:{settings}"

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The patch-token map ``(B, C, h, w)`` at ``tap`` (no gradient: the body is frozen)."""
        return through_cache(self.cache, self.cache_owner, images, self._compute)[0]

    def _compute(self, images: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            return pad_run_crop(images, self.stride, "NCHW", self._grid)

    def _grid(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The last block's tokens as a grid, through the final norm or not (timm's own reading)."""
        return list(
            self.body.forward_intermediates(
                x,
                indices=1,
                norm=self.tap == "final_norm",
                output_fmt="NCHW",
                intermediates_only=True,
            )
        )
