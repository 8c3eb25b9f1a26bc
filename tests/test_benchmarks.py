"""Smoke tests of the benchmark scripts on tiny grids, with their JSON schema."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def run(script, *args):
    subprocess.run(
        [sys.executable, str(BENCH / script), *args], check=True, capture_output=True, cwd=BENCH
    )


def only_json(out: Path, name: str) -> dict:
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    assert (folder / f"{name}.md").read_text().startswith("| ")
    return json.loads((folder / f"{name}.json").read_text())


def test_nonlocal_benchmark_quick(tmp_path):
    run("nonlocal_attention.py", "--quick", "--out", str(tmp_path), "--threads", "1")
    data = only_json(tmp_path, "nonlocal_attention")
    assert {
        "torch",
        "device",
        "threads",
        "matmul_peak_flops",
        "rows",
        "ratios",
        "memory_fit",
    } <= set(data)
    impls = {r["impl"] for r in data["rows"]}
    assert {"naive", "matmul", "sdpa", "channel"} <= impls
    for r in data["rows"]:
        assert r["time_s"] > 0 and r["N"] in (36, 81) and r["mode"] in ("fwd", "fwd+bwd")
        assert {"peak_mb", "tflops", "frac_matmul_peak"} <= set(r)
    assert {r["mode"] for r in data["ratios"]} == {"fwd", "fwd+bwd"}
    assert list(tmp_path.glob("*/nonlocal_attention.png"))


@pytest.mark.slow
def test_model_complexity_quick(tmp_path):
    run(
        "model_complexity.py",
        "--models",
        "deeplab_efficientnet_lite0",
        "--sizes",
        "65",
        "--mam-channels",
        "64",
        "--out",
        str(tmp_path),
    )
    data = only_json(tmp_path, "model_complexity")
    (row,) = data["models"]
    assert row["model"] == "deeplab_efficientnet_lite0" and row["gflops_65"] > 0
    (mam,) = data["mam"]
    assert mam["flop_ratio"] > 1 and mam["max_abs_diff"] < 1e-4
