"""PASCAL2COCO (paper Table 1) and the ablation (Table 3) from trained checkpoints.

    python examples/eval_pascal2coco.py --pascal-root data/pascal5i --coco-root data/coco20i \
        --checkpoint runs/sm_vcenet_resnet50_fold0/checkpoint_last.pt ... [--out results/]

Each checkpoint knows its model and fold; rows come out in the paper's layout (PASCAL-5^i mIoU,
COCO-20^j mIoU for j = 0..3, averages) as a printed table plus Markdown, CSV and JSON files.
"""

import argparse
import csv
import json
from pathlib import Path

import torch

from fewzero.engine.recipes import evaluate_pascal2coco, format_table, load_trained_model


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--checkpoint", action="append", required=True, help="training checkpoint (repeat)"
    )
    p.add_argument("--pascal-root", required=True)
    p.add_argument("--coco-root", default=None, help="omit for PASCAL-5i only")
    p.add_argument("--episodes", type=int, default=1000)
    p.add_argument(
        "--size", type=int, default=None, help="test resolution (default: training crop)"
    )
    p.add_argument("--min-pixels", type=int, default=2 * 32 * 32)
    p.add_argument("--class-split", default="fwb", choices=["fwb", "panet"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", type=Path, default=Path("results"))
    args = p.parse_args(argv)
    rows = []
    for ckpt in args.checkpoint:
        model, cfg = load_trained_model(ckpt, device=args.device)
        row = evaluate_pascal2coco(
            model,
            args.pascal_root,
            args.coco_root,
            cfg["fold"],
            size=args.size or cfg["crop_size"],
            n_episodes=args.episodes,
            seed=args.seed,
            min_pixels=args.min_pixels,
            class_split=args.class_split,
            device=args.device,
        )
        rows.append(
            {
                "name": cfg["model"],
                "trained": f"PASCAL-5^{cfg['fold']}",
                "checkpoint": str(ckpt),
                **row,
            }
        )
    table = format_table(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pascal2coco.md").write_text(table + "\n")
    (args.out / "pascal2coco.json").write_text(json.dumps(rows, indent=2, default=str))
    with open(args.out / "pascal2coco.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "model",
                "fold",
                "pascal_miou",
                "pascal_fbiou",
                "coco0",
                "coco1",
                "coco2",
                "coco3",
                "coco_miou",
                "episodes",
                "seed",
            ]
        )
        for r in rows:
            coco = r.get("coco", {})
            w.writerow(
                [r["name"], r["fold"], r.get("pascal_miou"), r.get("pascal_fbiou")]
                + [coco.get(j) for j in range(4)]
                + [r.get("coco_miou"), r["episodes"], r["seed"]]
            )
    by_model = {}
    for r in rows:
        by_model.setdefault(r["name"], []).append(r)
    print(table)
    print("\nAverages over folds (Table 1 'Average' / Table 3 rows):")
    for name, rs in by_model.items():
        pm = sum(r["pascal_miou"] for r in rs) / len(rs)
        cm = [r["coco_miou"] for r in rs if "coco_miou" in r]
        print(
            f"  {name}: P-mIoU {100 * pm:.2f}"
            + (f"  C-mIoU {100 * sum(cm) / len(cm):.2f}" if cm else "")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
