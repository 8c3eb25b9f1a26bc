"""End-to-end recipes: train on PASCAL-5i, evaluate PASCAL-5i and PASCAL2COCO, the toy demo.

The example scripts in ``examples/`` are thin command lines over these functions.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..data import Coco20i, Pascal5i, build_toy, eval_transform, train_transform
from ..data.classes import COCO_CLASSES, PASCAL_CLASSES
from ..models import create_model, load_model_state, needs_class_embeddings
from ..text import class_embedding_table
from . import distributed
from .checkpoint import load_checkpoint
from .evaluate import evaluate
from .trainer import TrainConfig, Trainer

__all__ = [
    "build_model",
    "default_toy_root",
    "evaluate_pascal2coco",
    "format_table",
    "load_trained_model",
    "toy_demo",
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
) -> torch.nn.Module:
    """Create ``config.model`` (optionally over ``config.backbone``) with backbone weights."""
    kwargs: dict[str, Any] = dict(config.extra.get("model_kwargs", {}))
    if needs_class_embeddings(config.model):
        source = config.extra.get("embedding_source", "minilm")
        kwargs.update(
            class_embeddings=class_embedding_table(source, PASCAL_CLASSES), embedding_source=source
        )
    if backbone_weights is not None:
        kwargs["pretrained_file"] = backbone_weights
    elif pretrained:
        kwargs["pretrained"] = True
    return create_model(config.model, backbone=config.backbone, **kwargs)


def train_pascal5i(
    config: TrainConfig,
    data_root: str | os.PathLike[str],
    pretrained: bool = True,
    backbone_weights: str | None = None,
    resume: bool = False,
) -> tuple[torch.nn.Module, Trainer]:
    """Train ``config.model`` on PASCAL-5i fold ``config.fold``; returns the model and trainer."""
    torch.manual_seed(config.seed)
    model = build_model(config, pretrained=pretrained, backbone_weights=backbone_weights)
    enc = model.encoder
    train_set = Pascal5i(
        data_root,
        config.fold,
        "train",
        transform=train_transform(config.crop_size, mean=enc.mean, std=enc.std),
        min_pixels=config.min_pixels,
        target=config.target,
        exclude_unseen=config.exclude_unseen,
    )
    trainer = Trainer(model, train_set, config)
    if resume and trainer.resume() and distributed.is_main_process():
        print(f"resumed from {trainer.checkpoint_path} at epoch {trainer.epoch}")
    trainer.fit()
    return model, trainer


def load_trained_model(
    checkpoint: str | os.PathLike[str], device: str = "cpu"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild a model from a training checkpoint (architecture from its saved config)."""
    state = load_checkpoint(checkpoint, map_location=device)
    cfg = state["config"]
    model = create_model(
        cfg["model"], backbone=cfg.get("backbone"), **cfg.get("extra", {}).get("model_kwargs", {})
    )
    load_model_state(model, state["model"], state.get("model_config"))
    return model.to(device).eval(), cfg


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
) -> dict[str, Any]:
    """PASCAL-5^fold mIoU/FB-IoU and COCO-20^j mIoU for every ``j`` (one row of Table 1)."""
    enc = model.encoder
    tf = eval_transform(size, mean=enc.mean, std=enc.std)
    kw = dict(transform=tf, n_episodes=n_episodes, seed=seed, min_pixels=min_pixels)
    row: dict[str, Any] = {
        "fold": fold,
        "split": "val",
        "class_split": class_split,
        "episodes": n_episodes,
        "seed": seed,
        "size": size,
        "min_pixels": min_pixels,
    }
    if pascal_root is not None:
        res = evaluate(
            model, Pascal5i(pascal_root, fold, "val", **kw), batch_size=batch_size, device=device
        )
        row["pascal_miou"], row["pascal_fbiou"] = res["miou"], res["fbiou"]
    if coco_root is not None:
        row["coco"] = {}
        conditioned = getattr(model, "conditioned", False)
        if conditioned:  # L-ZSSS baselines score COCO's classes with COCO's class embeddings
            pascal_table = model.class_embeddings.clone()
            model.set_class_embeddings(
                class_embedding_table(model.config["embedding_source"], COCO_CLASSES)
            )
        try:
            for j in coco_folds:
                res = evaluate(
                    model,
                    Coco20i(coco_root, j, "val", class_split=class_split, **kw),
                    batch_size=batch_size,
                    device=device,
                )
                row["coco"][j] = res["miou"]
        finally:
            if conditioned:
                model.set_class_embeddings(pascal_table)
        row["coco_miou"] = sum(row["coco"].values()) / len(row["coco"])
    return row


def format_table(rows: Sequence[dict[str, Any]], coco_folds: Sequence[int] = (0, 1, 2, 3)) -> str:
    """Markdown table in the layout of the paper's Table 1 (values in percent)."""

    def pct(v: Any) -> str:
        return "-" if v is None else f"{100 * v:.2f}"

    head = (
        ["model", "trained", "PASCAL-5i mIoU", "FB-IoU"]
        + [f"COCO-20^{j}" for j in coco_folds]
        + ["COCO mIoU"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        coco = r.get("coco", {})
        cells = [
            r["name"],
            r.get("trained", ""),
            pct(r.get("pascal_miou")),
            pct(r.get("pascal_fbiou")),
        ]
        cells += [pct(coco.get(j)) for j in coco_folds] + [pct(r.get("coco_miou"))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _toy_row(model, name, trained, roots, fold, eval_kw, coco_episodes) -> dict[str, Any]:
    row = evaluate_pascal2coco(model, roots["pascal"], None, fold, **eval_kw)
    coco = evaluate_pascal2coco(
        model, None, roots["coco"], fold, **{**eval_kw, "n_episodes": coco_episodes}
    )
    return {
        "name": name,
        "trained": trained,
        **row,
        "coco": coco["coco"],
        "coco_miou": coco["coco_miou"],
    }


def toy_demo(
    out_dir: str | os.PathLike[str] = "runs/toy",
    toy_root: str | os.PathLike[str] | None = None,
    models: Sequence[str] = ("sm_vcenet_efficientnet_lite0", "deeplab_efficientnet_lite0"),
    fold: int = 0,
    epochs: int = 4,
    steps_per_epoch: int = 40,
    batch_size: int = 8,
    lr: float = 0.02,
    crop_size: int = 128,
    n_episodes: int = 300,
    coco_episodes: int = 200,
    seed: int = 0,
    pretrained: bool = True,
    progress: bool = True,
    resume: bool = False,
    exclude_unseen: bool = True,
) -> tuple[str, list[dict[str, Any]]]:
    """Build the toy data, train each model, evaluate it and an untrained one; returns the table.

    The short schedule (``epochs x steps_per_epoch`` SGD steps of ``batch_size``) keeps the whole
    demo within minutes on two CPU cores. ``exclude_unseen`` (on here, off by default in
    :class:`~fewzero.data.Pascal5i`) drops training images that show an unseen class: a toy
    image's second object is often of an unseen class, and training it as background teaches the
    model to ignore exactly the objects it is tested on.
    """
    start = time.perf_counter()
    toy_root = Path(toy_root) if toy_root is not None else default_toy_root()
    roots = build_toy(toy_root, seed=0, progress=False)
    out_dir = Path(out_dir)
    rows: list[dict[str, Any]] = []
    eval_kw = dict(size=crop_size, n_episodes=n_episodes, seed=seed, min_pixels=64)
    for i, name in enumerate(models):
        cfg = TrainConfig(
            model=name,
            fold=fold,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            crop_size=crop_size,
            min_pixels=64,
            seed=seed,
            max_steps_per_epoch=steps_per_epoch,
            exclude_unseen=exclude_unseen,
            out_dir=str(out_dir / name),
            progress=progress,
        )
        model, trainer = train_pascal5i(cfg, roots["pascal"], pretrained=pretrained, resume=resume)
        if i == 0:
            torch.manual_seed(seed)
            rows.append(
                _toy_row(
                    build_model(cfg, pretrained=pretrained),
                    f"{name} (untrained)",
                    "-",
                    roots,
                    fold,
                    eval_kw,
                    coco_episodes,
                )
            )
        row = _toy_row(model, name, f"toy PASCAL-5^{fold}", roots, fold, eval_kw, coco_episodes)
        rows.append({**row, "final_loss": trainer.history[-1]["loss"]})
    table = format_table(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.md").write_text(table + "\n")
    (out_dir / "results.json").write_text(
        json.dumps({"rows": rows, "seconds": time.perf_counter() - start}, indent=2, default=str)
    )
    return table, rows
