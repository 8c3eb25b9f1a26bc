"""``fewzero-train``: train SM-VCENet (or any registered model) on PASCAL-5i and print the paper's table.

Without --data-root: the toy demo. It builds the embedded toy dataset, trains SM-VCENet, the
DeepLab baseline and few-shot SM-VCENet over EfficientNet-Lite0 with real ImageNet weights
(fewzero[weights]) on a short schedule, and evaluates them (zero-shot; few-shot at 1 and 5 shots)
and an untrained SM-VCENet on the unseen classes. Defaults marked "toy:" in the option list
apply there; every flag given on the command line wins in both modes.

With --data-root (a folder built by `python -m fewzero.data.prepare pascal ...`): the paper's
training (SGD lr 0.0025, momentum 0.9, wd 5e-4, 200 epochs, batch 4, poly 0.9) of --model on
--fold, then evaluation on the fold's fixed test episodes (and PASCAL2COCO with --coco-root).

Few-shot: --model sm_vcenet_fewshot_resnet50 --shots 1 5 trains on 1-shot episodes and
evaluates 1-shot and 5-shot. A run folder that holds a run is refused unless --resume (continue
it; only --lr and --epochs may change, and only when given) or --overwrite.

Multi-GPU/CPU: torchrun --nproc_per_node=N examples/train_pascal5i.py ... (--batch-size is global;
``fewzero-train`` and ``python examples/train_pascal5i.py`` are the same command).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from ..checks import check_dir
from ..models import is_model, list_models
from .checkpoint import write_json_atomic
from .cli import (
    add_run_arguments,
    config_from_args,
    explicit_dests,
    local_device,
    nonnegative_int,
)
from .config import RunConfigError, TrainConfig, apply_model_defaults, resumed_config
from .distributed import cleanup, is_main_process, setup
from .episode_sets import EpisodeSet
from .pascal2coco import (
    PascalCoco,
    ShotsError,
    check_shots,
    eval_settings,
    evaluate_pascal2coco,
    format_table,
)
from .recipes import ModelBuildError, build_model, train_pascal5i
from .run_folder import check_run_dir
from .toy_demo import TOY_EVAL, TOY_MODELS, TOY_PRESET, toy_demo

__all__ = ["build_parser", "main", "resolve_run", "toy_main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``fewzero-train`` argument parser (every flag with its help and default)."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument(
        "--model",
        default="sm_vcenet_resnet50",
        help=f"registered model (toy: a comma-separated list, default {','.join(TOY_MODELS)}); "
        f"one of {list_models()}",
    )
    p.add_argument("--data-root", default=None, help="prepared PASCAL-5i folder (none: toy demo)")
    p.add_argument("--coco-root", default=None, help="prepared COCO-20i folder for PASCAL2COCO")
    p.add_argument(
        "--shots",
        type=nonnegative_int,
        nargs="+",
        default=[0],
        help="support images per episode: train on the first, evaluate on each (0: zero-shot; "
        f"toy: {' '.join(map(str, TOY_EVAL['shots']))} for the few-shot models)",
    )
    add_run_arguments(p, toy_preset=TOY_PRESET)
    return p


def toy_main(
    parser: argparse.ArgumentParser, args: argparse.Namespace, explicit: set[str], start: float
) -> int:
    """The toy demo: the preset fills every flag not given; trains, evaluates, prints the table."""
    for key, value in TOY_PRESET.items():
        if key not in explicit:
            setattr(args, key, value)
    models = args.model.split(",") if "model" in explicit else list(TOY_MODELS)
    unknown = [m for m in models if not is_model(m)]
    if unknown:
        parser.error(f"--model: unknown model(s) {unknown}; one of {list_models()}")
    shots = args.shots if "shots" in explicit else list(TOY_EVAL["shots"])
    try:
        cfg = config_from_args(args, model=models[0])
    except ValueError as err:
        parser.error(str(err))
    print(f"device: {cfg.device}")
    try:
        table, _ = toy_demo(
            cfg,
            models=models,
            shots=shots,
            pretrained=not args.no_pretrained,
            backbone_weights=args.backbone_weights,
            resume=args.resume,
            overwrite=args.overwrite,
            explicit=explicit,
        )
    except (
        FileExistsError,
        FileNotFoundError,
        ModelBuildError,
        RunConfigError,
        ShotsError,
    ) as err:  # checked before any work
        parser.error(str(err))
    print(
        f"\nToy PASCAL2COCO, trained on toy PASCAL-5^{cfg.fold}; unseen-class mIoU / FB-IoU "
        "in % (few-shot rows: K support images per episode):\n"
    )
    print(table)
    print(f"\ntotal {time.perf_counter() - start:.0f} s; results in {cfg.out_dir}/results.md")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``fewzero-train``: the toy demo without ``--data-root``, else one model on PASCAL-5i.

    Parse, resolve the run's config (every flag and folder checked), build and check the model,
    then train and evaluate.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    explicit = explicit_dests(parser, argv)
    start = time.perf_counter()
    if args.data_root is None:
        return toy_main(parser, args, explicit, start)
    cfg = resolve_run(parser, args, explicit)
    setup()
    cfg.device = local_device(cfg.device)
    model = _checked_model(parser, args, cfg)
    if is_main_process():
        print(f"device: {cfg.device}; train shots {cfg.shots}, evaluated at {cfg.eval_shots}")
        if "model_defaults" in cfg.extra:
            print(f"training settings of the model's own recipe: {cfg.extra['model_defaults']}")
    model, trainer = train_pascal5i(
        cfg, args.data_root, resume=args.resume, overwrite=args.overwrite, model=model
    )
    _evaluate_run(model, cfg, args, trainer.out_dir)
    cleanup()
    return 0


def resolve_run(
    parser: argparse.ArgumentParser, args: argparse.Namespace, explicit: set[str]
) -> TrainConfig:
    """The run's config from the flags (and, with ``--resume``, its config.json); ``parser.error`` names the flag."""
    if "," in args.model:
        parser.error("--model takes one model with --data-root (lists are for the toy demo)")
    if not is_model(args.model):
        parser.error(f"--model: unknown model {args.model!r}; one of {list_models()}")
    if "out_dir" not in explicit:
        args.out_dir = f"runs/{args.model}_fold{args.fold}" + (
            f"_{args.shots[0]}shot" if args.shots[0] else ""
        )
    try:
        check_dir(
            args.data_root, "--data-root", " (prepare it with python -m fewzero.data.prepare)"
        )
        if args.coco_root is not None:
            check_dir(args.coco_root, "--coco-root")
        cfg = apply_model_defaults(
            config_from_args(args, model=args.model, shots=args.shots), explicit
        )
        if args.resume:  # every setting not given again comes from the run's config.json
            cfg = resumed_config(cfg, explicit)
        check_run_dir(cfg.out_dir, resume=args.resume, overwrite=args.overwrite, config=cfg)
    except (ValueError, FileExistsError, FileNotFoundError) as err:
        parser.error(str(err))
    return cfg


def _checked_model(
    parser: argparse.ArgumentParser, args: argparse.Namespace, cfg: TrainConfig
) -> torch.nn.Module:
    """The run's model, built, and able to take every shot count it will be scored at."""
    try:
        model = build_model(
            cfg, pretrained=not args.no_pretrained, backbone_weights=args.backbone_weights
        )
    except ModelBuildError as err:
        parser.error(str(err))
    try:
        for k in cfg.eval_shots:  # before any data is read or any step is taken
            check_shots(model, cfg.model, k)
    except ValueError as err:
        parser.error(f"--shots: {err}")
    return model


def _evaluate_run(
    model: torch.nn.Module, cfg: TrainConfig, args: argparse.Namespace, out_dir: Path
) -> None:
    """Score the trained model at every shot count; the main process writes eval.json."""
    rows = []
    episodes = EpisodeSet(write_dir=out_dir / "manifests" if is_main_process() else None)
    data = PascalCoco(args.data_root, args.coco_root, cfg.fold)
    for k in cfg.eval_shots:
        options = dataclasses.replace(eval_settings(cfg), shots=k, episodes=episodes)
        row = evaluate_pascal2coco(model, data, options)
        name = cfg.model if k == 0 else f"{cfg.model} ({k}-shot)"
        rows.append({**row, "name": name, "trained": f"PASCAL-5^{cfg.fold}"})
    if is_main_process():
        episodes.commit()
        write_json_atomic(out_dir / "eval.json", rows)
        print(format_table(rows, coco=args.coco_root is not None))
