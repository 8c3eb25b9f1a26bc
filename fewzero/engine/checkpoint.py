"""Atomic checkpoints that load with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

__all__ = ["load_checkpoint", "save_checkpoint", "save_model"]


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``state`` to ``path`` atomically: a temporary file, ``fsync``, then ``os.replace``.

    A process killed mid-write leaves the previous checkpoint at ``path`` intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (tensors and plain Python containers only).

    Raises:
        FileNotFoundError: naming ``path``.
        ValueError: naming ``path`` and saying whether the file is empty, truncated or corrupt,
            or not a checkpoint (not a dictionary, or holding objects other than tensors and
            plain containers).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {str(path)!r}")
    size = path.stat().st_size
    if size == 0:
        raise ValueError(f"checkpoint {str(path)!r} is empty (0 bytes): the write did not finish")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"checkpoint {str(path)!r} is not a fewzero checkpoint: it holds objects that "
            f"weights_only loading refuses ({str(err).splitlines()[0]})"
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(
            f"checkpoint {str(path)!r} ({size} bytes) is truncated or corrupt: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'unexpected end of file'}"
        ) from err
    if not isinstance(state, dict):
        raise ValueError(
            f"checkpoint {str(path)!r} is not a fewzero checkpoint: it holds a "
            f"{type(state).__name__}, not a dictionary"
        )
    return state


def save_model(model: torch.nn.Module, path: str | os.PathLike[str], **meta: Any) -> Path:
    """Write a model alone (weights and architecture config, no optimizer), atomically.

    The file loads with :func:`~fewzero.engine.recipes.load_trained_model` and
    :class:`~fewzero.predict.Predictor` like a training checkpoint; ``meta`` (e.g.
    ``crop_size=473``) is stored as its run config.

    Raises:
        ValueError: for a model without a ``config`` naming its architecture.
    """
    config = getattr(model, "config", None)
    if not isinstance(config, dict) or "arch" not in config:
        raise ValueError(
            f"model must carry a config with 'arch' (a fewzero model), got {type(model).__name__}"
        )
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
