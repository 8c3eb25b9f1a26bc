"""The toy demo: train and evaluate the README's models on the embedded toy data, in minutes.

Every setting comes from [`TrainConfig`][fewzero.engine.TrainConfig]; [`TOY_PRESET`][fewzero.engine.toy_demo.TOY_PRESET] only
overrides the defaults for a short CPU schedule (the command line fills only the flags not
given).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import torch

from ..data import Pascal5i, build_toy, eval_transform
from ..models import FeatureCache, cached_features
from .checkpoint import write_json_atomic, write_text_atomic
from .config import TrainConfig, apply_model_defaults, resumed_config
from .episode_sets import EpisodeSet
from .figures import short_name, support_swap_figure
from .pascal2coco import (
    PascalCoco,
    check_shot_list,
    eval_settings,
    evaluate_pascal2coco,
    format_table,
)
from .recipes import build_model, train_pascal5i, trainable
from .run_folder import check_run_dir

__all__ = [
    "TOY_EVAL",
    "TOY_FEWSHOT_PRESET",
    "TOY_MODELS",
    "TOY_PRESET",
    "toy_demo",
]


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
"""Settings of the toy demo that differ from [`TrainConfig`][fewzero.engine.TrainConfig]'s paper defaults: a short schedule (``epochs x max_steps_per_epoch`` SGD steps) that fits minutes on two CPU cores. ``exclude_unseen`` drops training images that show an unseen class: a toy image's second object is often of an unseen class, and training it as background teaches the model to ignore exactly the objects it is tested on."""
TOY_FEWSHOT_PRESET: dict[str, Any] = {"multi_class_weight": 3}
"""Settings of the toy demo's few-shot models on top of [`TOY_PRESET`][fewzero.engine.toy_demo.TOY_PRESET] (flags given win): training pairs whose image shows two classes of the split weigh three times, since only such queries need the support (measured side by side on the toy data; ``benchmarks/fewshot_comparison.py`` compares the mechanisms)."""
TOY_EVAL: dict[str, Any] = {"shots": (1, 5), "ways": 2}
"""Test settings of the toy demo beyond [`TOY_PRESET`][fewzero.engine.toy_demo.TOY_PRESET]'s ``episodes``: the few-shot evaluation's shots and the ways of its N-way evaluation (at the first shot count)."""
TOY_MODELS = (
    "sm_vcenet_efficientnet_lite0",
    "deeplab_efficientnet_lite0",
    "sm_vcenet_fewshot_efficientnet_lite0",
    "prototype_efficientnet_lite0",
)
"""The models the toy demo trains and scores, in the table's order."""


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

    Every setting comes from ``config`` (the CLI builds it from [`TOY_PRESET`][fewzero.engine.toy_demo.TOY_PRESET] and the flags
    given); each model trains in ``config.out_dir/<model>``. ``shots`` are the few-shot models'
    counts; when ``explicit`` names ``shots`` they are checked against the models built
    ([`ShotsError`][fewzero.engine.pascal2coco.ShotsError]) before any data is read. Few-shot models train on
    ``shots[0]``-shot episodes and are evaluated at every count in ``shots`` (and ``ways``-way
    at ``shots[0]``); zero-shot models train and test without supports; a model with nothing
    to train (the prototype baseline) is evaluated as it is. Every row carries the
    support-swap numbers (IoU on two-class queries and the leak). ``config.episodes`` applies
    to PASCAL-5i and every COCO-20i fold.

    Returns:
        The Markdown table and its rows (also written to ``results.md`` / ``results.json``,
        with ``predictions.png``: two-class queries segmented with a support of each class, and
        ``manifests/``: the episodes of every dataset scored).
    """
    start = time.perf_counter()
    given = list(shots)
    shots = [k for k in given if k > 0] or [1]  # the few-shot models' counts
    out_dir = Path(config.out_dir)
    rows: list[dict[str, Any]] = []
    ev = dataclasses.replace(eval_settings(config), batch_size=config.batch_size)

    # Every model's backbone is the same frozen network: each test image's features are
    # computed once for the whole table (exactly the numbers computed without the cache).
    cache = FeatureCache()

    def row(model: torch.nn.Module, name: str, trained: str, k: int) -> dict[str, Any]:
        label = name if k == 0 else f"{name} ({k}-shot)"
        w = ways if k and k == shots[0] else 1
        with cached_features(model, cache):
            options = dataclasses.replace(ev, shots=k, ways=w, episodes=manifests)
            data = PascalCoco(roots["pascal"], roots["coco"], config.fold)
            res = evaluate_pascal2coco(model, data, options)
        return {"name": label, "trained": trained, **res}

    built = _build_all(config, models, shots, pretrained, backbone_weights, resume, overwrite,
                       explicit)  # fmt: skip
    if explicit is not None and "shots" in explicit:  # --shots against the models built
        fewshot = [n for n, m, _ in built if getattr(m, "requires_support", False)]
        check_shot_list(given, fewshot, models)
    roots = build_toy(toy_root, seed=0, progress=False)
    manifests = _fresh_manifests(out_dir / "manifests")
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
        model, loss = _train(model, cfg, roots["pascal"], resume, overwrite)
        done[name] = model
        trained = f"toy PASCAL-5^{config.fold}"
        rows += [{**row(model, name, trained, k), "final_loss": loss} for k in counts]
    out_dir.mkdir(parents=True, exist_ok=True)
    manifests.commit()
    if done:
        _figure(done, roots["pascal"], config, shots[0], out_dir / "predictions.png")
    return _write_results(out_dir, rows, time.perf_counter() - start), rows


def _write_results(out_dir: Path, rows: list[dict[str, Any]], seconds: float) -> str:
    """The table as Markdown in ``results.md`` and, with its rows, ``results.json``; returns it."""
    table = format_table(rows)
    write_text_atomic(out_dir / "results.md", table + "\n")
    write_json_atomic(out_dir / "results.json", {"rows": rows, "seconds": seconds})
    return table


def _fresh_manifests(folder: Path) -> EpisodeSet:
    """The episodes of this table: a demo run replaces the table and its manifests."""
    for stale in folder.glob("*.jsonl"):
        stale.unlink()
    return EpisodeSet(write_dir=folder)


def _train(
    model: torch.nn.Module, cfg: TrainConfig, root: Path, resume: bool, overwrite: bool
) -> tuple[torch.nn.Module, float]:
    """Train ``model`` on the toy PASCAL-5i; returns it and its final loss.

    A few-shot model's supports take the deterministic test transform: the frozen backbone
    computes each support image once (the same weights and numbers as without the cache).
    """
    fewshot = bool(getattr(model, "requires_support", False))
    with cached_features(model, FeatureCache(max_bytes=2**29) if fewshot else None):
        model, trainer = train_pascal5i(cfg, root, resume=resume, overwrite=overwrite, model=model)
    return model, trainer.history[-1]["loss"]


def _build_all(
    config: TrainConfig,
    models: Sequence[str],
    shots: Sequence[int],
    pretrained: bool,
    backbone_weights: str | None,
    resume: bool,
    overwrite: bool,
    explicit: Collection[str] | None,
) -> list[tuple[str, torch.nn.Module, TrainConfig]]:
    """Every model built and its run folder checked, before any work: ``(name, model, config)``."""
    built = []
    for name in models:
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
            out_dir=str(Path(config.out_dir) / name),
            **extra,
        )
        cfg = apply_model_defaults(cfg, explicit or ())  # HSNet's and DCAMA's own optimisers
        if trainable(model):
            if resume and explicit is not None:
                cfg = resumed_config(cfg, explicit)
            check_run_dir(cfg.out_dir, resume=resume, overwrite=overwrite, config=cfg)
        built.append((name, model, cfg))
    return built


def _figure(
    done: dict[str, torch.nn.Module], pascal: Path, config: TrainConfig, shots: int, path: Path
) -> None:
    """Two-class queries segmented by every model with a support of each class."""
    enc = next(iter(done.values())).encoder
    episodes = Pascal5i(
        pascal, config.fold, "val", shots=shots, n_episodes=None, seed=config.seed,
        min_pixels=config.min_pixels, multi_class=True,
        transform=eval_transform(config.crop_size, mean=enc.mean, std=enc.std),
    )  # fmt: skip
    columns = [
        (short_name(n) + (f" ({shots}-shot)" if getattr(m, "requires_support", False) else ""), m)
        for n, m in done.items()
    ]
    support_swap_figure(episodes, columns, path, device=config.device)
