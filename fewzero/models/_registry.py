"""Model registry: ``register_model``, ``create_model``, ``list_models`` (timm's pattern)."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from torch import nn

__all__ = [
    "architecture_class",
    "check_not_fixed",
    "create_model",
    "is_model",
    "list_architectures",
    "list_models",
    "register_model",
]

_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}
_ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {}
_ARCHITECTURE_CLASSES: dict[str, type[nn.Module]] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(fn: F) -> F:
    """Decorator registering a model factory under its function name.

    Raises:
        ValueError: a factory or architecture of that name is already registered.
    """
    _check_new(fn.__name__)
    _ENTRYPOINTS[fn.__name__] = fn
    return fn


def register_architecture(
    name: str, builder: Callable[..., nn.Module], model_class: type[nn.Module]
) -> None:
    """Register ``builder(backbone=..., **kwargs)`` under ``name``; it builds ``model_class``.

    Raises:
        ValueError: a factory or architecture of that name is already registered.
    """
    _check_new(name)
    _ARCHITECTURES[name] = builder
    _ARCHITECTURE_CLASSES[name] = model_class


def _check_new(name: str) -> None:
    if name in _ENTRYPOINTS or name in _ARCHITECTURES:
        kind = "model factory" if name in _ENTRYPOINTS else "architecture"
        raise ValueError(
            f"name {name!r} is already registered as a {kind}: registering it again would "
            "replace it silently; choose another name"
        )


def architecture_class(name: str) -> type[nn.Module]:
    """The model class that architecture ``name`` builds.

    Raises:
        ValueError: for an unknown architecture, listing the known ones.
    """
    if name not in _ARCHITECTURE_CLASSES:
        raise ValueError(
            f"arch must be a registered architecture, got {name!r}; known: {list_architectures()}"
        )
    return _ARCHITECTURE_CLASSES[name]


def list_models(filter: str = "*") -> list[str]:
    """Sorted names of registered factories matching the shell-style pattern ``filter``.

    Examples:
        >>> import fewzero.models
        >>> fewzero.models.list_models("sm_vcenet_*")[:2]
        ['sm_vcenet_efficientnet_lite0', 'sm_vcenet_fewshot_efficientnet_lite0']
    """
    return sorted(n for n in _ENTRYPOINTS if fnmatch.fnmatchcase(n, filter))


def list_architectures() -> list[str]:
    """Sorted names of architectures that :func:`create_model` builds over any backbone."""
    return sorted(_ARCHITECTURES)


def is_model(name: str) -> bool:
    """Whether ``name`` is a registered factory or architecture."""
    return name in _ENTRYPOINTS or name in _ARCHITECTURES


def check_not_fixed(name: str, kwargs: Mapping[str, Any], fixed: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` if ``kwargs`` sets an argument that factory ``name`` fixes."""
    clash = sorted(set(kwargs) & set(fixed))
    if clash:
        given = ", ".join(f"{k}={kwargs[k]!r}" for k in clash)
        raise ValueError(
            f"{name} fixes {', '.join(f'{k}={fixed[k]!r}' for k in clash)}, got {given}; "
            "pick the registered name that has the setting you want "
            "(fewzero.models.list_models(), list_architectures())"
        )


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
