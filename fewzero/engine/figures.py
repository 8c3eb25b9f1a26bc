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
from .inputs import episode_inputs

__all__ = ["episode_figure", "tint"]


def tint(
    rgb: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] = (255, 40, 40)
) -> np.ndarray:
    """``rgb (H, W, 3)`` uint8 with the pixels where ``mask == 1`` tinted ``color``."""
    out = rgb.astype(np.float32).copy()
    fg = mask == 1
    out[fg] = 0.45 * out[fg] + 0.55 * np.asarray(color, dtype=np.float32)
    return out.astype(np.uint8)


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
            batch = collate_episodes([episode])
            if not getattr(model, "accepts_support", False):
                batch.pop("support_images", None)
                batch.pop("support_masks", None)
            model.eval()
            logits = model(**episode_inputs(batch, device)).float()
            pred = F.interpolate(logits, size=label.shape, mode="bilinear", align_corners=False)
            panels.append((tint(rgb, pred.argmax(1)[0].cpu().numpy()), title))
        for ax, (img, title) in zip(axes[i], panels):
            ax.imshow(img)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
