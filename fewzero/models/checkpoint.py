"""Loading model weights with a readable error when a checkpoint belongs to another model."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["load_model_state"]


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
