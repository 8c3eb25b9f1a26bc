"""Segment Anything (SAM) from Meta's own files: timm's image encoder, fewzero's prompt bricks.

[SegmentAnything][fewzero.models.SegmentAnything] is SAM's three parts under the names of
Meta's ``sam_vit_{b,l,h}_*.pth`` files:

* ``image_encoder``: timm's ``samvit_{base,large,huge}_patch16`` (the file's
  ``image_encoder.*`` through timm's own key filter);
* ``prompt_encoder``: [SamPromptEncoder][fewzero.layers.sam_prompts.SamPromptEncoder];
* ``mask_decoder``: [SamMaskDecoder][fewzero.layers.sam_mask_decoder.SamMaskDecoder].

Meta's file loads strictly into the whole: a missing, extra or misshapen tensor is named, and so
is a file of another model (a DINO file, ViT-B given where ViT-H is expected).

The image side follows Meta's ``SamPredictor``: 8-bit RGB, its longest side resized to 1024,
normalised with SAM's pixel mean and std (ImageNet's, times 255) and padded (bottom, right) to
1024 x 1024. Masks come back at the input's size: the 256 x 256 logits are upsampled to 1024,
cropped to the resized image and resized to the input (bilinear, ``align_corners=False``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import nn

from ..checks import check_file
from ..layers.sam_mask_decoder import SamMaskDecoder
from ..layers.sam_prompts import SamPromptEncoder
from .vit_patches import describe_vit_file
from .weights import check_finite_state, key_mismatches, labelled_state, timm_filter

__all__ = ["SAM_SIZES", "SegmentAnything"]

SAM_SIZES = {
    "vit_b": "samvit_base_patch16",
    "vit_l": "samvit_large_patch16",
    "vit_h": "samvit_huge_patch16",
}
"""Meta's SAM sizes (``sam_vit_b_01ec64.pth``, ``sam_vit_l_0b3195.pth``, ``sam_vit_h_4b8939.pth``) -> timm's encoder."""

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


class SegmentAnything(nn.Module):
    """SAM: an image embedding once, then masks for any number of point or box prompts.

    Shapes:
        ``embed``: 8-bit-valued RGB ``(B, 3, H, W)`` (0..255, float) -> ``(B, C, 64, 64)``;
        ``predict_points``: that embedding ``(1, C, 64, 64)`` and ``N`` prompts of ``P`` points
        -> mask logits ``(N, 1, H, W)`` (``(N, 3, H, W)`` with ``multimask_output``) and IoU
        estimates.

    Args:
        size: ``"vit_b"``, ``"vit_l"`` or ``"vit_h"`` (the encoder of Meta's file).
        sam_file: Meta's ``sam_vit_*.pth`` (or a state dict); ``None``: random weights (tests).
        image_size: The encoder's input side (SAM: 1024).
        prompt_dim: The prompt and decoder width (SAM: 256).
        encoder_kwargs: Extra ``timm.create_model`` arguments of the image encoder (tests).
        decoder_kwargs: Extra [SamMaskDecoder][fewzero.layers.sam_mask_decoder.SamMaskDecoder]
            arguments.
        argument: How errors name ``sam_file``.

    Examples:
        >>> import torch
        >>> sam = SegmentAnything("vit_b", image_size=64, prompt_dim=32,
        ...     encoder_kwargs=dict(depth=1, embed_dim=32, num_heads=2, global_attn_indexes=[0]),
        ...     decoder_kwargs=dict(num_heads=2, mlp_dim=64, iou_head_hidden_dim=32)).eval()
        >>> emb = sam.embed(255 * torch.rand(1, 3, 64, 48))
        >>> logits, iou = sam.predict_points(emb, torch.tensor([[[10, 20]]]), torch.ones(1, 1), (64, 48))
        >>> tuple(logits.shape), tuple(iou.shape)
        ((1, 1, 64, 48), (1, 1))
    """

    def __init__(
        self,
        size: str = "vit_h",
        sam_file: str | os.PathLike[str] | Mapping[str, torch.Tensor] | None = None,
        *,
        image_size: int = 1024,
        prompt_dim: int = 256,
        encoder_kwargs: Mapping[str, Any] | None = None,
        decoder_kwargs: Mapping[str, Any] | None = None,
        argument: str = "sam_file",
    ) -> None:
        super().__init__()
        if size not in SAM_SIZES:
            raise ValueError(f"size must be one of {sorted(SAM_SIZES)}, got {size!r}")
        if isinstance(sam_file, (str, os.PathLike)):
            check_file(sam_file, argument)
        self.size, self.image_size = size, int(image_size)
        self.image_encoder = timm.create_model(
            SAM_SIZES[size],
            pretrained=False,
            num_classes=0,
            img_size=image_size,
            neck_chans=prompt_dim,
            **dict(encoder_kwargs or {}),
        )
        grid = image_size // 16
        self.prompt_encoder = SamPromptEncoder(prompt_dim, (grid, grid), (image_size, image_size))
        self.mask_decoder = SamMaskDecoder(prompt_dim, **dict(decoder_kwargs or {}))
        self.register_buffer("pixel_mean", torch.tensor(PIXEL_MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(PIXEL_STD).view(3, 1, 1), persistent=False)
        if sam_file is not None:
            self.load_meta(sam_file, argument)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def load_meta(
        self,
        source: str | os.PathLike[str] | Mapping[str, torch.Tensor],
        argument: str = "sam_file",
    ) -> None:
        """Load Meta's SAM state dict strictly; every missing, extra or misshapen tensor named."""
        label, state = labelled_state(source, argument)
        encoder = {k: v for k, v in state.items() if k.startswith("image_encoder.")}
        mapped = {
            "image_encoder." + k: v
            for k, v in timm_filter(self.image_encoder)(encoder, self.image_encoder).items()
        }
        rest = {k: v for k, v in state.items() if not k.startswith("image_encoder.")}
        mapped.update(rest)
        problems = key_mismatches(self.state_dict(), mapped)
        if problems:
            width = self.image_encoder.embed_dim
            raise ValueError(
                f"{label} holds {describe_vit_file(state)}, but this is SAM {self.size} (image "
                f"encoder width {width}): " + "; ".join(problems) + f". Give {argument} Meta's "
                f"sam_{self.size}_*.pth, or the size that matches the file"
            )
        check_finite_state(mapped, label)
        self.load_state_dict(mapped, strict=True)

    def preprocess(self, rgb: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """``(B, 3, H, W)`` 0..255 -> the encoder's padded input and the resized ``(h, w)``."""
        h, w = rgb.shape[-2:]
        scale = self.image_size / max(h, w)
        size = (int(h * scale + 0.5), int(w * scale + 0.5))
        if size != (h, w):
            rgb = F.interpolate(
                rgb, size=size, mode="bilinear", align_corners=False, antialias=True
            )
        x = (rgb - self.pixel_mean) / self.pixel_std
        x = F.pad(x, (0, self.image_size - size[1], 0, self.image_size - size[0]))
        return x, size

    def embed(self, rgb: torch.Tensor) -> torch.Tensor:
        """The image embedding ``(B, C, 64, 64)`` of 0..255 RGB ``(B, 3, H, W)``."""
        x, _ = self.preprocess(rgb)
        with torch.no_grad():
            return self.image_encoder.forward_features(x)

    def predict_points(
        self,
        embedding: torch.Tensor,
        coords: torch.Tensor,
        labels: torch.Tensor,
        input_size: tuple[int, int],
        multimask_output: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask logits at ``input_size`` for ``N`` prompts of points, one pass for all of them.

        Args:
            embedding: ``(1, C, 64, 64)`` ([embed][fewzero.models.SegmentAnything.embed]).
            coords: ``(N, P, 2)`` (x, y) in the encoder's input pixels (the resized image's).
            labels: ``(N, P)``: 1 positive, 0 negative.
            input_size: The image's ``(H, W)`` before the resize.
            multimask_output: SAM's three masks instead of its single one.

        Returns:
            Logits ``(N, M, H, W)`` (the mask is ``> 0``) and IoU estimates ``(N, M)``.
        """
        low, iou = self.decode_points(embedding, coords, labels, multimask_output)
        return self.postprocess(low, input_size), iou

    def decode_points(
        self,
        embedding: torch.Tensor,
        coords: torch.Tensor,
        labels: torch.Tensor,
        multimask_output: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-resolution logits ``(N, M, 4g, 4g)`` and IoU estimates of ``N`` point prompts."""
        with torch.no_grad():
            sparse, dense = self.prompt_encoder(points=(coords, labels))
            return self.mask_decoder(
                embedding, self.prompt_encoder.dense_positions(), sparse, dense, multimask_output
            )

    def postprocess(self, low: torch.Tensor, input_size: tuple[int, int]) -> torch.Tensor:
        """Low-resolution logits ``(N, M, 4g, 4g)`` -> ``(N, M, H, W)`` as Meta's ``postprocess_masks``."""
        h, w = input_size
        scale = self.image_size / max(h, w)
        resized = (int(h * scale + 0.5), int(w * scale + 0.5))
        full = F.interpolate(
            low, (self.image_size, self.image_size), mode="bilinear", align_corners=False
        )
        full = full[..., : resized[0], : resized[1]]
        if resized != (h, w):
            full = F.interpolate(full, (h, w), mode="bilinear", align_corners=False)
        return full
