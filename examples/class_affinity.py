"""Paper Fig. 4: class affinity matrices of vision and language models across domains.

    python examples/class_affinity.py [--pascal-root P --coco-root C] [--out results/fig4]

Without --pascal-root the embedded toy data is used.

Vision: the per-class mean of globally pooled backbone features (eq. 6) for the 20 PASCAL
categories, on PASCAL and on COCO (the same 20 categories), with each backbone given (by default
EfficientNet-Lite0 with its offline ImageNet weights). Language: all-MiniLM-L6-v2 embeddings of
the class names (fewzero[language]) and, with --word-vectors, GloVe/fastText vectors. Writes the
side-by-side heatmaps (PNG) and the mean absolute change of each matrix between domains (JSON).
"""

import argparse
import json
from pathlib import Path

import torch

from fewzero.analysis import affinity_shift, class_affinity, cosine_affinity
from fewzero.data import PASCAL_CLASSES, PASCAL_TO_COCO, build_toy
from fewzero.models import Backbone
from fewzero.text import class_embedding_table

COCO_NAMES = [
    "airplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "dining table", "dog",
    "horse", "motorcycle", "person", "potted plant", "sheep", "couch", "train", "tv",
]  # fmt: skip


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--pascal-root", default=None, help="prepared PASCAL folder (none: toy data)")
    p.add_argument("--coco-root", default=None, help="prepared COCO folder (with --pascal-root)")
    p.add_argument(
        "--backbone",
        action="append",
        default=None,
        help="timm name (repeat); default efficientnet_lite0",
    )
    p.add_argument(
        "--backbone-weights", action="append", default=None, help="weights per --backbone"
    )
    p.add_argument(
        "--word-vectors", default=None, help="GloVe/fastText file for a word-vector matrix"
    )
    p.add_argument("--no-minilm", action="store_true", help="skip the MiniLM matrices")
    p.add_argument("--max-images", type=int, default=50, help="images per class")
    p.add_argument("--size", type=int, default=224, help="input size of the backbone")
    p.add_argument("--out", type=Path, default=Path("results/fig4"), help="output folder")
    args = p.parse_args(argv)
    if args.pascal_root is None:
        roots = build_toy()
        args.pascal_root, args.coco_root = roots["pascal"], roots["coco"]
    pascal, coco = Path(args.pascal_root), Path(args.coco_root)
    backbones = ["efficientnet_lite0"] if args.backbone is None else args.backbone
    weights = [None] * len(backbones) if args.backbone_weights is None else args.backbone_weights
    if len(weights) != len(backbones):
        p.error(
            f"--backbone-weights must be given once per --backbone ({len(backbones)}), "
            f"got {len(weights)}"
        )
    matrices, shifts = {}, {}
    for name, w in zip(backbones, weights):
        enc = Backbone(name, pretrained=w is None, pretrained_file=w).eval()
        kw = dict(size=args.size, mean=enc.mean, std=enc.std, max_images=args.max_images)
        a = class_affinity(
            enc, pascal / "JPEGImages", pascal / "lists" / "val.txt", list(range(1, 21)), **kw
        )
        b = class_affinity(
            enc,
            coco / "val2017",
            coco / "lists" / "val.txt",
            [PASCAL_TO_COCO[c] for c in range(1, 21)],
            **kw,
        )
        matrices[f"{name} / PASCAL"], matrices[f"{name} / COCO"] = a, b
        shifts[name] = affinity_shift(a, b)
    sources = ([] if args.no_minilm else ["minilm"]) + (
        [args.word_vectors] if args.word_vectors else []
    )
    for src in sources:
        label = "MiniLM" if src == "minilm" else Path(src).name
        a = cosine_affinity(class_embedding_table(src, list(PASCAL_CLASSES)))
        b = cosine_affinity(class_embedding_table(src, COCO_NAMES))
        matrices[f"{label} / PASCAL names"], matrices[f"{label} / COCO names"] = a, b
        shifts[label] = affinity_shift(a, b)
    args.out.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(matrices)
    fig, axes = plt.subplots(1, n, figsize=(4.6 * n, 4.9), squeeze=False)
    names = list(PASCAL_CLASSES)
    image = None
    for ax, (title, m) in zip(axes[0], matrices.items()):
        image = ax.imshow(m.numpy(), vmin=0, vmax=1, cmap="viridis")
        ax.set_title(title, fontsize=9)
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
        ax.set_yticks(range(len(names)), names, fontsize=6)
    fig.tight_layout()
    fig.colorbar(image, ax=list(axes[0]), shrink=0.8, label="cosine affinity")
    fig.savefig(args.out / "class_affinity.png", dpi=110)
    result = {
        "mean_abs_change_between_domains": shifts,
        "pascal_root": str(pascal),
        "coco_root": str(coco),
    }
    (args.out / "class_affinity.json").write_text(json.dumps(result, indent=2))
    torch.save({k: v for k, v in matrices.items()}, args.out / "class_affinity.pt")
    for k, v in shifts.items():
        print(f"{k}: mean |affinity change| PASCAL -> COCO = {v:.4f}")
    print(f"figure: {args.out / 'class_affinity.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
