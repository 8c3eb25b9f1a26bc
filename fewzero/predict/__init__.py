"""Segment your own images: a predictor over a model or a checkpoint, and ``fewzero-segment``.

Three lines from a checkpoint and an image file to a mask::

    from fewzero.predict import Predictor
    predictor = Predictor("runs/toy/sm_vcenet_efficientnet_lite0/checkpoint_last.pt")
    mask = predictor("photo.jpg")  # (H, W) uint8 in {0, 1} at the photo's own size

Few-shot models take the support set as ``(image, mask)`` pairs:
``predictor("query.jpg", support=[("s1.jpg", "s1.png"), ...])``. Several classes at once (N-way)
take a dictionary of support sets and give a label map (0 background, ``i`` the i-th class in
the dictionary's order): ``predictor("query.jpg", support={"cat": [...], "dog": [...]})``. A model
that needs no training (``create_model("prototype_efficientnet_lite0", pretrained=True)``) can be
passed instead of a checkpoint.

Images may be paths, PIL images, ``(H, W, 3)`` numpy arrays (uint8, or float in [0, 1]) or
``(3, H, W)`` tensors (uint8, or float in [0, 1]); files are read as displayed (EXIF orientation
applied, 16-bit scaled: [`fewzero.data.read_image`][fewzero.data.readers.read_image]). Masks may be paths, PIL images, arrays
or tensors, read by [`fewzero.data.to_binary_mask`][fewzero.data.readers.to_binary_mask]'s rules (1 or white is the object, 255 in
a 0/1 mask is ignored, a palette mask's one class, soft masks at 0.5, any non-black colour); a
mask that marks nothing, or a photograph given as a mask, is refused by name. The predictor
resizes to the model's test size, normalises with the backbone's own mean/std (timm
``pretrained_cfg``) and returns the mask at the image's original size. It runs on CUDA when
one is available (``device=`` overrides).
"""

from .drawing import (
    LABEL_COLORS,
    save_label_overlay,
    save_labels,
    save_mask,
    save_overlay,
    tint,
)
from .inputs import check_has_background, to_image_tensor, to_mask_tensor
from .predictor import FittedSupport, Predictor
from .segment_cli import main

__all__ = [
    "LABEL_COLORS",
    "FittedSupport",
    "Predictor",
    "check_has_background",
    "main",
    "save_label_overlay",
    "save_labels",
    "save_mask",
    "save_overlay",
    "tint",
    "to_image_tensor",
    "to_mask_tensor",
]
