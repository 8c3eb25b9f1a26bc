"""Qualitative comparison (paper Figs. 5-6): image, ground truth and each model's prediction.

    python examples/qualitative.py --checkpoint runs/toy/sm_vcenet_efficientnet_lite0/checkpoint_last.pt \
        --checkpoint runs/toy/deeplab_efficientnet_lite0/checkpoint_last.pt [--dataset coco --fold 1] [--n 6]

Episodes are the first --n of the dataset's fixed test list (seeded), so figures are reproducible.
Without --data-root the embedded toy data is used.
"""

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fewzero.data import Coco20i, Pascal5i, build_toy, eval_transform
from fewzero.data.io import read_image
from fewzero.engine.recipes import default_toy_root, load_trained_model
from fewzero.engine.trainer import forward_episode


def overlay(rgb, mask, color=(255, 40, 40)):
    out = rgb.astype(np.float32).copy()
    fg = mask == 1
    out[fg] = 0.45 * out[fg] + 0.55 * np.array(color, dtype=np.float32)
    return out.astype(np.uint8)


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", action="append", required=True)
    p.add_argument("--dataset", default="pascal", choices=["pascal", "coco"])
    p.add_argument("--data-root", default=None)
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--n", type=int, default=6)
    p.add_argument("--size", type=int, default=None)
    p.add_argument("--min-pixels", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("results/qualitative.png"))
    args = p.parse_args(argv)
    root = args.data_root or build_toy(default_toy_root())[args.dataset]
    models = [load_trained_model(c) for c in args.checkpoint]
    size = args.size or models[0][1]["crop_size"]
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
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 2 + len(models)
    fig, axes = plt.subplots(args.n, cols, figsize=(2.2 * cols, 2.2 * args.n), squeeze=False)
    for i in range(args.n):
        ep = ds[i]
        rgb = np.array(read_image(ds.image_dir / f"{ep['name']}.jpg"))
        label = ep["label"].numpy()
        panels = [(rgb, "image"), (overlay(rgb, label), f"GT (class {ep['class_id']})")]
        for model, cfg in models:
            with torch.no_grad():
                logits = forward_episode(
                    model, model, ep["image"][None], torch.tensor([ep["class_id"]])
                )
                pred = F.interpolate(
                    logits, size=label.shape, mode="bilinear", align_corners=False
                ).argmax(1)[0]
            panels.append(
                (
                    overlay(rgb, pred.numpy()),
                    cfg["model"].split("_efficientnet")[0].split("_resnet")[0],
                )
            )
        for ax, (img, title) in zip(axes[i], panels):
            ax.imshow(img)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(f"figure: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
