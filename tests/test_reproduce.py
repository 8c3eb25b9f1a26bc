"""Evaluation you can reproduce: every run writes its manifests and provenance, a second run
scores exactly those episodes, --rerun says whether the numbers match, and the training and
evaluation commands are console scripts of an installed wheel."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import SMALL
from test_crossdomain import make_isic
from test_protocols import make_layout

from fewzero.data import read_manifest
from fewzero.engine.checkpoint import save_checkpoint
from fewzero.engine.evaluation_cli import compare_results, main
from fewzero.models import SMVCENet

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("repro")
    make_layout(
        root / "pascal", "JPEGImages", "SegmentationClassAug", "lists/val.txt",
        list(range(1, 21)), n=60,
    )  # fmt: skip
    make_isic(root / "isic")
    torch.manual_seed(0)
    model = SMVCENet("resnet18", comparisons=["prototype"], **SMALL)
    cfg = {"crop_size": 32, "fold": 0, "model": "tiny_fewshot", "episodes": 5, "min_pixels": 9}
    save_checkpoint(
        {"model": model.state_dict(), "model_config": dict(model.config), "config": cfg},
        root / "run_a" / "checkpoint_last.pt",
    )
    torch.manual_seed(1)  # another checkpoint: other weights
    other = SMVCENet("resnet18", comparisons=["prototype"], **SMALL)
    save_checkpoint(
        {"model": other.state_dict(), "model_config": dict(other.config), "config": cfg},
        root / "run_b" / "checkpoint_last.pt",
    )
    return root


def evaluate(root, *args):
    argv = ["--checkpoint", str(root / "run_a" / "checkpoint_last.pt"), "--quiet", *args]
    assert main(argv) == 0


def test_manifests_provenance_replay_and_rerun(setup, capsys, monkeypatch):
    monkeypatch.chdir(setup)
    common = ["--pascal-root", "pascal", "--shots", "1", "--batch-size", "4"]
    evaluate(setup, *common, "--out", "first")
    result = json.loads((setup / "first" / "pascal5i.json").read_text())
    row, meta = result["rows"][0], result["meta"]
    # every protocol knob, the manifests', the checkpoint's hash, versions and device
    for key in ("fold", "episodes", "seed", "size", "min_pixels", "shots", "protocol",
                "label_size", "checkpoint_sha256", "manifests"):  # fmt: skip
        assert key in row, key
    assert row["size"] == 32 and row["min_pixels"] == 9 and row["episodes"] == 5
    env = meta["environment"]
    assert env["torch"] == torch.__version__ and env["fewzero"] and env["timm"]
    assert env["device"] == "cpu"
    keys = sorted(row["manifests"])
    assert keys == ["pascal5i-fold0-1shot", "pascal5i-fold0-1shot-absent",
                    "pascal5i-fold0-1shot-swap"]  # fmt: skip
    header, episodes = read_manifest(setup / "first" / "manifests" / f"{keys[0]}.jsonl")
    assert header["key"] == keys[0] and header["episodes_sha256"] == row["manifests"][keys[0]]
    assert len(episodes) == 5 and header["min_pixels"] == 9 and header["label_size"] == "original"
    # the same checkpoint from the manifests, with a seed that would draw other episodes
    evaluate(setup, *common, "--seed", "7", "--episodes", "first/manifests", "--out", "second")
    again = json.loads((setup / "second" / "pascal5i.json").read_text())
    assert compare_results(result, again) == []
    # a seed alone changes the episodes, and the comparison says so
    evaluate(setup, *common, "--seed", "7", "--out", "third")
    third = json.loads((setup / "third" / "pascal5i.json").read_text())
    assert any("manifests" in d for d in compare_results(result, third))
    # --rerun: the same command on the result's own manifests, compared
    capsys.readouterr()
    assert main(["--rerun", "first/pascal5i.json"]) == 0
    assert "every number, manifest and checkpoint hash identical" in capsys.readouterr().out
    # a number that differs is caught and named
    tampered = json.loads((setup / "first" / "pascal5i.json").read_text())
    tampered["rows"][0]["pascal_miou"] += 0.01
    (setup / "first" / "tampered.json").write_text(json.dumps({**tampered}))
    assert main(["--rerun", "first/tampered.json"]) == 1
    assert "pascal_miou was" in capsys.readouterr().out
    # one manifest file scores only its dataset; the other is left out, and said to be
    evaluate(setup, *common, "--episodes", f"first/manifests/{keys[0]}.jsonl", "--out", "one")
    out = capsys.readouterr().out
    assert "left out (no manifest of theirs in --episodes): pascal5i-fold0-1shot-swap" in out
    assert "pascal5i-fold0-1shot-absent" in out
    one = json.loads((setup / "one" / "pascal5i.json").read_text())["rows"][0]
    assert one["pascal_miou"] == row["pascal_miou"] and one["pascal_swap_iou"] is None
    # manifests of another fold: nothing this evaluation scores, refused before any work
    with pytest.raises(SystemExit) as exit_:
        evaluate(setup, *common, "--fold", "1", "--episodes", "first/manifests", "--out", "f1")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "holds none of the datasets this evaluation scores (pascal5i-fold1-1shot" in err
    assert (
        "it holds pascal5i-fold0-1shot, pascal5i-fold0-1shot-absent, pascal5i-fold0-1shot-swap"
        in err
    )


def test_a_manifest_naming_a_missing_image_is_refused_before_any_work(setup, capsys, monkeypatch):
    monkeypatch.chdir(setup)
    common = ["--pascal-root", "pascal", "--shots", "1", "--out", "mf"]
    evaluate(setup, *common)
    path = setup / "mf" / "manifests" / "pascal5i-fold0-1shot.jsonl"
    lines = path.read_text().splitlines()
    ep = json.loads(lines[1])
    ep["query"] = "no_such_image"
    from fewzero.data import write_manifest

    header = json.loads(lines[0])
    episodes = [ep] + [json.loads(x) for x in lines[2:]]
    bad = setup / "bad.jsonl"
    write_manifest(bad, episodes, {k: v for k, v in header.items() if k != "episodes_sha256"})
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["--checkpoint", str(setup / "run_a/checkpoint_last.pt"), "--pascal-root", "pascal",
              "--shots", "1", "--episodes", str(bad), "--out", "bad_out"])  # fmt: skip
    assert exit_.value.code == 2
    assert "image 'no_such_image' is not in the list file" in capsys.readouterr().err
    assert not (setup / "bad_out" / "manifests").exists()  # refused before any episode


def test_another_runs_manifest_gives_that_runs_numbers_and_a_second_model_its_own(
    setup, monkeypatch
):
    """Two checkpoints, one protocol: each scored on the manifests another run wrote."""
    monkeypatch.chdir(setup)
    ck_a, ck_b = (str(setup / r / "checkpoint_last.pt") for r in ("run_a", "run_b"))
    base = ["--pascal-root", "pascal", "--shots", "1", "--quiet", "--batch-size", "2"]
    assert main(["--checkpoint", ck_a, ck_b, *base, "--out", "pair"]) == 0
    pair = json.loads((setup / "pair" / "pascal5i.json").read_text())["rows"]
    assert main(["--checkpoint", ck_b, *base, "--episodes", "pair/manifests", "--out", "b"]) == 0
    b = json.loads((setup / "b" / "pascal5i.json").read_text())["rows"][0]
    assert b["pascal_miou"] == pair[1]["pascal_miou"] and b["manifests"] == pair[1]["manifests"]
    assert pair[0]["manifests"] == pair[1]["manifests"]  # one protocol for both
    assert pair[0]["pascal_miou"] != pair[1]["pascal_miou"]  # and the models differ


def test_cross_domain_from_the_eval_command(setup, monkeypatch, capsys):
    monkeypatch.chdir(setup)
    args = ["--dataset", "isic", "--data-root", "isic", "--shots", "1", "--size", "32",
            "--episodes", "9", "--out", "isic_out"]  # fmt: skip
    evaluate(setup, *args)
    table = capsys.readouterr().out
    assert "| tiny_fewshot (1-shot) | isic | 1 |" in table
    res = json.loads((setup / "isic_out" / "isic.json").read_text())["rows"][0]
    assert res["protocol"] == "patnet" and res["label_size"] == "resized" and res["episodes"] == 9
    header, eps = read_manifest(setup / "isic_out" / "manifests" / "isic-1shot.jsonl")
    assert header["dataset"] == "isic" and [e["class_id"] for e in eps[:4]] == [1, 2, 3, 1]
    with pytest.raises(SystemExit):
        main(["--checkpoint", str(setup / "run_a/checkpoint_last.pt"), "--dataset", "lung"])
    assert "--data-root is required for --dataset lung" in capsys.readouterr().err


@pytest.mark.slow
def test_console_scripts_from_an_installed_wheel(tmp_path):
    """A wheel (not the checkout) gives fewzero-train and fewzero-eval with their flags."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(ROOT)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    wheel = next(wheels.glob("fewzero-*.whl"))
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run(
        [sys.executable, "-c", "import fewzero; print(fewzero.__file__)"],
        check=True, capture_output=True, text=True, cwd=tmp_path, env=env,
    ).stdout  # fmt: skip
    assert where.startswith(str(target))  # the wheel's copy, not the checkout
    # each script starts an interpreter that imports torch: the two this wheel added
    for script, flag in (("fewzero-train", "--data-root"), ("fewzero-eval", "--rerun")):
        out = subprocess.run(
            [str(target / "bin" / script), "--help"],
            check=True, capture_output=True, text=True, cwd=tmp_path, env=env,
        ).stdout  # fmt: skip
        assert flag in out, script


class _Threshold(torch.nn.Module):
    """Foreground where the image's first channel is positive (a model with no weights to train)."""

    requires_support = accepts_support = False

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, images, support_images=None, support_masks=None, class_ids=None):
        fg = (images[:, :1] > 0).float()
        return torch.cat([1 - fg, fg], 1) + 0 * self.anchor


def test_resized_label_scoring_is_pfenets_option(setup):
    """label_size='resized' scores against the label at the input size, 'original' upsamples."""
    from fewzero.data import Pascal5i, collate_episodes, eval_transform
    from fewzero.engine import evaluate as run_eval
    from fewzero.metrics import IoUMeter

    ds = Pascal5i(setup / "pascal", 0, "val", transform=eval_transform(16), n_episodes=6,
                  min_pixels=9)  # fmt: skip
    model = _Threshold()
    by_hand = {"original": IoUMeter(), "resized": IoUMeter()}
    for ep in (collate_episodes([ds[i]]) for i in range(len(ds))):
        logits = model(ep["image"])
        for size, label in (("original", ep["label"][0]), ("resized", ep["mask"][0])):
            up = torch.nn.functional.interpolate(logits, size=label.shape, mode="bilinear")
            by_hand[size].update(up.argmax(1), label[None], ep["class_id"])
    for size, meter in by_hand.items():
        res = run_eval(model, ds, batch_size=4, label_size=size)
        assert res["miou"] == pytest.approx(meter.compute()["miou"]), size
    assert ds[0]["label"].shape != ds[0]["mask"].shape  # the two protocols differ here
    with pytest.raises(ValueError, match="label_size must be 'original' or 'resized'"):
        run_eval(model, ds, label_size="both")


def test_peer_protocols_and_fss1000_from_the_eval_command(setup, monkeypatch):
    from fewzero.data import Pascal5i

    monkeypatch.chdir(setup)
    evaluate(setup, "--pascal-root", "pascal", "--shots", "1", "--protocol", "hsnet",
             "--episodes", "7", "--out", "hs")  # fmt: skip
    row = json.loads((setup / "hs" / "pascal5i.json").read_text())["rows"][0]
    assert row["protocol"] == "hsnet" and row["seed"] == 0 and row["episodes"] == 7
    header, eps = read_manifest(setup / "hs" / "manifests" / "pascal5i-fold0-1shot.jsonl")
    ref = Pascal5i(
        setup / "pascal", 0, "val", shots=1, min_pixels=9, protocol="hsnet", n_episodes=7
    )
    assert header["protocol"] == "hsnet" and eps == ref.manifest()
    evaluate(setup, "--pascal-root", "pascal", "--shots", "1", "--protocol", "pfenet",
             "--label-size", "resized", "--episodes", "5", "--out", "pf")  # fmt: skip
    row = json.loads((setup / "pf" / "pascal5i.json").read_text())["rows"][0]
    assert row["protocol"] == "pfenet" and row["seed"] == 321 and row["label_size"] == "resized"
    assert 0 <= row["pascal_leak"] <= 1  # on the resized labels, as the IoU
    # FSS-1000 with HSNet's (and PATNet's) sequence: every test image once
    import numpy as np
    from PIL import Image

    fss = setup / "fss"
    rng = np.random.default_rng(0)
    for c in ("ant", "bee"):
        (fss / c).mkdir(parents=True)
        for i in range(1, 4):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(
                fss / c / f"{i}.jpg"
            )
            m = np.zeros((20, 20), np.uint8)
            m[4:12, 3:15] = 255
            Image.fromarray(m).save(fss / c / f"{i}.png")
    (fss / "splits").mkdir()
    (fss / "splits" / "test.txt").write_text("ant\nbee\n")
    evaluate(
        setup, "--dataset", "fss1000", "--data-root", "fss", "--shots", "1", "--out", "fss_out"
    )
    row = json.loads((setup / "fss_out" / "fss1000.json").read_text())["rows"][0]
    assert row["protocol"] == "hsnet" and row["episodes"] == 6 and 0 <= row["miou"] <= 1
    assert row["size"] == 400 and row["label_size"] == "resized"  # PATNet's, without --size


def test_overwrite_replaces_only_its_own_manifests_and_an_interrupt_loses_none(
    setup, capsys, monkeypatch
):
    """A result beside another stays replayable; Ctrl-C at any stage leaves old or new files."""
    from fewzero.engine.episode_sets import EpisodeSet

    monkeypatch.chdir(setup)
    pascal = ["--pascal-root", "pascal", "--shots", "1", "--batch-size", "4", "--out", "both"]
    isic = ["--dataset", "isic", "--data-root", "isic", "--shots", "1", "--size", "32",
            "--episodes", "9", "--out", "both"]  # fmt: skip
    evaluate(setup, *pascal)
    evaluate(setup, *isic)
    manifests = setup / "both" / "manifests"
    before = {p.name: p.read_bytes() for p in manifests.glob("*.jsonl")}
    assert sorted(before) == [
        "isic-1shot.jsonl", "pascal5i-fold0-1shot-absent.jsonl", "pascal5i-fold0-1shot-swap.jsonl",
        "pascal5i-fold0-1shot.jsonl",
    ]  # fmt: skip

    # 1. --overwrite of the ISIC result (other episodes): the PASCAL manifests are kept
    evaluate(setup, *isic[:-4], "--episodes", "7", "--out", "both", "--overwrite")
    after = {p.name: p.read_bytes() for p in manifests.glob("*.jsonl")}
    assert after["pascal5i-fold0-1shot.jsonl"] == before["pascal5i-fold0-1shot.jsonl"]
    assert after["isic-1shot.jsonl"] != before["isic-1shot.jsonl"]  # its own, replaced
    capsys.readouterr()
    assert main(["--rerun", "both/pascal5i.json"]) == 0  # the result beside it still reruns
    assert "identical" in capsys.readouterr().out

    # 2. Ctrl-C after the manifests were drawn, before the first row: nothing replaced
    record = EpisodeSet.record

    def interrupted(self, *args, **kwargs):
        record(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(EpisodeSet, "record", interrupted)
    with pytest.raises(SystemExit) as exit_:
        evaluate(setup, *pascal, "--seed", "5", "--overwrite")
    assert exit_.value.code == 130
    assert {p.name: p.read_bytes() for p in manifests.glob("*.jsonl")} == after
    assert not list((setup / "both").glob(".manifests.staging-*"))  # no staging left behind

    # 3. Ctrl-C after the first row (1-shot), in the second (5-shot): the first row's
    # manifests and the partial tables, together; the second row's manifests dropped
    def in_second_row(self, key, *args, **kwargs):
        digest = record(self, key, *args, **kwargs)  # staged, then the interrupt
        if "5shot" in key:
            raise KeyboardInterrupt
        return digest

    monkeypatch.setattr(EpisodeSet, "record", in_second_row)
    two_rows = [*pascal[:2], "--shots", "1", "5", *pascal[4:]]
    with pytest.raises(SystemExit) as exit_:
        evaluate(setup, *two_rows, "--seed", "5", "--overwrite")
    assert exit_.value.code == 130
    now = {p.name: p.read_bytes() for p in manifests.glob("*.jsonl")}
    assert now["isic-1shot.jsonl"] == after["isic-1shot.jsonl"]  # another dataset: untouched
    assert not any("5shot" in name for name in now)
    result = json.loads((setup / "both" / "pascal5i.json").read_text())
    assert result["partial"] is True and len(result["rows"]) == 1
    for key, digest in result["rows"][0]["manifests"].items():  # the new ones, hash-equal
        assert read_manifest(manifests / f"{key}.jsonl")[0]["episodes_sha256"] == digest
    assert now["pascal5i-fold0-1shot.jsonl"] != after["pascal5i-fold0-1shot.jsonl"]  # seed 5
    assert not list((setup / "both").glob(".manifests.staging-*"))


def test_rerun_refuses_what_it_would_ignore_and_compares_nan_as_equal(setup, capsys, monkeypatch):
    monkeypatch.chdir(setup)
    common = ["--pascal-root", "pascal", "--shots", "1", "--batch-size", "4"]
    evaluate(setup, *common, "--out", "rerun_src")

    def refused(argv):  # fewzero-eval's refusal: exit 2 and its error line
        capsys.readouterr()
        with pytest.raises(SystemExit, match="2"):
            main(argv)
        return capsys.readouterr().err

    err = refused(["--rerun", "rerun_src/pascal5i.json", "--checkpoint", "run_b/checkpoint_last.pt",
                   "--shots", "5"])  # fmt: skip
    assert "would ignore --checkpoint, --shots" in err and "without --rerun" in err
    # a training run's eval.json (a list of rows): named, not a traceback
    (setup / "rerun_src" / "eval.json").write_text(json.dumps([{"name": "x"}]))
    assert "not a result file of fewzero-eval" in refused(["--rerun", "rerun_src/eval.json"])
    # the recorded working folder is gone: named
    result = json.loads((setup / "rerun_src" / "pascal5i.json").read_text())
    moved = {**result, "meta": {**result["meta"], "cwd": str(setup / "gone")}}
    (setup / "rerun_src" / "moved.json").write_text(json.dumps(moved))
    assert "which no longer exists" in refused(["--rerun", "rerun_src/moved.json"])
    # NaN equals NaN: a metric empty in both runs is the same number
    nan = {**result, "rows": [{**result["rows"][0], "pascal_swap_iou": float("nan")}]}
    assert compare_results(nan, json.loads(json.dumps(nan))) == []
    other = {**result, "rows": [{**result["rows"][0], "pascal_swap_iou": 0.5}]}
    assert compare_results(nan, other) != []
    # --device and --quiet apply: the rerun runs and matches
    capsys.readouterr()
    assert main(["--rerun", "rerun_src/pascal5i.json", "--device", "cpu", "--quiet"]) == 0
    said = capsys.readouterr().out
    assert "identical" in said
    assert "tables in" not in said  # a21: no folder named that is gone when the rerun returns
    # a21: a training config and the toy demo's results.json are named for what they are
    (setup / "rerun_src" / "config.json").write_text(json.dumps({"model": "hsnet", "epochs": 1}))
    assert "it is a training run's config.json" in refused(["--rerun", "rerun_src/config.json"])
    (setup / "rerun_src" / "demo.json").write_text(json.dumps({"rows": [], "seconds": 1.0}))
    assert "the toy demo's results.json" in refused(["--rerun", "rerun_src/demo.json"])


def test_a_replay_records_and_scores_at_the_manifests_settings(setup, capsys, monkeypatch):
    monkeypatch.chdir(setup)
    common = ["--pascal-root", "pascal", "--shots", "1", "--batch-size", "4"]
    evaluate(setup, *common, "--size", "40", "--episodes", "3", "--label-size", "resized",
             "--out", "at40")  # fmt: skip
    # the checkpoint's run says size 32 and 5 episodes; the manifests say 40, 3 and resized
    evaluate(setup, *common, "--episodes", "at40/manifests", "--out", "replayed")
    row = json.loads((setup / "replayed" / "pascal5i.json").read_text())["rows"][0]
    assert (row["size"], row["episodes"], row["label_size"]) == (40, 3, "resized")
    assert 0 <= row["pascal_leak"] <= 1  # measured on the resized labels too (was NaN)
    line = capsys.readouterr().out
    assert "size 40 (manifests)" in line  # said, not silent
    assert "n_episodes 3 (manifests)" in line  # a06: not the checkpoint's 5
    first = json.loads((setup / "at40" / "pascal5i.json").read_text())["rows"][0]
    assert row["pascal_miou"] == first["pascal_miou"]
    with pytest.raises(SystemExit) as exit_:
        evaluate(setup, *common, "--episodes", "at40/manifests", "--size", "48", "--out", "x")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--size 48 contradicts the manifests' size 40" in err and "drop --size" in err


def test_replaying_an_incomplete_manifest_set_leaves_the_rest_out_with_a_notice(
    setup, capsys, monkeypatch
):
    monkeypatch.chdir(setup)
    common = ["--pascal-root", "pascal", "--shots", "1", "--batch-size", "4"]
    evaluate(setup, *common, "--out", "full_set")
    # only the support-swap manifest: the main PASCAL-5i dataset is left out, not a traceback
    swap = "full_set/manifests/pascal5i-fold0-1shot-swap.jsonl"
    capsys.readouterr()
    evaluate(setup, *common, "--episodes", swap, "--out", "swap_only")
    out = capsys.readouterr().out
    assert "left out (no manifest of theirs in --episodes): pascal5i-fold0-1shot" in out
    assert "P-mIoU -" in out  # the averages say what is missing
    row = json.loads((setup / "swap_only" / "pascal5i.json").read_text())["rows"][0]
    assert row["pascal_miou"] is None and row["pascal_swap_iou"] is not None
