"""Atomic checkpoints that load with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ..configs import check_saveable
from ..files import make_parent
from ..models import load_checkpoint

__all__ = [
    "load_checkpoint",
    "save_checkpoint",
    "save_model",
    "write_json_atomic",
    "write_text_atomic",
]


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file, ``fsync``, then ``os.replace``.

    A process killed mid-write leaves the previous checkpoint at ``path`` intact.
    """
    path = make_parent(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_model(model: torch.nn.Module, path: str | os.PathLike[str], **meta: Any) -> Path:
    """Write a model alone (weights and architecture config, no optimizer), atomically.

    The file loads with [`load_trained_model`][fewzero.models.load_trained_model] and
    [`Predictor`][fewzero.predict.Predictor] like a training checkpoint; ``meta`` (e.g.
    ``crop_size=473``) is stored as its run config.

    Raises:
        ValueError: for a model without a ``config`` naming its architecture.
    """
    config = getattr(model, "config", None)
    if not isinstance(config, dict) or "arch" not in config:
        raise ValueError(
            f"model must carry a config with 'arch' (a fewzero model), got {type(model).__name__}"
        )
    check_saveable(config, f"path {str(path)!r}")
    path = Path(path)
    save_checkpoint(
        {
            "format": "fewzero-model-v1",
            "model": model.state_dict(),
            "model_config": dict(config),
            "config": dict(meta),
        },  # fmt: skip
        path,
    )
    return path


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``; returns the path.

    A reader never sees a half-written file, and a killed process leaves the old one intact.
    """
    path = make_parent(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # the old file stays as it was, and no stray copy is left
        raise
    return path


def write_json_atomic(path: str | os.PathLike[str], payload: Any) -> Path:
    """Write ``payload`` as indented JSON atomically ([`write_text_atomic`][fewzero.engine.write_text_atomic])."""
    return write_text_atomic(path, json.dumps(payload, indent=2, default=str) + "\n")
