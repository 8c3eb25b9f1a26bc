"""Few-shot that follows its support: multi-class toy data, the leak, N-way, the prototype baseline."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import SMALL_CLASS as SMALL
from PIL import Image

from fewzero.data import Pascal5i, ToyConfig, build_toy, collate_episodes, eval_transform
from fewzero.data.classes import coco_fold_classes, pascal_fold_classes
from fewzero.data.io import read_list, read_mask
from fewzero.engine.evaluate import evaluate
from fewzero.engine.pascal2coco import (
    EvalOptions,
    PascalCoco,
    evaluate_pascal2coco,
    format_table,
)
from fewzero.metrics import LeakMeter, NWayIoUMeter
from fewzero.models import (
    PrototypeMatcher,
    SMVCENet,
    create_model,
    model_from_state,
    nway_scores,
)
from fewzero.predict import Predictor, main


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    cfg = ToyConfig(
        voc_train=24, sbd_train=24, voc_val=60, coco_train=8, coco_val=80, size=(64, 80)
    )
    return build_toy(tmp_path_factory.mktemp("toy"), seed=5, config=cfg)


def two_squares(size=64):
    """A query with a flat red square and a black-and-white checked square, a support of each.

    (The names "red" and "blue" below stand for the two objects.)
    """
    yy, xx = np.mgrid[0:size, 0:size]
    checks = (((yy // 3) + (xx // 3)) % 2 * 255).astype(np.uint8)[..., None].repeat(3, 2)
    img = np.full((size, size, 3), 128, dtype=np.uint8)
    img[8:28, 6:26] = (220, 30, 30)
    img[36:56, 38:58] = checks[36:56, 38:58]
    red = np.zeros((size, size), dtype=np.uint8)
    red[8:28, 6:26] = 1
    blue = np.zeros((size, size), dtype=np.uint8)
    blue[36:56, 38:58] = 1
    # supports at positions of neither query square: only appearance can match
    s_red = np.full((size, size, 3), 128, dtype=np.uint8)
    s_red[6:28, 36:58] = (225, 35, 25)
    m_red = np.zeros((size, size), dtype=np.uint8)
    m_red[6:28, 36:58] = 1
    s_blue = np.full((size, size, 3), 128, dtype=np.uint8)
    s_blue[36:58, 6:28] = checks[36:58, 6:28]
    m_blue = np.zeros((size, size), dtype=np.uint8)
    m_blue[36:58, 6:28] = 1
    return img, red, blue, (s_red, m_red), (s_blue, m_blue)


# --- the leak and the N-way IoU on hand-built masks ---------------------------------------------


def test_leak_on_hand_built_masks():
    meter = LeakMeter()
    pred = torch.tensor([[[1, 1, 1, 0], [0, 0, 0, 0]]])
    other = torch.tensor([[[0, 1, 1, 1], [1, 255, 0, 0]]])  # B: 4 pixels, 2 predicted
    meter.update(pred, other)
    assert meter.compute() == {"leak": 0.5, "other_pixels": 4, "leak_per_class": {}}
    meter.update(torch.zeros(1, 2, 4, dtype=torch.long), torch.ones(1, 2, 4, dtype=torch.long))
    assert meter.compute()["leak"] == pytest.approx(2 / 12)  # pooled over episodes, not averaged
    empty = LeakMeter()
    empty.update(pred, torch.zeros_like(pred))
    assert np.isnan(empty.compute()["leak"])
    with pytest.raises(ValueError, match="other must be in"):
        meter.update(pred, torch.full_like(pred, 3))
    with pytest.raises(ValueError, match="pred and other"):
        meter.update(pred, other[..., :3])


def test_leak_per_class_is_pooled_over_each_class_episodes():
    meter = LeakMeter(max_class_id=9)
    pred = torch.tensor([[[1, 1, 0, 0]], [[1, 0, 0, 0]], [[0, 0, 0, 0]]])
    other = torch.tensor([[[1, 1, 1, 0]], [[1, 255, 0, 0]], [[0, 0, 0, 0]]])
    meter.update(pred, other, torch.tensor([2, 5, 9]))  # class 9 met no other pixel
    meter.update(torch.tensor([[[0, 0, 0, 1]]]), torch.tensor([[[0, 0, 0, 1]]]), [2])
    res = meter.compute()
    assert res["leak_per_class"] == {2: pytest.approx(3 / 4), 5: 1.0}  # 2: (2 + 1) / (3 + 1)
    assert res["leak"] == pytest.approx(4 / 5) and res["other_pixels"] == 5
    with pytest.raises(ValueError, match=r"class_ids must lie in \[0, 9\], got \[10\]"):
        meter.update(pred[:1], other[:1], torch.tensor([10]))
    with pytest.raises(ValueError, match=r"class_ids must have 3 entries \(B\), got 1"):
        meter.update(pred, other, torch.tensor([2]))
    meter.reset()
    assert meter.compute()["leak_per_class"] == {}


def test_nway_iou_counts_each_class_once_per_episode():
    meter = NWayIoUMeter()
    # episode 1: ways (7, 3); episode 2: ways (3, 9) -> class 3 sits at another position
    pred = torch.tensor([[[1, 1, 2, 0]], [[1, 0, 2, 2]]])
    target = torch.tensor([[[1, 2, 2, 0]], [[1, 1, 2, 255]]])
    meter.update(pred, target, torch.tensor([[7, 3], [3, 9]]))
    res = meter.compute()
    # class 7: I=1, U=2; class 3: ep1 I=1 U=2, ep2 I=1 U=2 -> 2/4; class 9: I=1, U=1
    assert res["per_class"] == {3: 0.5, 7: 0.5, 9: 1.0}
    assert res["miou"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert res["episodes"] == 2
    with pytest.raises(ValueError, match="distinct"):
        meter.update(pred, target, torch.tensor([[7, 7], [3, 9]]))
    with pytest.raises(ValueError, match="pred must be in 0..2"):
        meter.update(pred + 2, target, torch.tensor([[7, 3], [3, 9]]))


# --- data that needs the support ----------------------------------------------------------------


def test_toy_scenes_hold_several_classes_of_one_split(tmp_path):
    roots = build_toy(tmp_path / "t", seed=2, config=ToyConfig(
        voc_train=80, sbd_train=80, voc_val=80, coco_train=10, coco_val=120, size=(64, 80)))  # fmt: skip
    for tree, lists, split_of in [
        ("pascal", ["train", "val"], lambda c: pascal_fold_classes((c - 1) // 5)[1]),
        ("coco", ["val"], lambda c: coco_fold_classes((c - 1) % 4)[1]),
    ]:
        for name in lists:
            entries = read_list(roots[tree] / "lists" / f"{name}.txt")
            multi = [set(counts) for _, counts in entries if len(counts) >= 2]
            share = len(multi) / len(entries)
            assert 0.35 <= share <= 0.65, (tree, name, share)
            for classes in multi:  # every class of a scene belongs to one test split
                first = min(classes)
                assert classes <= set(split_of(first)), (tree, classes)


def test_episodes_mark_the_other_classes_and_multi_class_keeps_two_class_queries(toy):
    tf = eval_transform(48)
    all_eps = Pascal5i(toy["pascal"], 0, "val", min_pixels=20, n_episodes=None, transform=tf)
    swap = Pascal5i(toy["pascal"], 0, "val", min_pixels=20, n_episodes=None, multi_class=True)
    unseen = set(pascal_fold_classes(0)[1])
    assert 0 < len(swap) < len(all_eps)
    for name, cid in swap.pairs:
        counts = swap.classes_of[name]
        assert len([c for c in unseen if counts.get(c, 0) >= 20]) >= 2
        assert (name, cid) in all_eps.pairs
    names = [n for n, _ in swap.pairs]
    assert all(names.count(n) >= 2 for n in names)  # each two-class image once per class
    for i in range(6):
        ep = swap[i]
        mask = read_mask(toy["pascal"] / "SegmentationClassAug" / f"{ep['name']}.png", 20)
        others = [c for c in unseen if c != ep["class_id"]]
        np.testing.assert_array_equal(ep["other"].numpy() == 1, np.isin(mask, others))
        assert not ((ep["other"] == 1) & (ep["label"] == 1)).any()
        assert (ep["other"] == 1).sum() >= 20


def test_nway_episodes(toy):
    tf = eval_transform(48)
    ds = Pascal5i(toy["pascal"], 0, "val", min_pixels=20, n_episodes=12, shots=2, ways=2,
                  multi_class=True, transform=tf, support_transform=tf)  # fmt: skip
    again = Pascal5i(toy["pascal"], 0, "val", min_pixels=20, n_episodes=12, shots=2, ways=2,
                     multi_class=True, transform=tf, support_transform=tf)  # fmt: skip
    assert ds.way_classes == again.way_classes and ds.way_supports == again.way_supports
    ep = ds[0]
    assert ep["support_images"].shape == (2, 2, 3, 48, 48)
    assert ep["support_masks"].shape == (2, 2, 48, 48)
    ways = ep["class_ids"].tolist()
    assert ways[0] == ds.pairs[0][1] and len(set(ways)) == 2
    mask = read_mask(toy["pascal"] / "SegmentationClassAug" / f"{ep['name']}.png", 20)
    for i, c in enumerate(ways):
        np.testing.assert_array_equal(ep["label"].numpy() == i + 1, mask == c)
        for names in ds.way_supports[0] if i else [ds.supports[0]]:
            for n in [names] if isinstance(names, str) else names:
                assert ds.classes_of[n].get(c, 0) >= 20 and n != ep["name"]
    batch = collate_episodes([ds[0], ds[1]])
    assert batch["support_images"].shape[:3] == (2, 2, 2) and batch["class_ids"].shape == (2, 2)
    with pytest.raises(ValueError, match="ways=2 needs support sets"):
        Pascal5i(toy["pascal"], 0, "val", min_pixels=20, ways=2)
    with pytest.raises(ValueError, match="ways must be at most"):
        Pascal5i(toy["pascal"], 0, "val", min_pixels=20, shots=1, ways=6)


# --- models that follow the support -------------------------------------------------------------


@pytest.fixture(scope="module")
def matcher():
    """The training-free baseline over real ImageNet features (the offline EfficientNet wheel)."""
    return create_model("prototype_efficientnet_lite0", pretrained=True).eval()


def test_prototype_baseline_is_training_free_and_follows_its_support(matcher):
    model = matcher
    assert isinstance(model, PrototypeMatcher)
    assert not any(p.requires_grad for p in model.parameters())
    copy = model_from_state(model.config, model.state_dict())
    assert copy.config == model.config
    img, red, blue, (s_red, m_red), (s_blue, m_blue) = two_squares()
    predictor = Predictor(model, size=64)
    with_red = predictor(img, support=[(s_red, m_red)])
    with_blue = predictor(img, support=[(s_blue, m_blue)])
    cover = lambda pred, where: (pred[where == 1] == 1).mean()  # noqa: E731
    assert cover(with_red, red) > 0.6 and cover(with_blue, blue) > 0.6
    assert cover(with_red, blue) < 0.1 and cover(with_blue, red) < 0.1  # no leak to the other
    with pytest.raises(ValueError, match="support_images must be given"):
        model(torch.randn(1, 3, 64, 64))


def test_similarity_maps_follow_the_support_and_keep_the_zero_shot_path():
    torch.manual_seed(0)
    cosine = {"name": "cosine", "channels": None, "alignment_weight": 0.0}
    model = SMVCENet("resnet18", comparisons=["prototype", cosine], **SMALL).eval()
    q = torch.randn(1, 3, 49, 49)
    s = torch.randn(1, 1, 3, 49, 49)
    m1 = torch.zeros(1, 1, 49, 49, dtype=torch.long)
    m1[..., 5:20, 5:20] = 1
    m2 = torch.zeros_like(m1)
    m2[..., 30:45, 25:45] = 1
    a, b = model(q, s, m1), model(q, s, m2)
    assert (a.argmax(1) != b.argmax(1)).float().mean() > 0.05 or not torch.allclose(a, b)
    assert model.decoder.class_channels == model.class_branch.out_channels + 2
    # the similarity residual alone separates the classes: with a zeroed decoder the logits are
    # exactly the scaled cosine maps of the query features with the background/foreground prototypes
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.zero_()
    from fewzero.heads.prototype import cosine_maps, masked_average_pooling

    f2, f3, _ = model.backbone_features(torch.cat([q, s[:, 0]]))
    feats = model.query(torch.cat([f2, f3], 1))
    # the grid's 7 x 7 cells of 8 px cover 56 px: the 7 padded rows/columns are neither class
    cells = torch.nn.functional.pad(m1[:, 0], (0, 7, 0, 7), value=255)
    protos = torch.stack([masked_average_pooling(feats[1:], cells, v) for v in (0, 1)], 1)
    want = 10.0 * cosine_maps(feats[:1], protos)
    got = model.forward_features(q, s, m1, None)[0]
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="source must be one of .*got 'pixels'"):
        SMVCENet("resnet18", comparisons=[{"name": "cosine", "source": "pixels"}], **SMALL)
    # the zero-shot default is untouched: the query's own embedding, no support comparison
    zero = create_model("sm_vcenet_resnet50", backbone="resnet18", **SMALL)
    assert zero.config["comparisons"] == [{"name": "self"}] and not zero.accepts_support


def test_fewshot_factories_default_to_the_measured_mechanism():
    model = create_model("sm_vcenet_fewshot_resnet50", backbone="resnet18", **SMALL)
    prototype, cosine, low_level = model.comparisons
    assert cosine.source == "query" and cosine.residual and cosine.project.out_channels == 128
    assert cosine.alignment_weight == 1.0  # PANet's alignment loss in training
    assert low_level.project.out_channels == 32 and model.shot_merge == "mean"


# --- N-way prediction ---------------------------------------------------------------------------


def test_nway_scores_label_each_square_with_its_own_class(matcher):
    model = matcher
    img, red, blue, (s_red, m_red), (s_blue, m_blue) = two_squares()
    predictor = Predictor(model, size=64)
    labels = predictor(img, support={"red": [(s_red, m_red)], "blue": [(s_blue, m_blue)]})
    assert labels.shape == red.shape and labels.dtype == np.uint8
    assert (labels[red == 1] == 1).mean() > 0.6 and (labels[blue == 1] == 2).mean() > 0.6
    swapped = predictor(img, support={"blue": [(s_blue, m_blue)], "red": [(s_red, m_red)]})
    assert (swapped[red == 1] == 2).mean() > 0.6  # labels follow the dictionary's order
    # one way equals the binary prediction
    x = torch.randn(2, 3, 64, 64)
    s_img = torch.randn(2, 1, 2, 3, 64, 64)
    s_mask = torch.zeros(2, 1, 2, 64, 64, dtype=torch.long)
    s_mask[..., 10:30, 10:30] = 1
    one = nway_scores(model, x, s_img, s_mask)
    binary = model(x, s_img[:, 0], s_mask[:, 0]).softmax(1)
    torch.testing.assert_close(one.argmax(1), binary.argmax(1))
    torch.testing.assert_close(one[:, 1], binary[:, 1])
    with pytest.raises(ValueError, match="needs a few-shot model"):
        nway_scores(create_model("sm_vcenet", backbone="resnet18", **SMALL), x, s_img, s_mask)
    with pytest.raises(ValueError, match="support_images must be"):
        nway_scores(model, x, s_img[:, 0], s_mask[:, 0])
    with pytest.raises(ValueError, match=r"support\['red'\]: support\[0\]: mask must have"):
        predictor(img, support={"red": [(s_red, m_red[:10])]})


def test_segment_cli_nway_and_training_free_model(tmp_path):
    img, red, blue, (s_red, m_red), (s_blue, m_blue) = two_squares()
    for name, arr in [("q.png", img), ("r.png", s_red), ("b.png", s_blue)]:
        Image.fromarray(arr).save(tmp_path / name)
    Image.fromarray(m_red * 255).save(tmp_path / "rm.png")
    Image.fromarray(m_blue * 255).save(tmp_path / "bm.png")
    out = tmp_path / "out"
    args = ["--model", "prototype_efficientnet_lite0", "--size", "64", "--device", "cpu",
            "--query", str(tmp_path / "q.png")]  # fmt: skip
    assert main(args + ["--support-class", "red", str(tmp_path / "r.png"), str(tmp_path / "rm.png"),
                        "--support-class", "blue", str(tmp_path / "b.png"), str(tmp_path / "bm.png"),
                        "--out", str(out)]) == 0  # fmt: skip
    labels = np.asarray(Image.open(out / "labels.png"))
    assert Image.open(out / "labels.png").mode == "P"
    assert (labels[red == 1] == 1).mean() > 0.6 and (labels[blue == 1] == 2).mean() > 0.6
    overlay = Image.open(out / "overlay.png")
    assert overlay.width == 64 and overlay.height > 64  # image plus legend
    assert main(args + ["--support", str(tmp_path / "r.png"), str(tmp_path / "rm.png"),
                        "--out", str(tmp_path / "one")]) == 0  # fmt: skip
    mask = np.asarray(Image.open(tmp_path / "one" / "mask.png")) > 0
    assert mask[red == 1].mean() > 0.6 and mask[blue == 1].mean() < 0.1
    # a31: --presence-threshold reaches the predictor (a class winning less is empty)
    assert main(args + ["--support", str(tmp_path / "r.png"), str(tmp_path / "rm.png"),
                        "--out", str(tmp_path / "high"), "--presence-threshold", "0.9"]) == 0  # fmt: skip
    assert not (np.asarray(Image.open(tmp_path / "high" / "mask.png")) > 0).any()
    with pytest.raises(SystemExit):
        main(args + ["--support", "a", "b", "--support-class", "n", "a", "b"])
    with pytest.raises(SystemExit):
        main(["--model", "sm_vcenet_resnet50", "--checkpoint", "x.pt", "--query", "q.png"])


def test_untrained_model_with_trainable_weights_is_refused(tmp_path, capsys):
    Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8)).save(tmp_path / "q.png")
    with pytest.raises(SystemExit) as err:
        main(["--model", "deeplab_efficientnet_lite0", "--query", str(tmp_path / "q.png")])
    assert err.value.code == 2
    assert "never trained" in capsys.readouterr().err


# --- the support-swap evaluation ----------------------------------------------------------------


def test_support_swap_evaluation_separates_a_model_that_follows_the_support(toy):
    """An oracle that segments the support's class scores 0 leak; one that segments every
    object of the split leaks everything; the zero-shot model gets a baseline."""
    tf = eval_transform(48)
    ds = Pascal5i(toy["pascal"], 0, "val", min_pixels=20, n_episodes=None, multi_class=True,
                  shots=1, transform=tf, support_transform=tf)  # fmt: skip

    class Oracle(torch.nn.Module):
        """Returns, episode by episode, logits of a given mask at the label's own size."""

        accepts_support = True

        def __init__(self, masks):
            super().__init__()
            self.masks = iter(masks)

        def forward(self, images, support_images=None, support_masks=None, class_ids=None):
            m = next(self.masks).float()
            return torch.stack([1 - m, m])[None] * 10

    episodes = [ds[i] for i in range(len(ds))]
    follows = [ep["label"].clamp(max=1) for ep in episodes]  # the support's class only
    every = [((ep["label"] == 1) | (ep["other"] == 1)).long() for ep in episodes]
    oracles = [Oracle(follows), Oracle(every)]
    good = evaluate(oracles[0], ds, batch_size=1)
    bad = evaluate(oracles[1], ds, batch_size=1)
    assert good["leak"] == 0 and good["miou"] > 0.99
    assert bad["leak"] == 1 and bad["miou"] < good["miou"]
    # the per-class leak names the class whose episodes leak: here one class's alone
    classes = sorted({int(ep["class_id"]) for ep in episodes})
    assert len(classes) >= 2 and set(good["leak_per_class"]) == set(classes)
    worst = classes[0]
    mixed = [e if int(ep["class_id"]) == worst else f for ep, e, f in zip(episodes, every, follows)]
    res = evaluate(Oracle(mixed), ds, batch_size=1)
    assert res["leak_per_class"] == {c: (1.0 if c == worst else 0.0) for c in classes}
    assert 0 < res["leak"] < 1


def test_pascal2coco_rows_carry_the_swap_numbers_and_nway(toy):
    model = create_model("prototype", backbone="resnet18")
    data = PascalCoco(toy["pascal"])
    row = evaluate_pascal2coco(model, data, EvalOptions(48, 8, min_pixels=20, shots=1, ways=2))
    for key in ("pascal_miou", "pascal_swap_iou", "pascal_leak", "pascal_nway_miou"):
        assert 0 <= row[key] <= 1, key
    assert row["ways"] == 2 and row["pascal_swap_episodes"] == 8
    per_class = row["pascal_leak_per_class"]
    assert per_class and set(per_class) <= {1, 2, 3, 4, 5}  # fold 0's test classes
    assert all(0 <= v <= 1 for v in per_class.values())
    table = format_table([{"name": "prototype", "trained": "-", **row}], coco=False)
    assert "2-class IoU | leak | 2-way mIoU" in table
    zero = create_model("sm_vcenet", backbone="resnet18", **SMALL)
    row0 = evaluate_pascal2coco(zero, data, EvalOptions(size=48, n_episodes=8, min_pixels=20))
    assert "pascal_leak" in row0 and "pascal_nway_miou" not in row0
    json.dumps(row0)
    with pytest.raises(ValueError, match="ways=2 needs a few-shot evaluation"):
        evaluate_pascal2coco(zero, data, EvalOptions(size=48, n_episodes=8, ways=2))


def test_similarity_residual_equals_cosines_computed_by_hand():
    """Independent of fewzero's helpers: pooled prototypes and cosines written out by hand."""
    torch.manual_seed(3)
    # the mid-level maps alone (the low-level map has its own test in test_fewshot.py)
    model = create_model("sm_vcenet_fewshot_resnet50", backbone="resnet18",
                         comparisons=["prototype", "cosine"], **SMALL).eval()  # fmt: skip
    q = torch.randn(1, 3, 64, 64)
    s = torch.randn(1, 1, 3, 64, 64)
    m = torch.zeros(1, 1, 64, 64, dtype=torch.long)
    m[..., 8:40, 16:48] = 1  # whole 8 x 8 cells: cell (i, j) is foreground for i in 1..4, j in 2..5
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.zero_()
        got = model.forward_features(q, s, m, None)[0]
        f2, f3, _ = model.backbone_features(torch.cat([q, s[:, 0]]))
        feats = model.comparisons[1].project(model.query(torch.cat([f2, f3], 1))).double()
        query, support = feats[0], feats[1]  # (C, 8, 8)
        fg = torch.zeros(8, 8, dtype=torch.bool)
        fg[1:5, 2:6] = True
        protos = [support[:, ~fg].mean(dim=1), support[:, fg].mean(dim=1)]  # background, fg
        want = (
            torch.stack([F.cosine_similarity(query, p[:, None, None], dim=0) for p in protos])
            * model.comparisons[1].scale
        )
    torch.testing.assert_close(got[0].double(), want, rtol=1e-4, atol=1e-4)
    assert want.abs().max() > 0.1  # a map that zeroing would change


@pytest.mark.parametrize("merge", ["mean", "vote", "prototype"])
def test_a_class_in_nway_means_what_it_means_alone_whatever_the_others_shots(merge):
    """Class A's probabilities beside a 3-shot class B are A's own: never padded with its shots."""
    img, red, blue, (s_red, m_red), (s_blue, m_blue) = two_squares()
    torch.manual_seed(0)
    model = create_model("prototype", backbone="resnet18", shot_merge=merge).eval()
    predictor = Predictor(model, size=64)
    flipped = (np.ascontiguousarray(s_red[:, ::-1]), np.ascontiguousarray(m_red[:, ::-1]))
    a = [(s_red, m_red), flipped]  # two shots of A, unlike each other
    b = [(s_blue, m_blue)] * 3
    alone = predictor.probabilities(img, {"A": a})
    beside = predictor.probabilities(img, {"A": a, "B": b})
    torch.testing.assert_close(beside[1], alone[1], rtol=0, atol=1e-6)
    # and the same as the binary prediction of A with its two shots
    binary = predictor.probabilities(img, a)
    torch.testing.assert_close(beside[1], binary[1], rtol=0, atol=1e-6)
