"""Any timm backbone at any input size: levels by reduction, padding, layout, weights, every path.

The families below are CI's representative subset of the conformance table
(``benchmarks/backbone_conformance.py``): CNNs, hierarchical transformers, plain ViTs and
hybrids, with random weights at tiny sizes.
"""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import SMALL, SMALL_CLASS
from hypothesis import given
from hypothesis import strategies as st

from fewzero.models import Backbone, FeatureCache, cached_features, create_model, model_from_state
from fewzero.models.timm_features import choose_levels, plan_features

FAMILIES = {
    # CNNs
    "resnet18": "cnn",
    "efficientnet_lite0": "cnn",
    "convnext_atto": "cnn",
    "mobilenetv3_small_050": "cnn",
    "regnetx_002": "cnn",
    # hierarchical transformers
    "swin_tiny_patch4_window7_224": "hierarchical",
    "swinv2_cr_tiny_ns_224": "hierarchical",
    "maxvit_tiny_tf_224": "hierarchical",
    "fastvit_t8": "hierarchical",
    "efficientvit_b0": "hierarchical",
    # plain ViTs
    "vit_tiny_patch16_224": "vit",
    "deit_tiny_patch16_224": "vit",
    "eva02_tiny_patch14_224": "vit",
    "vit_small_patch14_dinov2": "vit",
    # hybrids
    "dla34": "hybrid",
    "hrnet_w18_small": "hybrid",
}

SIZES = [(33, 50), (70, 45)]

# A family's own blocks at fewer and narrower stages where timm takes them: the same module and
# block kinds (MaxViT's window and grid attention, its padding to the window; Swin's plain and
# shifted windows, two blocks a stage; a ViT of 6 blocks, tapped at blocks 3, 4 and 6), in a fraction of
# the time
SHALLOW = {
    "vit_tiny_patch16_224": dict(depth=6),
    "maxvit_tiny_tf_224": dict(depths=(1, 1, 1, 1), embed_dim=(32, 64, 128, 256)),
    "swin_tiny_patch4_window7_224": dict(depths=(2, 2, 2, 2)),
}


def support(b, k, h, w, box=(0.2, 0.7)):
    masks = torch.zeros(b, k, h, w, dtype=torch.long)
    masks[..., int(box[0] * h) : int(box[1] * h), int(box[0] * w) : int(box[1] * w)] = 1
    return torch.randn(b, k, 3, h, w), masks


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_runs_zero_shot_few_shot_and_prototype_at_odd_sizes(name):
    kw = dict(backbone=name, backbone_kwargs=SHALLOW.get(name))
    zero = create_model("sm_vcenet", **kw, **SMALL_CLASS).eval()
    few = create_model("sm_vcenet", comparisons=["prototype"], **kw, **SMALL_CLASS).eval()
    proto = create_model("prototype", **kw).eval()
    for h, w in SIZES:
        x = torch.randn(1, 3, h, w)
        s_img, s_mask = support(1, 2, h, w)
        with torch.no_grad():
            assert zero(x).shape == (1, 2, h, w)
            a = few(x, s_img, s_mask)
            assert a.shape == (1, 2, h, w) and torch.isfinite(a).all()
            p = proto(x, s_img, s_mask)
            assert p.shape == (1, 2, h, w)
            # the prediction follows the support: another object gives other logits
            other = torch.zeros_like(s_mask)
            other[..., : h // 3, w // 2 :] = 1
            assert (proto(x, s_img, other) - p).abs().max() > 1e-3
            assert (few(x, s_img, other) - a).abs().max() > 1e-6


def test_levels_are_chosen_by_reduction_not_position():
    assert choose_levels([2, 4, 8, 16, 32]) == (2, 3, 4)  # ResNet
    assert choose_levels([4, 8, 16, 32]) == (1, 2, 3)  # Swin, ConvNeXt
    assert choose_levels([1, 2, 4, 8, 16, 32]) == (3, 4, 5)  # DLA: six levels
    assert choose_levels([2, 4, 8, 8, 16, 16, 32]) == (3, 5, 6)  # the deepest at each reduction
    assert choose_levels([16, 32, 64]) == (0, 1, 2)  # coarser than the targets
    assert choose_levels([16] * 12) == (5, 8, 11)  # ViT-S/B: blocks 6, 9, 12
    assert choose_levels([16] * 24) == (11, 17, 23)  # ViT-L: DPT's last three taps
    assert choose_levels([14] * 12, count=2) == (5, 8)  # F_2, F_3 do not depend on F_4
    with pytest.raises(ValueError, match="at least 3 feature levels, got 2"):
        choose_levels([8, 16])
    assert plan_features("dla34").out_indices == (3, 4, 5)
    assert plan_features("hrnet_w18_small").nominal_reductions == (8, 16, 32)
    assert plan_features("vit_small_patch14_dinov2").out_indices == (5, 8, 11)


def test_plan_records_the_arguments_and_multiples_each_family_needs():
    assert plan_features("resnet18").kwargs == {"output_stride": 8}
    assert plan_features("resnet18").size_multiple == 1  # CNNs: nothing padded
    vit = plan_features("vit_tiny_patch16_224")
    assert vit.kwargs == {"dynamic_img_size": True} and vit.size_multiple == 16
    assert plan_features("vit_small_patch14_dinov2").size_multiple == 14
    assert plan_features("maxvit_tiny_tf_224").size_multiple == 224  # 7x7 windows at stride 32
    assert plan_features("dla34").size_multiple == 32
    assert plan_features("swin_tiny_patch4_window7_224").output_fmt == "NHWC"
    with pytest.raises(ValueError, match="must be a timm model name, got 'no_such_net'"):
        plan_features("no_such_net")


def test_padding_equals_padding_by_hand_and_crops_back():
    bb = Backbone("vit_tiny_patch16_224")
    x = torch.randn(2, 3, 97, 130)
    padded = F.pad(x, (0, 144 - 130, 0, 112 - 97))  # to 7 x 9 patches
    with torch.no_grad():
        ours = bb(x)
        ref = bb(padded)
    for a, b in zip(ours, ref):
        assert a.shape[-2:] == (7, 9)
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # MaxViT pads 40 x 33 to 224 x 224 and keeps the ceil(40 / 8) x ceil(33 / 8) cells
    mx = Backbone("maxvit_tiny_tf_224")
    small = torch.randn(1, 3, 40, 33)
    with torch.no_grad():
        feats = mx(small)
        full = mx.body(F.pad(small, (0, 224 - 33, 0, 224 - 40)))
    assert [f.shape[-2:] for f in feats] == [(5, 5)] * 3
    torch.testing.assert_close(feats[0], full[0][..., :5, :5], rtol=0, atol=0)


def test_channels_last_maps_are_read_by_the_declared_format():
    bb = Backbone("swin_tiny_patch4_window7_224")
    assert bb.output_fmt == "NHWC" and bb.channels == [192, 384, 768]
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        nhwc = bb.body(x)
        ours = bb(x)
    # F_2 is the body's first map, permuted: (1, 8, 12, 192) -> (1, 192, 8, 12)
    torch.testing.assert_close(ours[0], nhwc[0].permute(0, 3, 1, 2), rtol=0, atol=0)
    assert ours[2].shape == (1, 768, 8, 12)  # F_4 resampled onto F_2's grid


def test_support_masks_are_padded_so_padding_is_neither_foreground_nor_background():
    """A padded support and its padded-by-hand copy (mask 255 there) give the same logits."""
    model = create_model("prototype", backbone="vit_tiny_patch16_224").eval()
    x = torch.randn(1, 3, 64, 64)
    s_img, s_mask = support(1, 1, 97, 130, box=(0.1, 0.5))
    s_mask[..., 90:, :] = 0  # background reaches the bottom edge
    by_hand_img = F.pad(s_img, (0, 144 - 130, 0, 112 - 97))
    by_hand_mask = F.pad(s_mask, (0, 144 - 130, 0, 112 - 97), value=255)
    with torch.no_grad():
        ours = model(x, s_img, s_mask)
        ref = model(x, by_hand_img, by_hand_mask)
        as_background = model(x, by_hand_img, F.pad(s_mask, (0, 14, 0, 15), value=0))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)
    assert (ours - as_background).abs().max() > 1e-4  # counting padding as background differs


def test_an_input_smaller_than_one_patch_is_refused_before_any_work():
    model = create_model("sm_vcenet", backbone="vit_tiny_patch16_224", **SMALL_CLASS)
    with pytest.raises(ValueError, match=r"at least 16x16 \(backbone 'vit_tiny_patch16_224' needs"):
        model(torch.randn(1, 3, 12, 40))
    few = create_model("prototype", backbone="vit_small_patch14_dinov2")
    s_img, s_mask = support(1, 1, 10, 10)
    with pytest.raises(ValueError, match=r"support_images must be at least 14x14.*reduction 14"):
        few(torch.randn(1, 3, 28, 28), s_img, s_mask)


def test_concat_class_input_is_refused_clearly_where_the_last_stage_cannot_run_alone():
    with pytest.raises(ValueError, match=r"class_branch=\{'input': 'concat'\} needs.*FeatureGetterNet"):
        create_model("sm_vcenet", backbone="vit_tiny_patch16_224", class_branch={"input": "concat"})
    with pytest.raises(ValueError, match="output_fmt NHWC"):
        create_model("sm_vcenet", backbone="swin_tiny_patch4_window7_224",
                     class_branch={"input": "concat"})


@pytest.mark.parametrize(
    "name", ["vit_tiny_patch16_224", "swin_tiny_patch4_window7_224", "hrnet_w18_small"]
)
def test_a_local_classifier_file_loads_strictly(tmp_path, name):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(3)
    classifier = timm.create_model(name, pretrained=False)
    sd = {k: v.contiguous() for k, v in classifier.state_dict().items()}
    path = tmp_path / "classifier.safetensors"
    save_file(sd, str(path))
    bb = Backbone(name, pretrained_file=path, fold_bn=False)
    from fewzero.models.weights import classifier_key

    own = bb.body.state_dict()
    assert len(own) > 10
    for key, value in own.items():
        assert torch.equal(value, sd[classifier_key(key, set(sd))]), key
    # one tensor missing: refused, naming it
    missing = dict(sd)
    dropped = next(k for k in missing if "blocks" in k or "layers" in k or "stage" in k)
    del missing[dropped]
    save_file(missing, str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match=r"missing keys \(1\)"):
        Backbone(name, pretrained_file=tmp_path / "missing.safetensors")


def test_vit_features_cache_and_settings_are_part_of_the_key():
    model = create_model("sm_vcenet", backbone="vit_tiny_patch16_224", **SMALL_CLASS).eval()
    x = torch.randn(2, 3, 40, 50)
    cache = FeatureCache()
    with torch.no_grad():
        ref = model(x)
        with cached_features(model, cache):
            first = model(x)
            second = model(x)
    torch.testing.assert_close(first, ref, rtol=0, atol=0)
    torch.testing.assert_close(second, ref, rtol=0, atol=0)
    assert cache.hits == 2 and cache.misses == 2
    # equal weights, other levels or dilation: other owners, never each other's entries
    a = Backbone("resnet18")
    b = Backbone("resnet18", output_stride=16)
    c = Backbone("resnet18", out_indices=(1, 2, 3))
    b.body.load_state_dict(a.body.state_dict())
    assert len({a.cache_owner(), b.cache_owner(), c.cache_owner()}) == 3
    shared = FeatureCache()
    for bb in (a, b):
        bb.cache = shared
    with torch.no_grad():
        fa, fb = a(x), b(x)
    assert shared.misses == 4  # b computed its own features
    ref_b = b._compute(x)
    torch.testing.assert_close(fb[2], ref_b[2], rtol=0, atol=0)
    assert (fa[2] - fb[2]).abs().max() > 1e-3  # dilated and undilated F_4 differ


@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "swin_tiny_patch4_window7_224"])
def test_transformer_backbones_under_channels_last_autocast_compile_and_export(name):
    model = create_model("sm_vcenet", backbone=name, backbone_kwargs=SHALLOW.get(name),
                         comparisons=["prototype"], **SMALL_CLASS)  # fmt: skip
    model.eval()
    x = torch.randn(1, 3, 40, 52)
    s_img, s_mask = support(1, 1, 40, 52)
    with torch.no_grad():
        ref = model(x, s_img, s_mask)
        cl = model.to(memory_format=torch.channels_last)
        out = cl(x.to(memory_format=torch.channels_last), s_img, s_mask)
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x, s_img, s_mask)
        assert low.shape == ref.shape and torch.isfinite(low).all()
        torch.compiler.reset()
        compiled = torch.compile(model, backend="eager", fullgraph=True)
        torch.testing.assert_close(compiled(x, s_img, s_mask), ref, rtol=1e-5, atol=1e-5)
        exported = torch.export.export(model, (x, s_img, s_mask)).module()
        torch.testing.assert_close(exported(x, s_img, s_mask), ref, rtol=1e-5, atol=1e-5)


def test_transformer_checkpoint_round_trip_and_predictor(tmp_path):
    from fewzero.predict import Predictor

    model = create_model("prototype", backbone="vit_tiny_patch16_224").eval()
    copy = model_from_state(model.config, model.state_dict()).eval()
    x = torch.randn(1, 3, 45, 61)
    s_img, s_mask = support(1, 1, 45, 61)
    with torch.no_grad():
        torch.testing.assert_close(copy(x, s_img, s_mask), model(x, s_img, s_mask), rtol=0, atol=0)
    rng = torch.Generator().manual_seed(0)
    image = (torch.rand(45, 61, 3, generator=rng) * 255).to(torch.uint8).numpy()
    mask = s_mask[0, 0].numpy().astype("uint8")
    pred = Predictor(model, device="cpu")(image, support=[(image, mask)])
    assert pred.shape == (45, 61)


def test_frozen_batchnorm_of_a_hybrid_is_folded_exactly():
    torch.manual_seed(0)
    plain = Backbone("dla34", fold_bn=False)
    for m in plain.body.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.3)
            m.running_var.uniform_(0.5, 2.0)
    folded = Backbone("dla34", pretrained_file=plain.body.state_dict())
    assert folded.body.folded_batchnorms > 10
    x = torch.randn(1, 3, 50, 70)
    with torch.no_grad():
        for a, b in zip(plain(x), folded(x)):
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4 * a.abs().max().item())


def test_deeplab_over_a_vit_builds_only_up_to_f3():
    model = create_model("deeplab", backbone="vit_tiny_patch16_224", **SMALL)
    assert model.encoder.channels == [192, 192]
    assert len(model.encoder.body.model.blocks) == 9  # blocks after F_3 (block 9) pruned
    assert model(torch.randn(1, 3, 33, 47)).shape == (1, 2, 33, 47)


@pytest.fixture(
    scope="module",
    params=["vit_small_patch14_dinov2", "swin_tiny_patch4_window7_224", "hrnet_w18_small"],
)
def sized_model(request):
    return create_model("deeplab", backbone=request.param, **SMALL).eval()


@given(h=st.integers(0, 90), w=st.integers(0, 90))
def test_logits_have_the_input_size_at_every_side_from_the_minimum(sized_model, h, w):
    low = sized_model.min_input_size
    h, w = low + h, low + w
    with torch.no_grad():
        out = sized_model(torch.randn(1, 3, h, w))
    assert out.shape == (1, 2, h, w) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["levit_128s", "cait_xxs24_224"])
def test_hsnet_and_dcama_over_fixed_size_backbones_at_any_size(name):
    """A fixed-size body runs at its size; each block's map comes back on the input's grid."""
    from fewzero.models import create_model

    for arch in ("hsnet", "dcama"):
        model = create_model(arch, backbone=name, shot_merge="mean").eval()  # logits, not votes
        for hw in ((96, 80), (250, 190)):
            masks = torch.zeros(1, 2, *hw, dtype=torch.long)
            masks[..., 20:60, 20:60] = 1
            with torch.no_grad():
                a = model(torch.randn(1, 3, *hw), torch.randn(1, 2, 3, *hw), masks)
                other = masks.clone().zero_()
                other[..., 60:90, 10:70] = 1
                b = model(torch.randn(1, 3, *hw), torch.randn(1, 2, 3, *hw), other)
            assert a.shape == (1, 2, *hw) and torch.isfinite(a).all()
            assert (a - b).abs().max() > 0
    blocks = model.encoder.features(torch.randn(1, 3, 250, 190), ("blocks",))["blocks"]
    assert len(blocks) == len(model.encoder.block_groups)
    # a27: no low-level map: refused by name, as low_level_shape() does (it returned the input)
    for call in (model.encoder.low_level_shape,
                 lambda: model.encoder.features(torch.randn(1, 3, 96, 80), ("low",))):  # fmt: skip
        with pytest.raises(ValueError, match=f"backbone '{name}' has no map before F_2's stage"):
            call()


def test_what_the_docs_say_is_padded_is_what_is_padded():
    """The Backbones page: CNNs that run at any size are not padded; DLA and HRNet are, to x32."""
    from fewzero.models import Backbone

    assert Backbone("resnet18").size_multiple == 1
    assert Backbone("efficientnet_lite0").size_multiple == 1
    hrnet = Backbone("hrnet_w18_small")
    assert hrnet.size_multiple == 32 and hrnet.resampled
    # a25: its padding is the padding by hand, cropped, on every level (the deeper levels are
    # resampled onto F_2's grid before the crop, as they are for the input padded by hand)
    x = torch.randn(1, 3, 97, 130)
    with torch.no_grad():
        ours, ref = hrnet.eval()(x), hrnet(F.pad(x, (0, 160 - 130, 0, 128 - 97)))
    for a, b in zip(ours, ref):
        assert a.shape[-2:] == (13, 17)
        torch.testing.assert_close(a, b[..., :13, :17], rtol=0, atol=0)
    page = (Path(__file__).resolve().parents[1] / "docs" / "backbones.md").read_text()
    assert "| DLA, HRNet | 32 |" in page and "DLA and HRNet are CNNs too" in page


@pytest.mark.parametrize(
    "name",
    ["repvgg_a0", "mobilevit_xxs", "mvitv2_tiny", "mobileone_s1", "rdnet_tiny", "selecsls42"],
)
def test_families_that_broke_the_adapter_at_an_odd_size(name):
    """Stages that are one module (RepVGG, MobileViT), relative-position tables sized to 224
    (MViTv2, an IndexError at 250 x 190 before) and widths that change inside a stage
    (MobileOne: DCAMA's attentions sized by the level): HSNet, DCAMA and the levels."""
    from fewzero.models import create_model

    hw = (250, 190)
    masks = torch.zeros(1, 1, *hw, dtype=torch.long)
    masks[..., 20:120, 20:120] = 1
    for arch in ("hsnet", "dcama", "prototype"):
        model = create_model(arch, backbone=name).eval()
        with torch.no_grad():
            out = model(torch.randn(1, 3, *hw), torch.randn(1, 1, 3, *hw), masks)
        assert out.shape == (1, 2, *hw) and torch.isfinite(out).all()
