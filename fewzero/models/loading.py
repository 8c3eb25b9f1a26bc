"""Loading checkpoints and model weights, with a readable error for every way a file can be wrong.

[`load_checkpoint`][fewzero.engine.load_checkpoint] reads a file (``weights_only``), [`load_model_state`][fewzero.models.load_model_state] fills a model
strictly, [`model_from_state`][fewzero.models.model_from_state] rebuilds a model from its saved config, and
[`load_trained_model`][fewzero.models.load_trained_model] does all three for a training checkpoint and refuses non-finite
weights by name.
"""

from __future__ import annotations

import inspect
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checks import check_file, resolve_device
from ._registry import architecture_class, create_model
from .peer_checkpoints import model_from_peer_state
from .weights import check_finite_state, check_state_dict, key_mismatches

__all__ = [
    "check_finite_state",
    "load_checkpoint",
    "load_model_state",
    "load_trained_model",
    "model_from_state",
]


def load_model_state(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    config: Mapping[str, object] | None = None,
) -> None:
    """Load ``state_dict`` into ``model`` strictly, explaining any mismatch.

    Args:
        model: The model to fill.
        state_dict: Its weights.
        config: The architecture config saved with the weights; compared with ``model.config``
            (when the model has one) before any tensor is loaded.

    Raises:
        ValueError: naming the differing config entries, the missing, unexpected and
            shape-mismatched keys, or the tensors that hold NaN/Inf.
    """
    own_config = getattr(model, "config", None)
    if config is not None and isinstance(own_config, Mapping):
        diff = {
            k: (own_config.get(k), config.get(k))
            for k in sorted(set(own_config) | set(config))
            if own_config.get(k) != config.get(k)
        }
        if diff:
            details = ", ".join(
                f"{k}: model {a!r} vs checkpoint {b!r}" for k, (a, b) in diff.items()
            )
            raise ValueError(f"checkpoint is for another architecture ({details})")
    check_finite_state(state_dict)
    problems = key_mismatches(model.state_dict(), state_dict, limit=6)
    if problems:
        raise ValueError("checkpoint does not match the model: " + "; ".join(problems))
    model.load_state_dict(state_dict, strict=True)


def model_from_state(
    config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]
) -> nn.Module:
    """Rebuild a model from its saved ``config`` (with ``arch``) and fill it with ``state_dict``.

    The architecture, backbone and every constructor argument come from ``config``; tensors the
    constructor needs (SPNet/ZSVM's class table) come from the state dict. No backbone weights
    are loaded from elsewhere: the state dict holds them.

    Raises:
        ValueError: for a config without a registered ``arch``, or weights that do not fit.

    Examples:
        >>> import torch
        >>> from fewzero.models import SMVCENet, model_from_state
        >>> model = SMVCENet("resnet18", variant="vcenet", decoder={"channels": 16})
        >>> copy = model_from_state(model.config, model.state_dict())
        >>> type(copy).__name__, copy.config == model.config
        ('SMVCENet', True)
    """
    if not isinstance(config, Mapping) or "arch" not in config:
        got = (f"keys {sorted(config)}" if isinstance(config, Mapping)
               else f"a {type(config).__name__}")  # fmt: skip
        raise ValueError(
            f"config must be a model's config (a mapping with 'arch', as model.config or a "
            f"checkpoint's 'config'), got {got}"
        )
    check_state_dict(state_dict)
    arch = config.get("arch")
    try:
        cls = architecture_class(str(arch))
    except ValueError as err:
        raise ValueError(f"config: {err}") from err
    file_config, file_state = config, state_dict
    if hasattr(cls, "upgrade_state"):  # files of an earlier fewzero, in today's terms
        config, state_dict = cls.upgrade_state(config, state_dict)
    kwargs = dict(config)
    kwargs.pop("arch", None)
    extra = cls.state_kwargs(state_dict) if hasattr(cls, "state_kwargs") else {}
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise ValueError(
                f"config holds arguments {unknown} that {cls.__name__} ({arch!r}) does not take "
                f"(it takes {sorted(k for k in params if k != 'self')}): the checkpoint is from "
                "another fewzero version or was edited"
            )
    model = create_model(str(arch), **kwargs, **extra)
    names = cls.file_key_names(file_config) if hasattr(cls, "file_key_names") else {}
    if names:  # a file of an earlier layout: what does not fit, named in the file's own keys
        problems = key_mismatches(_in_file_terms(model.state_dict(), names), file_state, limit=6)
        if problems:
            raise ValueError("checkpoint does not match the model: " + "; ".join(problems))
    load_model_state(model, state_dict, config)
    return model


def _in_file_terms(
    state: Mapping[str, torch.Tensor], names: Mapping[str, str]
) -> dict[str, torch.Tensor]:
    """``state`` under the keys of a file of an earlier layout (today's prefix -> the file's)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        prefix = next((p for p in names if key.startswith(p)), None)
        out[key if prefix is None else names[prefix] + key[len(prefix) :]] = value
    return out


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
    path = check_file(path, "checkpoint")
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
    except (RuntimeError, EOFError, OSError, UnicodeDecodeError, ValueError) as err:
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


def load_trained_model(
    checkpoint: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model from a training checkpoint alone (architecture from its saved config).

    Also reads a folder written by [save_pretrained][fewzero.models.hub.save_pretrained] (the
    config it returns names the architecture only), files written by
    [`save_model`][fewzero.engine.save_model] (their config holds what was passed as
    ``meta``), and the checkpoints HSNet and DCAMA released, as they are (with or
    without ``nn.DataParallel``'s ``module.`` prefix): the architecture and backbone are told
    from the keys ([fewzero.models.peer_checkpoints][fewzero.models.peer_checkpoints]), and
    the config records the peer's preprocessing (``crop_size``, ``mean``, ``std``).

    Returns:
        The model in ``eval()`` mode on ``device`` and the run's config as a dict.

    Raises:
        FileNotFoundError, ValueError: naming the file (missing, truncated, empty, not a
            fewzero or peer checkpoint, non-finite weights, a config this version cannot build,
            or weights that do not fit).

    Examples:
        >>> import os, tempfile, torch
        >>> from fewzero.models import create_model, load_trained_model
        >>> from fewzero.engine import save_model
        >>> path = os.path.join(tempfile.mkdtemp(), "model.pt")
        >>> _ = save_model(create_model("hsnet_resnet50", backbone="resnet18"), path)
        >>> model, config = load_trained_model(path)
        >>> type(model).__name__, model.training
        ('HSNet', False)
    """
    device = resolve_device(device)  # before any file is read
    folder = Path(checkpoint)
    if folder.is_dir() and (folder / "config.json").is_file():  # a save_pretrained folder
        from .hub import from_pretrained

        model = from_pretrained(folder, device=device)
        return model, {"model": model.config["arch"], "checkpoint": os.fspath(checkpoint)}
    if folder.is_dir():
        raise FileNotFoundError(
            f"checkpoint must be a file or a folder written by save_pretrained (config.json and "
            f"model.safetensors), got the folder {str(folder)!r}, which holds no config.json"
        )
    state = load_checkpoint(checkpoint, map_location="cpu")
    if "model" not in state or "model_config" not in state:
        label = f"checkpoint {str(checkpoint)!r}"
        model, config = model_from_peer_state(state, label)
        return model.to(device), {**config, "checkpoint": os.fspath(checkpoint)}
    check_finite_state(state["model"], f"checkpoint {str(checkpoint)!r}")
    try:
        model = model_from_state(state["model_config"], state["model"])
    except (ValueError, TypeError) as err:
        raise ValueError(f"checkpoint {str(checkpoint)!r}: {err}") from err
    return model.to(device).eval(), dict(state.get("config", {}))
