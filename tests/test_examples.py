"""The example scripts end to end on the toy data (tiny schedule)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(script, *args, env=None):
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        check=True,
        capture_output=True,
        text=True,
        cwd=env["WORK"],
        env=env,
    )


@pytest.fixture(scope="module")
def env(tmp_path_factory, toy_cache):
    work = tmp_path_factory.mktemp("work")
    return {**os.environ, "FEWZERO_CACHE": str(toy_cache), "WORK": str(work)}


@pytest.mark.slow
def test_toy_demo_then_runners(env, capsys, monkeypatch):
    out = run(
        "train_pascal5i.py",
        "--quiet",
        "--no-pretrained",
        "--model",
        "deeplab_efficientnet_lite0",
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "--batch-size",
        "2",
        "--crop-size",
        "64",
        "--episodes",
        "6",
        "--out",
        "runs/demo",
        env=env,
    ).stdout
    assert "| deeplab_efficientnet_lite0 (untrained) | - |" in out
    assert "| deeplab_efficientnet_lite0 | toy PASCAL-5^0 |" in out and "COCO-20^3" in out
    work = Path(env["WORK"])
    results = json.loads((work / "runs/demo/results.json").read_text())
    assert len(results["rows"]) == 2
    ckpt = work / "runs/demo/deeplab_efficientnet_lite0/checkpoint_last.pt"
    toy = Path(env["FEWZERO_CACHE"]) / "toy"
    # the runners in-process: the same command lines, no interpreter start per call
    from fewzero.engine.evaluation_cli import run as run_eval

    monkeypatch.chdir(work)
    monkeypatch.setenv("FEWZERO_CACHE", env["FEWZERO_CACHE"])
    capsys.readouterr()
    run_eval(script_module("eval_pascal2coco.py").__doc__, coco=True, argv=[
        "--checkpoint", str(ckpt), "--pascal-root", str(toy / "pascal"), "--coco-root",
        str(toy / "coco"), "--out", "tables"])  # fmt: skip
    out = capsys.readouterr().out
    assert "P-mIoU" in out
    # the test protocol (episodes, min_pixels, size, seed) comes from the checkpoint's run, so
    # the script reproduces the demo's own row
    assert "episodes 6 (checkpoint)" in out and "min_pixels 64 (checkpoint)" in out
    demo_row = next(r for r in results["rows"] if r["trained"] != "-")
    script_row = json.loads((work / "tables/pascal2coco.json").read_text())["rows"][0]
    for key in ("pascal_miou", "pascal_fbiou", "coco_miou", "episodes", "min_pixels", "size"):
        assert script_row[key] == demo_row[key], key
    csv = (work / "tables/pascal2coco.csv").read_text().splitlines()
    assert csv[0].startswith("model,fold,shots,pascal_miou,pascal_fbiou,coco0") and csv[
        1
    ].startswith("deeplab_efficientnet_lite0,0,0,")
    assert (work / "tables/pascal2coco.md").read_text().count("\n") == 3
    five = ["--checkpoint", str(ckpt), "--pascal-root", str(toy / "pascal")]
    run_eval("PASCAL-5i", coco=False, argv=five)
    # the default output folder is named after the checkpoint's run
    table = (work / "results/pascal5i/deeplab_efficientnet_lite0/pascal5i.md").read_text()
    assert "COCO" not in table

    def refused(argv):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_:
            run_eval("PASCAL-5i", coco=False, argv=argv)
        assert exit_.value.code == 2
        return capsys.readouterr().err

    # a second evaluation never replaces the first's results silently
    err = refused([*five, "--episodes", "4"])
    assert "already holds pascal5i.md, pascal5i.csv, pascal5i.json" in err
    assert "--overwrite" in err
    assert (work / "results/pascal5i/deeplab_efficientnet_lite0/pascal5i.md").read_text() == table
    run_eval("PASCAL-5i", coco=False, argv=[*five, "--episodes", "4", "--overwrite"])
    rows = json.loads(
        (work / "results/pascal5i/deeplab_efficientnet_lite0/pascal5i.json").read_text()
    )
    assert rows["rows"][0]["episodes"] == 4 and rows["partial"] is False
    # --shots 1 for a zero-shot checkpoint is refused, not ignored; before any evaluation
    err = refused([*five, "--shots", "1", "--out", "other"])
    assert "--shots must be 0 for the zero-shot model(s)" in err
    assert not (work / "other").exists()
    script_module("qualitative.py").main(["--checkpoint", str(ckpt), str(ckpt), "--n", "2",
                                           "--dataset", "coco", "--fold", "1", "--out", "figs"])  # fmt: skip
    assert (work / "figs/qualitative.png").stat().st_size > 5000
    # every checkpoint is opened before any evaluation: a bad second path fails at once
    err = refused(["--checkpoint", str(ckpt), "missing.pt", *five[2:], "--out", "x"])
    assert "checkpoint not found: no such file 'missing.pt'" in err and not (work / "x").exists()


@pytest.mark.slow
def test_resume_flag_continues_a_run(env, capsys, monkeypatch):
    """The toy demo's run folders: refused, resumed, extended and overwritten (in-process)."""
    monkeypatch.chdir(env["WORK"])
    monkeypatch.setenv("FEWZERO_CACHE", env["FEWZERO_CACHE"])
    main = script_module("train_pascal5i.py").main
    args = [
        "--quiet",
        "--no-pretrained",
        "--model",
        "deeplab_efficientnet_lite0",
        "--steps-per-epoch",
        "1",
        "--batch-size",
        "2",
        "--crop-size",
        "48",
        "--episodes",
        "2",
        "--out",
        "runs/resume",
    ]
    main([*args, "--epochs", "1"])
    work = Path(env["WORK"])
    metrics = work / "runs/resume/deeplab_efficientnet_lite0/metrics.jsonl"
    results = (work / "runs/resume/results.md").read_text()

    def refused(argv):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        return capsys.readouterr().err

    # the same command again would overwrite the run: refused before any work
    err = refused([*args, "--epochs", "1"])
    assert "error: out_dir" in err and "already holds a run" in err
    # a changed setting that changes the run is refused by name, even with --resume, first
    err = refused([*args, "--min-pixels", "32", "--resume"])
    assert "another run config (min_pixels: checkpoint 64 vs now 32)" in err
    assert (work / "runs/resume/results.md").read_text() == results
    # --resume with nothing changed: the finished run is not repeated
    capsys.readouterr()
    main([*args, "--resume"])
    assert "resumed from" in capsys.readouterr().out and len(metrics.read_text().splitlines()) == 1
    # --resume --epochs 2 extends the run, warns, and records the change
    with pytest.warns(UserWarning, match="epochs 1 -> 2"):
        main([*args, "--epochs", "2", "--resume"])
    assert len(metrics.read_text().splitlines()) == 2
    saved = json.loads((metrics.parent / "config.json").read_text())
    assert saved["epochs"] == 2 and saved["resume_changes"][0]["epochs"] == {"from": 1, "to": 2}
    # --overwrite replaces it
    main([*args, "--epochs", "1", "--overwrite"])
    assert len(metrics.read_text().splitlines()) == 1


def script_module(name):
    """An example script imported in-process (faster than a subprocess)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name[:-3], ROOT / "examples" / name)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "examples"))
    return module


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--epochs", "0", "argument --epochs: must be > 0, got 0"),
        ("--lr", "-1", "argument --lr: must be > 0.0, got -1"),
        ("--lr", "nan", "argument --lr: must be a finite number, got nan"),
        ("--min-pixels", "0", "argument --min-pixels: must be > 0, got 0"),
        ("--episodes", "0", "argument --episodes: must be > 0, got 0"),
    ],
)
def test_invalid_flags_are_refused_by_name(flag, value, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        script_module("train_pascal5i.py").main([flag, value])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_every_option_has_help_and_default(capsys):
    for script in ("train_pascal5i.py", "eval_pascal2coco.py", "eval_pascal5i.py",
                   "qualitative.py", "class_affinity.py"):  # fmt: skip
        module = script_module(script)
        with pytest.raises(SystemExit):
            if script.startswith("eval_"):
                from fewzero.engine.evaluation_cli import run as run_eval

                run_eval(module.__doc__, coco="coco" in script, argv=["--help"])
            else:
                module.main(["--help"])
        text = capsys.readouterr().out
        options = re.findall(r"^  (--[a-z-]+)", text, flags=re.M)
        assert options, script
        assert "--toy" not in options, script
        for opt in options:
            if opt == "--help":
                continue
            block = text.split(opt, 1)[1].split("\n  --", 1)[0]
            assert len(block.split()) > 1, f"{script} {opt} has no help"
        if script == "eval_pascal5i.py":
            assert "PASCAL-5i evaluation" in text and "PASCAL2COCO" not in text.split("\n\n")[1]


def test_toy_flags_reach_the_config(env, monkeypatch):
    """Every flag reaches TrainConfig in the toy demo (it used to ignore eight of them)."""
    out = "runs/flags"
    monkeypatch.chdir(env["WORK"])
    monkeypatch.setenv("FEWZERO_CACHE", env["FEWZERO_CACHE"])
    script_module("train_pascal5i.py").main([
        "--quiet", "--no-pretrained", "--model", "deeplab_efficientnet_lite0", "--epochs", "1",
        "--steps-per-epoch", "1", "--batch-size", "2", "--crop-size", "48", "--episodes", "2",
        "--momentum", "0.5", "--min-pixels", "50", "--workers", "0", "--backbone", "resnet18",
        "--device", "cpu", "--amp", "bf16", "--channels-last", "--out", out])  # fmt: skip
    saved = json.loads(
        (Path(env["WORK"]) / out / "deeplab_efficientnet_lite0/config.json").read_text()
    )
    expected = dict(momentum=0.5, min_pixels=50, num_workers=0, backbone="resnet18",
                    device="cpu", amp="bf16", channels_last=True, epochs=1, lr=0.02)  # fmt: skip
    assert {k: saved[k] for k in expected} == expected
