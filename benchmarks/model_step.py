"""One training step of each factory, split into frozen-backbone forward and head forward+backward.

    python benchmarks/model_step.py [--models 'sm_vcenet_*' ...] [--sizes 321 473] [--batch 4]

Also times MAM's pooled projection against concat-then-conv at C=2048 (same output).
"""

import argparse
import fnmatch
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import example_inputs, markdown, write_results
from torch.utils import benchmark

from fewzero.layers import PyramidPoolingAttention
from fewzero.models import create_model, list_models


def median(fn, threads):
    fn()  # warm-up: allocator, oneDNN primitives, lazy initialisation
    timer = benchmark.Timer("fn()", globals={"fn": fn}, num_threads=threads)
    return timer.blocked_autorange(min_run_time=1.0).median


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def step_times(name, size, batch, device, threads):
    model = create_model(name).to(device).train()
    inputs = example_inputs(model, batch, size, device)
    x = inputs["images"]
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
        logits = model(**inputs)
        loss = F.cross_entropy(logits, target)
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
        "backbone_fwd_s": t_bb,
        "head_fwd_bwd_s": t_head,
        "step_s": t_full,
        "images_per_s": batch / t_full,
    }


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
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
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    patterns = args.models or (
        ["*"]
        if cuda
        else [
            "*vcenet_efficientnet_lite0",
            "deeplab_efficientnet_lite0",
            "sm_vcenet_resnet50",
            "deeplab_resnet50",
        ]
    )
    names = [n for n in list_models() if any(fnmatch.fnmatchcase(n, pat) for pat in patterns)]
    rows = []
    for name in names:
        for s in args.sizes:
            rows.append(step_times(name, s, args.batch, args.device, args.threads))
            print(rows[-1], flush=True)
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
        ["model", "size", "batch", "backbone_fwd_s", "head_fwd_bwd_s", "step_s", "images_per_s"],
    )
    table += "\n\nMAM pooled projection vs concat-then-conv (forward)\n\n" + markdown(
        mam_rows, ["input", "grid", "C", "batch", "pooled_s", "concat_s", "speedup"]
    )
    out = write_results(
        "model_step",
        args.device,
        {"threads": args.threads, "rows": rows, "mam": mam_rows},
        table,
        args.out,
    )
    print(table)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
