"""End-to-end recipes: train on PASCAL-5i, evaluate PASCAL-5i and PASCAL2COCO, the toy demo.

The example scripts in ``examples/`` are thin command lines over these functions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import warnings
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import torch

from ..data import Coco20i, Pascal5i, build_toy, eval_transform, train_transform
from ..data.classes import COCO_CLASSES
from ..models import FeatureCache, SegmentationModel, cached_features, create_model
from ..text import class_embedding_table
from . import distributed
from .checkpoint import write_json_atomic, write_text_atomic
from .evaluate import evaluate
from .figures import short_name, support_swap_figure
from .trainer import TrainConfig, Trainer, check_run_dir

__all__ = [
    "TOY_EVAL",
    "TOY_FEWSHOT_PRESET",
    "TOY_MODELS",
    "TOY_PRESET",
    "build_model",
    "check_shots",
    "default_toy_root",
    "eval_settings",
    "evaluate_pascal2coco",
    "format_table",
    "FLAG_FIELDS",
    "resumed_config",
    "toy_demo",
    "trainable",
    "train_pascal5i",
]


def default_toy_root() -> Path:
    """Cache folder of the embedded toy data (``$FEWZERO_CACHE`` or ``~/.cache/fewzero``)."""
    base = os.environ.get("FEWZERO_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "fewzero"
    )
    return Path(base) / "toy"


def build_model(
    config: TrainConfig, pretrained: bool = False, backbone_weights: str | None = None
) -> SegmentationModel:
    """Create ``config.model`` (over ``config.backbone``, with ``config.model_kwargs``).

    Args:
        config: Run settings.
        pretrained: ImageNet backbone weights (offline for ``efficientnet_lite0``).
        backbone_weights: A local weights file instead (loaded strictly by fewzero).
    """
    kwargs: dict[str, Any] = dict(config.model_kwargs)
    if backbone_weights is not None:
        kwargs["pretrained_file"] = backbone_weights
    elif pretrained:
        kwargs["pretrained"] = True
    return create_model(config.model, backbone=config.backbone, **kwargs)  # type: ignore[return-value]


def check_shots(model: torch.nn.Module, name: str, shots: int) -> None:
    """Refuse a shot count the model cannot use (naming ``--shots``).

    Raises:
        ValueError: a few-shot model with ``shots=0`` or a zero-shot model with ``shots > 0``.
    """
    if getattr(model, "requires_support", False) and shots < 1:
        raise ValueError(
            f"shots must be >= 1 for the few-shot model {name!r} (--shots K), got {shots}"
        )
    if not getattr(model, "accepts_support", False) and shots > 0:
        raise ValueError(
            f"shots must be 0 for the zero-shot model {name!r}, got {shots}; few-shot models: "
            "sm_vcenet_fewshot_* or class_source='support'"
        )


def train_pascal5i(
    config: TrainConfig,
    data_root: str | os.PathLike[str],
    pretrained: bool = True,
    backbone_weights: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    explicit: Collection[str] | None = None,
    model: torch.nn.Module | None = None,
) -> tuple[torch.nn.Module, Trainer]:
    """Train ``config.model`` on PASCAL-5i fold ``config.fold``; returns the model and trainer.

    Few-shot models (``config.shots = K``) train on K-shot episodes; supports are resized whole
    (no random crop), so each keeps its object.

    Args:
        config: Run settings.
        data_root: Prepared PASCAL-5i folder.
        pretrained: ImageNet backbone weights.
        backbone_weights: Local backbone weights instead.
        resume: Continue the run in ``config.out_dir`` (its checkpoint must exist).
        overwrite: Replace a run in ``config.out_dir``.
        explicit: With ``resume``: the fields the user set explicitly; every other field is
            taken from the saved run, so only what was asked for can change.
        model: The model to train, already built from ``config`` (default: built here).

    Raises:
        ValueError: a shot count the model cannot use (``--shots``), or a model with nothing
            to train.
    """
    if resume and explicit is not None:
        config = resumed_config(config, explicit)
    check_run_dir(config.out_dir, resume=resume, overwrite=overwrite, config=config)
    torch.manual_seed(config.seed)
    if model is None:
        model = build_model(config, pretrained=pretrained, backbone_weights=backbone_weights)
    if not trainable(model):
        raise ValueError(
            f"model {config.model!r} has no trainable parameters (a training-free baseline): "
            f"use it as built (fewzero-segment --model {config.model}, or Predictor/evaluate on "
            "create_model(..., pretrained=True))"
        )
    for k in config.eval_shots:
        check_shots(model, config.model, k)
    enc = model.encoder
    train_set = Pascal5i(
        data_root,
        config.fold,
        "train",
        transform=train_transform(config.crop_size, mean=enc.mean, std=enc.std),
        support_transform=eval_transform(config.crop_size, mean=enc.mean, std=enc.std),
        min_pixels=config.min_pixels,
        target=config.target,
        exclude_unseen=config.exclude_unseen,
        shots=config.shots,
        multi_class_weight=config.multi_class_weight,
    )
    trainer = Trainer(model, train_set, config, overwrite=overwrite)
    if resume:
        if not trainer.resume():
            raise FileNotFoundError(
                f"resume: no checkpoint to resume in {str(trainer.out_dir)!r} "
                f"({trainer.checkpoint_path.name} is missing)"
            )
        if distributed.is_main_process():
            print(f"resumed from {trainer.checkpoint_path} at epoch {trainer.epoch}")
    trainer.fit()
    return model, trainer


#: Config fields set by a command-line flag of another name (``--shots`` sets both).
FLAG_FIELDS: dict[str, tuple[str, ...]] = {"quiet": ("progress",), "shots": ("shots", "eval_shots")}


def resumed_config(config: TrainConfig, explicit: Collection[str]) -> TrainConfig:
    """``config`` with every field not in ``explicit`` taken from the run saved in its folder.

    ``explicit`` names the flags' destinations given on the command line (:data:`FLAG_FIELDS`
    maps those that set fields of another name), so a resumed run keeps every setting it
    recorded (shots, eval shots, episodes, ...) unless a flag asks for another.
    """
    path = Path(config.out_dir) / "config.json"
    if not path.is_file():
        return config
    saved = json.loads(path.read_text())
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    keep = {"out_dir"}
    for dest in explicit:
        keep.update(FLAG_FIELDS.get(dest, (dest,)))
    merged = {k: v for k, v in saved.items() if k in fields and k not in keep}
    return dataclasses.replace(config, **merged)


def evaluate_pascal2coco(
    model: torch.nn.Module,
    pascal_root: str | os.PathLike[str] | None,
    coco_root: str | os.PathLike[str] | None,
    fold: int,
    size: int = 321,
    n_episodes: int = 1000,
    seed: int = 0,
    min_pixels: int = 2 * 32 * 32,
    class_split: str = "fwb",
    coco_folds: Sequence[int] = (0, 1, 2, 3),
    batch_size: int = 8,
    device: str = "cpu",
    shots: int = 0,
    progress: bool = False,
    amp: str | None = None,
    support_swap: bool = True,
    ways: int = 1,
) -> dict[str, Any]:
    """PASCAL-5^fold mIoU/FB-IoU and COCO-20^j mIoU for every ``j`` (one row of Table 1).

    ``n_episodes`` applies to every dataset. With ``shots = K`` the episodes are K-shot (the
    model must take a support set).

    ``support_swap`` adds the support-swap protocol on PASCAL-5^fold: test episodes whose query
    also shows another unseen class (``multi_class=True``; each such image is an episode of each
    of its classes, so the support swaps between them). ``pascal_swap_iou`` is the mIoU with the
    episode's class on those queries and ``pascal_leak`` the share of the other classes' pixels
    predicted as the episode's class. A zero-shot model gets the same numbers as its baseline:
    it cannot know which class is meant, so it leaks about half. ``ways = N > 1`` (few-shot
    models) also scores N-way episodes over the same queries (``pascal_nway_miou``: each class
    once per episode, :class:`~fewzero.metrics.NWayIoUMeter`).
    """
    check_shots(model, type(model).__name__, shots)
    enc = model.encoder
    tf = eval_transform(size, mean=enc.mean, std=enc.std)
    kw = dict(transform=tf, n_episodes=n_episodes, seed=seed, min_pixels=min_pixels, shots=shots)
    ev = dict(batch_size=batch_size, device=device, progress=progress, amp=amp)
    row: dict[str, Any] = {
        "fold": fold,
        "split": "val",
        "class_split": class_split,
        "episodes": n_episodes,
        "seed": seed,
        "size": size,
        "min_pixels": min_pixels,
        "shots": shots,
    }
    if ways > 1 and shots < 1:
        raise ValueError(f"ways={ways} needs a few-shot evaluation (shots >= 1), got shots={shots}")
    if pascal_root is not None:
        res = evaluate(
            model, Pascal5i(pascal_root, fold, "val", **kw), desc=f"PASCAL-5^{fold}", **ev
        )
        row["pascal_miou"], row["pascal_fbiou"] = res["miou"], res["fbiou"]
        if support_swap:
            try:
                swap = Pascal5i(pascal_root, fold, "val", multi_class=True, **kw)
            except ValueError as err:  # no query shows two unseen classes with min_pixels
                warnings.warn(f"support-swap numbers left out: {err}", stacklevel=2)
                row["pascal_swap_iou"] = row["pascal_leak"] = None
                row["pascal_swap_episodes"] = 0
                swap = None
            if swap is not None:
                res = evaluate(model, swap, desc=f"PASCAL-5^{fold} support swap", **ev)
                row["pascal_swap_iou"], row["pascal_leak"] = res["miou"], res["leak"]
                row["pascal_swap_episodes"] = res["episodes"]
        if ways > 1:
            row["ways"], row["pascal_nway_miou"] = ways, None
            try:
                nway = Pascal5i(pascal_root, fold, "val", multi_class=True, ways=ways, **kw)
            except ValueError as err:
                warnings.warn(f"{ways}-way numbers left out: {err}", stacklevel=2)
            else:
                res = evaluate(model, nway, desc=f"PASCAL-5^{fold} {ways}-way", **ev)
                row["pascal_nway_miou"] = res["miou"]
    if coco_root is not None:
        row["coco"] = {}
        word = isinstance(model, SegmentationModel) and model.requires_class_ids
        if word:  # L-ZSSS baselines score COCO's classes with COCO's class embeddings
            pascal_table = model.class_embeddings.clone()
            model.set_class_embeddings(
                class_embedding_table(model.config["embedding_source"], COCO_CLASSES)
            )
        try:
            for j in coco_folds:
                ds = Coco20i(coco_root, j, "val", class_split=class_split, **kw)
                row["coco"][j] = evaluate(model, ds, desc=f"COCO-20^{j}", **ev)["miou"]
        finally:
            if word:
                model.set_class_embeddings(pascal_table)
        row["coco_miou"] = sum(row["coco"].values()) / len(row["coco"])
    return row


def eval_settings(config: TrainConfig) -> dict[str, Any]:
    """The test settings a run implies: size, episodes, seed, min_pixels, device, progress, amp."""
    return dict(
        size=config.crop_size,
        n_episodes=config.episodes,
        seed=config.seed,
        min_pixels=config.min_pixels,
        device=config.device,
        progress=config.progress,
        amp=config.amp,
    )


def format_table(
    rows: Sequence[dict[str, Any]], coco_folds: Sequence[int] = (0, 1, 2, 3), coco: bool = True
) -> str:
    """Markdown table in the layout of the paper's Table 1 (values in percent).

    ``coco=False`` leaves out the COCO-20i columns (PASCAL-5i only, Table 2's layout). Rows with
    the support-swap numbers add "2-class IoU" (IoU with the episode's class on queries that show
    another unseen class) and "leak" (share of that other class predicted as the episode's);
    rows with N-way numbers add "2-way mIoU".
    """

    def pct(v: Any) -> str:
        return "-" if v is None else f"{100 * v:.2f}"

    head = ["model", "trained", "PASCAL-5i mIoU", "FB-IoU"]
    swap = any("pascal_swap_iou" in r for r in rows)
    nway = any("pascal_nway_miou" in r for r in rows)
    if swap:
        head += ["2-class IoU", "leak"]
    if nway:
        head += ["2-way mIoU"]
    if coco:
        head += [f"COCO-20^{j}" for j in coco_folds] + ["COCO mIoU"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r["name"],
            r.get("trained", ""),
            pct(r.get("pascal_miou")),
            pct(r.get("pascal_fbiou")),
        ]
        if swap:
            cells += [pct(r.get("pascal_swap_iou")), pct(r.get("pascal_leak"))]
        if nway:
            cells += [pct(r.get("pascal_nway_miou"))]
        if coco:
            folds = r.get("coco", {})
            cells += [pct(folds.get(j)) for j in coco_folds] + [pct(r.get("coco_miou"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: Settings of the toy demo that differ from :class:`TrainConfig`'s paper defaults: a short
#: schedule (``epochs x max_steps_per_epoch`` SGD steps) that fits minutes on two CPU cores.
#: ``exclude_unseen`` drops training images that show an unseen class: a toy image's second
#: object is often of an unseen class, and training it as background teaches the model to ignore
#: exactly the objects it is tested on.
TOY_PRESET: dict[str, Any] = {
    "epochs": 4,
    "max_steps_per_epoch": 40,
    "episodes": 60,
    "batch_size": 8,
    "lr": 0.02,
    "crop_size": 96,
    "min_pixels": 64,
    "exclude_unseen": True,
    "num_workers": 0,  # toy images are small: worker IPC costs more than decoding
    "out_dir": "runs/toy",
}
#: Settings of the toy demo's few-shot models on top of :data:`TOY_PRESET` (flags given win):
#: training pairs whose image shows two classes of the split weigh three times, since only such
#: queries need the support (measured in ``examples/fewshot_candidates.py``).
TOY_FEWSHOT_PRESET: dict[str, Any] = {"multi_class_weight": 3}
#: Test settings of the toy demo beyond :data:`TOY_PRESET`'s ``episodes``: the few-shot
#: evaluation's shots and the ways of its N-way evaluation (at the first shot count).
TOY_EVAL: dict[str, Any] = {"shots": (1, 5), "ways": 2}
TOY_MODELS = (
    "sm_vcenet_efficientnet_lite0",
    "deeplab_efficientnet_lite0",
    "sm_vcenet_fewshot_efficientnet_lite0",
    "prototype_efficientnet_lite0",
)


def trainable(model: torch.nn.Module) -> bool:
    """Whether ``model`` has parameters to train (the prototype baseline has none)."""
    return any(p.requires_grad for p in model.parameters())


def toy_demo(
    config: TrainConfig,
    models: Sequence[str] = TOY_MODELS,
    shots: Sequence[int] = TOY_EVAL["shots"],
    toy_root: str | os.PathLike[str] | None = None,
    pretrained: bool = True,
    backbone_weights: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    explicit: Collection[str] | None = None,
    ways: int = TOY_EVAL["ways"],
) -> tuple[str, list[dict[str, Any]]]:
    """Build the toy data, train each model, evaluate it (and an untrained first model).

    Every setting comes from ``config`` (the CLI builds it from :data:`TOY_PRESET` and the flags
    given); each model trains in ``config.out_dir/<model>``. Few-shot models train on
    ``shots[0]``-shot episodes and are evaluated at every count in ``shots`` (and ``ways``-way
    at ``shots[0]``); zero-shot models train and test without supports; a model with nothing
    to train (the prototype baseline) is evaluated as it is. Every row carries the
    support-swap numbers (IoU on two-class queries and the leak). ``config.episodes`` applies
    to PASCAL-5i and every COCO-20i fold.

    Returns:
        The Markdown table and its rows (also written to ``results.md`` / ``results.json``,
        with ``predictions.png``: two-class queries segmented with a support of each class).
    """
    start = time.perf_counter()
    out_dir = Path(config.out_dir)
    toy_root = Path(toy_root) if toy_root is not None else default_toy_root()
    rows: list[dict[str, Any]] = []
    ev = dict(eval_settings(config), batch_size=config.batch_size)

    # Every model's backbone is the same frozen network: each test image's features are
    # computed once for the whole table (exactly the numbers computed without the cache).
    cache = FeatureCache()

    def row(model: torch.nn.Module, name: str, trained: str, k: int) -> dict[str, Any]:
        label = name if k == 0 else f"{name} ({k}-shot)"
        w = ways if k and k == shots[0] else 1
        with cached_features(model, cache):
            res = evaluate_pascal2coco(
                model, roots["pascal"], roots["coco"], config.fold, shots=k, ways=w, **ev
            )
        return {"name": label, "trained": trained, **res}

    built = []
    for name in models:  # every model is built and its run folder checked before any work
        torch.manual_seed(config.seed)
        model = build_model(
            dataclasses.replace(config, model=name),
            pretrained=pretrained,
            backbone_weights=backbone_weights,
        )
        fewshot = bool(getattr(model, "requires_support", False))
        extra = {
            k: v for k, v in TOY_FEWSHOT_PRESET.items() if fewshot and k not in (explicit or ())
        }
        cfg = dataclasses.replace(
            config,
            model=name,
            shots=shots[0] if fewshot else 0,
            eval_shots=list(shots) if fewshot else [0],
            out_dir=str(out_dir / name),
            **extra,
        )
        if trainable(model):
            if resume and explicit is not None:
                cfg = resumed_config(cfg, explicit)
            check_run_dir(cfg.out_dir, resume=resume, overwrite=overwrite, config=cfg)
        built.append((name, model, cfg))
    roots = build_toy(toy_root, seed=0, progress=False)
    done: dict[str, torch.nn.Module] = {}
    for i, (name, model, cfg) in enumerate(built):
        fewshot = bool(getattr(model, "requires_support", False))
        counts = shots if fewshot else (0,)
        if not trainable(model):  # training-free: evaluated as built
            model = model.to(config.device)
            rows += [row(model, name, "- (training-free)", k) for k in counts]
            done[name] = model
            continue
        if i == 0:  # the first model before training: what ImageNet features alone give
            rows += [row(model.to(config.device), f"{name} (untrained)", "-", k) for k in counts]
        # a few-shot model's supports take the deterministic test transform: the frozen backbone
        # computes each support image once (the same weights and numbers as without the cache)
        with cached_features(model, FeatureCache(max_bytes=2**29) if fewshot else None):
            model, trainer = train_pascal5i(
                cfg, roots["pascal"], resume=resume, overwrite=overwrite, model=model
            )
        done[name] = model
        for k in counts:
            rows.append(
                {
                    **row(model, name, f"toy PASCAL-5^{config.fold}", k),
                    "final_loss": trainer.history[-1]["loss"],
                }
            )
    table = format_table(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    if done:
        enc = next(iter(done.values())).encoder
        episodes = Pascal5i(
            roots["pascal"], config.fold, "val", shots=shots[0], n_episodes=None,
            seed=config.seed, min_pixels=config.min_pixels, multi_class=True,
            transform=eval_transform(config.crop_size, mean=enc.mean, std=enc.std),
        )  # fmt: skip
        columns = [
            (
                short_name(n)
                + (f" ({shots[0]}-shot)" if getattr(m, "requires_support", False) else ""),
                m,
            )
            for n, m in done.items()
        ]
        support_swap_figure(episodes, columns, out_dir / "predictions.png", device=config.device)
    write_text_atomic(out_dir / "results.md", table + "\n")
    write_json_atomic(
        out_dir / "results.json", {"rows": rows, "seconds": time.perf_counter() - start}
    )
    return table, rows
