"""Cross-domain benchmarks (PATNet's Deepglobe, ISIC2018, Chest X-ray; HSNet's FSS-1000 episodes):
each loaded from a generated layout, its episodes against a reference sampler written here from
PATNet's / HSNet's published test code (glob order, np.random.choice, redraw on the query)."""

import glob
import os

import numpy as np
import pytest
from PIL import Image

from fewzero.data import (
    DEEPGLOBE_PALETTE,
    FSS1000,
    ISIC2018,
    ChestXray,
    Deepglobe,
    eval_transform,
    layout_problems,
    read_rgb_class_mask,
    write_manifest,
)
from fewzero.data.prepare import main as prepare_main

COLOURS = {c: rgb for rgb, c in DEEPGLOBE_PALETTE.items()}


def _image(path, rng, size=(20, 24), grey=False):
    arr = rng.integers(0, 255, size if grey else (*size, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)


def _white(path, size=(20, 24), k=0):
    m = np.zeros(size, np.uint8)
    m[2 : 6 + k % 8, 3:15] = 255
    Image.fromarray(m).save(path)


def make_deepglobe(root, per_class=(3, 4, 2, 5, 3, 4), colour=True):
    rng = np.random.default_rng(0)
    for c, n in enumerate(per_class, 1):
        (root / str(c) / "test" / "origin").mkdir(parents=True)
        (root / str(c) / "test" / "groundtruth").mkdir(parents=True)
        for i in range(n):
            stem = f"{100 + i}_{c}{i}"
            _image(root / str(c) / "test" / "origin" / f"{stem}.jpg", rng)
            if colour:  # the land-cover code: the class in a block, another class elsewhere
                m = np.zeros((20, 24, 3), np.uint8)
                m[:] = COLOURS[1 + c % 6]
                m[3 : 8 + i, 4:14] = COLOURS[c]
                Image.fromarray(m).save(root / str(c) / "test" / "groundtruth" / f"{stem}.png")
            else:
                _white(root / str(c) / "test" / "groundtruth" / f"{stem}.png", k=i)


def make_isic(root, per_class=(4, 3, 2)):
    rng = np.random.default_rng(1)
    gt = root / "ISIC2018_Task1_Training_GroundTruth"
    gt.mkdir(parents=True)
    k = 0
    for c, n in enumerate(per_class, 1):
        folder = root / "ISIC2018_Task1-2_Training_Input" / str(c)
        folder.mkdir(parents=True)
        for _ in range(n):
            _image(folder / f"ISIC_{k:07d}.jpg", rng)
            _white(gt / f"ISIC_{k:07d}_segmentation.png", k=k)
            k += 1


def make_lung(root, n=6):
    rng = np.random.default_rng(2)
    (root / "CXR_png").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        stem = f"CHNCXR_{i:04d}_0"
        _image(root / "CXR_png" / f"{stem}.png", rng, grey=True)
        if i < n - 1:  # the last X-ray has no mask: not used
            _white(root / "masks" / f"{stem}_mask.png", k=i)


def patnet_reference(base, img_dir_of, n_classes, shots, num=600):
    """PATNet's sample_episode over its glob-sorted image paths, fix_randseed(0), nworker=0."""
    classwise = {c: sorted(glob.glob(os.path.join(img_dir_of(c), "*"))) for c in range(n_classes)}
    np.random.seed(0)
    out = []
    for idx in range(num):
        c = idx % n_classes
        q = np.random.choice(classwise[c], 1, replace=False)[0]
        sup = []
        while True:
            s = np.random.choice(classwise[c], 1, replace=False)[0]
            if q != s:
                sup.append(s)
            if len(sup) == shots:
                break
        stem = lambda p: os.path.basename(p).split(".")[0]  # noqa: E731
        out.append((stem(q), c + 1, [stem(s) for s in sup]))
    return out


def as_tuples(ds):
    return [(e["query"], e["class_id"], e["supports"][0]) for e in ds.manifest()]


@pytest.mark.parametrize("shots", [1, 5])
def test_deepglobe_isic_and_lung_give_patnets_600_episodes(tmp_path, shots):
    make_deepglobe(tmp_path / "dg")
    make_isic(tmp_path / "isic")
    make_lung(tmp_path / "lung")
    dg = Deepglobe(tmp_path / "dg", shots=shots)
    ref = patnet_reference(
        tmp_path, lambda c: tmp_path / "dg" / str(c + 1) / "test" / "origin", 6, shots
    )
    assert len(dg) == 600 and as_tuples(dg) == ref
    isic = ISIC2018(tmp_path / "isic", shots=shots)
    ref = patnet_reference(
        tmp_path,
        lambda c: tmp_path / "isic" / "ISIC2018_Task1-2_Training_Input" / str(c + 1),
        3,
        shots,
    )
    assert as_tuples(isic) == ref
    lung = ChestXray(tmp_path / "lung", shots=shots)
    # PATNet lists the masks and cuts "_mask.png": the same order as the images that have one
    masks = sorted(glob.glob(str(tmp_path / "lung" / "masks" / "*")))
    np.random.seed(0)
    ref = []
    for _ in range(600):
        q = np.random.choice(masks, 1, replace=False)[0]
        sup = []
        while len(sup) < shots:
            s = np.random.choice(masks, 1, replace=False)[0]
            if s != q:
                sup.append(s)
        ref.append((os.path.basename(q)[:-9], 1, [os.path.basename(s)[:-9] for s in sup]))
    assert as_tuples(lung) == ref
    assert "CHNCXR_0005_0" not in {q for q, _, _ in as_tuples(lung)}  # no mask, not used


def test_cross_domain_episodes_load_with_the_class_mask_and_replay_from_a_manifest(tmp_path):
    make_deepglobe(tmp_path / "dg", colour=True)
    ds = Deepglobe(tmp_path / "dg", shots=2, transform=eval_transform(16), n_episodes=12)
    ep = ds[3]  # class 4 (forest): its colour block is the object, the other colour is not
    stem = ep["name"].split("/")[1]
    rgb = np.asarray(Image.open(tmp_path / "dg" / "4" / "test" / "groundtruth" / f"{stem}.png"))
    want = (rgb == COLOURS[4]).all(-1)
    assert ep["class_id"] == 4 and (ep["label"].numpy() == want).all()
    assert ep["support_images"].shape == (2, 3, 16, 16) and ep["image"].shape == (3, 16, 16)
    path = tmp_path / "dg.jsonl"
    write_manifest(path, ds.manifest(), ds.manifest_header())
    again = Deepglobe(tmp_path / "dg", shots=2, episodes=path)
    assert again.manifest() == ds.manifest()
    # a manifest naming an image the root lacks is refused before any work, naming it
    (tmp_path / "dg" / "4" / "test" / "origin" / f"{stem}.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=rf"image '{stem}' of class 'forest'"):
        Deepglobe(tmp_path / "dg", shots=2, episodes=path)


def test_binary_ground_truth_and_refusals(tmp_path):
    make_deepglobe(tmp_path / "dg", colour=False)
    ds = Deepglobe(tmp_path / "dg", shots=1)
    assert set(ds[0]["label"].unique().tolist()) == {0, 1}
    m = np.zeros((4, 4, 3), np.uint8)
    m[0, 0] = (255, 0, 0)  # red is not in the land-cover code
    Image.fromarray(m).save(tmp_path / "red.png")
    with pytest.raises(ValueError, match=r"colours \[\(255, 0, 0\)\].*not in the class code"):
        read_rgb_class_mask(tmp_path / "red.png", DEEPGLOBE_PALETTE, 1)
    make_isic(tmp_path / "isic", per_class=(3, 1, 2))
    with pytest.raises(FileNotFoundError, match=r"class 2 \(melanoma\) has 1 image/mask pairs"):
        ISIC2018(tmp_path / "isic")
    with pytest.raises(FileNotFoundError, match="missing CXR_png"):
        ChestXray(tmp_path / "dg")
    with pytest.raises(ValueError, match=r"protocol must be one of \['patnet'\]"):
        Deepglobe(tmp_path / "dg", protocol="hsnet")


def test_fss1000_gives_hsnets_sequence(tmp_path):
    rng = np.random.default_rng(3)
    classes = ["dog", "ant", "tiger"]
    for c in classes:
        (tmp_path / c).mkdir()
        for i in range(1, 11):
            _image(tmp_path / c / f"{i}.jpg", rng, size=(8, 8))
            _white(tmp_path / c / f"{i}.png", size=(8, 8))
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "test.txt").write_text("\n".join(classes) + "\n")
    for shots in (1, 5):
        ds = FSS1000(tmp_path, "test", shots=shots, protocol="hsnet")
        metadata = []  # HSNet's build_img_metadata and sample_episode
        for cat in classes:
            paths = sorted(glob.glob(f"{tmp_path / cat}/*"))
            metadata += [p for p in paths if os.path.basename(p).split(".")[1] == "jpg"]
        np.random.seed(0)
        ref = []
        for q in metadata:
            sup = []
            while True:
                s = np.random.choice(range(1, 11), 1, replace=False)[0]
                s = os.path.join(os.path.dirname(q), str(s)) + ".jpg"
                if q != s:
                    sup.append(s)
                if len(sup) == shots:
                    break
            name = lambda p: os.path.basename(p)[:-4]  # noqa: E731
            cls = classes.index(q.split("/")[-2]) + 1
            ref.append((name(q), cls, [name(s) for s in sup]))
        assert len(ds) == 30 and as_tuples(ds) == ref


def test_prepare_check_says_what_a_layout_lacks(tmp_path, capsys):
    make_lung(tmp_path / "lung")
    assert layout_problems("lung", tmp_path / "lung") == []
    assert prepare_main(["check", "lung", "--root", str(tmp_path / "lung")]) == 0
    assert "complete" in capsys.readouterr().out
    (tmp_path / "isic" / "ISIC2018_Task1-2_Training_Input" / "1").mkdir(parents=True)
    assert prepare_main(["check", "isic", "--root", str(tmp_path / "isic")]) == 1
    out = capsys.readouterr().out
    assert "missing ISIC2018_Task1-2_Training_Input/2" in out
    assert "missing ISIC2018_Task1_Training_GroundTruth" in out


def test_prepare_deepglobe_tiles_filters_and_sorts_by_class(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    rng = np.random.default_rng(4)
    _image(raw / "7_sat.jpg", rng, size=(36, 36))
    m = np.zeros((36, 36, 3), np.uint8)
    m[:] = COLOURS[2]  # agriculture everywhere
    m[0:3, 0:3] = COLOURS[5]  # tile (0, 0): half water -> kept, in folders 2 and 5
    m[6:7, 6:7] = COLOURS[4]  # tile (1, 1): one forest pixel of 36 (2.8%) -> dropped
    Image.fromarray(m).save(raw / "7_mask.png")
    assert (
        prepare_main(["deepglobe", "--root", str(raw), "--out", str(tmp_path / "dg"), "--quiet"])
        == 0
    )
    for c in (2, 5):
        assert (tmp_path / "dg" / str(c) / "test" / "origin" / "7_00.jpg").is_file()
        gt = np.asarray(Image.open(tmp_path / "dg" / str(c) / "test" / "groundtruth" / "7_00.png"))
        assert (gt == 255).sum() == (9 if c == 5 else 27)
    assert not (tmp_path / "dg" / "4").exists()
    assert len(list((tmp_path / "dg" / "2" / "test" / "origin").iterdir())) == 1


def test_prepare_isic_sorts_by_the_class_csv(tmp_path):
    make_isic(tmp_path / "flat", per_class=(5,))
    src = tmp_path / "flat" / "ISIC2018_Task1-2_Training_Input"
    for p in (src / "1").iterdir():
        p.rename(src / p.name)
    csv = tmp_path / "class_id.csv"
    csv.write_text(
        "ID,Class\nISIC_0000000,nevus\nISIC_0000001,melanoma\nISIC_0000002,nevus\n"
        "ISIC_0000003,seborrheic keratosis\nISIC_0000004,melanoma\n"
    )
    out = tmp_path / "isic"
    assert (
        prepare_main(
            ["isic", "--root", str(tmp_path / "flat"), "--class-csv", str(csv), "--out", str(out)]
        )
        == 0
    )

    def names(c):
        return sorted(p.name for p in (out / "ISIC2018_Task1-2_Training_Input" / c).iterdir())  # noqa: E731

    assert names("1") == ["ISIC_0000000.jpg", "ISIC_0000002.jpg"] and names("3") == [
        "ISIC_0000003.jpg"
    ]
    csv.write_text("ID,Class\nISIC_0000000,wart\n")
    assert (
        prepare_main(
            ["isic", "--root", str(tmp_path / "flat"), "--class-csv", str(csv), "--out", str(out)]
        )
        == 2
    )


def test_prepare_isic_names_a_csv_without_patnets_columns(tmp_path, capsys):
    make_isic(tmp_path / "flat", per_class=(2,))
    csv = tmp_path / "class_id.csv"
    csv.write_text("image,label\nISIC_0000000,nevus\n")  # another export's header
    argv = [
        "isic",
        "--root",
        str(tmp_path / "flat"),
        "--class-csv",
        str(csv),
        "--out",
        str(tmp_path / "o"),
    ]
    assert prepare_main(argv) == 2
    err = capsys.readouterr().err
    assert "must have the columns ID and Class" in err and "['image', 'label']" in err


def test_prepare_deepglobe_refuses_masks_off_the_code_and_a_run_that_keeps_no_tile(
    tmp_path, capsys
):
    raw = tmp_path / "raw"
    raw.mkdir()
    rng = np.random.default_rng(5)
    _image(raw / "8_sat.jpg", rng, size=(36, 36))
    index = np.zeros((36, 36), np.uint8)
    index[:18] = 2  # a class-index mask (values 0..6), not Deepglobe's colours
    Image.fromarray(index).save(raw / "8_mask.png")
    argv = ["deepglobe", "--root", str(raw), "--out", str(tmp_path / "dg"), "--quiet"]
    assert prepare_main(argv) == 2
    assert "no tile kept" in capsys.readouterr().err  # all dark: read as 'unknown' everywhere
    grey = np.full((36, 36, 3), 120, np.uint8)  # mid-grey: off the code
    grey[:18] = COLOURS[2]
    Image.fromarray(grey).save(raw / "8_mask.png")
    assert prepare_main(argv) == 2
    assert "is not colour-coded" in capsys.readouterr().err


def test_prepare_check_opens_every_pair_and_the_eval_command_refuses_before_work(tmp_path, capsys):
    """What the loaders would meet mid-run is found by `prepare check` and before fewzero-eval."""
    make_isic(tmp_path / "isic")
    gt = tmp_path / "isic" / "ISIC2018_Task1_Training_GroundTruth"
    assert prepare_main(["check", "isic", "--root", str(tmp_path / "isic")]) == 0
    Image.fromarray(np.full((5, 5), 255, np.uint8)).save(
        gt / "ISIC_0000000_segmentation.png"
    )  # size
    Image.fromarray(np.zeros((20, 24), np.uint8)).save(
        gt / "ISIC_0000001_segmentation.png"
    )  # empty
    capsys.readouterr()
    assert prepare_main(["check", "isic", "--root", str(tmp_path / "isic")]) == 1
    out = capsys.readouterr().out
    assert "mask ISIC_0000000_segmentation.png has size (5, 5), its image" in out
    assert "ISIC_0000001" in out and "complete" not in out
    # FSS-1000: an image without its mask, and an empty split
    fss = tmp_path / "fss"
    (fss / "splits").mkdir(parents=True)
    (fss / "cat").mkdir()
    rng = np.random.default_rng(0)
    for i in (1, 2, 3):
        _image(fss / "cat" / f"{i}.jpg", rng)
        if i < 3:
            _white(fss / "cat" / f"{i}.png", k=i)
    (fss / "splits" / "test.txt").write_text("cat\n")
    assert prepare_main(["check", "fss1000", "--root", str(fss)]) == 1
    assert "images without a <n>.png mask: ['3']" in capsys.readouterr().out
    (fss / "splits" / "test.txt").write_text("\n")
    assert prepare_main(["check", "fss1000", "--root", str(fss)]) == 1
    assert "lists no class (an empty split)" in capsys.readouterr().out
    # the eval command: refused before any checkpoint is run, with an error line
    import torch
    from helpers import SMALL

    from fewzero.engine.checkpoint import save_checkpoint
    from fewzero.engine.evaluation_cli import main
    from fewzero.models import SMVCENet

    model = SMVCENet("resnet18", comparisons=["prototype"], **SMALL)
    save_checkpoint({"model": model.state_dict(), "model_config": model.config,
                     "config": {"crop_size": 32}}, tmp_path / "c.pt")  # fmt: skip
    with pytest.raises(SystemExit) as exit_:
        main(["--checkpoint", str(tmp_path / "c.pt"), "--dataset", "isic", "--data-root",
              str(tmp_path / "isic"), "--shots", "1", "--out", str(tmp_path / "o")])  # fmt: skip
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "error: --data-root" in err and "has size (5, 5)" in err and "prepare check isic" in err
    assert "Traceback" not in err and torch  # noqa: B018
