"""Compare few-shot mechanisms side by side on the toy data: mIoU, support-swap IoU and leak.

Each candidate trains with the toy demo's preset (the README's first command) and is evaluated on
toy PASCAL-5^0 at 1 and 5 shots: mIoU over the fixed test episodes, and the support-swap protocol
on queries that show two unseen classes (IoU with the support's class, and the leak: the share of
the other class predicted as the support's). The zero-shot SM-VCENet and the training-free
prototype baseline are the reference rows.

    python examples/fewshot_candidates.py                       # every candidate (~25 min on 2 cores)
    python examples/fewshot_candidates.py --only tiled residual_query

Writes results/fewshot_candidates/candidates.md and .json (refused if present, unless
--overwrite).
"""

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from fewzero.checks import default_device, resolve_device
from fewzero.data import build_toy
from fewzero.engine import TrainConfig
from fewzero.engine.protocols import evaluate_pascal2coco, format_table
from fewzero.engine.recipes import build_model, train_pascal5i, trainable
from fewzero.engine.toy_demo import TOY_PRESET, default_toy_root

FEWSHOT = "sm_vcenet_fewshot_efficientnet_lite0"
TILED = {"similarity": None, "similarity_residual": False, "similarity_channels": None}
#: name: (model, model keyword arguments, training multi_class_weight, description)
CANDIDATES = {
    "zero-shot": ("sm_vcenet_efficientnet_lite0", {}, 1, "the paper's zero-shot model"),
    "prototype": ("prototype_efficientnet_lite0", {}, 1, "training-free prototype matching"),
    "tiled": (FEWSHOT, TILED, 1, "support prototype tiled into the CCM (before)"),
    "prior": (FEWSHOT, {**TILED, "prior": True}, 1, "tiled + PFENet prior (layer4)"),
    "cosine_inputs": (
        FEWSHOT,
        {"similarity": "query", "similarity_residual": False, "similarity_channels": None},
        1,
        "tiled + fg/bg cosine maps of the query features as CCM inputs",
    ),
    "residual_class": (
        FEWSHOT,
        {"similarity": "class", "similarity_residual": True, "similarity_channels": None},
        1,
        "cosine maps of the class-branch embedding, as inputs and added to the logits",
    ),
    "residual_query": (
        FEWSHOT,
        {"similarity": "query", "similarity_residual": True, "similarity_channels": None},
        1,
        "cosine maps of the query features, as inputs and added to the logits",
    ),
    "residual_projected": (
        FEWSHOT,
        {"similarity": "query", "similarity_residual": True, "similarity_channels": 128},
        1,
        "residual_query, compared in a learned signed 128-channel projection",
    ),
    "residual_projected_multi3": (
        FEWSHOT,
        {"similarity": "query", "similarity_residual": True, "similarity_channels": 128},
        3,
        "residual_projected, two-class training queries weighted x3 (the default)",
    ),
    "mask_attention_multi3": (
        FEWSHOT,
        {
            "similarity": "query",
            "similarity_residual": True,
            "similarity_channels": 128,
            "mask_attention": True,
        },  # fmt: skip
        3,
        "the default + DCAMA's mask attention on the projected features as a CCM input",
    ),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--only", nargs="+", choices=list(CANDIDATES), default=list(CANDIDATES))
    p.add_argument("--episodes", type=int, default=TOY_PRESET["episodes"])
    p.add_argument("--out", type=Path, default=Path("results/fewshot_candidates"))
    p.add_argument("--overwrite", action="store_true", help="replace an earlier comparison")
    p.add_argument("--device", default=default_device(), help="torch device")
    args = p.parse_args(argv)
    try:
        resolve_device(args.device, name="--device")
    except ValueError as err:
        p.error(str(err))
    target = args.out / "candidates.json"
    if target.exists() and not args.overwrite:
        p.error(f"--out {str(args.out)!r} holds a comparison already; pass --overwrite")
    roots = build_toy(default_toy_root())
    preset = {k: v for k, v in TOY_PRESET.items() if k != "out_dir"}
    rows = []
    for name in args.only:
        model_name, kwargs, weight, what = CANDIDATES[name]
        cfg = TrainConfig(model=model_name, model_kwargs=kwargs, progress=False,
                          multi_class_weight=weight, device=args.device,
                          out_dir=str(args.out / "runs" / name), **preset)  # fmt: skip
        model = build_model(cfg, pretrained=True)
        fewshot = model.requires_support
        start = time.perf_counter()
        if trainable(model):
            cfg = dataclasses.replace(
                cfg, shots=1 if fewshot else 0, eval_shots=[1, 5] if fewshot else [0]
            )
            model, _ = train_pascal5i(cfg, roots["pascal"], overwrite=True, model=model)
        seconds = time.perf_counter() - start
        for k in (1, 5) if fewshot else (0,):
            row = evaluate_pascal2coco(
                model.to(args.device), roots["pascal"], None, 0, size=cfg.crop_size,
                n_episodes=args.episodes, min_pixels=cfg.min_pixels, shots=k, device=args.device,
            )  # fmt: skip
            label = name if k == 0 else f"{name} ({k}-shot)"
            rows.append({**row, "name": label, "trained": what, "train_seconds": seconds})
            print(json.dumps({"name": label, **{key: row[key] for key in ("pascal_miou", "pascal_swap_iou", "pascal_leak")}}), flush=True)  # fmt: skip
    table = format_table(rows, coco=False)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "candidates.md").write_text(table + "\n")
    target.write_text(json.dumps(rows, indent=2, default=str))
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
