"""GF-SAM (training-free: DINOv2 priors prompt SAM): the contract, GF-SAM's own outputs, its files."""

import numpy as np
import pytest
import torch
from golden_inputs import (
    GF_SAM_DINO_SIZE,
    GF_SAM_DINOV2,
    GF_SAM_SAM,
    dinov2_state,
    dinov3_state,
    gf_sam_episodes,
    normalise,
    region_masks,
    sam_state,
)
from helpers import OWN_BACKBONE, TINY_DINOV3
from model_contract import ModelContract

from fewzero.heads import graph_prompting
from fewzero.models import GFSAM

GOLDEN = np.load(__import__("pathlib").Path(__file__).parent / "fixtures" / "golden" / "gf_sam.npz")


class TestGFSAM(ModelContract):
    archs = ("gf_sam",)
    odd_backbone_kwargs = dict(TINY_DINOV3, img_size=56, mlp_ratio=2.0)
    exportable = False  # the point-mask graph runs in SciPy, on the host


def golden_model(fallback=True, **kw):
    return GFSAM(
        "vit_small_patch14_dinov2",
        dinov2_file=dinov2_state(side=GF_SAM_DINO_SIZE, **GF_SAM_DINOV2),
        sam="vit_b",
        sam_file=sam_state(),
        dino_size=GF_SAM_DINO_SIZE,
        fallback=fallback,
        backbone_kwargs=dict(GF_SAM_DINOV2, img_size=GF_SAM_DINO_SIZE),
        sam_kwargs=GF_SAM_SAM,
        **kw,
    ).eval()


@pytest.fixture(scope="module")
def model():
    return golden_model()


def run(model, episode, stand_in, monkeypatch):
    """One episode, recording the points and the point labels (SAM's masks or the stand-ins)."""
    seen = {}
    query, supports, masks = episode
    if stand_in:

        def point_masks(embedding, points, grid, size):
            coords = (points * (size[1] // grid)).int()  # 16 px a cell: GF-SAM's int(x * S / g)
            return region_masks(query[0], coords)

        monkeypatch.setattr(model, "point_masks", point_masks)
    for name in ("select_points", "point_mask_components", "point_consistency"):
        original = getattr(graph_prompting, name)

        def record(*a, _name=name, _original=original, **k):
            seen[_name] = _original(*a, **k)
            return seen[_name]

        monkeypatch.setattr(f"fewzero.models.gf_sam.{name}", record)
    with torch.no_grad():
        logits = model(normalise(query), normalise(supports)[None], masks[None].long())
    monkeypatch.undo()
    return logits.argmax(1)[0], seen


@pytest.mark.parametrize("stand_in", [False, True], ids=["sam-masks", "region-masks"])
def test_equal_to_gf_sams_own_code_stage_by_stage(model, stand_in, monkeypatch):
    """Points, the graph's components, the point labels and the final masks of GF-SAM's code."""
    pre = "regions_" if stand_in else ""
    for i, episode in enumerate(gf_sam_episodes()):
        mask, seen = run(model, episode, stand_in, monkeypatch)
        points = GOLDEN[pre + "points"][i]
        points = points[points[:, 0] >= 0]
        assert np.array_equal(seen["select_points"][0].numpy(), points), f"episode {i}"
        n = len(points)
        assert np.array_equal(seen["point_mask_components"][1], GOLDEN[pre + "labels"][i][:n])
        assert np.array_equal(seen["point_consistency"].numpy(), GOLDEN[pre + "kept"][i][:n])
        ref = np.unpackbits(GOLDEN[pre + "masks"][i]).reshape(mask.shape)
        assert np.array_equal(mask.numpy(), ref), f"episode {i}"


def test_without_fallback_no_kept_mask_means_no_pixel(monkeypatch):
    """GF-SAM answers its best candidate where no mask is kept; fewzero's default answers nothing."""
    episodes = gf_sam_episodes()
    model = golden_model(fallback=False)
    for i, episode in enumerate(episodes):
        for stand_in in (False, True):
            pre = "regions_" if stand_in else ""
            mask, seen = run(model, episode, stand_in, monkeypatch)
            kept = (seen["point_consistency"] == 1).any()
            ref = np.unpackbits(GOLDEN[pre + "masks"][i]).reshape(mask.shape)
            assert np.array_equal(mask.numpy(), ref if kept else np.zeros_like(ref)), f"episode {i}"
    assert not (GOLDEN["kept"][0] == 1).any()  # the fixture has such episodes


def test_a_file_of_another_model_or_size_is_refused_by_name(tmp_path):
    tiny = OWN_BACKBONE["gf_sam"]
    build = lambda **files: GFSAM(  # noqa: E731
        tiny["backbone"], sam=tiny["sam"], dino_size=56, backbone_kwargs=tiny["backbone_kwargs"],
        sam_kwargs=tiny["sam_kwargs"], **files,
    )  # fmt: skip
    dinov3 = tmp_path / "dinov3_vits16_pretrain.pth"
    torch.save(dinov3_state(embed_dim=32, depth=1, num_heads=2), dinov3)
    with pytest.raises(ValueError, match=r"dinov2_file .*dinov3_vits16.* holds a DINOv3 ViT file"):
        build(dinov2_file=dinov3)
    sam_file = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save(sam_state(), sam_file)
    with pytest.raises(ValueError, match=r"dinov2_file .*sam_vit_b.* holds a SAM file"):
        build(dinov2_file=sam_file)
    with pytest.raises(
        ValueError, match=r"sam_file .* holds a SAM file \(image encoder width 32\).*width 32"
    ):
        build(sam_file=sam_file)  # the fixture's SAM has 2 blocks, this one 1: keys are named
    with pytest.raises(ValueError, match=r"pretrained=True needs dinov2_file and sam_file"):
        GFSAM(pretrained=True)
    with pytest.raises(ValueError, match="dino_size must be a multiple of"):
        GFSAM(tiny["backbone"], dino_size=60, backbone_kwargs=tiny["backbone_kwargs"])
