"""Model families as data: one table of variants a family, one builder, the arguments written once.

A family (SM-VCENet's variants, HSNet, DCAMA, the prototype baseline) lists its factories in one
[Family][fewzero.models.families.Family] table: each row names the registered architecture, the
default backbone and the defaults the factory sets. A factory is a ``def`` with its name and a
one-line docstring, decorated with the family's [factory][fewzero.models.families.Family.factory]
(timm's pattern: explicit, greppable names that type checkers and the docs see); the table
builds it and registers it. Every factory takes the same arguments:

* ``pretrained``: load the backbone's ImageNet weights (``efficientnet_lite0``: offline, from
  ``fewzero[weights]``; other backbones: through timm, which needs the hub);
* ``**kwargs``: the architecture class's arguments: ``backbone`` replaces the row's,
  ``pretrained_file`` loads local backbone weights, the row's defaults may be overridden, and
  the arguments the architecture's name fixes (SM-VCENet's ``variant``) may not.

It returns the model in training mode (``.eval()`` for inference).

Examples:
    >>> from fewzero.models.families import FAMILIES
    >>> FAMILIES["hsnet"].variants["hsnet_resnet50"].backbone
    'resnet50'
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from torch import nn

from ._registry import architecture, check_not_fixed, register_model

__all__ = ["FAMILIES", "Family", "Variant"]

M = TypeVar("M", bound=Callable[..., nn.Module])


@dataclass(frozen=True)
class Variant:
    """One factory of a family: its architecture, default backbone and overridable defaults."""

    arch: str
    backbone: str
    defaults: Mapping[str, Any] = field(default_factory=dict)


Builder = Callable[[str, Variant, bool, dict[str, Any]], nn.Module]


def build_variant(
    name: str, variant: Variant, pretrained: bool, kwargs: dict[str, Any]
) -> nn.Module:
    """The one build of a family's row: the architecture's fixed arguments, then the defaults.

    Raises:
        ValueError: for an argument the architecture's name fixes.
    """
    arch = architecture(variant.arch)
    check_not_fixed(name, kwargs, arch.fixed)
    given = {k: v for k, v in kwargs.items() if not (v is None and k in variant.defaults)}
    kwargs = {**dict(variant.defaults), **given}  # None for a default: the factory's own
    backbone = kwargs.pop("backbone", variant.backbone)
    return arch.cls(backbone, pretrained=pretrained, **arch.fixed, **kwargs)


class Family:
    """A model family's table of factories and the one way they are built.

    Args:
        name: The family's name (a key of [FAMILIES][fewzero.models.families.FAMILIES]).
        variants: Factory name -> [Variant][fewzero.models.families.Variant].
        build: Builds a row (default: the architecture's class over the row's backbone, its
            fixed arguments and the defaults; a family with a rule of its own passes one).
    """

    def __init__(
        self, name: str, variants: Mapping[str, Variant], build: Builder = build_variant
    ) -> None:
        self.name, self.variants, self._build = name, dict(variants), build
        FAMILIES[name] = self

    def factory(self, fn: M) -> M:
        """Decorator: the factory named as ``fn``, built from its row and registered.

        ``fn`` gives the name, the signature and the docstring; its body is not run. Its
        arguments (``pretrained``, and any before ``**kwargs``, such as SPNet's
        ``class_embeddings``) reach the build by name.

        Raises:
            ValueError: for a name without a row in the table.
        """
        name = fn.__name__
        if name not in self.variants:
            raise ValueError(
                f"factory {name!r} has no row in the {self.name!r} family's table: add "
                f"{name!r}: Variant(arch, backbone) to it"
            )
        variant = self.variants[name]
        signature = inspect.signature(fn)
        rest = next(
            (p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD), None
        )

        @functools.wraps(fn)
        def factory(*args: Any, **kwargs: Any) -> nn.Module:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            given = dict(bound.arguments)
            extra = given.pop(rest, {}) if rest is not None else {}
            merged = {**given, **extra}
            pretrained = bool(merged.pop("pretrained", False))
            return self._build(name, variant, pretrained, merged)

        return register_model(factory)  # type: ignore[return-value]


FAMILIES: dict[str, Family] = {}
"""Every family by name, as its module builds it (the docs' factory tables read them)."""
