"""Few-shot SM-VCENet, the one model contract, K-shot episodes and FSS-1000."""

import numpy as np
import pytest
import torch
from helpers import SMALL_CLASS as SMALL
from PIL import Image

from fewzero.data import (
    FSS1000,
    PROTOCOLS,
    Coco20i,
    Pascal5i,
    ToyConfig,
    build_toy,
    collate_episodes,
    eval_transform,
)
from fewzero.data.io import read_list
from fewzero.heads.prototype import masked_average_pooling, prior_mask
from fewzero.models import SMVCENet, create_model, model_from_state


def fewshot(*comparisons, **kw):
    """Few-shot SM-VCENet over ResNet18 with ``comparisons`` (default: the support prototype)."""
    torch.manual_seed(0)
    return SMVCENet("resnet18", comparisons=list(comparisons or ["prototype"]), **SMALL, **kw)


def supports(b=2, k=3, size=49, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(b, k, 3, size, size, generator=g)
    masks = torch.zeros(b, k, size, size, dtype=torch.long)
    for i in range(b):
        for j in range(k):
            y, x = torch.randint(0, size - 20, (2,), generator=g).tolist()
            masks[i, j, y : y + 20, x : x + 20] = 1
    masks[..., :3, :] = 255
    return images, masks


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    cfg = ToyConfig(
        voc_train=24, sbd_train=24, voc_val=30, coco_train=8, coco_val=60, size=(64, 80)
    )
    return build_toy(tmp_path_factory.mktemp("toy"), seed=3, config=cfg)


def test_output_does_not_depend_on_shot_order_and_identical_shots_equal_one_shot():
    model = fewshot("prototype", "prior").eval()
    q = torch.randn(2, 3, 65, 65)
    s_img, s_mask = supports()
    out = model(q, s_img, s_mask)
    perm = torch.tensor([2, 0, 1])
    torch.testing.assert_close(model(q, s_img[:, perm], s_mask[:, perm]), out, rtol=1e-5, atol=1e-5)
    one = model(q, s_img[:, :1], s_mask[:, :1])
    same = model(q, s_img[:, :1].expand(-1, 4, -1, -1, -1), s_mask[:, :1].expand(-1, 4, -1, -1))
    torch.testing.assert_close(same, one, rtol=1e-5, atol=1e-5)


def test_changing_a_support_mask_changes_the_output():
    model = fewshot().eval()
    q = torch.randn(1, 3, 65, 65)
    s_img, s_mask = supports(b=1, k=1)
    other = torch.zeros_like(s_mask)
    other[..., 30:45, 5:25] = 1
    assert not torch.allclose(model(q, s_img, s_mask), model(q, s_img, other))


def test_supports_of_another_size_and_both_sources():
    q = torch.randn(2, 3, 65, 73)
    s_img, s_mask = supports(size=57)
    for comparisons in [("prototype",), ("prototype", "self", "prior")]:
        model = fewshot(*comparisons).eval()
        assert model(q, s_img, s_mask).shape == (2, 2, 65, 73)
        width = model.class_branch.out_channels * (len(comparisons) > 1 and 2 or 1)
        assert model.decoder.class_channels == width + int("prior" in comparisons)


def test_gradients_reach_exactly_the_trainable_parameters():
    model = fewshot("prototype", "self", "prior").train()
    s_img, s_mask = supports(size=65)
    model(torch.randn(2, 3, 65, 65), s_img, s_mask).sum().backward()
    for name, p in model.named_parameters():
        if name.startswith("encoder."):
            assert not p.requires_grad and p.grad is None, name
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_clear_errors_for_bad_support_sets():
    model = fewshot().eval()
    q = torch.randn(1, 3, 65, 65)
    s_img, s_mask = supports(b=1, k=2)
    with pytest.raises(ValueError, match="support_images must be given to the few-shot model"):
        model(q)
    with pytest.raises(ValueError, match=r"\(episode, shot\) \[\(0, 1\)\] have none"):
        empty = s_mask.clone()
        empty[0, 1] = 0
        model(q, s_img, empty)
    with pytest.raises(ValueError, match=r"support_masks must hold values in \{0, 1, 255\}"):
        model(q, s_img, s_mask * 3)
    with pytest.raises(ValueError, match=r"support_masks must be \(1, 2, 49, 49\)"):
        model(q, s_img, s_mask[..., 1:])
    with pytest.raises(ValueError, match="support_images was given without support_masks"):
        model(q, s_img, None)
    with pytest.raises(ValueError, match="comparison 'prototype' reads the 'class' features: "
                       "variant='deeplab' has no class branch"):  # fmt: skip
        SMVCENet("resnet18", "deeplab", comparisons=["prototype"])
    with pytest.raises(ValueError, match="comparison must be one of .*got 'protoype'"):
        SMVCENet("resnet18", comparisons=["protoype"])
    with pytest.raises(
        ValueError, match=r"comparison 'cosine' takes the options .*got unknown \['chanels'\]"
    ):
        SMVCENet("resnet18", comparisons=[{"name": "cosine", "chanels": 8}])


def test_zero_shot_numbers_are_the_paper_models():
    """The query-source model is exactly query branch + class branch + CCM on one image."""
    torch.manual_seed(0)
    model = SMVCENet("resnet18", **SMALL).eval()
    x = torch.randn(2, 3, 65, 65)
    with torch.no_grad():
        f2, f3, f4 = model.encoder(x)
        query = model.query(torch.cat([f2, f3], 1))
        logits = model.decoder(query, model.class_branch(f4))
        expected = torch.nn.functional.interpolate(logits, size=(65, 65), mode="bilinear")
    assert torch.equal(model(x), expected)


def test_uint8_nan_and_int_arguments():
    model = create_model("sm_vcenet", backbone="resnet18", query_channels=16,
                         class_branch={"bins": 6}, decoder={**SMALL["decoder"], "aspp_rates": 3})
    assert model.class_branch.compress.bins == (6,) and model.decoder.aspp.rates == (3,)
    with pytest.raises(ValueError, match="floating-point.*got dtype torch.uint8"):
        model(torch.zeros(1, 3, 65, 65, dtype=torch.uint8))
    x = torch.randn(1, 3, 65, 65)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="images must be finite, got 1 NaN/Inf"):
        model.predict(x)
    with pytest.raises(ValueError, match="class_branch.bins must be an int or a sequence of ints"):
        SMVCENet("resnet18", class_branch={"bins": "136"})
    with pytest.raises(ValueError, match=r"sm_vcenet_resnet50 fixes variant='sm_vcenet'"):
        create_model("sm_vcenet_resnet50", backbone="resnet18", variant="vcenet")


def test_fewshot_model_round_trips_through_its_state():
    model = fewshot("prototype", "prior").eval()
    copy = model_from_state(model.config, model.state_dict()).eval()
    q = torch.randn(1, 3, 65, 65)
    s_img, s_mask = supports(b=1, k=2)
    assert copy.config["comparisons"] == [{"name": "prototype"}, {"name": "prior"}]
    assert torch.equal(copy(q, s_img, s_mask), model(q, s_img, s_mask))


def test_masked_average_pooling_and_prior_by_hand():
    f = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    m = torch.tensor([[[1, 1, 0, 255], [1, 1, 0, 255], [0, 0, 1, 1], [0, 0, 1, 0]]])
    # cell weights (fraction of foreground pixels): [[1, 0], [0, 0.75]]
    expected = (1 * 1.0 + 0.75 * 4.0) / 1.75
    torch.testing.assert_close(masked_average_pooling(f, m), torch.tensor([[expected]]))
    q = torch.tensor([[[[1.0, -1.0]], [[0.0, 0.0]]]])  # (1, 2, 1, 2): positions [1,0] and [-1,0]
    s = torch.tensor([[[[2.0, 0.0]], [[0.0, 5.0]]]])  # masked support position 0 = [2, 0]
    sm = torch.tensor([[[1, 0]]])
    prior = prior_mask(q, s, sm, shots=1)
    torch.testing.assert_close(prior, torch.tensor([[[[1.0, 0.0]]]]))


def test_kshot_episodes_follow_the_protocol(toy):
    tf = eval_transform(48)
    kw = dict(transform=tf, min_pixels=30, n_episodes=20)
    five = Pascal5i(toy["pascal"], 0, "val", shots=5, **kw)
    again = Pascal5i(toy["pascal"], 0, "val", shots=5, **kw)
    one = Pascal5i(toy["pascal"], 0, "val", shots=1, **kw)
    assert five.pairs == one.pairs == again.pairs and five.supports == again.supports
    counts = dict(read_list(toy["pascal"] / "lists" / "val.txt"))
    for (name, cid), names in zip(five.pairs, five.supports):
        assert name not in names and len(names) == 5
        assert all(counts[n].get(cid, 0) >= 30 for n in names)
    ep = five[0]
    assert ep["support_images"].shape == (5, 3, 48, 48) and ep["support_masks"].shape == (5, 48, 48)
    assert set(ep["support_masks"].unique().tolist()) <= {0, 1, 255}
    batch = collate_episodes([five[0], five[1]])
    assert batch["support_images"].shape == (2, 5, 3, 48, 48) and len(batch["support_names"]) == 2
    coco = Coco20i(toy["coco"], 0, "val", shots=1, **kw)
    assert coco[0]["support_masks"].shape == (1, 48, 48)
    assert PROTOCOLS["hsnet"] == {"protocol": "hsnet", "n_episodes": 1000, "seed": 0}
    assert PROTOCOLS["pfenet"] == {"protocol": "pfenet", "n_episodes": 5000, "seed": 321}
    assert len(Pascal5i(toy["pascal"], 0, "val", shots=1, min_pixels=30, protocol="hsnet")) == 1000
    with pytest.raises(ValueError, match="min_pixels must be an int >= 1"):
        Pascal5i(toy["pascal"], 0, "val", min_pixels=0)
    with pytest.raises(ValueError, match="n_episodes must be an int >= 1 or None"):
        Pascal5i(toy["pascal"], 0, "val", n_episodes=0)


def test_training_supports_are_drawn_from_the_global_generator(toy):
    ds = Pascal5i(toy["pascal"], 0, "train", min_pixels=30, shots=2, transform=eval_transform(48))
    torch.manual_seed(5)
    a = ds[3]["support_names"]
    torch.manual_seed(5)
    assert ds[3]["support_names"] == a and ds[3]["name"] not in a


def make_fss(root, classes=("cat", "dog", "tiger"), n=4, size=(30, 40)):
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(1, n + 1):
            Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(
                root / c / f"{i}.jpg"
            )
            mask = np.zeros(size, dtype=np.uint8)
            mask[5 : 5 + 3 * i, 10:25] = 255  # FSS-1000 masks are white on black
            Image.fromarray(mask).save(root / c / f"{i}.png")
    (root / "splits").mkdir()
    (root / "splits" / "test.txt").write_text("dog\ntiger\n")


def test_fss1000_layout(tmp_path):
    make_fss(tmp_path)
    ds = FSS1000(tmp_path, "test", shots=2, transform=eval_transform(32), n_episodes=10)
    assert ds.classes == ["dog", "tiger"] and len(ds) == 10
    ep = ds[0]
    assert ep["support_images"].shape == (2, 3, 32, 32)
    assert set(ep["label"].unique().tolist()) == {0, 1}
    assert ep["name"].split("/")[0] == ep["support_names"][0].split("/")[0]
    assert ep["name"] not in ep["support_names"]
    again = FSS1000(tmp_path, "test", shots=2, transform=eval_transform(32), n_episodes=10)
    assert again.pairs == ds.pairs and again.supports == ds.supports
    assert FSS1000(tmp_path, "all", shots=1).classes == ["cat", "dog", "tiger"]
    with pytest.raises(FileNotFoundError, match="splits/train.txt"):
        FSS1000(tmp_path, "train")
    # and a few-shot model scores it with the same loop and metrics
    from fewzero.engine import evaluate

    res = evaluate(fewshot(), ds, batch_size=4, max_class_id=len(ds.classes))
    assert 0 <= res["miou"] <= 1 and res["episodes"] == 10


def test_fss1000_refuses_an_image_without_mask_and_classes_shorter_than_the_shots(tmp_path):
    make_fss(tmp_path, n=3)
    with pytest.raises(ValueError, match=r"class 'dog' has 3 images with masks; 5-shot .* need 6"):
        FSS1000(tmp_path, "test", shots=5, transform=eval_transform(32))
    ds = FSS1000(tmp_path, "test", shots=2, transform=eval_transform(32), n_episodes=6)
    for i in range(len(ds)):  # 3 images, 2 shots: the supports are the two other images
        names = ds[i]["support_names"]
        assert len(set(names)) == 2 and ds[i]["name"] not in names
    (tmp_path / "tiger" / "3.png").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"class 'tiger': 1 image\(s\) .* no <n>.png mask: \['3.jpg'\]"
    ):
        FSS1000(tmp_path, "test", shots=1)


def test_correlation_maps_are_the_best_cosine_matches_by_hand_and_follow_the_support():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 4, 2, 3, generator=g, dtype=torch.float64)
    s = torch.randn(2, 4, 2, 2, generator=g, dtype=torch.float64)  # two shots
    masks = torch.tensor([[[[1, 0], [255, 1]], [[0, 0], [1, 0]]]])  # (B=1, K=2, 2, 2)
    from fewzero.heads.comparisons import BestMatch, Episode, FeatureSources

    best = BestMatch(FeatureSources({"query": 4}), scale=1.0)
    episode = Episode({"query": q}, {"query": s}, masks, {"query": None}, (2, 3))
    out = best(episode)[0]
    want = torch.zeros(1, 2, 2, 3, dtype=torch.float64)
    for k in range(2):
        for y in range(2):
            for x in range(3):
                qv = q[0, :, y, x]
                for c, value in enumerate((0, 1)):
                    cos = [
                        torch.clamp(
                            torch.dot(qv, s[k, :, i, j]) / qv.norm() / s[k, :, i, j].norm(), min=0
                        )
                        for i in range(2)
                        for j in range(2)
                        if masks[0, k, i, j] == value
                    ]
                    want[0, c, y, x] += max(cos) / 2
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-4)
    model = fewshot("prototype", {"name": "correlation", "channels": 8}).eval()
    query = torch.randn(1, 3, 65, 65)
    s_img, s_mask = supports(b=1, k=2)
    other = torch.zeros_like(s_mask)
    other[..., 30:45, 5:25] = 1
    assert not torch.allclose(model(query, s_img, s_mask), model(query, s_img, other))
    perm = torch.tensor([1, 0])
    torch.testing.assert_close(
        model(query, s_img[:, perm], s_mask[:, perm]),
        model(query, s_img, s_mask),
        rtol=1e-5,
        atol=1e-5,
    )
    with pytest.raises(ValueError, match="source must be one of .*got 'f4'"):
        fewshot({"name": "correlation", "source": "f4"})


def test_correlation_residual_adds_the_best_match_maps_to_the_logits():
    spec = {"name": "correlation", "channels": 8, "scale": 10.0}
    with_res = fewshot("prototype", {**spec, "residual": True}).eval()
    without = fewshot("prototype", spec).eval()
    without.load_state_dict(with_res.state_dict())  # the residual adds no parameter
    query = torch.randn(1, 3, 65, 65)
    s_img, s_mask = supports(b=1, k=2)
    a = with_res.forward_features(query, s_img, s_mask, None)[0]
    b = without.forward_features(query, s_img, s_mask, None)[0]
    diff = a - b  # scale x (best background match, best foreground match), each in [0, 1]
    assert diff.min() >= 0 and diff.max() <= 10.0 + 1e-4
    assert diff.abs().max() > 0.1


def test_low_level_map_is_what_f2s_stage_reads_and_is_cached():
    from fewzero.models import Backbone, FeatureCache

    x = torch.randn(2, 3, 50, 61)
    plain = Backbone("resnet18", fold_bn=False)
    body = plain.body
    with torch.no_grad():  # ResNet: the stem, the max pool and layer1, by hand
        want = body.layer1(body.maxpool(body.act1(body.bn1(body.conv1(x)))))
    torch.testing.assert_close(plain.features(x, ("low",))["low"], want, rtol=0, atol=0)
    folded = Backbone("resnet18")  # BatchNorm folded: the same map to float error
    folded.load_state_dict(plain.state_dict(), strict=False)
    assert folded.low_level_shape() == (64, 4)
    eff = Backbone("efficientnet_lite0")
    assert eff.low_level_shape() == (24, 4)
    with torch.no_grad():
        e = eff.body
        want = e.blocks[1](e.blocks[0](e.bn1(e.conv_stem(x))))
    torch.testing.assert_close(eff.features(x, ("low",))["low"], want, rtol=1e-5, atol=1e-5)
    eff.cache = FeatureCache()
    first, again = eff.features(x, ("low",))["low"], eff.features(x, ("low",))["low"]
    assert eff.cache.hits == 2 and eff.cache.misses == 2
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    with pytest.raises(ValueError, match="has no map before F_2's stage"):
        Backbone("vit_tiny_patch16_224").low_level_shape()


def test_low_level_similarity_adds_the_low_level_foreground_map_to_the_logits():
    import torch.nn.functional as F

    comparisons = (
        "prototype",
        {"name": "cosine", "channels": 8},
        {"name": "low_level", "channels": 6},
    )
    with_low = fewshot(*comparisons).eval()
    low_level = with_low.comparisons[2]
    assert with_low.strides["low_level"] == 4 and low_level.project.out_channels == 6
    query = torch.randn(1, 3, 64, 64)
    s_img, s_mask = supports(b=1, k=2, size=64)
    a = with_low.forward_features(query, s_img, s_mask, None)[0]
    with torch.no_grad():
        low_level.project.weight.zero_()
        low_level.project.bias.zero_()  # zero features: cosine 0, nothing added
        b = with_low.forward_features(query, s_img, s_mask, None)[0]
    # the reference: the query's and supports' layer1 maps, projected, the masked-average
    # foreground prototype of each shot and their mean, cosine in float64, 2 x 2 average
    # pooling, added to the foreground logit
    torch.manual_seed(0)
    ref = fewshot(*comparisons).eval()
    enc, proj = ref.encoder, ref.comparisons[2].project
    with torch.no_grad():
        q = proj(enc.features(query, ("low",))["low"]).double()[0]  # (6, 16, 16)
        s = proj(enc.features(s_img[0], ("low",))["low"]).double()  # (2, 6, 16, 16)
    cells = F.avg_pool2d((s_mask[0] == 1).double()[:, None], 4)[:, 0]  # fg share of each cell
    fg = (s * cells[:, None]).sum((2, 3)) / cells.sum((1, 2))[:, None]
    cos = F.cosine_similarity(q, fg.mean(0)[:, None, None], dim=0)
    want = low_level.scale * F.avg_pool2d(cos[None, None], 2)[0, 0]
    diff = (a - b).double()
    torch.testing.assert_close(diff[0, 0], torch.zeros_like(diff[0, 0]), rtol=0, atol=1e-5)
    torch.testing.assert_close(diff[0, 1], want, rtol=1e-4, atol=1e-4)  # the foreground only
    # and they follow the support: another mask, other maps
    other = torch.zeros_like(s_mask)
    other[..., 40:60, 2:30] = 1
    assert (with_low.forward_features(query, s_img, other, None)[0] - b).abs().max() > 0
    with pytest.raises(
        ValueError,
        match=r"'low_level' takes the options \['channels', 'scale'\], got unknown \['source'\]",
    ):
        fewshot({"name": "low_level", "source": "query"})
    with pytest.raises(ValueError, match="has no map before F_2's stage"):
        SMVCENet("vit_tiny_patch16_224", comparisons=["prototype", "low_level"], **SMALL)


@pytest.mark.parametrize(
    "comparisons",
    [
        ("prototype", "self", "prior"),
        ("prototype", {"name": "cosine", "source": "class", "channels": None}),
        ("prototype", "cosine", "mask_attention", {"name": "correlation", "residual": True}),
    ],
    ids=["prior", "class_similarity", "attention_correlation"],
)
def test_shot_merge_mean_equals_the_one_shot_episodes_for_every_comparison(comparisons):
    model = fewshot(*comparisons, shot_merge="mean").eval()
    q = torch.randn(2, 3, 65, 65)
    for size in (49, 65):  # supports of another size than the query's, and of the same
        s_img, s_mask = supports(b=2, k=3, size=size)
        episodes = [model(q, s_img[:, j : j + 1], s_mask[:, j : j + 1]) for j in range(3)]
        want = torch.stack(episodes).mean(0)
        torch.testing.assert_close(model(q, s_img, s_mask), want, rtol=1e-5, atol=1e-5)


def test_shot_merge_mean_averages_the_one_shot_episodes_logits():
    comparisons = (
        "prototype",
        {"name": "cosine", "channels": 8},
        {"name": "low_level", "channels": 6},
    )
    mean = fewshot(*comparisons, shot_merge="mean").eval()
    proto = fewshot(*comparisons).eval()  # same weights
    q = torch.randn(2, 3, 65, 65)
    s_img, s_mask = supports(b=2, k=3)
    out = mean(q, s_img, s_mask)
    episodes = [mean(q, s_img[:, j : j + 1], s_mask[:, j : j + 1]) for j in range(3)]
    torch.testing.assert_close(out, torch.stack(episodes).mean(0), rtol=1e-5, atol=1e-5)
    perm = torch.tensor([2, 0, 1])
    torch.testing.assert_close(mean(q, s_img[:, perm], s_mask[:, perm]), out, rtol=1e-5, atol=1e-5)
    # at one shot the merges agree; at three the prototype's mean is another comparison
    torch.testing.assert_close(episodes[0], proto(q, s_img[:, :1], s_mask[:, :1]))
    assert (proto(q, s_img, s_mask) - out).abs().max() > 1e-3
    # in training the shots' episodes carry the alignment loss, and gradients flow
    mean.train()
    logits, losses = mean(q, s_img, s_mask, return_losses=True)
    (logits.mean() + losses["alignment"]).backward()
    assert mean.comparisons[2].project.weight.grad.abs().sum() > 0
    with pytest.raises(
        ValueError, match=r"shot_merge must be one of \('prototype', 'mean', 'vote'\), got 'votes'"
    ):
        fewshot(shot_merge="votes")
    assert (
        create_model("sm_vcenet_fewshot_resnet50", backbone="resnet18", **SMALL).shot_merge
        == "mean"
    )
