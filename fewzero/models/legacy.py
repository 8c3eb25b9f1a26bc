"""Configs and checkpoints of SM-VCENet from before its comparisons were modules.

Until the comparisons became modules ([fewzero.heads.comparisons][fewzero.heads.comparisons]),
few-shot SM-VCENet took one flag per mechanism (``class_source``, ``prior``, ``similarity``,
``similarity_scale``, ``similarity_residual``, ``similarity_channels``, ``alignment_weight``,
``mask_attention``, ``correlation``, ``correlation_residual``, ``low_level_similarity``,
``low_level_channels``). [upgrade_sm_vcenet][fewzero.models.legacy.upgrade_sm_vcenet] turns such
a config into the list of comparisons that computes the same logits, and renames the state
dict's keys to match, so that every checkpoint written then loads and predicts the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["LEGACY_FLAGS", "legacy_key_names", "upgrade_sm_vcenet"]

LEGACY_FLAGS: dict[str, Any] = {
    "class_source": "query",
    "prior": False,
    "similarity": None,
    "similarity_scale": 10.0,
    "similarity_residual": False,
    "similarity_channels": None,
    "alignment_weight": 0.0,
    "mask_attention": False,
    "correlation": False,
    "correlation_residual": False,
    "low_level_similarity": False,
    "low_level_channels": 32,
}
"""The old few-shot flags of SMVCENet and their defaults then."""


def upgrade_sm_vcenet(
    config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor]
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """An old SM-VCENet config and state dict as ``comparisons`` and today's keys.

    A config that already has ``comparisons`` (or none of the old flags) comes back unchanged.
    The comparisons come in the order the old model concatenated its decoder inputs (support
    prototype, the query's own embedding, cosine maps, mask attention, best match, prior) and
    added its residuals (cosine, best match, low level). The old shared projection
    (``matcher``) is copied into each comparison that compared in it.

    Examples:
        >>> config, _ = upgrade_sm_vcenet({"arch": "sm_vcenet", "class_source": "support"}, {})
        >>> config["comparisons"]
        [{'name': 'prototype'}]
    """
    old = {k: config[k] for k in LEGACY_FLAGS if k in config}
    if "comparisons" in config or not old:
        return dict(config), dict(state_dict)
    comparisons, renames, copies = _plan({**LEGACY_FLAGS, **old})
    new_config = {k: v for k, v in config.items() if k not in LEGACY_FLAGS}
    new_config["comparisons"] = comparisons
    state: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        prefix = next((p for p in renames if key.startswith(p)), None)
        state[key if prefix is None else renames[prefix] + key[len(prefix) :]] = value
        if key.startswith("matcher."):
            for target in copies:
                state[target + key[len("matcher.") :]] = value.clone()
    return new_config, state


def legacy_key_names(config: Mapping[str, Any]) -> dict[str, str]:
    """Today's key prefix -> the old file's, for an old SM-VCENet config (empty for a new one).

    What the file calls a tensor, so that a file that does not fit is named in its own keys.

    Examples:
        >>> legacy_key_names({"arch": "sm_vcenet", "similarity": "query"})
        {'comparisons.1.project.': 'matcher.'}
    """
    old = {k: config[k] for k in LEGACY_FLAGS if k in config}
    if "comparisons" in config or not old:
        return {}
    _, renames, copies = _plan({**LEGACY_FLAGS, **old})
    return {**{new: prefix for prefix, new in renames.items()}, **dict.fromkeys(copies, "matcher.")}


def _plan(flags: Mapping[str, Any]) -> tuple[list[dict[str, Any]], dict[str, str], list[str]]:
    """The comparisons of the old ``flags``; old key prefix -> new; the projection's copies."""
    scale, channels = float(flags["similarity_scale"]), flags["similarity_channels"]
    comparisons: list[dict[str, Any]] = []
    renames: dict[str, str] = {}  # old prefix -> new prefix
    copies: list[str] = []  # new prefixes that get a copy of the old projection
    if flags["class_source"] in ("support", "both"):
        comparisons.append({"name": "prototype"})
    if flags["class_source"] in ("query", "both"):
        comparisons.append({"name": "self"})
    if flags["similarity"] is not None:
        renames["matcher."] = f"comparisons.{len(comparisons)}.project."
        comparisons.append(
            {
                "name": "cosine",
                "source": flags["similarity"],
                "channels": channels,
                "scale": scale,
                "residual": bool(flags["similarity_residual"]),
                "alignment_weight": float(flags["alignment_weight"]),
            }
        )
    if flags["mask_attention"]:
        renames["mask_attention."] = f"comparisons.{len(comparisons)}.attention."
        copies.append(f"comparisons.{len(comparisons)}.project.")
        comparisons.append(
            {"name": "mask_attention", "source": "query", "channels": channels, "heads": None}
        )
    if flags["correlation"]:
        copies.append(f"comparisons.{len(comparisons)}.project.")
        comparisons.append(
            {
                "name": "correlation",
                "source": "query",
                "channels": channels,
                "scale": scale,
                "residual": bool(flags["correlation_residual"]),
            }
        )
    if flags["prior"]:
        comparisons.append({"name": "prior"})
    if flags["low_level_similarity"]:
        renames["low_matcher."] = f"comparisons.{len(comparisons)}.project."
        comparisons.append(
            {"name": "low_level", "channels": int(flags["low_level_channels"]), "scale": scale}
        )
    return comparisons, renames, copies if channels is not None else []
