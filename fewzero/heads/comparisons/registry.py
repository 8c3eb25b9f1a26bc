"""The comparison registry and [Comparisons][fewzero.heads.comparisons.Comparisons], a model's list of them.

Comparisons are built by name or by dict, as timm's ``create_attn``:
``"cosine"``, ``{"name": "cosine", "channels": 64}``, or an instance of a registered class. A
user's own comparison is a subclass of [Comparison][fewzero.heads.comparisons.Comparison]
registered under a new name; nothing in fewzero needs an edit.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from .base import SOURCES, Comparison, Episode, FeatureSources, MissingSourceError
from .boundary import check_declared_sources, checked_output

__all__ = [
    "ComparisonSpec",
    "add_residuals",
    "Comparisons",
    "create_comparison",
    "list_comparisons",
    "register_comparison",
]

ComparisonSpec = str | Mapping[str, Any] | Comparison
"""A comparison by name, by ``{"name": ..., **options}``, or built."""

_COMPARISONS: dict[str, type[Comparison]] = {}

C = TypeVar("C", bound=type[Comparison])


def register_comparison(name: str) -> Any:
    """Class decorator registering a [Comparison][fewzero.heads.comparisons.Comparison] as ``name``.

    Raises:
        ValueError: ``name`` is taken (registering it again would replace it silently).
        TypeError: the class is not a ``Comparison``, or no name is given
            (``@register_comparison`` without its call).

    Examples:
        >>> import torch
        >>> from fewzero.heads.comparisons import Comparison, register_comparison
        >>> @register_comparison("doc_zeros")
        ... class Zeros(Comparison):
        ...     support_reads = ("query",)
        ...     out_channels = 1
        ...     def __init__(self, sources):
        ...         super().__init__()
        ...     def forward(self, episode):
        ...         q = episode.query["query"]
        ...         return q.new_zeros(q.shape[0], 1, *q.shape[-2:]), None
    """
    if not isinstance(name, str):
        raise TypeError(
            "register_comparison takes the comparison's name: write "
            f"@register_comparison('my_name') above the class, got {name!r}"
        )

    def decorate(cls: C) -> C:
        if not (isinstance(cls, type) and issubclass(cls, Comparison)):
            raise TypeError(
                f"register_comparison({name!r}) decorates Comparison subclasses, got {cls!r}"
            )
        if name in _COMPARISONS:
            raise ValueError(
                f"comparison {name!r} is already registered ({_COMPARISONS[name].__name__}); "
                "choose another name"
            )
        cls.name = name
        _COMPARISONS[name] = cls
        return cls

    return decorate


def list_comparisons() -> list[str]:
    """Sorted names of the registered comparisons."""
    return sorted(_COMPARISONS)


def create_comparison(spec: ComparisonSpec, sources: FeatureSources) -> Comparison:
    """Build a comparison from a name, a dict with ``"name"``, or return a built one.

    Raises:
        ValueError: for an unknown name (listing the known ones), a dict without ``"name"``, an
            option the comparison does not take, or an instance of an unregistered class (its
            config could not be rebuilt).
    """
    if isinstance(spec, Comparison):
        if _COMPARISONS.get(type(spec).name) is not type(spec):
            raise ValueError(
                f"comparisons holds a {type(spec).__name__} that is not registered: register it "
                "with @fewzero.heads.comparisons.register_comparison('name') so that the model's "
                "config can rebuild it"
            )
        _check_built_for(spec, sources)
        return spec
    if isinstance(spec, str):
        name, options = spec, {}
    elif isinstance(spec, Mapping):
        options = dict(spec)
        if "name" not in options:
            raise ValueError(f"a comparison given as a dict needs a 'name', got {dict(spec)!r}")
        name = options.pop("name")
    else:
        raise ValueError(
            f"a comparison must be a name, a dict with 'name' or a Comparison, got {spec!r}"
        )
    if name not in _COMPARISONS:
        close = difflib.get_close_matches(str(name), list_comparisons(), n=2)
        hint = f" (did you mean {close}?)" if close else ""
        raise ValueError(
            f"comparison must be one of {list_comparisons()}, got {name!r}{hint}; a comparison "
            f"of your own is known once the module that registers it "
            f"(@register_comparison({name!r})) has been imported: import it before building or "
            "loading the model"
        )
    cls = _COMPARISONS[name]
    params = inspect.signature(cls.__init__).parameters
    takes = [p for p in params if p not in ("self", "sources")]
    open_ended = any(p.kind is p.VAR_KEYWORD for p in params.values())  # **options
    unknown = [] if open_ended else sorted(set(options) - set(takes))
    if unknown:
        raise ValueError(
            f"comparison {name!r} takes the options {takes}, got unknown {unknown}; "
            "check the spelling"
        )
    return cls(sources, **options)


def _check_built_for(comparison: Comparison, sources: FeatureSources) -> None:
    """Raise ``ValueError`` if a built ``comparison``'s weights do not fit ``sources``.

    The comparison is built again from its config over the model's features; a tensor of
    another shape means that it was made for other features.
    """
    options = {k: v for k, v in comparison.config.items() if k != "name"}
    try:
        fresh = type(comparison)(sources, **options)
    except MissingSourceError:
        raise
    except (TypeError, ValueError):
        return  # options that do not rebuild from the config: the call checks the rest
    want = {k: tuple(v.shape) for k, v in fresh.state_dict().items()}
    for key, value in comparison.state_dict().items():
        if key in want and tuple(value.shape) != want[key]:
            raise ValueError(
                f"comparisons holds a built {comparison.config['name']!r} made for other "
                f"features: its {key!r} has shape {tuple(value.shape)}, this model's features "
                f"need {want[key]}; pass it by name or dict ({comparison.config!r}) so that the "
                "model builds it for its own features"
            )


class Comparisons(nn.ModuleList):
    """A model's comparisons, run in order: their maps concatenated, their residuals summed.

    Args:
        specs: Comparisons by name, dict or instance
            ([create_comparison][fewzero.heads.comparisons.create_comparison]).
        sources: The features the model offers them.
    """

    def __init__(self, specs: Iterable[ComparisonSpec], sources: FeatureSources) -> None:
        built = []
        for i, spec in enumerate(specs):
            try:
                built.append(create_comparison(spec, sources))
            except ValueError as err:
                if type(err) is not ValueError:  # a missing source: its own kind, as it is
                    raise
                raise ValueError(f"comparisons[{i}]: {err}") from err
        super().__init__(built)
        for comparison in self:
            check_declared_sources(comparison, SOURCES)

    @property
    def out_channels(self) -> int:
        """The channels of the concatenated maps (the decoder's class-embedding width)."""
        return sum(c.out_channels for c in self)

    @property
    def needs_support(self) -> bool:
        """Whether any comparison reads the support set."""
        return any(c.needs_support for c in self)

    @property
    def configs(self) -> list[dict[str, Any]]:
        """Each comparison's config, in order (what a model's config holds)."""
        return [c.config for c in self]

    def reads(self, side: str) -> set[str]:
        """The sources read on ``side`` (``"query"`` or ``"support"``) by any comparison."""
        return {s for c in self for s in (c.query_reads if side == "query" else c.support_reads)}

    def forward(self, episode: Episode) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        """Return the concatenated maps (``None`` if none) and the residuals, in order."""
        maps: list[torch.Tensor] = []
        residuals: list[torch.Tensor] = []
        for comparison in self:
            out, residual = checked_output(comparison, _run(comparison, episode), episode)
            if out is not None:
                maps.append(out)
            if residual is not None:
                residuals.append(residual)
        return (torch.cat(maps, dim=1) if maps else None), residuals

    def losses(self, episode: Episode, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every comparison's auxiliary losses (losses of one name summed)."""
        total: dict[str, torch.Tensor] = {}
        for comparison in self:
            for name, value in comparison.losses(episode, logits).items():
                total[name] = total[name] + value if name in total else value
        return total


def _run(comparison: Comparison, episode: Episode) -> Any:
    """``comparison(episode)``; a source it reads without declaring it is named."""
    try:
        return comparison(episode)
    except KeyError as err:
        key = err.args[0] if err.args else None
        if key not in SOURCES:
            raise
        raise ValueError(
            f"comparison {comparison.name or type(comparison).__name__!r} read the {key!r} "
            f"features without declaring them (query_reads={tuple(comparison.query_reads)}, "
            f"support_reads={tuple(comparison.support_reads)}): add {key!r} to what it reads"
        ) from err


def add_residuals(logits: torch.Tensor, residuals: Sequence[torch.Tensor]) -> torch.Tensor:
    """``logits`` plus each residual, averaged onto the logits' grid where it differs."""
    for residual in residuals:
        if residual.shape[-2:] != logits.shape[-2:]:
            residual = F.adaptive_avg_pool2d(residual, logits.shape[-2:])
        logits = logits + residual.to(logits.dtype)
    return logits
