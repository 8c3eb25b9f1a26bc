"""One training step of each factory, split into frozen-backbone forward and head forward+backward.

    python benchmarks/model_step.py [--models 'sm_vcenet_*' ...] [--sizes 321 473] [--batch 4]
        [--amp bf16] [--channels-last] [--compile] [--stages] [--min-time 1.0]

Also times MAM's pooled projection against concat-then-conv at C=2048 (same output). With
``--stages`` each SM-VCENet-family model's step is split into frozen-backbone forward, query
branch, MAM, SAM and decoder (each forward+backward on cached inputs) with GFLOP counted by
``torch.utils.flop_counter`` and TFLOP/s; the "% of peak" columns divide by the device's matmul
rate measured in the same run (an 8192x8192 GEMM on CUDA in the step's dtype, 2048 on CPU).
"""

import argparse
import fnmatch
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import example_inputs, markdown, write_results
from torch.utils import benchmark

from fewzero.checks import amp_dtype, default_device
from fewzero.engine import TrainConfig
from fewzero.engine.recipes import build_model
from fewzero.layers import PyramidPoolingAttention
from fewzero.models import list_models

MIN_TIME = 1.0


def median(fn, threads):
    fn()  # warm-up: allocator, oneDNN primitives, lazy initialisation, compilation
    timer = benchmark.Timer("fn()", globals={"fn": fn}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=MIN_TIME).median


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def autocast(device, amp):
    dtype = amp_dtype(amp)
    return torch.autocast(device.split(":")[0], dtype=dtype, enabled=dtype is not None)


def matmul_peak(device, amp, threads):
    """FLOP/s of one large square GEMM in the step's dtype (8192 on CUDA, 2048 on CPU)."""
    n = 8192 if device.startswith("cuda") else 2048
    dtype = amp_dtype(amp) or torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / median(lambda: (a @ a, sync(device)), threads)


def stage_times(name, size, batch, device, threads, amp, channels_last, peak):
    """Forward+backward time, GFLOP and TFLOP/s of each stage on cached inputs."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(TrainConfig(model=name, device="cpu")).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=fmt)
    with torch.no_grad(), autocast(device, amp):
        f2, f3, f4 = model.backbone_features(x)
        query_in = torch.cat([f2, f3], 1)
        mam_out = model.class_branch.compress(f4) if model.class_branch is not None else None
        query_out = model.query(query_in)
        emb = model.class_branch(f4) if model.class_branch is not None else None
    stages = {"frozen backbone forward": (lambda: model.backbone_features(x), False)}
    stages["query branch"] = (lambda: model.query(query_in), True)
    if model.class_branch is not None:
        stages["MAM"] = (lambda: model.class_branch.compress(f4), True)
        if model.class_branch.sam is not None:
            stages["SAM"] = (
                lambda: model.class_branch.sam(mam_out.detach().requires_grad_()),
                True,
            )
    stages["decoder (CCM)"] = (lambda: model.decoder(query_out.detach().requires_grad_(),
                                                     None if emb is None else emb.detach().requires_grad_()), True)  # fmt: skip
    rows = []
    for stage, (fn, backward) in stages.items():

        def run(fn=fn, backward=backward):
            with autocast(device, amp):
                out = fn()
            if backward:
                (out[0] if isinstance(out, (list, tuple)) else out).float().sum().backward()
            sync(device)

        counter = FlopCounterMode(display=False)
        with counter:
            run()
        t = median(run, threads)
        flops = counter.get_total_flops()
        rows.append({"model": name, "size": size, "batch": batch, "stage": stage, "ms": 1e3 * t,
                     "gflop": flops / 1e9, "tflops": flops / t / 1e12,
                     "pct_peak": 100 * flops / t / peak})  # fmt: skip
        print(rows[-1], flush=True)
    return rows


def step_times(name, size, batch, device, threads, amp=None, channels_last=False, compile_=False):
    model = build_model(TrainConfig(model=name, device="cpu")).to(device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    inputs = example_inputs(model, batch, size, device)
    if channels_last:
        inputs["images"] = inputs["images"].contiguous(memory_format=torch.channels_last)
    x = inputs["images"]
    forward = torch.compile(model) if compile_ else model
    target = torch.randint(0, 2, (batch, size, size), device=device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)

    def backbone():
        model.encoder(
            x
            if "support_images" not in inputs
            else torch.cat([x, inputs["support_images"].flatten(0, 1)])
        )
        sync(device)

    def train_step():
        with autocast(device, amp):
            logits = forward(**inputs)
        loss = F.cross_entropy(logits.float(), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sync(device)

    t_bb = median(backbone, threads)
    t_full = median(train_step, threads)
    # the head alone: the same step with the frozen backbone's output served from a cache
    bb_input = (
        x
        if "support_images" not in inputs
        else torch.cat([x, inputs["support_images"].flatten(0, 1)])
    )
    cached = model.encoder(bb_input)
    model.encoder.forward = lambda images: cached
    t_head = median(train_step, threads)
    return {
        "model": name,
        "size": size,
        "batch": batch,
        "amp": amp or "fp32",
        "compile": compile_,
        "backbone_fwd_s": t_bb,
        "head_fwd_bwd_s": t_head,
        "step_s": t_full,
        "images_per_s": batch / t_full,
    }


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--device", default=default_device())
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--models",
        nargs="+",
        default=None,
        help="patterns; default: every factory on CUDA, a CPU subset",
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[321, 473])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--mam-channels", type=int, default=2048)
    p.add_argument("--amp", default=None, choices=["bf16", "fp16"], help="autocast dtype")
    p.add_argument("--channels-last", action="store_true", help="channels_last model and input")
    p.add_argument("--compile", action="store_true", help="torch.compile(model) for the step")
    p.add_argument("--stages", action="store_true", help="per-stage breakdown (SM-VCENet family)")
    p.add_argument("--min-time", type=float, default=1.0, help="seconds per measurement")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--name", default="model_step", help="result file name")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    global MIN_TIME
    MIN_TIME = args.min_time
    cuda = args.device.startswith("cuda")
    patterns = (
        args.models
        if args.models is not None
        else (
            ["*"]
            if cuda
            else [
                "*vcenet_efficientnet_lite0",
                "deeplab_efficientnet_lite0",
                "sm_vcenet_resnet50",
                "deeplab_resnet50",
            ]
        )
    )
    names = [n for n in list_models() if any(fnmatch.fnmatchcase(n, pat) for pat in patterns)]
    rows = []
    for name in names:
        for s in args.sizes:
            rows.append(step_times(name, s, args.batch, args.device, args.threads, args.amp,
                                   args.channels_last, args.compile))  # fmt: skip
            print(rows[-1], flush=True)
    peak = matmul_peak(args.device, args.amp, args.threads)
    stage_rows = []
    if args.stages:
        for name in names:
            if (
                not name.startswith(("sm_vcenet", "m_vcenet", "vcenet", "deeplab"))
                or "fewshot" in name
            ):
                continue
            for s in args.sizes:
                stage_rows += stage_times(name, s, args.batch, args.device, args.threads,
                                          args.amp, args.channels_last, peak)  # fmt: skip
    mam_rows = []
    c = args.mam_channels
    for s in args.sizes:
        hw = -(-s // 8)
        x = torch.randn(args.batch, c, hw, hw, device=args.device)
        fast = PyramidPoolingAttention(c, project_channels=c).to(args.device)
        slow = PyramidPoolingAttention(c, project_channels=c, pooled_projection=False).to(
            args.device
        )
        slow.load_state_dict(fast.state_dict())
        with torch.no_grad():
            t_fast = median(lambda m=fast, x=x: (m(x), sync(args.device)), args.threads)
            t_slow = median(lambda m=slow, x=x: (m(x), sync(args.device)), args.threads)
        mam_rows.append(
            {
                "input": s,
                "grid": f"{hw}x{hw}",
                "C": c,
                "batch": args.batch,
                "pooled_s": t_fast,
                "concat_s": t_slow,
                "speedup": t_slow / t_fast,
            }
        )
        print(mam_rows[-1], flush=True)
    table = markdown(
        rows,
        ["model", "size", "batch", "amp", "compile", "backbone_fwd_s", "head_fwd_bwd_s", "step_s",
         "images_per_s"],
    )  # fmt: skip
    if stage_rows:
        table += (
            f"\n\nPer-stage forward+backward (matmul peak {peak / 1e12:.1f} TFLOP/s measured in this "
            "run)\n\n" + markdown(stage_rows, ["model", "size", "batch", "stage", "ms", "gflop",
                                                "tflops", "pct_peak"])
        )  # fmt: skip
    table += "\n\nMAM pooled projection vs concat-then-conv (forward)\n\n" + markdown(
        mam_rows, ["input", "grid", "C", "batch", "pooled_s", "concat_s", "speedup"]
    )
    out = write_results(
        args.name,
        args.device,
        {
            "threads": args.threads,
            "amp": args.amp,
            "compile": args.compile,
            "channels_last": args.channels_last,
            "matmul_peak_flops": peak,
            "rows": rows,
            "stages": stage_rows,
            "mam": mam_rows,
        },
        table,
        args.out,
    )
    print(table)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
