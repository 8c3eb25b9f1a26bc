"""Qualitative figures: image, ground truth and each model's prediction on fixed test episodes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.episodes import EpisodeDataset, collate_episodes
from ..data.io import read_image
from ..predict import tint
from .inputs import episode_inputs, uses_class_ids

__all__ = ["episode_figure", "short_name", "support_swap_figure", "tint"]


def short_name(model: str) -> str:
    """A model name without its backbone, for titles: ``sm_vcenet_resnet50`` -> ``sm_vcenet``."""
    for backbone in ("_efficientnet", "_resnet"):
        model = model.split(backbone)[0]
    return model


def _predict(
    model: nn.Module, episode: dict, size: tuple[int, int], device: torch.device
) -> np.ndarray:
    """The model's mask of one episode at ``size`` (supports dropped for a zero-shot model)."""
    batch = collate_episodes([episode])
    if not getattr(model, "accepts_support", False):
        batch.pop("support_images", None)
        batch.pop("support_masks", None)
    model.eval()
    logits = model(**episode_inputs(batch, device, class_ids=uses_class_ids(model))).float()
    up = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
    return up.argmax(1)[0].cpu().numpy()


def _save(fig: object, path: str | os.PathLike[str]) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()  # type: ignore[attr-defined]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)  # type: ignore[attr-defined]
    plt.close(fig)  # type: ignore[arg-type]
    return path


@torch.no_grad()
def episode_figure(
    dataset: EpisodeDataset,
    models: Sequence[tuple[str, nn.Module]],
    path: str | os.PathLike[str],
    n: int = 4,
    device: str | torch.device = "cpu",
) -> Path:
    """Draw ``n`` episodes as rows: image, truth, then each model's prediction, into ``path``.

    Few-shot models use the episodes' supports (build ``dataset`` with ``shots >= 1``); zero-shot
    models see the query alone. Predictions are scored at the label's original size.

    Args:
        dataset: Test episodes (the first ``n`` are drawn).
        models: ``(column title, model)`` pairs.
        path: PNG to write.
        n: Number of episodes.
        device: Where the models run.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    device = torch.device(device)
    cols = 2 + len(models)
    fig, axes = plt.subplots(n, cols, figsize=(2.1 * cols, 2.1 * n), squeeze=False)
    for i in range(n):
        episode = dataset[i]
        rgb = np.asarray(read_image(dataset.image_dir / f"{episode['name']}.jpg"))
        label = episode["label"].numpy()
        panels = [(rgb, "image"), (tint(rgb, label), f"truth (class {episode['class_id']})")]
        for title, model in models:
            panels.append((tint(rgb, _predict(model, episode, label.shape, device)), title))
        for ax, (img, title) in zip(axes[i], panels):
            ax.imshow(img)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    return _save(fig, path)


def _swap_queries(dataset: EpisodeDataset, n: int) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)`` of two episodes on the same query image with different classes."""
    first: dict[str, int] = {}
    found: list[tuple[int, int]] = []
    used: set[str] = set()
    for i, (name, class_id) in enumerate(dataset.pairs):
        if name in used:
            continue
        j = first.setdefault(name, i)
        if j != i and dataset.pairs[j][1] != class_id:
            found.append((j, i))
            used.add(name)
            if len(found) == n:
                break
    return found


@torch.no_grad()
def support_swap_figure(
    dataset: EpisodeDataset,
    models: Sequence[tuple[str, nn.Module]],
    path: str | os.PathLike[str],
    n: int = 3,
    device: str | torch.device = "cpu",
) -> Path:
    """Draw ``n`` two-class queries, each segmented with a support of either class, into ``path``.

    Each row is one query image that shows two unseen classes A and B: the image, then for
    A and for B the support (its first shot, mask tinted) and each few-shot model's prediction
    with that support, then each zero-shot model's prediction (which cannot depend on the
    support). A model that follows its support segments A in the first half and B in the second.

    Args:
        dataset: Support-swap test episodes (``multi_class=True``, ``shots >= 1``).
        models: ``(column title, model)`` pairs, few-shot and zero-shot.
        path: PNG to write.
        n: Number of query images.
        device: Where the models run.

    Raises:
        ValueError: if the dataset holds fewer than ``n`` two-class queries with supports.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not getattr(dataset, "shots", 0):
        raise ValueError("dataset must carry support sets (shots >= 1) for a support-swap figure")
    rows = _swap_queries(dataset, n)
    if len(rows) < n:
        raise ValueError(f"dataset holds {len(rows)} two-class queries, fewer than n={n}")
    device = torch.device(device)
    fewshot = [(t, m) for t, m in models if getattr(m, "accepts_support", False)]
    zeroshot = [(t, m) for t, m in models if not getattr(m, "accepts_support", False)]
    cols = 1 + 2 * (1 + len(fewshot)) + len(zeroshot)
    fig, axes = plt.subplots(n, cols, figsize=(1.9 * cols, 2.0 * n), squeeze=False)

    for r, pair in enumerate(rows):
        episodes = [dataset[i] for i in pair]
        name = episodes[0]["name"]
        rgb = np.asarray(read_image(dataset.image_dir / f"{name}.jpg"))
        size = episodes[0]["label"].shape
        panels = [(rgb, f"query: {episodes[0]['class_id']} & {episodes[1]['class_id']}")]
        for ep in episodes:
            s_name = ep["support_names"][0]
            s_rgb = np.asarray(read_image(dataset.image_dir / f"{s_name}.jpg"))
            s_mask = dataset.load_target(s_name, ep["class_id"]).numpy()
            panels.append((tint(s_rgb, s_mask, (40, 120, 230)), f"support: class {ep['class_id']}"))
            for title, model in fewshot:
                panels.append((tint(rgb, _predict(model, ep, size, device)), title))
        for title, model in zeroshot:
            panels.append((tint(rgb, _predict(model, episodes[0], size, device)), title))
        for ax, (img, title) in zip(axes[r], panels):
            ax.imshow(img)
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    return _save(fig, path)
