"""Qualitative figures: image, ground truth and each model's prediction on fixed test episodes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.episodes import EpisodeDataset
from ..data.io import read_image
from ..data.samples import collate_episodes
from ..files import make_parent
from ..layers import label_map
from ..predict import tint
from .inputs import episode_inputs, uses_class_ids

__all__ = [
    "PREDICTION_COLOR",
    "episode_figure",
    "outline",
    "prediction_overlay",
    "short_name",
    "support_overlay",
    "support_swap_figure",
    "tint",
    "truth_overlay",
]

PREDICTION_COLOR = (255, 255, 255)
"""Colour of a prediction in the figures: opaque white inside a black outline, over the image
in dimmed grey, so no object's colour can hide it (the toy classes are saturated hues)."""


def outline(mask: np.ndarray) -> np.ndarray:
    """The boundary of ``mask == 1``: its pixels with a 4-neighbour outside it (``bool (H, W)``)."""
    fg = np.asarray(mask) == 1
    pad = np.pad(fg, 1, constant_values=False)
    inner = pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    return fg & ~inner


def _grey(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` in dimmed grey (float32)."""
    return rgb.astype(np.float32).mean(-1, keepdims=True).repeat(3, -1) * 0.45


def prediction_overlay(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image in dimmed grey, the predicted pixels opaque [`PREDICTION_COLOR`][fewzero.engine.figures.PREDICTION_COLOR] inside a black outline."""
    fg = np.asarray(mask) == 1
    out = np.where(fg[..., None], np.asarray(PREDICTION_COLOR, np.float32), _grey(rgb))
    out = out.round().astype(np.uint8)
    out[outline(mask)] = 0
    return out


def truth_overlay(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image in its colours with the ground truth's boundary drawn in white, two pixels wide."""
    edge = outline(mask)
    edge[1:] |= edge[:-1]
    edge[:, 1:] |= edge[:, :-1]
    out = rgb.copy()
    out[edge] = 255
    return out


def support_overlay(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A support image that shows which object its mask names.

    The masked object keeps its colours inside a white outline; everything else is grey and
    dimmed, so the named object stands out whatever its colour.
    """
    fg = np.asarray(mask) == 1
    out = np.where(fg[..., None], rgb.astype(np.float32), _grey(rgb)).round().astype(np.uint8)
    out[outline(mask)] = 255
    return out


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
    return label_map(up)[0].cpu().numpy()


def _save(fig: object, path: str | os.PathLike[str]) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()  # type: ignore[attr-defined]
    path = make_parent(path)
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
        panels = [
            (rgb, "image"),
            (prediction_overlay(rgb, label), f"truth (class {episode['class_id']})"),
        ]
        for title, model in models:
            pred = _predict(model, episode, label.shape, device)
            panels.append((prediction_overlay(rgb, pred), title))
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
    n: int = 2,
    device: str | torch.device = "cpu",
) -> Path:
    """Draw ``n`` two-class queries, each segmented with a support of either class, into ``path``.

    Each query image shows two unseen classes A and B and takes two rows, one per class. Four
    columns: the query with that class's ground truth outlined in white; the support (the
    named object in colour inside a white outline, the rest grey,
    [`support_overlay`][fewzero.engine.figures.support_overlay]); the prediction of the first
    few-shot model given that support; and one comparison, the first zero-shot model (which
    cannot follow the support) or else the second few-shot model (without a few-shot model:
    the first two zero-shot models). Predictions are opaque white
    inside a black outline over the image in grey
    ([`prediction_overlay`][fewzero.engine.figures.prediction_overlay]). A model that follows
    its support marks A in the first row of a query and B in the second.

    Args:
        dataset: Support-swap test episodes (``multi_class=True``, ``shots >= 1``).
        models: ``(column title, model)`` pairs; at least one few-shot model.
        path: PNG to write.
        n: Number of query images.
        device: Where the models run.

    Raises:
        ValueError: if the dataset holds fewer than ``n`` two-class queries with supports, or
            ``models`` is empty.
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
    # the first few-shot model and one comparison (a zero-shot one, else the next few-shot);
    # without a few-shot model, the first two zero-shot ones
    shown = [fewshot[0], *(zeroshot[:1] or fewshot[1:2])] if fewshot else zeroshot[:2]
    if not shown:
        raise ValueError("models must hold at least one (title, model) pair")
    heads = ["query, ground truth", "support", *(t for t, _ in shown)]
    fig, axes = plt.subplots(2 * n, len(heads), figsize=(2.9 * len(heads), 2.7 * 2 * n),
                             squeeze=False)  # fmt: skip
    for q, pair in enumerate(rows):
        episodes = [dataset[i] for i in pair]
        name = episodes[0]["name"]
        rgb = np.asarray(read_image(dataset.image_dir / f"{name}.jpg"))
        size = episodes[0]["label"].shape
        for w, ep in enumerate(episodes):
            r = 2 * q + w
            s_name = ep["support_names"][0]
            s_rgb = np.asarray(read_image(dataset.image_dir / f"{s_name}.jpg"))
            s_mask = dataset.load_target(s_name, ep["class_id"]).numpy()
            panels = [truth_overlay(rgb, ep["label"].numpy()), support_overlay(s_rgb, s_mask)]
            panels += [prediction_overlay(rgb, _predict(m, ep, size, device)) for _, m in shown]
            for c, (ax, img) in enumerate(zip(axes[r], panels)):
                ax.imshow(img)
                if r == 0:
                    ax.set_title(heads[c], fontsize=12)
                ax.set_xticks([])
                ax.set_yticks([])
            way = "AB"[w]
            axes[r][0].set_ylabel(f"{way} = class {ep['class_id']}", fontsize=12)
    fig.tight_layout()
    return _save(fig, path)
