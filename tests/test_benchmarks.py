"""Smoke tests of the benchmark scripts on tiny grids, with their JSON schema.

Each script runs as ``python SCRIPT ARGS`` would run it (``__main__``, its argument parser, its
folder on the path, the working folder and environment given), in the test's own process: a
fresh interpreter would spend its first seconds importing torch, which this process has done.
What a script sets for itself (the thread count, the environment, the folder) is put back.
"""

import json
import os
import runpy
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def run(script, *args, cwd=BENCH, env=None):
    """Run ``benchmarks/SCRIPT`` with ``args`` as its command line; fail on a non-zero exit."""
    saved = (sys.argv[:], sys.path[:], os.getcwd(), dict(os.environ), torch.get_num_threads())
    sys.argv = [str(BENCH / script), *map(str, args)]
    sys.path.insert(0, str(BENCH))
    os.chdir(cwd)
    os.environ.update(env or {})
    try:
        runpy.run_path(str(BENCH / script), run_name="__main__")
    except SystemExit as end:
        assert end.code in (0, None), f"{script} {' '.join(map(str, args))} exited with {end.code}"
    finally:
        sys.argv, sys.path[:] = saved[0], saved[1]
        os.chdir(saved[2])
        os.environ.clear()
        os.environ.update(saved[3])
        torch.set_num_threads(saved[4])


def only_json(out: Path, name: str) -> dict:
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    assert (folder / f"{name}.md").read_text().lstrip().startswith(("| ", "Base "))
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


def test_model_step_with_stages(tmp_path):
    # fp32 here: bf16 convolutions have no fast CPU kernel on most x86 machines (minutes)
    run("model_step.py", "--models", "sm_vcenet_efficientnet_lite0", "--sizes", "65", "--batch",
        "2", "--mam-channels", "32", "--channels-last", "--stages", "--min-time", "0.01",
        "--out", str(tmp_path))  # fmt: skip
    data = only_json(tmp_path, "model_step")
    assert data["amp"] is None and data["channels_last"] and data["matmul_peak_flops"] > 0
    stages = [r["stage"] for r in data["stages"]]
    assert stages == ["frozen backbone forward", "query branch", "MAM", "SAM", "decoder (CCM)"]
    for r in data["stages"]:
        assert r["ms"] > 0 and r["gflop"] > 0 and r["tflops"] > 0 and r["pct_peak"] > 0


def test_nonlocal_cpu_memory_is_deterministic():
    sys.path.insert(0, str(BENCH))
    try:
        from nonlocal_attention import measure_peak_here
    finally:
        sys.path.remove(str(BENCH))
    cfg = dict(impl="sdpa", b=2, c=32, side=8, mode="fwd+bwd", threads=1)
    a, b = measure_peak_here(cfg), measure_peak_here(cfg)
    assert a == b and a > 0
    naive = measure_peak_here({**cfg, "impl": "naive", "side": 16})
    # the naive block holds the (B, N, N) fp32 affinity: at least 2 * 256 * 256 * 4 bytes
    assert naive >= 2 * 256 * 256 * 4 / 2**20


@pytest.mark.slow
def test_compare_commits_runs_side_by_side(tmp_path):
    case = '"attention": "channel", "mode": "fwd", "side": 41'
    run("compare_commits.py", "--cases", case, "--rounds", "1", "--min-time", "0.01",
        "--out", str(tmp_path))  # fmt: skip
    data = only_json(tmp_path, "compare_commits")
    assert data["base"] == "d4a8e1d" and len(data["rows"]) == 1
    for r in data["rows"]:
        assert r["base_s"] > 0 and r["head_s"] > 0 and r["speedup"] > 0


def test_backbone_conformance_on_two_modules(tmp_path):
    run("backbone_conformance.py", "--modules", "dla,deit", "--out",
        str(tmp_path), "--jobs", "1")  # fmt: skip
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    data = json.loads((folder / "backbone_conformance.json").read_text())
    rows = {r["family"]: r for r in data["rows"]}
    assert rows["dla"]["works"] == "yes" and rows["deit"]["works"] == "yes"
    assert rows["deit"]["size_multiple"] == 16  # the patch: padded, cropped back
    assert rows["dla"]["size_multiple"] == 32 and rows["deit"]["model"] == "deit_tiny_patch16_224"
    assert "2 of 2 timm model modules" in (folder / "backbone_conformance.md").read_text()


def test_feature_cache_key_cost(tmp_path):
    run("feature_cache_key.py", "--batches", "2", "--rounds", "1", "--size", "64", "--out",
        str(tmp_path), "--threads", "1")  # fmt: skip
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    (row,) = json.loads((folder / "feature_cache_key.json").read_text())["rows"]
    assert row["evaluation_s"] > 0 and row["exact_digest_ms"] > 0 and 0 < row["key_share_pct"]


def test_fewshot_comparison_trains_and_scores_each_row_in_one_protocol(tmp_path, toy_cache):
    env_out = tmp_path / "cmp"
    run("fewshot_comparison.py", "--only", "prototype", "default", "--steps", "1", "--epochs",
        "1", "--episodes", "3", "--no-pretrained", "--out", env_out, "--independent-episodes",
        "3", "--repeats", "1", cwd=tmp_path, env={"FEWZERO_CACHE": str(toy_cache)})  # fmt: skip
    data = json.loads((env_out / "comparison.json").read_text())
    rows = {r["name"]: r for r in data["rows"]}
    assert rows["prototype"]["params"] == 0 and rows["prototype"]["optimizer"] == "-"
    assert rows["default"]["params"] > 0 and rows["default"]["train_seconds"] > 0
    for r in rows.values():
        for key in (
            "miou_1",
            "miou_5",
            "fbiou_1",
            "swap_iou_1",
            "leak_1",
            "nway_miou",
            "ms_1",
            "ms_5",
            "indep_swap_iou",
            "indep_leak",
        ):
            assert r[key] is not None and r[key] >= 0, (r["name"], key)
    assert (toy_cache / "toy-seed7" / "pascal").is_dir()  # the second tree, seed 7
    assert "| default |" in (env_out / "comparison.md").read_text()


def test_label_map_benchmark(tmp_path):
    """Both ways timed side by side on one grid, and equal."""
    run("label_map.py", "--sizes", "9", "--classes", "1", "2", "5", "--rounds", "1", "--threads",
        torch.get_num_threads(), "--out", tmp_path)  # fmt: skip
    rows = only_json(tmp_path, "label_map")["rows"]
    assert [(r["size"], r["classes"]) for r in rows] == [(9, 1), (9, 2), (9, 5)]
    assert all(r["equal"] and r["argmax_ms"] > 0 and r["label_map_ms"] > 0 for r in rows)
