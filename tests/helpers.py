"""Helpers the tests import (``from helpers import ...``): tiny model settings and builders.

Kept out of ``conftest.py``: a conftest is pytest's to import, and the repository root has its
own, so ``import conftest`` would name two files.
"""

import torch

#: Tiny model settings shared by the tests (decoder and query widths of a few channels) ...
SMALL = dict(decoder=dict(channels=16, depth=1, aspp_rates=(1, 2)), query_channels=16)
#: ... and with a narrow class branch, for the SM-VCENet family.
SMALL_CLASS = dict(SMALL, class_branch=dict(channels=32))
#: The smallest DINOv3 of timm's layout (the training-free models' encoder in tests).
TINY_DINOV3 = dict(depth=1, embed_dim=32, num_heads=2)
#: Architectures over a foundation ViT of their own: their tiny build instead of ResNet18.
OWN_BACKBONE = {
    "insid3": dict(
        backbone="vit_small_patch16_dinov3_qkvb",
        backbone_kwargs=TINY_DINOV3,
        image_size=64,
        svd_components=8,
    ),
    "gf_sam": dict(
        backbone="vit_small_patch14_dinov2",
        backbone_kwargs=dict(TINY_DINOV3, img_size=56),
        dino_size=56,
        sam="vit_b",
        sam_kwargs=dict(
            image_size=64,
            prompt_dim=32,
            encoder_kwargs=dict(depth=1, embed_dim=32, num_heads=2, global_attn_indexes=[0]),
            decoder_kwargs=dict(num_heads=2, mlp_dim=64, iou_head_hidden_dim=32),
        ),
    ),
}
#: Of those, the ones whose encoder is fixed (GF-SAM's DINOv2 at its patch 14).
FIXED_BACKBONE = {"gf_sam"}


def tiny_model(arch, **overrides):
    """A registered architecture over ResNet18 (or ``backbone=``) at tiny widths (random weights).

    Only the settings the model class takes are passed; an option group given in
    ``overrides`` (``decoder={"channels": 8}``) changes those options of the tiny ones. SPNet/ZSVM
    get a random 20-class embedding table, so no language model is loaded.
    """
    import inspect

    from fewzero.models import create_model
    from fewzero.models._registry import architecture_class

    own = OWN_BACKBONE.get(arch, {})
    if own and (overrides.get("backbone") == "resnet18" or arch in FIXED_BACKBONE):
        overrides.pop("backbone", None)  # a CNN cannot be this model's encoder
    backbone = overrides.pop("backbone", own.get("backbone", "resnet18"))
    cls = architecture_class(arch)
    params = inspect.signature(cls.__init__).parameters
    wanted = {**SMALL_CLASS, **{k: v for k, v in own.items() if k != "backbone"}}
    for key, value in overrides.items():
        small = SMALL_CLASS.get(key)
        wanted[key] = {**small, **value} if isinstance(small, dict) and value else value
    if "class_embeddings" in params:
        wanted["class_embeddings"] = torch.randn(20, 8)
    kwargs = {k: v for k, v in wanted.items() if k in params}
    return create_model(arch, backbone=backbone, **kwargs)


def prepared_root(path):
    """``path`` with the parts a prepared PASCAL-5i folder holds (empty): passes the roots' check."""
    for part in ("JPEGImages", "SegmentationClassAug", "lists"):
        (path / part).mkdir(parents=True, exist_ok=True)
    (path / "lists" / "val.txt").touch()
    return path
