"""Evaluation protocols: PASCAL-5i and PASCAL2COCO rows, the test settings a run implies, tables.

A protocol is a function of a model and datasets that returns a row dictionary recording every
setting it depends on; [`format_table`][fewzero.engine.protocols.format_table] prints rows in the paper's layout.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Sequence
from typing import Any

import torch

from ..data import Coco20i, Pascal5i, eval_transform
from ..data.classes import COCO_CLASSES
from ..models import SegmentationModel
from ..text import class_embedding_table
from .config import TrainConfig
from .evaluate import evaluate

__all__ = ["ShotsError", "check_shots", "eval_settings", "evaluate_pascal2coco", "format_table"]


class ShotsError(ValueError):
    """A shot count the model cannot use (``--shots`` on the command line)."""


def check_shots(model: torch.nn.Module, name: str, shots: int) -> None:
    """Refuse a shot count the model cannot use (naming ``--shots``).

    Raises:
        ShotsError: a few-shot model with ``shots=0`` or a zero-shot model with ``shots > 0``.
    """
    if getattr(model, "requires_support", False) and shots < 1:
        raise ShotsError(
            f"shots must be >= 1 for the few-shot model {name!r} (--shots K), got {shots}"
        )
    if not getattr(model, "accepts_support", False) and shots > 0:
        raise ShotsError(
            f"shots must be 0 for the zero-shot model {name!r}, got {shots}; few-shot models: "
            "sm_vcenet_fewshot_* or class_source='support'"
        )


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
    once per episode, [`NWayIoUMeter`][fewzero.metrics.NWayIoUMeter]).
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
        coco_model = model
        if isinstance(model, SegmentationModel) and model.requires_class_ids:
            # L-ZSSS baselines score COCO's classes with COCO's class embeddings: a copy of the
            # model with COCO's table (the caller's model is never modified)
            coco_model = copy.deepcopy(model)
            coco_model.set_class_embeddings(
                class_embedding_table(model.config["embedding_source"], COCO_CLASSES)
            )
        for j in coco_folds:
            ds = Coco20i(coco_root, j, "val", class_split=class_split, **kw)
            row["coco"][j] = evaluate(coco_model, ds, desc=f"COCO-20^{j}", **ev)["miou"]
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
