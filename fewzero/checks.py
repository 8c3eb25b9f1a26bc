"""Argument checks shared by the layers, heads, models, data and the engine (public).

Also the export detection ([`is_exporting`][fewzero.checks.is_exporting]), the device choice ([`default_device`][fewzero.checks.default_device],
[`resolve_device`][fewzero.checks.resolve_device]), the autocast dtypes and the ImageNet normalisation. Every error names
the argument, the expected value and the received value, so that a user who wires a layer
wrongly reads what to change from the message alone.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "as_int_tuple",
    "check_positive_int",
    "check_choice",
    "check_dir",
    "check_file",
    "check_writable",
    "check_feature_map",
    "check_tensor",
    "check_numbers",
    "NUMBER_RULES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "amp_dtype",
    "default_device",
    "is_exporting",
    "nonnegative_float",
    "positive_float",
    "nonnegative_int",
    "positive_int",
    "resolve_device",
]


def check_file(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a ``Path`` if it is a file; ``FileNotFoundError`` naming ``what`` otherwise.

    A folder given where a file is expected is named as a folder, not reported as missing.
    """
    path = Path(path)
    if path.is_dir():
        raise FileNotFoundError(f"{what} must be a file, got the folder {str(path)!r}")
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: no such file {str(path)!r}")
    return path


def check_dir(path: str | os.PathLike[str], what: str, hint: str = "") -> Path:
    """``path`` as a ``Path`` if it is a folder; ``FileNotFoundError`` naming ``what`` otherwise."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileNotFoundError(f"{what} must be a folder, got the file {str(path)!r}{hint}")
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found: no such folder {str(path)!r}{hint}")
    return path


def check_writable(folder: str | os.PathLike[str], what: str) -> Path:
    """Create ``folder`` if needed and prove that a file can be written there, before any work.

    Raises:
        PermissionError: naming ``what`` and the folder, when it cannot be created or written.
    """
    folder = Path(folder)
    probe = folder / f".fewzero-write-check-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise PermissionError(
            f"{what} {str(folder)!r} is not writable ({err.strerror or err}); choose another folder"
        ) from err
    return folder


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


def _real(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value == value
        and abs(value) != float("inf")
    )


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


NUMBER_RULES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "positive_int": ("a positive int (>= 1)", lambda v: _int(v) and v >= 1),
    "nonnegative_int": ("an int >= 0", lambda v: _int(v) and v >= 0),
    "positive_float": ("a finite number > 0", lambda v: _real(v) and v > 0),
    "nonnegative_float": ("a finite number >= 0", lambda v: _real(v) and v >= 0),
    "probability": ("a number in [0, 1)", lambda v: _real(v) and 0 <= v < 1),
    "unit_interval": ("a number in [0, 1]", lambda v: _real(v) and 0 <= v <= 1),
    "share": ("a share, a number in (0, 1]", lambda v: _real(v) and 0 < v <= 1),
    "cosine": ("a cosine, a number in [-1, 1]", lambda v: _real(v) and -1 <= v <= 1),
}
"""The rules of [check_numbers][fewzero.checks.check_numbers]: name -> (what it asks, test)."""


def check_numbers(owner: str, rules: Mapping[str, str], arguments: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` for the first argument that breaks its rule of [NUMBER_RULES][fewzero.checks.NUMBER_RULES].

    ``rules`` maps an argument to a rule name; a name ending in ``"?"`` also accepts ``None``
    (the argument's own default). Bools, NaN, infinities and strings break every rule.

    Examples:
        >>> check_numbers("DCAMA", {"heads": "positive_int"}, {"heads": 8})
        >>> check_numbers("DCAMA", {"heads": "positive_int"}, {"heads": True})
        Traceback (most recent call last):
        ...
        ValueError: heads must be a positive int (>= 1), got True (DCAMA)
    """
    for name, rule in rules.items():
        if name not in arguments:
            continue
        value, optional = arguments[name], rule.endswith("?")
        if optional and value is None:
            continue
        what, ok = NUMBER_RULES[rule.rstrip("?")]
        if not ok(value):
            none = " or None" if optional else ""
            raise ValueError(f"{name} must be {what}{none}, got {value!r} ({owner})")


def is_exporting() -> bool:
    """True while tracing for ``torch.jit.trace`` or exporting to ONNX / ``torch.export``."""
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return True
    if torch.onnx.is_in_onnx_export():
        return True
    compiler = getattr(torch, "compiler", None)
    is_exp = getattr(compiler, "is_exporting", None)
    return bool(is_exp()) if is_exp is not None else False


def check_tensor(
    name: str, x: object, dims: int | tuple[int, ...] | None = None, floating: bool = True
) -> torch.Tensor:
    """Return ``x`` if it is a non-empty tensor of ``dims`` dimensions; else raise naming ``name``.

    The tensor must be floating point unless ``floating`` is false.

    Raises:
        TypeError: for a value that is not a tensor.
        ValueError: for another rank, an integer dtype where floats are asked, or no element.

    Examples:
        >>> import torch
        >>> check_tensor("x", torch.zeros(2, 3), dims=2).shape
        torch.Size([2, 3])
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor, got a {type(x).__name__}")
    ranks = (dims,) if isinstance(dims, int) else dims
    if ranks is not None and x.dim() not in ranks:
        want = " or ".join(f"{r}-D" for r in ranks)
        raise ValueError(f"{name} must be a {want} tensor, got shape {tuple(x.shape)}")
    if floating and not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.numel() == 0:
        raise ValueError(f"{name} must hold values, got the empty shape {tuple(x.shape)}")
    return x


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


IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
"""ImageNet normalisation (the default mean/std of backbones, transforms and analyses)."""
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
"""ImageNet standard deviation per channel (with ``IMAGENET_MEAN``)."""


def amp_dtype(amp: str | None) -> torch.dtype | None:
    """The autocast dtype of ``amp`` (``"bf16"``, ``"fp16"``; ``None``/``"none"``: no autocast).

    Raises:
        ValueError: for another name.
    """
    if amp in (None, "none"):
        return None
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    if amp not in dtypes:
        raise ValueError(f"amp must be one of (None, 'bf16', 'fp16'), got {amp!r}")
    return dtypes[amp]


def default_device() -> str:
    """``"cuda"`` when a CUDA device is available, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(device: str | torch.device | None, name: str = "device") -> torch.device:
    """Return ``device`` (default: [`default_device`][fewzero.checks.default_device]) after checking that it exists here.

    Raises:
        ValueError: naming ``name``, for a string torch does not parse, or a CUDA/MPS device
            this machine does not have (with the devices it has).
    """
    if device is None:
        return torch.device(default_device())
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"{name} must be a torch device such as 'cpu' or 'cuda', got {device!r}"
        ) from err
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(
                f"{name} {str(device)!r} does not exist on this machine: no CUDA device is "
                "available (torch.cuda.is_available() is False); use 'cpu'"
            )
        if dev.index is not None and dev.index >= count:
            raise ValueError(
                f"{name} {str(device)!r} does not exist on this machine: it has {count} CUDA "
                f"device(s), cuda:0..cuda:{count - 1}"
            )
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(
                f"{name} {str(device)!r} does not exist on this machine (no MPS); use 'cpu'"
            )
    elif dev.type != "cpu":
        raise ValueError(f"{name} must be 'cpu', 'cuda[:N]' or 'mps', got {str(device)!r}")
    return dev


def _number(kind: type, low: float, strict: bool) -> Callable[[str], Any]:
    """An argparse ``type=``: parse ``kind`` and refuse values below ``low`` (or equal, ``strict``)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if value < low or (strict and value == low):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {low}, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


positive_int = _number(int, 0, strict=True)
"""argparse ``type=`` for ints >= 1 (the error names the flag through argparse)."""
nonnegative_int = _number(int, 0, strict=False)
"""argparse ``type=`` for ints >= 0."""
nonnegative_float = _number(float, 0.0, strict=False)
"""argparse ``type=`` for floats >= 0."""
positive_float = _number(float, 0.0, strict=True)
"""argparse ``type=`` for floats > 0."""
