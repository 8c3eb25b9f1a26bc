"""Qualitative comparison (paper Figs. 5-6): image, ground truth and each model's prediction.

    python examples/qualitative.py --checkpoint runs/toy/sm_vcenet_efficientnet_lite0/checkpoint_last.pt \
        runs/toy/sm_vcenet_fewshot_efficientnet_lite0/checkpoint_last.pt [--dataset coco --fold 1]

Episodes are the first --n of the dataset's fixed test list (seeded, 1-shot supports for
few-shot models), so figures are reproducible. Without --data-root the embedded toy data is
used. Writes --out/qualitative.png.
"""

import argparse
from pathlib import Path

from fewzero.data import Coco20i, Pascal5i, build_toy, eval_transform
from fewzero.engine.cli import positive_int
from fewzero.engine.figures import episode_figure, short_name
from fewzero.models import load_trained_model


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--checkpoint", nargs="+", required=True, help="training checkpoints")
    p.add_argument("--dataset", default="pascal", choices=["pascal", "coco"], help="test set")
    p.add_argument("--data-root", default=None, help="prepared dataset folder (none: toy data)")
    p.add_argument("--fold", type=int, default=0, help="fold of the test classes")
    p.add_argument("--n", type=positive_int, default=6, help="episodes (rows)")
    p.add_argument("--size", type=positive_int, default=None, help="test size (default: crop)")
    p.add_argument("--min-pixels", type=positive_int, default=64, help="class pixels per episode")
    p.add_argument("--seed", type=int, default=0, help="seed of the episode draw")
    p.add_argument("--out", type=Path, default=Path("results"), help="output folder")
    args = p.parse_args(argv)
    models = [load_trained_model(c) for c in args.checkpoint]
    root = build_toy()[args.dataset] if args.data_root is None else args.data_root
    size = models[0][1]["crop_size"] if args.size is None else args.size
    enc = models[0][0].encoder
    cls = Pascal5i if args.dataset == "pascal" else Coco20i
    ds = cls(
        root,
        args.fold,
        "val",
        transform=eval_transform(size, mean=enc.mean, std=enc.std),
        n_episodes=args.n,
        seed=args.seed,
        min_pixels=args.min_pixels,
        shots=1 if any(m.requires_support for m, _ in models) else 0,
    )
    columns = [(short_name(cfg["model"]), m) for m, cfg in models]
    out = episode_figure(ds, columns, args.out / "qualitative.png", n=args.n)
    print(f"figure: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
