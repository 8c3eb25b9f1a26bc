"""The example scripts end to end on the toy data (tiny schedule)."""

import json
import os
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
def env(tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    return {**os.environ, "FEWZERO_CACHE": str(work / "cache"), "WORK": str(work)}


@pytest.mark.slow
def test_toy_demo_then_runners(env):
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
    out = run(
        "eval_pascal2coco.py",
        "--checkpoint",
        str(ckpt),
        "--pascal-root",
        str(toy / "pascal"),
        "--coco-root",
        str(toy / "coco"),
        "--episodes",
        "6",
        "--min-pixels",
        "64",
        "--out",
        "tables",
        env=env,
    ).stdout
    assert "P-mIoU" in out
    csv = (work / "tables/pascal2coco.csv").read_text().splitlines()
    assert csv[0].startswith("model,fold,pascal_miou") and csv[1].startswith(
        "deeplab_efficientnet_lite0,0,"
    )
    assert (work / "tables/pascal2coco.md").read_text().count("\n") == 3
    run(
        "eval_pascal5i.py",
        "--checkpoint",
        str(ckpt),
        "--pascal-root",
        str(toy / "pascal"),
        "--episodes",
        "6",
        "--min-pixels",
        "64",
        env=env,
    )
    assert (work / "results/pascal5i/pascal2coco.json").is_file()
    run(
        "qualitative.py",
        "--checkpoint",
        str(ckpt),
        "--checkpoint",
        str(ckpt),
        "--n",
        "2",
        "--dataset",
        "coco",
        "--fold",
        "1",
        "--out",
        "fig.png",
        env=env,
    )
    assert (work / "fig.png").stat().st_size > 5000


@pytest.mark.slow
def test_resume_flag_continues_a_run(env):
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
    run("train_pascal5i.py", *args, "--epochs", "1", env=env)
    work = Path(env["WORK"])
    # a second invocation with --resume and a longer schedule is refused: epochs differ
    with pytest.raises(subprocess.CalledProcessError) as err:
        run("train_pascal5i.py", *args, "--epochs", "2", "--resume", env=env)
    assert "another run config (epochs: run 2 vs checkpoint 1)" in err.value.stderr
    out = run("train_pascal5i.py", *args, "--epochs", "1", "--resume", env=env).stdout
    assert "resumed from" in out
    lines = (work / "runs/resume/deeplab_efficientnet_lite0/metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1  # nothing left to train: the finished run is not repeated
