"""Constructor arguments captured as JSON-safe configs (models and comparisons alike).

A class whose ``__init__`` is wrapped by [capture_init][fewzero.configs.capture_init] records the
arguments of its outermost constructor call, defaults applied, so that no class writes its
config by hand and a new constructor argument cannot be missing from it.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["OptionGroup", "capture_init", "json_safe"]


def json_safe(value: Any) -> Any:
    """Tuples as lists and mappings as dicts, recursively (what JSON gives back).

    Examples:
        >>> json_safe({"bins": (1, 2), "kw": {"a": (3,)}})
        {'bins': [1, 2], 'kw': {'a': [3]}}
    """
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    return value


def capture_init(
    init: Callable[..., None],
    store: Callable[[Any, dict[str, Any]], None],
    check: Callable[[Any, dict[str, Any]], None] | None = None,
) -> Callable[..., None]:
    """Wrap ``init`` so that its outermost call passes the bound arguments to ``store``.

    ``store(self, arguments)`` receives the arguments by name (defaults applied, ``self``
    dropped, ``**kwargs`` merged in) after ``init`` returns; calls of ``init`` nested in it (a
    subclass's ``super().__init__``) store nothing. ``check(self, arguments)`` gets the same
    arguments before ``init`` runs (nothing is built for a call it refuses).
    """
    signature = inspect.signature(init)

    def bind(self: Any, args: Any, kwargs: Any) -> dict[str, Any]:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        arguments.pop(next(iter(signature.parameters)))  # self
        for name, param in signature.parameters.items():
            if param.kind is param.VAR_KEYWORD:
                arguments.update(arguments.pop(name, {}))
        return arguments

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        outer = "_capturing" not in self.__dict__
        if outer and check is not None:
            check(self, bind(self, args, kwargs))
        if outer:
            self.__dict__["_capturing"] = True
        try:
            init(self, *args, **kwargs)
        finally:
            if outer:
                del self.__dict__["_capturing"]
        if outer:
            store(self, bind(self, args, kwargs))

    return wrapper


def unsaveable(value: Any, where: str = "config") -> list[str]:
    """Where ``value`` holds something JSON cannot keep (a class, a tensor, a function, ...).

    Returns:
        One ``"path: type"`` line each, empty when every value is JSON's (None, bool, int,
        float, str, lists and dicts of them).

    Examples:
        >>> unsaveable({"comparisons": [{"name": "mine", "act": float}]})
        ["config['comparisons'][0]['act']: type"]
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return []
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in unsaveable(v, f"{where}[{i}]")]
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in unsaveable(v, f"{where}[{k!r}]")]
    return [f"{where}: {type(value).__name__}"]


def check_saveable(config: Mapping[str, Any], target: str) -> None:
    """Raise ``ValueError`` before ``target`` is written if ``config`` cannot be saved as JSON.

    Raises:
        ValueError: naming each value that cannot be saved (a comparison's option given as a
            class or a tensor: give it as a name or a number that the comparison resolves).
    """
    bad = unsaveable(dict(config))
    if bad:
        raise ValueError(
            f"the model cannot be saved to {target}: its config holds values JSON cannot keep "
            f"({'; '.join(bad)}), so the saved model could not be rebuilt; give those options as "
            "names, numbers or lists (e.g. 'gelu' instead of nn.GELU), then save"
        )


@dataclasses.dataclass(frozen=True)
class OptionGroup:
    """A constructor argument that is a dict of one part's options (timm's ``*_kwargs``).

    Args:
        defaults: Each option and its default; a value given fills in over them.
        rules: Option -> its rule of [NUMBER_RULES][fewzero.checks.NUMBER_RULES].
        choices: Option -> the values it takes.
        moved: A flat argument of an earlier fewzero -> the option it is now (configs written
            then are read in today's terms, and a call that passes one is told the new spelling).

    Examples:
        >>> decoder = OptionGroup({"channels": 256, "depth": 3}, rules={"depth": "positive_int"})
        >>> decoder.resolve("Model", "decoder", {"depth": 1})
        {'channels': 256, 'depth': 1}
        >>> decoder.resolve("Model", "decoder", {"width": 8})
        Traceback (most recent call last):
        ...
        ValueError: decoder takes the options ['channels', 'depth'], got 'width' (Model): did you mean 'depth'?
    """

    defaults: Mapping[str, Any]
    rules: Mapping[str, str] = dataclasses.field(default_factory=dict)
    choices: Mapping[str, tuple[Any, ...]] = dataclasses.field(default_factory=dict)
    moved: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def resolve(self, owner: str, name: str, value: Mapping[str, Any] | None) -> dict[str, Any]:
        """The group's options: the defaults with ``value``'s over them, each checked.

        Raises:
            TypeError: for a value that is not a dict (or ``None``: every default).
            ValueError: naming ``name.option`` for an unknown option or a value its rule or
                choices refuse.
        """
        from .checks import check_choice, check_numbers

        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise TypeError(
                f"{name} must be a dict of options {sorted(self.defaults)} or None, got "
                f"{value!r} ({owner}): e.g. {name}={{{next(iter(self.defaults))!r}: ...}}"
            )
        for key in value:
            if key not in self.defaults:
                close = difflib.get_close_matches(str(key), list(self.defaults), n=1)
                hint = f": did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"{name} takes the options {sorted(self.defaults)}, got {key!r} ({owner}){hint}"
                )
        options = {**self.defaults, **value}
        check_numbers(owner, {f"{name}.{k}": r for k, r in self.rules.items()},
                      {f"{name}.{k}": v for k, v in options.items()})  # fmt: skip
        for key, allowed in self.choices.items():
            check_choice(f"{name}.{key}", options[key], allowed)
        return options

    def regroup(self, name: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """``config`` with the flat arguments of an earlier fewzero moved into ``name``."""
        flat = {old: config[old] for old in self.moved if old in config}
        if not flat:
            return dict(config)
        out = {k: v for k, v in config.items() if k not in flat}
        out[name] = {**dict(out.get(name) or {}), **{self.moved[k]: v for k, v in flat.items()}}
        return out
