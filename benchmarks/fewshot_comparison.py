"""The field's few-shot mechanisms side by side in one protocol, on the toy data.

Every trainable row trains with the toy demo's preset (the README's first command: EfficientNet-
Lite0 with ImageNet weights, the same steps, batch, crop and data) and every row is scored on the
same toy PASCAL-5^0 test episodes:

- 1- and 5-shot mIoU and FB-IoU;
- 2-class IoU and leak (support-swap: queries that show two unseen classes, the support naming
  one; leak is the share of the other class predicted as the support's);
- 2-way mIoU (1 shot per way);
- 2-class IoU and leak on a toy tree drawn with another seed (``--independent-seed``, 7 by
  default; ``-1``: none): scenes the project never trained or tested on, 200 support-swap
  episodes at 1 shot;
- trainable parameters, training seconds, and inference ms per episode (batch 1, median) at 1
  and 5 shots.

SM-VCENet trains with the paper's SGD; HSNet and DCAMA with AdamW (their papers train with Adam
at 1e-3; under the SGD preset HSNet learns nothing in these steps), HSNet at 3e-3 (at 1e-3 it
predicts background everywhere after the preset's 160 steps). The optimizer is a column of the
table. HSNet and DCAMA read their backbone at ``output_stride=8`` here: at the toy's 96 px an
undilated backbone leaves 3 x 3 maps at its last level, where HSNet's 400 px inputs give 13 x 13.

    python benchmarks/fewshot_comparison.py                  # every row (about 16 min, 2 cores)
    python benchmarks/fewshot_comparison.py --only default hsnet

Writes results/fewshot_comparison/comparison.md and .json (refused if present, unless
--overwrite).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from fewzero.checks import default_device, resolve_device
from fewzero.data import Pascal5i, build_toy, collate_episodes, eval_transform
from fewzero.data.toy import default_toy_root
from fewzero.engine import TrainConfig
from fewzero.engine.inputs import episode_inputs, uses_class_ids
from fewzero.engine.pascal2coco import EvalOptions, PascalCoco, evaluate_pascal2coco
from fewzero.engine.recipes import build_model, train_pascal5i, trainable
from fewzero.engine.toy_demo import TOY_FEWSHOT_PRESET, TOY_PRESET

FEWSHOT = "sm_vcenet_fewshot_efficientnet_lite0"
ADAM = {"optimizer": "adamw", "lr": 1e-3}
DILATED = {"backbone_kwargs": {"output_stride": 8}}  # 12 x 12 maps at 96 px, as HSNet's at 400
DEFAULT = ["prototype", "cosine", "low_level"]  # FEWSHOT_DEFAULTS' comparisons
ATTENTION = {"name": "mask_attention", "channels": 128}  # in the cosine's 128-channel projection
BEST = {"name": "correlation", "channels": 128}
#: name: (model, model keyword arguments, training settings beyond the preset, description)
ROWS = {
    "zero-shot": ("sm_vcenet_efficientnet_lite0", {}, {}, "the paper's zero-shot SM-VCENet"),
    "prototype": ("prototype_efficientnet_lite0", {}, {}, "training-free prototype matching"),
    "default": (
        FEWSHOT,
        {},
        TOY_FEWSHOT_PRESET,
        "few-shot SM-VCENet: residual cosine maps, mid and low level; shots as one-shot episodes",
    ),  # fmt: skip
    "sm-prototype_shots": (
        FEWSHOT,
        {"shot_merge": "prototype"},
        TOY_FEWSHOT_PRESET,
        "default with the K shots averaged into one prototype",
    ),  # fmt: skip
    "sm-low_level": (
        FEWSHOT,
        {"comparisons": ["prototype", "cosine"]},
        TOY_FEWSHOT_PRESET,
        "default without the low-level comparison",
    ),  # fmt: skip
    "hsnet": (
        "hsnet_efficientnet_lite0",
        DILATED,
        {**ADAM, "lr": 3e-3},
        "HSNet: dense correlation, 4D conv",
    ),  # fmt: skip
    "dcama": ("dcama_efficientnet_lite0", DILATED, ADAM, "DCAMA: mask attention"),
    "sm+mask_attention": (
        FEWSHOT,
        {"comparisons": [*DEFAULT[:2], ATTENTION, DEFAULT[2]]},
        TOY_FEWSHOT_PRESET,
        "default + DCAMA's mask attention as a CCM input",
    ),  # fmt: skip
    "sm+correlation": (
        FEWSHOT,
        {"comparisons": [*DEFAULT[:2], BEST, DEFAULT[2]]},
        TOY_FEWSHOT_PRESET,
        "default + dense correlation (best fg/bg match) as CCM inputs",
    ),  # fmt: skip
    "sm+correlation_residual": (
        FEWSHOT,
        {"comparisons": [*DEFAULT[:2], {**BEST, "residual": True}, DEFAULT[2]]},
        TOY_FEWSHOT_PRESET,
        "default + dense correlation as CCM inputs and added to the logits",
    ),  # fmt: skip
    "sm+both": (
        FEWSHOT,
        {"comparisons": [*DEFAULT[:2], ATTENTION, BEST, DEFAULT[2]]},
        TOY_FEWSHOT_PRESET,
        "default + mask attention + dense correlation",
    ),  # fmt: skip
}


@torch.no_grad()
def inference_ms(model, root, shots, size, min_pixels, device, repeats=7):
    """Median ms of one batch-1 episode forward (supports included) at ``shots``."""
    enc = model.encoder
    ds = Pascal5i(root, 0, "val", shots=shots, n_episodes=2, min_pixels=min_pixels,
                  transform=eval_transform(size, mean=enc.mean, std=enc.std))  # fmt: skip
    batch = episode_inputs(collate_episodes([ds[0]]), torch.device(device),
                           class_ids=uses_class_ids(model))  # fmt: skip
    if not getattr(model, "accepts_support", False):
        batch.pop("support_images", None)
        batch.pop("support_masks", None)
    model.eval()
    model(**batch)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(**batch)
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", nargs="+", choices=list(ROWS), default=list(ROWS))
    p.add_argument("--out", type=Path, default=Path("results/fewshot_comparison"))
    p.add_argument("--overwrite", action="store_true", help="replace an earlier comparison")
    p.add_argument("--device", default=default_device(), help="torch device")
    p.add_argument("--steps", type=int, default=None, help="steps per epoch (default: preset)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: preset)")
    p.add_argument("--episodes", type=int, default=None, help="test episodes (default: preset)")
    p.add_argument("--seed", type=int, default=None, help="training seed (default: preset's)")
    p.add_argument("--no-pretrained", action="store_true", help="random backbone (tests only)")
    p.add_argument(
        "--independent-seed",
        type=int,
        default=7,
        help="seed of a second toy tree to score the trained rows on (-1: none)",
    )
    p.add_argument("--repeats", type=int, default=7,
                   help="timed forwards per inference time (their median)")  # fmt: skip
    p.add_argument("--independent-episodes", type=int, default=200,
                   help="support-swap episodes on the second tree")  # fmt: skip
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats must be at least 1 (timed forwards), got {args.repeats}")
    try:
        resolve_device(args.device, name="--device")
    except ValueError as err:
        p.error(str(err))
    target = args.out / "comparison.json"
    if target.exists() and not args.overwrite:
        p.error(f"--out {str(args.out)!r} holds a comparison already; pass --overwrite")
    args.out.mkdir(parents=True, exist_ok=True)
    roots = build_toy()
    independent = None
    if args.independent_seed >= 0:
        if args.independent_seed == 0:
            p.error("--independent-seed 0 is the toy tree itself; give another seed or -1")
        base = default_toy_root()
        independent = build_toy(base.with_name(f"{base.name}-seed{args.independent_seed}"),
                                seed=args.independent_seed)["pascal"]  # fmt: skip
    preset = {k: v for k, v in TOY_PRESET.items() if k != "out_dir"}
    for key, value in (("max_steps_per_epoch", args.steps), ("epochs", args.epochs),
                       ("episodes", args.episodes), ("seed", args.seed)):  # fmt: skip
        if value is not None:
            preset[key] = value
    started = time.perf_counter()
    rows = []
    for name in args.only:
        model_name, kwargs, train, what = ROWS[name]
        cfg = TrainConfig(model=model_name, model_kwargs=kwargs, progress=False,
                          device=args.device, out_dir=str(args.out / "runs" / name),
                          **{**preset, **train})  # fmt: skip
        torch.manual_seed(cfg.seed)  # each row from the same initial state, as the toy demo
        model = build_model(cfg, pretrained=not args.no_pretrained)
        fewshot = bool(getattr(model, "requires_support", False))
        params = sum(q.numel() for q in model.parameters() if q.requires_grad)
        start = time.perf_counter()
        if trainable(model):
            cfg = dataclasses.replace(
                cfg, shots=1 if fewshot else 0, eval_shots=[1, 5] if fewshot else [0]
            )
            model, _ = train_pascal5i(cfg, roots["pascal"], overwrite=True, model=model)
        seconds = time.perf_counter() - start if trainable(model) else 0.0
        model = model.to(args.device).eval()
        row = {"name": name, "what": what, "optimizer": cfg.optimizer if trainable(model) else "-",
               "params": params, "train_seconds": round(seconds, 1)}  # fmt: skip
        settings = EvalOptions(size=cfg.crop_size, n_episodes=cfg.episodes,
                               min_pixels=cfg.min_pixels, device=args.device)  # fmt: skip
        for k in (1, 5) if fewshot else (1,):
            options = dataclasses.replace(settings, shots=k if fewshot else 0,
                              ways=2 if (fewshot and k == 1) else 1)  # fmt: skip
            res = evaluate_pascal2coco(model, PascalCoco(roots["pascal"]), options)
            row[f"miou_{k}"], row[f"fbiou_{k}"] = res["pascal_miou"], res["pascal_fbiou"]
            row[f"swap_iou_{k}"], row[f"leak_{k}"] = res["pascal_swap_iou"], res["pascal_leak"]
            row[f"leak_per_class_{k}"] = res["pascal_leak_per_class"]
            if k == 1:
                row["nway_miou"] = res.get("pascal_nway_miou")
            row[f"ms_{k}"] = round(
                inference_ms(model, roots["pascal"], k if fewshot else 0, cfg.crop_size,
                             cfg.min_pixels, args.device, args.repeats), 1,
            )  # fmt: skip
        if independent is not None:
            options = dataclasses.replace(settings, shots=1 if fewshot else 0,
                              n_episodes=args.independent_episodes)  # fmt: skip
            res = evaluate_pascal2coco(model, PascalCoco(independent), options)
            row["indep_swap_iou"], row["indep_leak"] = res["pascal_swap_iou"], res["pascal_leak"]
        if not fewshot:  # no support: the 5-shot numbers are the same
            same = ("miou", "fbiou", "swap_iou", "leak", "leak_per_class", "ms")
            row.update({f"{key}_5": row[f"{key}_1"] for key in same})
        rows.append(row)
        print(json.dumps(row), flush=True)
    table = format_rows(rows)
    total = time.perf_counter() - started
    (args.out / "comparison.md").write_text(table + f"\n\n{total:.0f} s in all\n")
    target.write_text(json.dumps({"rows": rows, "seconds": total, "preset": preset,
                                  "independent_seed": args.independent_seed}, indent=2))  # fmt: skip
    print(table)
    print(f"\n{total:.0f} s in all; results in {args.out}/comparison.md")
    return 0


def format_rows(rows):
    def pct(v):
        return "-" if v is None else f"{100 * v:.1f}"

    head = ["mechanism", "1-shot mIoU", "5-shot mIoU", "FB-IoU 1/5", "2-class IoU", "leak",
            "2-way mIoU", "other tree: 2-class IoU / leak", "trainable params", "optimizer",
            "train s", "ms/episode 1/5"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r["name"], pct(r["miou_1"]), pct(r["miou_5"]),
            f"{pct(r['fbiou_1'])} / {pct(r['fbiou_5'])}", pct(r["swap_iou_1"]),
            pct(r["leak_1"]), pct(r.get("nway_miou")),
            f"{pct(r.get('indep_swap_iou'))} / {pct(r.get('indep_leak'))}",
            f"{r['params'] / 1e6:.2f} M",
            r["optimizer"], f"{r['train_seconds']:.0f}", f"{r['ms_1']:.0f} / {r['ms_5']:.0f}",
        ]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
