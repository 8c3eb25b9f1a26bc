"""The model registry: one map of architectures, one of factories (timm's pattern).

* An *architecture* is a model class and the constructor arguments its name fixes
  (``"m_vcenet"`` is [`SMVCENet`][fewzero.models.SMVCENet] with ``variant="m_vcenet"``):
  [`register_architecture`][fewzero.models.register_architecture]. ``create_model("m_vcenet", backbone=...)`` builds it over any
  backbone, and a model's ``config["arch"]`` names it, so [`model_from_state`][fewzero.models.model_from_state]
  rebuilds a checkpoint's model from its config alone.
* A *factory* is an explicit, greppable ``def`` decorated with [`register_model`][fewzero.models.register_model]
  (``sm_vcenet_resnet50``): an architecture with its backbone and settings.

A name registered twice, as either, is an error.
"""

from __future__ import annotations

import fnmatch
import typing
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, TypeVar

from torch import nn

__all__ = [
    "Architecture",
    "architecture",
    "architecture_class",
    "architecture_of",
    "check_not_fixed",
    "close_matches",
    "create_model",
    "is_model",
    "list_architectures",
    "list_models",
    "model_parameters",
    "register_architecture",
    "register_model",
]


class Architecture(NamedTuple):
    """A registered architecture: its class and the constructor arguments its name fixes."""

    cls: type[nn.Module]
    fixed: Mapping[str, Any]


_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}
_ARCHITECTURES: dict[str, Architecture] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


def _check_new(name: str) -> None:
    if name in _ENTRYPOINTS or name in _ARCHITECTURES:
        kind = "model factory" if name in _ENTRYPOINTS else "architecture"
        raise ValueError(
            f"name {name!r} is already registered as a {kind}: registering it again would "
            "replace it silently; choose another name"
        )


def register_model(fn: F) -> F:
    """Decorator registering a model factory under its function name.

    Raises:
        ValueError: a factory or architecture of that name is already registered.
    """
    _check_new(fn.__name__)
    _ENTRYPOINTS[fn.__name__] = fn
    return fn


def register_architecture(name: str, cls: type[nn.Module], **fixed: Any) -> None:
    """Register architecture ``name``: ``cls(backbone, **fixed, **kwargs)``.

    Raises:
        ValueError: a factory or architecture of that name is already registered.
    """
    _check_new(name)
    _ARCHITECTURES[name] = Architecture(cls, dict(fixed))


def architecture(name: str) -> Architecture:
    """The registered architecture ``name``.

    Raises:
        ValueError: for an unknown architecture, listing the known ones.
    """
    if name not in _ARCHITECTURES:
        raise ValueError(
            f"arch must be a registered architecture, got {name!r}; known: {list_architectures()}"
        )
    return _ARCHITECTURES[name]


def architecture_class(name: str) -> type[nn.Module]:
    """The model class that architecture ``name`` builds (see ``architecture``)."""
    return architecture(name).cls


def model_class(name: str) -> type[nn.Module]:
    """The class a registered factory or architecture ``name`` builds (from its return annotation).

    Raises:
        ValueError: for an unknown name, or a factory without a class return annotation.

    Examples:
        >>> model_class("hsnet_resnet50").__name__
        'HSNet'
    """
    if name in _ARCHITECTURES:
        return _ARCHITECTURES[name].cls
    if name not in _ENTRYPOINTS:
        raise ValueError(
            f"name must be a registered model, got {name!r}{close_matches(name)}; one of {list_models()}"
        )
    cls = typing.get_type_hints(_ENTRYPOINTS[name]).get("return")
    if not isinstance(cls, type):
        raise ValueError(f"model factory {name!r} has no class return annotation")
    return cls


def architecture_of(cls: type[nn.Module], arguments: Mapping[str, Any]) -> str | None:
    """The architecture of ``cls`` built with ``arguments`` (``None``: not registered).

    It is the name whose fixed arguments ``arguments`` hold.
    """
    for name, arch in _ARCHITECTURES.items():
        if arch.cls is cls and all(arguments.get(k) == v for k, v in arch.fixed.items()):
            return name
    return None


def model_parameters(name: str) -> set[str]:
    """The keyword arguments that factory or architecture ``name`` takes by name.

    Raises:
        ValueError: for an unknown name.
    """
    import inspect

    if name in _ARCHITECTURES:
        fn: Callable[..., Any] = _ARCHITECTURES[name].cls.__init__
    elif name in _ENTRYPOINTS:
        fn = _ENTRYPOINTS[name]
    else:
        raise ValueError(f"name must be a registered model or architecture, got {name!r}")
    return {n for n, p in inspect.signature(fn).parameters.items() if n != "self"}


def list_models(filter: str = "*") -> list[str]:
    """Sorted names of registered factories matching the shell-style pattern ``filter``.

    Examples:
        >>> import fewzero.models
        >>> fewzero.models.list_models("sm_vcenet_*")[:2]
        ['sm_vcenet_efficientnet_lite0', 'sm_vcenet_fewshot_efficientnet_lite0']
    """
    return sorted(n for n in _ENTRYPOINTS if fnmatch.fnmatchcase(n, filter))


def list_architectures() -> list[str]:
    """Sorted names of architectures that [`create_model`][fewzero.models.create_model] builds over any backbone."""
    return sorted(_ARCHITECTURES)


def is_model(name: str) -> bool:
    """Whether ``name`` is a registered factory or architecture."""
    return name in _ENTRYPOINTS or name in _ARCHITECTURES


def check_not_fixed(name: str, kwargs: Mapping[str, Any], fixed: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` if ``kwargs`` sets an argument that ``name`` fixes."""
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
        backbone: timm model name or feature module; overrides the factory's backbone
            (architectures default to ``"resnet50"``).
        **kwargs: Passed to the factory / model class (``pretrained=True``, ``attention=...``).

    Raises:
        ValueError: for an unknown name, listing the known ones, or an argument the name fixes.

    Examples:
        >>> from fewzero.models import create_model
        >>> model = create_model("sm_vcenet", backbone="resnet18")
    """
    if name in _ENTRYPOINTS:
        if backbone is not None:
            kwargs["backbone"] = backbone
        return _ENTRYPOINTS[name](**kwargs)
    if name in _ARCHITECTURES:
        cls, fixed = _ARCHITECTURES[name]
        check_not_fixed(name, kwargs, fixed)
        return cls("resnet50" if backbone is None else backbone, **fixed, **kwargs)
    raise ValueError(
        f"name must be a registered model or architecture, got {name!r}{close_matches(name)}; "
        f"architectures: {list_architectures()}, models: {list_models()}"
    )


def close_matches(name: str) -> str:
    """``"; close matches: [...]"`` of ``name`` among the registered names (``""``: none)."""
    import difflib

    close = difflib.get_close_matches(str(name), [*_ENTRYPOINTS, *_ARCHITECTURES], n=3, cutoff=0.5)
    return f"; close matches: {close}" if close else ""
