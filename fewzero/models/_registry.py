"""Model registry: ``register_model``, ``create_model``, ``list_models`` (timm's pattern)."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

__all__ = [
    "create_model",
    "is_model",
    "list_architectures",
    "list_models",
    "needs_class_embeddings",
    "register_model",
]

_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}
_ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(fn: F) -> F:
    """Decorator registering a model factory under its function name."""
    _ENTRYPOINTS[fn.__name__] = fn
    return fn


def register_architecture(name: str, builder: Callable[..., nn.Module]) -> None:
    """Register an architecture builder ``builder(backbone=..., **kwargs)`` under ``name``."""
    _ARCHITECTURES[name] = builder


def list_models(filter: str = "*") -> list[str]:
    """Sorted names of registered factories matching the shell-style pattern ``filter``.

    Examples:
        >>> import fewzero.models
        >>> fewzero.models.list_models("sm_vcenet_*")[:2]
        ['sm_vcenet_efficientnet_lite0', 'sm_vcenet_resnet101']
    """
    return sorted(n for n in _ENTRYPOINTS if fnmatch.fnmatchcase(n, filter))


def list_architectures() -> list[str]:
    """Sorted names of architectures that :func:`create_model` builds over any backbone."""
    return sorted(_ARCHITECTURES)


def is_model(name: str) -> bool:
    """Whether ``name`` is a registered factory or architecture."""
    return name in _ENTRYPOINTS or name in _ARCHITECTURES


def needs_class_embeddings(name: str) -> bool:
    """Whether factory/architecture ``name`` takes a class embedding table (SPNet, ZSVM)."""
    fn = _ENTRYPOINTS.get(name) or _ARCHITECTURES.get(name)
    if fn is None:
        raise ValueError(f"name must be a registered model or architecture, got {name!r}")
    return bool(getattr(fn, "needs_class_embeddings", False))


def create_model(name: str, backbone: str | nn.Module | None = None, **kwargs: Any) -> nn.Module:
    """Build a registered model.

    Args:
        name: A factory (``"sm_vcenet_resnet50"``) or an architecture (``"sm_vcenet"``).
        backbone: timm model name or feature module; overrides the factory's backbone.
        **kwargs: Passed to the factory / model class (``pretrained=True``, ``attention=...``).

    Raises:
        ValueError: for an unknown name, listing the known ones.

    Examples:
        >>> from fewzero.models import create_model
        >>> model = create_model("sm_vcenet", backbone="resnet18")
    """
    if name in _ENTRYPOINTS:
        if backbone is not None:
            kwargs["backbone"] = backbone
        return _ENTRYPOINTS[name](**kwargs)
    if name in _ARCHITECTURES:
        return _ARCHITECTURES[name](backbone="resnet50" if backbone is None else backbone, **kwargs)
    raise ValueError(
        f"name must be a registered model or architecture, got {name!r}; architectures: "
        f"{list_architectures()}, models: {list_models()}"
    )
