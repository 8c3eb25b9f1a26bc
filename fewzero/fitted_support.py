"""A support set read, resized and encoded once, then reused for many queries.

[Predictor.fit][fewzero.predict.Predictor.fit] returns a [FittedSupport][fewzero.fitted_support.FittedSupport]:
the support images preprocessed for the predictor's model and size, their masks, and a feature
cache that holds the frozen backbone's features of every support image after the first query,
so later queries compute only their own. It saves to one ``.safetensors`` file (the tensors,
with the class names and size in its metadata) and loads back with
[Predictor.load_support][fewzero.predict.Predictor.load_support]; the features are computed
again for the loading predictor's model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .checks import check_positive_int
from .files import replace_atomically
from .models.feature_cache import FeatureCache

__all__ = ["FittedSupport"]

FORMAT = "fewzero-support-v1"


class FittedSupport:
    """Support sets ready for a predictor: ``{class name: (images, masks)}``.

    Args:
        sets: ``{name: (images (K, 3, S, S), masks (K, S, S))}``, preprocessed for the model.
        size: The side ``S`` they were resized to.
        named: Whether the classes were named (a dictionary, giving label maps) or one
            support set was given (its one class is named ``"foreground"``).
        fitted_with: What the supports were preprocessed for: the model's architecture, its
            backbone's name and weights digest, mean, std and size
            ([Predictor.fit][fewzero.predict.Predictor.fit] records them; a predictor refuses a
            support fitted for another model).

    Attributes:
        cache: The frozen backbone's features of the support images (filled by the first
            query; not saved).
    """

    def __init__(
        self,
        sets: dict[str, tuple[torch.Tensor, torch.Tensor]],
        size: int,
        named: bool,
        fitted_with: Mapping[str, Any] | None = None,
    ) -> None:
        if not sets:
            raise ValueError("a fitted support needs at least one class")
        self.sets = {str(k): (v[0].float(), v[1].long()) for k, v in sets.items()}
        self.size = check_positive_int("size", size)
        self.named = bool(named)
        self.fitted_with = dict(fitted_with or {})
        self.cache = FeatureCache(max_bytes=2 << 30)

    @property
    def classes(self) -> list[str]:
        """The class names, in the order of the labels they get (1, 2, ...)."""
        return list(self.sets)

    def __repr__(self) -> str:
        shots = {k: int(v[0].shape[0]) for k, v in self.sets.items()}
        return f"FittedSupport(shots={shots}, size={self.size})"

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the support sets to ``path`` (``.safetensors``), atomically; returns the path."""
        from safetensors.torch import save_file

        path = Path(path)
        tensors = {}
        for i, (images, masks) in enumerate(self.sets.values()):
            tensors[f"{i}.images"] = images.contiguous()
            tensors[f"{i}.masks"] = masks.contiguous()
        meta = {
            "format": FORMAT,
            "classes": json.dumps(self.classes),
            "size": str(self.size),
            "named": str(self.named),
            "fitted_with": json.dumps(self.fitted_with, sort_keys=True),
        }
        return replace_atomically(path, lambda tmp: save_file(tensors, str(tmp), metadata=meta))

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> FittedSupport:
        """Read a file written by [save][fewzero.fitted_support.FittedSupport.save].

        Raises:
            FileNotFoundError: naming ``path``.
            ValueError: a file of another format, or whose tensors do not fit their classes.
        """
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"support file {str(path)!r} not found")
        try:
            handle = safe_open(str(path), framework="pt")
        except Exception as err:  # safetensors' own error type: not a file of tensors
            raise ValueError(
                f"support file {str(path)!r} is not a safetensors file: {err}"
            ) from err
        with handle as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise ValueError(
                    f"support file {str(path)!r} is not a fitted support (format "
                    f"{meta.get('format')!r}, expected {FORMAT!r})"
                )
            try:
                classes = json.loads(meta["classes"])
                size = int(meta["size"])
            except (KeyError, ValueError) as err:  # a hand-edited or damaged header
                raise ValueError(
                    f"support file {str(path)!r} has unreadable metadata ({type(err).__name__}: "
                    f"{err}): fit the support again and save it"
                ) from err
            if not isinstance(classes, list) or not classes:
                raise ValueError(
                    f"support file {str(path)!r}: its classes must be a JSON list of names, got "
                    f"{meta['classes']!r}; fit the support again and save it"
                )
            sets = {}
            for i, name in enumerate(classes):
                images, masks = f.get_tensor(f"{i}.images"), f.get_tensor(f"{i}.masks")
                if images.dim() != 4 or masks.shape != (images.shape[0], *images.shape[2:]):
                    raise ValueError(
                        f"support file {str(path)!r}: class {name!r} holds images "
                        f"{tuple(images.shape)} and masks {tuple(masks.shape)}"
                    )
                if not bool(torch.isfinite(images).all()):
                    raise ValueError(f"support file {str(path)!r}: class {name!r} has NaN/Inf")
                sets[name] = (images, masks)
        try:
            fitted_with = json.loads(meta.get("fitted_with", "{}"))
        except json.JSONDecodeError as err:
            raise ValueError(f"support file {str(path)!r}: unreadable fitted_with: {err}") from err
        return cls(sets, size, meta.get("named") == "True", fitted_with)
