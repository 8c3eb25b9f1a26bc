"""Constructor arguments captured as JSON-safe configs (models and comparisons alike).

A class whose ``__init__`` is wrapped by [capture_init][fewzero.configs.capture_init] records the
arguments of its outermost constructor call, defaults applied, so that no class writes its
config by hand and a new constructor argument cannot be missing from it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["capture_init", "json_safe"]


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
