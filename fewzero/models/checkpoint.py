"""Loading model weights with a readable error when a checkpoint belongs to another model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ._registry import architecture_class, create_model

__all__ = ["load_model_state", "model_from_state"]


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
        ValueError: naming the differing config entries, or the missing, unexpected and
            shape-mismatched keys.
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
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    mismatched = [
        f"{k}: model {tuple(own[k].shape)} vs checkpoint {tuple(state_dict[k].shape)}"
        for k in own
        if k in state_dict and own[k].shape != state_dict[k].shape
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {missing[:6]}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {unexpected[:6]}")
        if mismatched:
            parts.append(f"shape mismatches ({len(mismatched)}): {mismatched[:6]}")
        raise ValueError("checkpoint does not match the model: " + "; ".join(parts))
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
        >>> model = SMVCENet("resnet18", variant="vcenet", decoder_channels=16)
        >>> copy = model_from_state(model.config, model.state_dict())
        >>> type(copy).__name__, copy.config == model.config
        ('SMVCENet', True)
    """
    kwargs = dict(config)
    arch = kwargs.pop("arch", None)
    cls = architecture_class(str(arch))
    extra = cls.state_kwargs(state_dict) if hasattr(cls, "state_kwargs") else {}
    model = create_model(str(arch), **kwargs, **extra)
    load_model_state(model, state_dict, config)
    return model
