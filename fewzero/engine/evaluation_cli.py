"""The evaluation command line behind ``examples/eval_pascal5i.py`` and ``eval_pascal2coco.py``."""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from ..models import load_trained_model
from .cli import nonnegative_int, positive_int
from .recipes import evaluate_pascal2coco, format_table

__all__ = ["run"]


def run(description: str, coco: bool, argv: Sequence[str] | None = None) -> int:
    """Parse arguments, load every checkpoint, evaluate, print and write the tables.

    Args:
        description: The script's help text.
        coco: PASCAL2COCO (``--coco-root`` required, COCO columns) or PASCAL-5i only.
        argv: Arguments (default: ``sys.argv[1:]``).
    """
    name = "pascal2coco" if coco else "pascal5i"
    p = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--checkpoint", nargs="+", required=True, help="training checkpoints")
    p.add_argument("--pascal-root", required=True, help="prepared PASCAL-5i folder")
    if coco:
        p.add_argument("--coco-root", required=True, help="prepared COCO-20i folder")
        p.add_argument("--class-split", default="fwb", choices=["fwb", "panet"],
                       help="COCO-20i class split")  # fmt: skip
    p.add_argument("--episodes", type=positive_int, default=1000, help="episodes per dataset")
    p.add_argument("--shots", type=nonnegative_int, nargs="+", default=None,
                   help="support images per episode for few-shot checkpoints (default: 1 and 5; "
                   "zero-shot checkpoints: 0)")  # fmt: skip
    p.add_argument("--size", type=positive_int, default=None,
                   help="test resolution (default: the checkpoint's training crop)")  # fmt: skip
    p.add_argument("--min-pixels", type=positive_int, default=2 * 32 * 32,
                   help="pixels a class must cover for an episode")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the episode draw")
    p.add_argument("--batch-size", type=positive_int, default=8, help="episodes per forward")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="torch device")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out", type=Path, default=Path(f"results/{name}"), help="output folder")
    args = p.parse_args(argv)
    models = [(ckpt, *load_trained_model(ckpt, device=args.device)) for ckpt in args.checkpoint]
    rows = []
    for ckpt, model, cfg in models:
        fewshot = bool(getattr(model, "requires_support", False))
        shot_list = ([1, 5] if args.shots is None else args.shots) if fewshot else [0]
        for k in shot_list:
            row = evaluate_pascal2coco(
                model,
                args.pascal_root,
                args.coco_root if coco else None,
                cfg["fold"],
                size=cfg["crop_size"] if args.size is None else args.size,
                n_episodes=args.episodes,
                seed=args.seed,
                min_pixels=args.min_pixels,
                class_split=args.class_split if coco else "fwb",
                batch_size=args.batch_size,
                device=args.device,
                shots=k,
                progress=not args.quiet,
            )
            label = cfg["model"] if k == 0 else f"{cfg['model']} ({k}-shot)"
            rows.append(
                {
                    "name": label,
                    "trained": f"PASCAL-5^{cfg['fold']}",
                    "checkpoint": str(ckpt),
                    **row,
                }
            )
    table = format_table(rows, coco=coco)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.md").write_text(table + "\n")
    (args.out / f"{name}.json").write_text(json.dumps(rows, indent=2, default=str))
    head = ["model", "fold", "shots", "pascal_miou", "pascal_fbiou"]
    if coco:
        head += ["coco0", "coco1", "coco2", "coco3", "coco_miou"]
    with open(args.out / f"{name}.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(head + ["episodes", "seed"])
        for r in rows:
            cells = [r["name"], r["fold"], r["shots"], r.get("pascal_miou"), r.get("pascal_fbiou")]
            if coco:
                cells += [r["coco"].get(j) for j in range(4)] + [r.get("coco_miou")]
            w.writerow(cells + [r["episodes"], r["seed"]])
    print(table)
    print("\nAverages over folds (Table 1/2 'Average' / Table 3 rows):")
    by_model: dict[str, list[dict]] = {}
    for r in rows:
        by_model.setdefault(r["name"], []).append(r)
    for label, rs in by_model.items():
        pm = sum(r["pascal_miou"] for r in rs) / len(rs)
        fb = sum(r["pascal_fbiou"] for r in rs) / len(rs)
        line = f"  {label}: P-mIoU {100 * pm:.2f}  FB-IoU {100 * fb:.2f}"
        if coco:
            line += f"  C-mIoU {100 * sum(r['coco_miou'] for r in rs) / len(rs):.2f}"
        print(line)
    print(f"\ntables in {args.out}/{name}.md/.csv/.json")
    return 0
