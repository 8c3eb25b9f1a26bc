"""Train SM-VCENet (or any registered factory) on PASCAL-5i, as in the paper.

Without --data-root: builds the embedded toy dataset, trains SM-VCENet and the DeepLab baseline
over EfficientNet-Lite0 with real ImageNet weights (fewzero[weights]) on a short schedule,
evaluates them and an untrained SM-VCENet on the unseen classes, and prints the result table.

With --data-root (a folder prepared by `python -m fewzero.data.prepare pascal ...`): the paper's
training (SGD lr 0.0025, momentum 0.9, wd 5e-4, 200 epochs, batch 4, poly 0.9) of --model on
--fold, then evaluation on the fold's 1000 fixed test episodes.

Multi-GPU/CPU: torchrun --nproc_per_node=N examples/train_pascal5i.py ... (--batch-size is global).
"""

import argparse
import json
import os
import sys
import time

import torch

from fewzero.engine import TrainConfig, cleanup, is_main_process, setup
from fewzero.engine.recipes import evaluate_pascal2coco, format_table, toy_demo, train_pascal5i
from fewzero.models import list_models


def parse(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model",
        default=None,
        help=f"registered factory (comma-separated list for the toy demo); one of {list_models()}",
    )
    p.add_argument("--backbone", default=None, help="timm backbone name overriding the factory's")
    p.add_argument("--fold", type=int, default=0)
    p.add_argument(
        "--data-root", default=None, help="prepared PASCAL-5i folder (default: toy data)"
    )
    p.add_argument("--coco-root", default=None, help="prepared COCO-20i folder for PASCAL2COCO")
    p.add_argument(
        "--backbone-weights", default=None, help="local backbone weights (.pth/.safetensors)"
    )
    p.add_argument("--no-pretrained", action="store_true", help="random backbone (tests only)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--steps-per-epoch", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--poly-power", type=float, default=0.9)
    p.add_argument("--crop-size", type=int, default=None)
    p.add_argument("--min-pixels", type=int, default=2 * 32 * 32)
    p.add_argument("--target", default="class", choices=["class", "union"])
    p.add_argument("--episodes", type=int, default=None, help="test episodes per fold")
    p.add_argument("--amp", default=None, choices=["bf16", "fp16"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default=None, help="run folder")
    p.add_argument(
        "--resume", action="store_true", help="continue from the run folder's last checkpoint"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    start = time.perf_counter()
    if args.data_root is None:
        models = (
            args.model.split(",")
            if args.model
            else ["sm_vcenet_efficientnet_lite0", "deeplab_efficientnet_lite0"]
        )
        kw = {
            k: v
            for k, v in dict(
                epochs=args.epochs,
                steps_per_epoch=args.steps_per_epoch,
                batch_size=args.batch_size,
                lr=args.lr,
                crop_size=args.crop_size,
                n_episodes=args.episodes,
            ).items()
            if v is not None
        }
        table, rows = toy_demo(
            out_dir=args.out or "runs/toy",
            models=models,
            fold=args.fold,
            seed=args.seed,
            pretrained=not args.no_pretrained,
            progress=not args.quiet,
            resume=args.resume,
            **kw,
        )
        print(
            f"\nToy PASCAL2COCO, trained on toy PASCAL-5^{args.fold}; unseen-class mIoU / FB-IoU in %:\n"
        )
        print(table)
        print(
            f"\ntotal {time.perf_counter() - start:.0f} s; results in {args.out or 'runs/toy'}/results.md"
        )
        return 0
    setup()
    device = args.device
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    cfg = TrainConfig(
        model=args.model or "sm_vcenet_resnet50",
        backbone=args.backbone,
        fold=args.fold,
        epochs=args.epochs or 200,
        batch_size=args.batch_size or 4,
        lr=args.lr or 0.0025,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        poly_power=args.poly_power,
        crop_size=args.crop_size or 321,
        min_pixels=args.min_pixels,
        target=args.target,
        amp=args.amp,
        channels_last=args.channels_last,
        seed=args.seed,
        num_workers=args.workers,
        max_steps_per_epoch=args.steps_per_epoch,
        device=device,
        progress=not args.quiet,
        out_dir=args.out or f"runs/{args.model or 'sm_vcenet_resnet50'}_fold{args.fold}",
    )
    model, trainer = train_pascal5i(
        cfg,
        args.data_root,
        pretrained=not args.no_pretrained,
        backbone_weights=args.backbone_weights,
        resume=args.resume,
    )
    if is_main_process():
        row = evaluate_pascal2coco(
            model,
            args.data_root,
            args.coco_root,
            args.fold,
            size=cfg.crop_size,
            n_episodes=args.episodes or 1000,
            seed=args.seed,
            device=device,
        )
        row.update(name=cfg.model, trained=f"PASCAL-5^{args.fold}")
        (trainer.out_dir / "eval.json").write_text(json.dumps(row, indent=2, default=str))
        print(format_table([row]))
    cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
