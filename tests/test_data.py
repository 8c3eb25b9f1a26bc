"""Datasets, transforms, preparation and the toy data."""

import hashlib
import json
import os

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.transforms import v2

from fewzero.data import (
    Coco20i,
    Pascal5i,
    ToyConfig,
    build_toy,
    coco_fold_classes,
    collate_episodes,
    eval_transform,
    pascal_fold_classes,
    read_mask,
    train_transform,
    write_mask,
)
from fewzero.data.prepare import main as prepare_main
from fewzero.data.prepare import prepare_pascal

TINY = ToyConfig(voc_train=16, sbd_train=16, voc_val=24, coco_train=8, coco_val=60, size=(64, 80))


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return build_toy(tmp_path_factory.mktemp("toy"), seed=3, config=TINY)


def test_fold_classes_are_the_standard_ones():
    assert pascal_fold_classes(0)[1] == [1, 2, 3, 4, 5]
    assert pascal_fold_classes(3)[1] == [16, 17, 18, 19, 20]
    assert coco_fold_classes(1, "fwb")[1] == list(range(2, 81, 4))
    assert coco_fold_classes(3, "panet")[1] == list(range(61, 81))
    for split in ("fwb", "panet"):
        union = sorted(c for f in range(4) for c in coco_fold_classes(f, split)[1])
        assert union == list(range(1, 81))
    for bad in (-1, 4, 1.0, True):
        with pytest.raises(ValueError, match=r"fold must be an int in \[0, 3\]"):
            pascal_fold_classes(bad)
    with pytest.raises(ValueError, match="class_split must be one of"):
        coco_fold_classes(0, "hsnet")


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink() and p.name != ".complete":
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_toy_generation_is_deterministic(tmp_path):
    digest = _digest
    cfg = ToyConfig(voc_train=4, sbd_train=4, voc_val=4, coco_train=2, coco_val=4, size=(48, 56))
    build_toy(tmp_path / "a", seed=7, config=cfg)
    build_toy(tmp_path / "b", seed=7, config=cfg)
    build_toy(tmp_path / "c", seed=8, config=cfg)
    assert digest(tmp_path / "a" / "raw") == digest(tmp_path / "b" / "raw")
    assert digest(tmp_path / "a" / "raw") != digest(tmp_path / "c" / "raw")


def _build_in_child(root, cfg, queue, log):
    import time

    from fewzero.data import toy as toy_module

    write = toy_module._write_pascal_raw

    def logged_write(*args):  # who builds, slowly enough that the builds would overlap
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.5)
        write(*args)

    toy_module._write_pascal_raw = logged_write
    try:
        build_toy(root, seed=7, config=cfg)
        queue.put("ok")
    except BaseException as err:  # reported to the parent
        queue.put(repr(err))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_toy_builds_of_one_root_at_once_take_turns(tmp_path):
    """Three processes building one root at once (torchrun's ranks): one builds, two reuse."""
    import multiprocessing

    cfg = ToyConfig(voc_train=4, sbd_train=4, voc_val=4, coco_train=2, coco_val=4, size=(48, 56))
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_build_in_child, args=(tmp_path / "shared", cfg, queue, tmp_path / "log"))
             for _ in range(3)]  # fmt: skip
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert sorted(queue.get(timeout=5) for _ in procs) == ["ok"] * 3
    assert len((tmp_path / "log").read_text().split()) == 1  # the others waited, then reused
    build_toy(tmp_path / "alone", seed=7, config=cfg)
    for sub in ("raw", "pascal", "coco"):
        assert _digest(tmp_path / "shared" / sub) == _digest(tmp_path / "alone" / sub), sub


def test_toy_layouts_and_counts(toy):
    pascal = toy["pascal"]
    assert len((pascal / "lists" / "train.txt").read_text().splitlines()) == 32
    assert len((pascal / "lists" / "val.txt").read_text().splitlines()) == 24
    names = [line.split()[0] for line in (pascal / "lists" / "val.txt").read_text().splitlines()]
    mask = read_mask(pascal / "SegmentationClassAug" / f"{names[0]}.png", 20)
    assert set(np.unique(mask)) <= set(range(21)) | {255}
    ann = json.loads(
        (toy["coco"].parent / "raw" / "coco" / "annotations" / "instances_val2017.json").read_text()
    )
    assert len(ann["categories"]) == 80 and len(ann["images"]) == 60


def test_pascal_train_pairs_follow_the_protocol(toy):
    ds = Pascal5i(toy["pascal"], fold=0, split="train", min_pixels=50)
    seen, unseen = pascal_fold_classes(0)
    assert all(c in seen for _, c in ds.pairs)
    ep = ds[0]
    label = read_mask(toy["pascal"] / "SegmentationClassAug" / f"{ep['name']}.png", 20)
    expected = (label == ep["class_id"]).astype(np.int64)
    expected[label == 255] = 255
    assert torch.equal(ep["mask"], torch.from_numpy(expected))
    strict = Pascal5i(toy["pascal"], fold=0, split="train", min_pixels=50, exclude_unseen=True)
    assert len(strict) <= len(ds)
    for name, _ in strict.pairs:
        assert not any(c in strict.classes_of[name] for c in unseen)
    union = Pascal5i(toy["pascal"], fold=0, split="train", min_pixels=50, target="union")
    e = union[0]
    multi = [
        i
        for i, (n, _) in enumerate(union.pairs)
        if len([c for c in union.classes_of[n] if c in seen]) > 1
    ]
    if multi:
        e = union[multi[0]]
        assert (
            e["mask"].eq(1).sum()
            > (
                read_mask(toy["pascal"] / "SegmentationClassAug" / f"{e['name']}.png", 20)
                == e["class_id"]
            ).sum()
        )


def test_test_episodes_deterministic_across_workers(toy):
    def ids(workers):
        ds = Pascal5i(
            toy["pascal"],
            fold=1,
            split="val",
            min_pixels=20,
            n_episodes=40,
            seed=5,
            transform=eval_transform(64),
        )
        loader = DataLoader(ds, batch_size=4, num_workers=workers, collate_fn=collate_episodes)
        out = []
        for batch in loader:
            out += list(zip(batch["name"], batch["class_id"].tolist()))
        return out, ds

    a, ds = ids(0)
    b, _ = ids(2)
    assert a == b and len(a) == 40
    assert all(c in ds.unseen for _, c in a)
    other = Pascal5i(toy["pascal"], fold=1, split="val", min_pixels=20, n_episodes=40, seed=6)
    assert other.pairs != ds.pairs


def test_coco_dataset_and_crowd(tmp_path, toy):
    ds = Coco20i(
        toy["coco"], fold=0, split="val", min_pixels=20, n_episodes=30, transform=eval_transform(64)
    )
    assert all(c in coco_fold_classes(0)[1] for _, c in ds.pairs)
    batch = collate_episodes([ds[i] for i in range(3)])
    assert batch["image"].shape == (3, 3, 64, 64) and batch["mask"].shape == (3, 64, 64)
    assert len(batch["label"]) == 3
    panet = Coco20i(toy["coco"], fold=0, split="val", class_split="panet", min_pixels=20)
    assert all(c <= 20 for _, c in panet.pairs)


def test_prepare_coco_maps_ids_and_crowd(tmp_path):
    from fewzero.data.prepare import prepare_coco

    root = tmp_path / "coco"
    (root / "val2017").mkdir(parents=True)
    Image.new("RGB", (20, 10)).save(root / "val2017" / "000000000001.jpg")
    ann = {
        "images": [{"id": 1, "file_name": "000000000001.jpg", "height": 10, "width": 20}],
        "categories": [{"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 90,
                "segmentation": [[0, 0, 9, 0, 9, 9, 0, 9]],
                "area": 81,
                "bbox": [0, 0, 9, 9],
                "iscrowd": 0,
            },
            {
                "id": 2,
                "image_id": 1,
                "category_id": 1,
                "segmentation": {"counts": [150, 50], "size": [10, 20]},
                "area": 50,
                "bbox": [15, 0, 5, 10],
                "iscrowd": 1,
            },
        ],
    }
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(ann))
    entries = prepare_coco(root, tmp_path / "out", splits=("val",), progress=False)
    mask = read_mask(tmp_path / "out" / "masks" / "val2017" / "000000000001.png", 80)
    assert mask[5, 5] == 80  # category 90 -> class 80
    assert mask[5, 17] == 255  # crowd -> ignore
    assert entries["val"][0][1][80] > 0


def test_prepare_pascal_from_voc_and_sbd(tmp_path, capsys):
    from scipy.io import savemat

    voc, sbd = tmp_path / "VOC2012", tmp_path / "SBD" / "dataset"
    for name in ("a", "b"):
        (voc / "JPEGImages").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 6)).save(voc / "JPEGImages" / f"{name}.jpg")
        m = np.zeros((6, 8), np.uint8)
        m[1:4, 1:4] = 7
        m[0, :] = 255
        write_mask(voc / "SegmentationClass" / f"{name}.png", m)
    Image.new("RGB", (8, 6)).save(voc / "JPEGImages" / "c.jpg")
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("a\n")
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("b\n")
    (sbd / "cls").mkdir(parents=True)
    seg = np.full((6, 8), 12, np.uint8)
    savemat(str(sbd / "cls" / "c.mat"), {"GTcls": {"Segmentation": seg}})
    savemat(str(sbd / "cls" / "b.mat"), {"GTcls": {"Segmentation": seg}})
    (sbd / "train.txt").write_text("c\n")
    (sbd / "val.txt").write_text("b\n")  # SBD val image that is VOC val must stay out of train
    out = tmp_path / "out"
    assert (
        prepare_main(
            [
                "pascal",
                "--voc",
                str(voc),
                "--sbd",
                str(tmp_path / "SBD"),
                "--out",
                str(out),
                "--quiet",
                "--min-pixels",
                "1",
            ]
        )
        == 0
    )
    assert (out / "lists" / "train.txt").read_text().split() == ["a", "7:9", "c", "12:48"]
    assert (out / "lists" / "val.txt").read_text().split() == ["b", "7:9"]
    assert read_mask(out / "SegmentationClassAug" / "a.png", 20)[0, 0] == 255
    report = capsys.readouterr().out
    assert "fold 1: train pairs 1, val pairs 1" in report
    # idempotent and resumable: a second run keeps finished masks and gives the same lists
    before = (out / "SegmentationClassAug" / "c.png").stat().st_mtime_ns
    prepare_pascal(voc, tmp_path / "SBD", out, progress=False)
    assert (out / "SegmentationClassAug" / "c.png").stat().st_mtime_ns == before


def test_missing_files_and_bad_masks(tmp_path, toy):
    with pytest.raises(FileNotFoundError, match=r"PASCAL-5i root not found: .*prepare pascal"):
        Pascal5i(tmp_path / "nope", fold=0)
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'val'\), got 'test'"):
        Pascal5i(toy["pascal"], fold=0, split="test")
    with pytest.raises(ValueError, match=r"fold must be an int"):
        Coco20i(toy["coco"], fold=7)
    with pytest.raises(FileNotFoundError, match=r"COCO-20i root not found"):
        Coco20i(tmp_path / "nope", fold=0)
    bad = np.zeros((4, 4), np.uint8)
    bad[0, 0] = 33
    write_mask(tmp_path / "bad.png", bad)
    with pytest.raises(ValueError, match=r"bad.png' has labels outside \{0..20, 255\}: \[33\]"):
        read_mask(tmp_path / "bad.png", 20)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    from fewzero.data import read_image

    with pytest.raises(OSError, match="cannot read image .*broken.jpg"):
        read_image(tmp_path / "broken.jpg")
    assert (
        prepare_main(
            ["pascal", "--voc", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--quiet"]
        )
        == 2
    )


# ------------------------------------------------------------------ transforms


@given(
    h=st.integers(20, 90),
    w=st.integers(20, 90),
    crop=st.integers(16, 64),
    seed=st.integers(0, 10_000),
)
def test_paired_flip_crop_pad_keep_alignment(h, w, crop, seed):
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    mask = torch.from_numpy(rng.integers(0, 2, size=(h, w))).long()
    image = (mask * 200 + 20).to(torch.uint8)[None].repeat(3, 1, 1)
    t = v2.Compose(
        [
            v2.RandomHorizontalFlip(),
            v2.RandomCrop(
                crop, pad_if_needed=True, fill={tv_tensors.Image: 0, tv_tensors.Mask: 255}
            ),
        ]
    )
    img, msk = t(tv_tensors.Image(image), tv_tensors.Mask(mask))
    valid = msk != 255
    assert torch.equal((img[0][valid] > 100).long(), msk[valid])
    assert torch.all(img[0][~valid] == 0)  # padding: image 0, mask 255


@given(seed=st.integers(0, 10_000), h=st.integers(30, 80), w=st.integers(30, 80))
def test_train_transform_keeps_ignore_and_alignment(seed, h, w):
    torch.manual_seed(seed)
    mask = torch.zeros(h, w, dtype=torch.long)
    mask[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] = 1
    mask[: h // 8] = 255
    image = (mask.clamp(max=1) * 200 + 20).to(torch.uint8)[None].repeat(3, 1, 1)
    t = train_transform(48, mean=(0, 0, 0), std=(1, 1, 1))
    img, msk = t(tv_tensors.Image(image), tv_tensors.Mask(mask))
    assert img.shape == (3, 48, 48) and img.dtype == torch.float32
    assert set(msk.unique().tolist()) <= {0, 1, 255}  # nearest: no new labels
    valid = msk != 255
    if valid.any():
        agree = ((img[0][valid] > 0.43).long() == msk[valid]).float().mean()
        assert agree > 0.9  # bilinear image edges vs nearest mask edges


def _voc_tree(tmp_path, train=("a", "d"), val=("b",)):
    """A tiny VOC + SBD tree: `d` has its image only in SBD's img/ folder."""
    from scipy.io import savemat

    voc, sbd = tmp_path / "VOC2012", tmp_path / "SBD" / "dataset"
    (voc / "JPEGImages").mkdir(parents=True)
    (sbd / "img").mkdir(parents=True)
    (sbd / "cls").mkdir(parents=True)
    m = np.zeros((6, 8), np.uint8)
    m[1:4, 1:4] = 7
    for name in ("a", "b"):
        Image.new("RGB", (8, 6)).save(voc / "JPEGImages" / f"{name}.jpg")
        write_mask(voc / "SegmentationClass" / f"{name}.png", m)
    Image.new("RGB", (8, 6)).save(sbd / "img" / "d.jpg")
    savemat(str(sbd / "cls" / "d.mat"), {"GTcls": {"Segmentation": np.full((6, 8), 3, np.uint8)}})
    (voc / "ImageSets" / "Segmentation").mkdir(parents=True)
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("".join(n + "\n" for n in train))
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("".join(n + "\n" for n in val))
    (sbd / "train.txt").write_text("d\n")
    (sbd / "val.txt").write_text("")
    return voc, tmp_path / "SBD"


def test_prepare_takes_images_from_sbd_and_refuses_bad_ones(tmp_path, capsys):
    voc, sbd = _voc_tree(tmp_path)
    out = tmp_path / "out"
    args = ["pascal", "--voc", str(voc), "--sbd", str(sbd), "--out", str(out), "--quiet"]
    assert prepare_main(args) == 0
    assert (out / "JPEGImages" / "d.jpg").is_file() and (out / "JPEGImages" / "a.jpg").is_file()
    assert not (out / "JPEGImages").is_symlink()  # per-image links: VOC's folder is never written
    # a truncated JPEG and a listed image that exists nowhere: listed, exit code 2
    data = (voc / "JPEGImages" / "a.jpg").read_bytes()
    (voc / "JPEGImages" / "a.jpg").write_bytes(data[: len(data) // 3])
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("a\nd\nghost\n")
    capsys.readouterr()
    assert prepare_main(args + ["--out", str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err
    assert "error: 2 listed image(s) are missing or do not decode" in err
    assert "a: " in err and "does not decode" in err and "ghost: missing from" in err
    assert "--skip-bad" in err
    assert prepare_main(args + ["--out", str(tmp_path / "out3"), "--skip-bad"]) == 0
    err = capsys.readouterr().err
    assert "skipped 2 bad image(s)" in err
    assert (tmp_path / "out3" / "lists" / "train.txt").read_text().split()[0] == "d"


def test_prepare_empty_split_and_corrupt_mask_are_error_lines(tmp_path, capsys):
    voc, sbd = _voc_tree(tmp_path, val=())
    args = ["pascal", "--voc", str(voc), "--sbd", str(sbd), "--out", str(tmp_path / "o"), "--quiet"]
    assert prepare_main(args) == 2
    assert "error: the val split is empty" in capsys.readouterr().err
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("b\n")
    (voc / "SegmentationClass" / "b.png").write_bytes(b"not a png")
    assert prepare_main(args) == 2
    assert "error: cannot read mask" in capsys.readouterr().err


def test_prepare_module_runs_without_runpy_warning():
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "fewzero.data.prepare", "--help"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and "RuntimeWarning" not in proc.stderr


def test_exclude_unseen_drops_exactly_the_training_images_that_show_an_unseen_class(toy, tmp_path):
    """Training images showing a seen and an unseen class: the filter must have work to do."""
    import shutil

    root = tmp_path / "pascal"
    shutil.copytree(toy["pascal"], root)
    lines = (root / "lists" / "train.txt").read_text().splitlines()
    unseen = {1, 2, 3, 4, 5}  # fold 0
    painted = []
    for i, line in enumerate(lines):
        name, *counts = line.split()
        classes = {int(c.split(":")[0]) for c in counts}
        if classes - unseen and len(painted) < 3:  # shows a seen class: paint an unseen one in
            mask_path = root / "SegmentationClassAug" / f"{name}.png"
            mask = read_mask(mask_path, 20)
            mask[:8, :8] = 2
            write_mask(mask_path, mask)
            n = int((mask == 2).sum())
            lines[i] = " ".join([name, *[c for c in counts if not c.startswith("2:")], f"2:{n}"])
            painted.append(name)
    (root / "lists" / "train.txt").write_text("\n".join(lines) + "\n")
    assert len(painted) == 3
    kept = Pascal5i(root, fold=0, split="train", exclude_unseen=True, min_pixels=16)
    every = Pascal5i(root, fold=0, split="train", exclude_unseen=False, min_pixels=16)
    kept_names = {n for n, _ in kept.pairs}
    every_names = {n for n, _ in every.pairs}
    assert set(painted) <= every_names  # without the filter they are trained, the unseen as bg
    assert not kept_names & set(painted)
    assert kept_names == every_names - set(painted)


@given(
    values=st.lists(st.sampled_from([*range(0, 30), 254, 255]), min_size=1, max_size=60),
    classes=st.lists(st.integers(0, 300), max_size=6),
    wide=st.booleans(),
)
def test_mask_fast_paths_equal_unique_and_isin(values, classes, wide):
    """The uint8 paths (a count, a lookup table) give what np.unique and np.isin give."""
    from fewzero.data import binary_target
    from fewzero.data.io import label_values

    mask = np.array(values, dtype=np.uint16 if wide else np.uint8).reshape(1, -1)
    assert np.array_equal(label_values(mask), np.unique(mask))
    expected = np.isin(mask, classes).astype(np.uint8)
    expected[mask == 255] = 255
    out = binary_target(mask, classes)
    assert out.dtype == np.uint8 and np.array_equal(out, expected)


def test_read_image_gives_the_pixels_of_every_mode(tmp_path):
    """An RGB file comes back as it is; grey, palette and RGBA files as their RGB conversion."""
    from fewzero.data import read_image

    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8))
    for mode in ("RGB", "L", "P", "RGBA"):
        img = rgb.convert(mode)
        img.save(tmp_path / f"{mode}.png")
        got = read_image(tmp_path / f"{mode}.png")
        assert got.mode == "RGB" and np.array_equal(np.asarray(got), np.asarray(img.convert("RGB")))
