"""Queries without the support's class, and support sets fitted once for many queries."""

import json

import numpy as np
import pytest
import torch
from test_protocols import make_layout

from fewzero.data import Pascal5i, eval_transform, read_manifest
from fewzero.engine.pascal2coco import (
    EvalOptions,
    PascalCoco,
    evaluate_pascal2coco,
    format_table,
)
from fewzero.metrics import AbsentMeter
from fewzero.models import create_model
from fewzero.predict import Predictor


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("absent")
    make_layout(base, "JPEGImages", "SegmentationClassAug", "lists/val.txt",
                list(range(1, 21)), n=40)  # fmt: skip
    make_layout(base, "JPEGImages", "SegmentationClassAug", "lists/train.txt",
                list(range(1, 21)), n=40)  # fmt: skip
    return base


def test_absent_meter_by_hand():
    meter = AbsentMeter()
    pred = torch.zeros(3, 2, 5, dtype=torch.long)
    label = torch.zeros(3, 2, 5, dtype=torch.long)
    pred[0, 0, :2] = 1  # 2 of 10 pixels
    label[1, :, 4] = 255  # 8 scored pixels, none predicted
    label[2, 0, 0] = 1  # shows the class: left to the IoU
    pred[2] = 1
    meter.update(pred, label)
    assert meter.compute() == {"absent_episodes": 2, "absent_fpr": 0.5, "absent_fg_fraction": 0.1}
    empty = AbsentMeter().compute()
    assert empty["absent_episodes"] == 0 and np.isnan(empty["absent_fpr"])


def test_class_absent_episodes_never_show_their_class_and_replay(root, tmp_path):
    tf = eval_transform(48)
    ds = Pascal5i(root, 0, "val", shots=2, absent=True, n_episodes=12, min_pixels=9, transform=tf)
    for i in range(len(ds)):
        ep = ds[i]
        assert ep["class_id"] not in ds.classes_of[ep["name"]]  # not a pixel of the class
        assert not (ep["label"] == 1).any() and (ep["support_masks"] == 1).any()
    from fewzero.data import write_manifest

    path = tmp_path / "absent.jsonl"
    write_manifest(path, ds.manifest(), ds.manifest_header())
    header, records = read_manifest(path)
    assert header["absent"] is True
    again = Pascal5i(
        root, 0, "val", shots=2, absent=True, episodes=path, min_pixels=9, transform=tf
    )
    assert again.manifest() == ds.manifest()
    with pytest.raises(ValueError, match="class-absent ones"):  # a query that shows its class
        present = Pascal5i(root, 0, "val", shots=2, n_episodes=3, min_pixels=9, transform=tf)
        Pascal5i(root, 0, "val", shots=2, absent=True, episodes=present.manifest(),
                 min_pixels=9, transform=tf)  # fmt: skip
    with pytest.raises(ValueError, match="absent=True draws 1-way few-shot test episodes"):
        Pascal5i(root, 0, "val", shots=0, absent=True, transform=tf)
    with pytest.raises(ValueError, match=r"absent_fraction must be in \[0, 1\)"):
        Pascal5i(root, 0, "train", shots=1, absent_fraction=1.0, transform=tf)


def test_training_mixes_in_class_absent_queries_at_the_asked_share(root):
    tf = eval_transform(48)
    np.random.seed(0)
    ds = Pascal5i(root, 0, "train", shots=1, absent_fraction=0.5, min_pixels=9, transform=tf,
                  support_transform=tf)  # fmt: skip
    eps = [ds[i % len(ds)] for i in range(120)]
    absent = [e for e in eps if not (e["label"] == 1).any()]
    assert 35 <= len(absent) <= 85  # about half
    for e in absent:  # the support still shows the class; the query does not
        assert e["class_id"] not in ds.classes_of[e["name"]] and (e["support_masks"] == 1).any()
    plain = Pascal5i(root, 0, "train", shots=1, min_pixels=9, transform=tf, support_transform=tf)
    assert all((plain[i]["label"] == 1).any() for i in range(20))


def test_evaluation_reports_the_class_absent_numbers(root):
    model = create_model("prototype", backbone="resnet18")
    options = EvalOptions(size=48, n_episodes=6, min_pixels=9, shots=1, support_swap=False)
    row = evaluate_pascal2coco(model, PascalCoco(root), options)
    assert 0 <= row["pascal_absent_fpr"] <= 1 and 0 <= row["pascal_absent_fg"] <= 1
    assert "pascal5i-fold0-1shot-absent" in row["manifests"]
    assert "absent FP / fg" in format_table([{**row, "name": "p"}], coco=False)


def test_a_fitted_support_gives_the_same_masks_faster_and_saves(tmp_path):
    predictor = Predictor(create_model("sm_vcenet_fewshot_efficientnet_lite0"), size=64,
                          device="cpu", presence_threshold=0.0)  # fmt: skip
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 255, (50, 60, 3), dtype=np.uint8) for _ in range(4)]
    mask = np.zeros((50, 60), dtype=bool)
    mask[10:40, 15:45] = True
    support = [(photos[0], mask), (photos[1], mask)]
    fitted = predictor.fit(support)
    for q in photos[2:]:
        torch.testing.assert_close(predictor.probabilities(q, support=fitted),
                                   predictor.probabilities(q, support=support))  # fmt: skip
    named = {"cat": [(photos[0], mask)], "dog": [(photos[1], ~mask)]}
    fitted_n = predictor.fit(named)
    assert fitted_n.classes == ["cat", "dog"]
    assert np.array_equal(
        predictor(photos[2], support=fitted_n), predictor(photos[2], support=named)
    )
    path = fitted_n.save(tmp_path / "pets.safetensors")
    loaded = predictor.load_support(path)
    assert loaded.classes == ["cat", "dog"]
    assert np.array_equal(predictor(photos[3], support=loaded), predictor(photos[3], support=named))
    other = Predictor(predictor.model, size=96, device="cpu")
    with pytest.raises(ValueError, match="fitted at size 64"):
        other.load_support(path)
    (tmp_path / "bad.safetensors").write_bytes(b"not a file of tensors")
    with pytest.raises(ValueError, match="bad.safetensors' is not a safetensors file"):
        predictor.load_support(tmp_path / "bad.safetensors")
    # the support's backbone features are computed once: later queries only hit the cache
    predictor(photos[2], support=fitted)
    hits = fitted.cache.hits
    predictor(photos[3], support=fitted)
    assert fitted.cache.hits >= hits + 2


def test_presence_scores_and_the_threshold_empty_an_absent_class():
    predictor = Predictor(create_model("prototype", backbone="resnet18"), size=64, device="cpu")
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 255, (50, 60, 3), dtype=np.uint8)
    mask = np.zeros((50, 60), dtype=bool)
    mask[10:40, 15:45] = True
    scores = predictor.presence(photo, support=[(photo, mask)])
    assert list(scores) == ["foreground"] and 0 < scores["foreground"] <= 1
    named = predictor.presence(photo, support={"a": [(photo, mask)], "b": [(photo, ~mask)]})
    assert list(named) == ["a", "b"] and sum(named.values()) <= 1 + 1e-6
    full = predictor(photo, support=[(photo, mask)])
    assert full.any()
    strict = Predictor(predictor.model, size=64, device="cpu", presence_threshold=0.999)
    assert not strict(photo, support=[(photo, mask)]).any()  # below the threshold: absent
    with pytest.raises(ValueError, match=r"presence_threshold must be in \[0, 1\)"):
        Predictor(predictor.model, presence_threshold=1.5)


def test_train_config_records_the_absent_share():
    from fewzero.engine import TrainConfig

    assert TrainConfig(shots=1, absent_fraction=0.25).to_dict()["absent_fraction"] == 0.25
    with pytest.raises(ValueError, match=r"absent_fraction must be in \[0, 1\)"):
        TrainConfig(shots=1, absent_fraction=1.0)
    assert json.dumps(TrainConfig().to_dict())


def test_a_saved_nway_support_keeps_each_class_with_its_own_tensors(tmp_path):
    """Classes named out of alphabetical order come back in their order, each with its shots."""
    import torch

    from fewzero.fitted_support import FittedSupport

    sets = {
        "zebra": (torch.full((2, 3, 8, 8), 1.0), torch.ones(2, 8, 8, dtype=torch.long)),
        "apple": (torch.full((1, 3, 8, 8), 2.0), torch.zeros(1, 8, 8, dtype=torch.long)),
    }
    again = FittedSupport.read(FittedSupport(sets, 8, True).save(tmp_path / "s.safetensors"))
    assert again.classes == ["zebra", "apple"]
    for name, (images, masks) in sets.items():
        assert torch.equal(again.sets[name][0], images) and torch.equal(again.sets[name][1], masks)
