"""Argument and input validation shared by the layers.

Every error names the argument, the expected value and the received value, so that a user who
wires a layer wrongly reads what to change from the message alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = [
    "as_int_tuple",
    "check_positive_int",
    "check_choice",
    "check_feature_map",
    "is_exporting",
]


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is an int >= 1, else raise ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int (>= 1), got {value!r}")
    return value


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError`` naming ``name``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value  # type: ignore[return-value]


def is_exporting() -> bool:
    """True while tracing for ``torch.jit.trace`` or exporting to ONNX / ``torch.export``."""
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return True
    if torch.onnx.is_in_onnx_export():
        return True
    compiler = getattr(torch, "compiler", None)
    is_exp = getattr(compiler, "is_exporting", None)
    return bool(is_exp()) if is_exp is not None else False


def check_feature_map(x: torch.Tensor, channels: int | None = None, name: str = "x") -> None:
    """Check that ``x`` is a ``(B, C, H, W)`` tensor with ``C == channels``.

    Raises:
        ValueError: if the rank or the channel count differs from the expected one.
    """
    if x.dim() != 4:
        raise ValueError(
            f"{name} must be a 4-D tensor (B, C, H, W), got {x.dim()}-D with shape {tuple(x.shape)}"
        )
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{name} must have {channels} channels (dim 1), got {x.shape[1]} "
            f"(shape {tuple(x.shape)})"
        )


def as_int_tuple(name: str, value: object) -> tuple[int, ...]:
    """Return ``value`` as a non-empty tuple of positive ints; a single int becomes ``(value,)``.

    Raises:
        ValueError: naming ``name`` for an empty sequence, a non-int or a value below 1.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"{name} must be an int or a sequence of ints, got {value!r}")
    if len(value) == 0:
        raise ValueError(f"{name} must hold at least one value, got {value!r}")
    for v in value:
        check_positive_int(name, v)
    return tuple(value)
