"""Parameter counts and forward GFLOPs of every registered factory at 321x321 and 473x473.

    python benchmarks/model_complexity.py [--sizes 321 473] [--models 'sm_vcenet_*'] [--out DIR]

GFLOPs from torch.utils.flop_counter.FlopCounterMode (multiply-add = 2 FLOPs), batch 1. Also
reports MAM's pooled projection against concat-then-conv (same output, FLOPs of each).
"""

import argparse
from pathlib import Path

import torch
from _common import example_inputs, markdown, write_results
from torch.utils.flop_counter import FlopCounterMode

from fewzero.engine import TrainConfig
from fewzero.engine.recipes import build_model
from fewzero.layers import PyramidPoolingAttention
from fewzero.models import list_models


def flops(module, *x, **kw):
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(*x, **kw)
    return counter.get_total_flops()


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[321, 473])
    p.add_argument("--models", default="*")
    p.add_argument("--mam-channels", type=int, default=2048)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    rows = []
    for name in list_models(args.models):
        model = build_model(TrainConfig(model=name, device="cpu")).eval()
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
        row = {"model": name, "trainable_M": trainable / 1e6, "frozen_M": frozen / 1e6}
        for s in args.sizes:
            row[f"gflops_{s}"] = flops(model, **example_inputs(model, 1, s)) / 1e9
        rows.append(row)
        print(row, flush=True)
    mam_rows = []
    c = args.mam_channels
    for s in args.sizes:
        hw = -(-s // 8)
        x = torch.randn(1, c, hw, hw)
        fast = PyramidPoolingAttention(c, project_channels=c).eval()
        slow = PyramidPoolingAttention(c, project_channels=c, pooled_projection=False).eval()
        slow.load_state_dict(fast.state_dict())
        with torch.no_grad():
            diff = (fast(x) - slow(x)).abs().max().item()
        f_fast, f_slow = flops(fast, x), flops(slow, x)
        mam_rows.append(
            {
                "input": s,
                "grid": f"{hw}x{hw}",
                "C": c,
                "pooled_gflops": f_fast / 1e9,
                "concat_gflops": f_slow / 1e9,
                "flop_ratio": f_slow / f_fast,
                "max_abs_diff": diff,
            }
        )
    cols = ["model", "trainable_M", "frozen_M"] + [f"gflops_{s}" for s in args.sizes]
    table = (
        markdown(rows, cols)
        + "\n\nMAM pooled projection vs concat-then-conv\n\n"
        + markdown(
            mam_rows,
            ["input", "grid", "C", "pooled_gflops", "concat_gflops", "flop_ratio", "max_abs_diff"],
        )
    )
    out = write_results(
        "model_complexity", "cpu", {"models": rows, "mam": mam_rows}, table, args.out
    )
    print(table)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
