"""The foundation models' weights files, as arguments and as command-line flags, in one table.

The training-free models read Meta's files: INSID3 ``dinov3_file``, GF-SAM ``dinov2_file`` and
``sam_file``. [build_from_files][fewzero.models.weight_files.build_from_files] builds a registered
model from them for ``Predictor``-style use and for the command lines (``fewzero-segment`` and
``fewzero-eval`` take ``--model NAME`` with ``--dinov3-file``, ``--dinov2-file``, ``--sam-file``),
checking before any work that each file given is one the model reads, that none it needs is
missing, and that each exists.

Examples:
    >>> [flag for flag, _, _ in WEIGHT_FILES]
    ['--dinov3-file', '--dinov2-file', '--sam-file']
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

from ..checks import check_file
from ._registry import close_matches, create_model, is_model, model_class
from .base import SegmentationModel

__all__ = ["WEIGHT_FILES", "add_weight_file_flags", "build_from_files", "check_files", "files_of"]

WEIGHT_FILES = (
    (
        "--dinov3-file",
        "dinov3_file",
        "Meta's DINOv3 weights, dinov3_vit*16_pretrain_*.pth (INSID3)",
    ),
    ("--dinov2-file", "dinov2_file", "Meta's DINOv2 weights, dinov2_vit*14_pretrain.pth (GF-SAM)"),
    ("--sam-file", "sam_file", "Meta's SAM weights, sam_vit_{b,l,h}_*.pth (GF-SAM)"),
)
"""Each weights file: its flag, its argument and what it is."""


def files_of(name: str) -> list[str]:
    """The weights-file arguments model ``name`` reads (``[]`` for a model that reads none).

    Raises:
        ValueError: for an unknown name.
    """
    import inspect

    params = inspect.signature(model_class(name).__init__).parameters
    return [arg for _, arg, _ in WEIGHT_FILES if arg in params]


def add_weight_file_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--dinov3-file``, ``--dinov2-file`` and ``--sam-file`` to ``parser``."""
    for flag, dest, help in WEIGHT_FILES:
        parser.add_argument(flag, dest=dest, default=None, metavar="PATH", help=help)


def build_from_files(
    name: str,
    files: Mapping[str, str | os.PathLike[str] | None],
    as_flags: bool = False,
) -> SegmentationModel:
    """Model ``name`` with Meta's weights from ``files`` (argument -> path; ``None``: not given).

    Args:
        name: A registered model (``insid3_vitl16``, ``gf_sam_vit_h_dinov2_vitl14``).
        files: The weights-file arguments given.
        as_flags: Name the files by their flags (a command line's errors) instead.

    Raises:
        ValueError: a file the model does not read, or one it needs that is missing.
        FileNotFoundError: a file that does not exist.
    """
    given = check_files(name, files, as_flags)
    word = {arg: (flag if as_flags else arg) for flag, arg, _ in WEIGHT_FILES}
    try:
        return create_model(name, pretrained=True, **given)
    except (ValueError, FileNotFoundError) as err:  # the loaders name arguments: say the flags
        message = str(err)
        for arg in given:
            message = message.replace(arg, word[arg])
        raise type(err)(message) from err


def check_files(
    name: str, files: Mapping[str, str | os.PathLike[str] | None], as_flags: bool = False
) -> dict[str, str | os.PathLike[str]]:
    """The checks of [build_from_files][fewzero.models.weight_files.build_from_files], nothing built.

    Returns the files given (``None`` dropped).

    Raises:
        ValueError: an unknown model name (with close matches), a file the model does not read,
            or one it needs that is missing.
        FileNotFoundError: a file that does not exist.
    """
    word = {arg: (flag if as_flags else arg) for flag, arg, _ in WEIGHT_FILES}
    model_word = "--model" if as_flags else "name"
    if not is_model(name):
        raise ValueError(
            f"{model_word} {name!r} is not a registered model{close_matches(name)}: "
            "fewzero.models.list_models() lists them"
        )
    wanted = files_of(name)
    given = {k: v for k, v in files.items() if v is not None}
    extra = [word[k] for k in given if k not in wanted]
    if extra:
        takes = ", ".join(word[k] for k in wanted) or "no weights file"
        raise ValueError(
            f"{', '.join(extra)} does not apply to {model_word} {name!r} (it takes {takes}): "
            "drop it, or choose the model that reads it"
        )
    missing = [word[k] for k in wanted if k not in given]
    if missing:
        raise ValueError(
            f"{model_word} {name!r} needs {', '.join(missing)}: Meta's file(s) of that model, "
            "downloaded from Meta's repository (fewzero downloads nothing)"
        )
    for arg, path in given.items():
        check_file(path, word[arg])
    return given
