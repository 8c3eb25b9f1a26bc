"""How a timm model gives ``F_2, F_3, F_4``: which levels, which arguments, which input sizes.

[Backbone][fewzero.models.Backbone] builds every timm backbone through
[plan_features][fewzero.models.timm_features.plan_features], which
settles three things from the model itself (built on the ``meta`` device: no weights, no compute):

* **Levels by reduction** ([choose_levels][fewzero.models.timm_features.choose_levels]). ``F_2``, ``F_3`` and ``F_4`` are the deepest
  levels at nominal reductions 8, 16 and 32 (the paper's ResNet ``layer2``/``layer3``/``layer4``),
  read from ``feature_info`` of the undilated model, never by position. So DLA's six levels
  (1-32) and HRNet's five give the same three as ResNet. A plain ViT, whose blocks all sit at the
  patch stride (14 or 16), gives blocks ``n/2``, ``3n/4`` and ``n`` of its ``n`` (1-based: 6, 9
  and 12 of ViT-S/B, 12, 18 and 24 of ViT-L; DPT's last three taps), all on the patch grid: they
  are not resampled (``Backbone.resampled`` is ``False``), and the decoder runs at stride 14/16.
* **Arguments the model takes.** ``output_stride`` (dilation) where the constructor accepts it;
  ``dynamic_img_size=True`` where it exists (ViT, DeiT, EVA, CLIP, DINOv2, Swin, ...), so the
  position embeddings are resampled to the input instead of asserting its size. Plain ViTs are
  read through timm's intermediate-layer API: ``features_only`` wraps them in
  ``FeatureGetterNet``, whose forward is ``forward_intermediates(intermediates_only=True)``.
* **The input sizes that work** ([size_multiple][fewzero.models.timm_features.size_multiple]):
  the smallest ``m`` such that the model runs on inputs whose sides are multiples of ``m`` and
  gives maps of the declared reductions (1 for CNNs, the patch for ViTs, 32 for DLA and HRNet,
  224 for MaxViT's 7x7 windows at stride 32). [Backbone][fewzero.models.Backbone] pads every
  input up to it and crops the maps back. A model that runs at no multiple, only at its
  ``pretrained_cfg`` input size (LeViT: attention biases learnt for one grid), gets every input
  resized to that size and its maps resampled to the input's grid (``FeaturePlan.fixed_size``).

The output layout is the model's declared ``output_fmt`` (``NHWC`` for Swin's feature maps),
never guessed from a shape.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import timm
import torch
from torch import nn

from ..checks import check_positive_int
from .weights import hub_reachable, offline_hub

__all__ = [
    "FeaturePlan",
    "LEVEL_REDUCTIONS",
    "check_backbone_arguments",
    "choose_levels",
    "create_body",
    "plan_features",
    "size_multiple",
]

LEVEL_REDUCTIONS = (8, 16, 32)
"""Nominal reductions of ``F_2``, ``F_3`` and ``F_4`` (ResNet's ``layer2``-``layer4``)."""

#: Raw input sizes a candidate multiple is tried on (padded up to it): odd, unequal sides.
_PROBE_SIZES = ((97, 130), (131, 67), (257, 321))


@dataclass(frozen=True)
class FeaturePlan:
    """What [plan_features][fewzero.models.timm_features.plan_features] settled for one timm model name.

    Attributes:
        out_indices: timm feature indices of ``F_2, F_3(, F_4)``.
        kwargs: Arguments the model accepted and gets (``output_stride``, ``dynamic_img_size``).
        size_multiple: Input sides are padded to a multiple of this.
        output_fmt: ``"NCHW"`` or ``"NHWC"``, as the feature model declares it.
        nominal_reductions: Reductions of the chosen levels without dilation.
        fixed_size: ``(H, W)`` for a model that runs at one input size only (LeViT's attention
            biases, ...): inputs are resized to it and the maps resampled back to the input's
            grid. ``None`` for every model that runs at multiples of ``size_multiple``.
    """

    out_indices: tuple[int, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    size_multiple: int = 1
    output_fmt: str = "NCHW"
    nominal_reductions: tuple[int, ...] = ()
    fixed_size: tuple[int, int] | None = None


def choose_levels(reductions: Sequence[int], count: int = 3) -> tuple[int, ...]:
    """Indices of ``F_2, F_3, F_4`` (the first ``count``) among levels of the given reductions.

    Hierarchical models: for each of [LEVEL_REDUCTIONS][fewzero.models.timm_features.LEVEL_REDUCTIONS] in turn, the deepest level at that
    reduction or finer that lies after the previous pick. Where that does not give three levels
    (coarser-starting models), the deepest level of each distinct reduction, finest three. Models
    with one or two distinct reductions (plain ViTs: every block at the patch stride) take the
    levels at depth ``n/2``, ``3n/4`` and ``n``.

    Args:
        reductions: Nominal reduction of every level the model has, shallow to deep.
        count: 3 (``F_2, F_3, F_4``) or 2 (``F_2, F_3`` for models without ``F_4``).

    Returns:
        ``count`` increasing level indices; the first two do not depend on ``count``.

    Raises:
        ValueError: for fewer than three levels.

    Examples:
        >>> choose_levels([2, 4, 8, 16, 32])  # ResNet, EfficientNet
        (2, 3, 4)
        >>> choose_levels([1, 2, 4, 8, 16, 32])  # DLA
        (3, 4, 5)
        >>> choose_levels([16] * 12)  # ViT-B: blocks 6, 9, 12 (1-based)
        (5, 8, 11)
    """
    n = len(reductions)
    if n < 3:
        raise ValueError(f"a backbone must give at least 3 feature levels, got {n}: {reductions}")
    picks: list[int] = []
    if len(set(reductions)) >= 3:
        for target in LEVEL_REDUCTIONS:
            after = picks[-1] if picks else -1
            candidates = [i for i in range(after + 1, n) if reductions[i] <= target]
            if not candidates:
                break
            picks.append(candidates[-1])
        if len(picks) < 3:
            deepest = {r: i for i, r in enumerate(reductions)}
            picks = sorted(deepest.values())[:3]
    else:
        picks = [n // 2 - 1, (3 * n) // 4 - 1, n - 1]
    return tuple(picks[:count])


class _MetaUnsupported(Exception):
    """The forward reads a value back (``.item()``), which the ``meta`` device cannot give."""


def _features_on_meta(name: str, **kwargs: Any) -> nn.Module:
    with torch.device("meta"):
        return timm.create_model(name, features_only=True, pretrained=False, **kwargs)


def _reductions(info: Any) -> list[int]:
    return [int(info.get("reduction", i)) for i in range(len(info))]


def _accepts(name: str, base: Mapping[str, Any], extra: Mapping[str, Any]) -> bool:
    """Whether ``name`` builds with ``extra`` on top of ``base``."""
    try:
        _features_on_meta(name, **base, **extra)
    except Exception:  # TypeError for an unknown argument, AssertionError for an unsupported one
        return False
    return True


def _grid_ok(maps: Sequence[torch.Tensor], padded: tuple[int, int], strides: Sequence[int]) -> bool:
    """Every map has about the grid its stride gives the padded input.

    At least one cell, at most ``ceil(side / stride)``, and at most 4 cells fewer than
    ``side / stride`` (unpadded "valid" convolutions, as in Inception, lose a few border cells).
    """
    for f, s in zip(maps, strides):
        for got, side in zip(f.shape[-2:], padded):
            if got < 1 or got > -(-side // s) or got < side / s - 4:
                return False
    return True


def _runs(
    body: nn.Module, size: tuple[int, int], strides: Sequence[int], fmt: str, device: str
) -> bool | None:
    """Whether ``body`` maps a ``size`` input to the declared grids; ``None``: meta cannot tell."""
    try:
        with torch.no_grad():
            maps = list(body(torch.zeros(1, 3, *size, device=device)))
    except NotImplementedError:  # an op without a meta kernel
        return None if device == "meta" else False
    except Exception as err:
        if device == "meta" and "meta" in str(err):  # a value read back (.item()) on meta
            return None
        return False
    if fmt == "NHWC":
        maps = [f.permute(0, 3, 1, 2) for f in maps]
    return _grid_ok(maps, size, strides)


def size_multiple(
    body: nn.Module, strides: Sequence[int], output_fmt: str, limit: int = 16
) -> int | None:
    """Smallest ``m`` for which ``body`` (in ``eval()``) maps padded inputs to the declared grids.

    Candidates: 1, each stride, then multiples of the coarsest stride up to ``limit`` times it.
    A candidate passes when three odd input sizes (97x130, 131x67, 257x321), padded up to it,
    run and give each level about the grid of its stride. The body runs on the device its
    parameters are on (``meta``: shapes only). Returns ``None`` when none passes; a ``meta``
    body that cannot be run at all (a value read back) raises ``_MetaUnsupported``, and the
    caller probes a random-weight copy instead.
    """
    device = next((p.device.type for p in body.parameters()), "meta")
    coarsest = max(strides)
    candidates = sorted({1, *strides, *(coarsest * k for k in range(1, limit + 1))})
    for m in candidates:
        ok = True
        for h, w in _PROBE_SIZES:
            padded = (math.ceil(h / m) * m, math.ceil(w / m) * m)
            result = _runs(body, padded, strides, output_fmt, device)
            if result is None:
                raise _MetaUnsupported(type(body).__name__)
            if not result:
                ok = False
                break
        if ok:
            return m
    return None


def plan_features(
    name: str,
    count: int = 3,
    output_stride: int = 8,
    out_indices: Sequence[int] | None = None,
    timm_kwargs: Mapping[str, Any] | None = None,
) -> FeaturePlan:
    """Settle levels, arguments and input multiple for timm model ``name`` ([fewzero.models.timm_features][fewzero.models.timm_features]).

    Args:
        name: A timm model name.
        count: Levels wanted (3: ``F_2, F_3, F_4``; 2: without ``F_4``).
        output_stride: Dilation requested where the model takes ``output_stride``.
        out_indices: Explicit timm feature indices instead of
            [choose_levels][fewzero.models.timm_features.choose_levels].
        timm_kwargs: The caller's own ``timm.create_model`` arguments (they win).

    Raises:
        ValueError: a model without feature maps (no ``features_only`` support), fewer than three
            levels, or no input size it runs at.
    """
    key = json.dumps(dict(timm_kwargs or {}), sort_keys=True, default=repr)
    indices = None if out_indices is None else tuple(int(i) for i in out_indices)
    return _plan(name, count, output_stride, indices, key)


@functools.lru_cache(maxsize=256)
def _plan(
    name: str, count: int, output_stride: int, out_indices: tuple[int, ...] | None, key: str
) -> FeaturePlan:
    """``plan_features``, memoised: it reads only the architecture (no weights, no tensors)."""
    user: dict[str, Any] = dict(json.loads(key))
    if not timm.is_model(name):
        raise ValueError(f"backbone must be a timm model name, got {name!r} (see timm.list_models)")
    extras: dict[str, Any] = {}
    if "dynamic_img_size" not in user and _accepts(name, user, {"dynamic_img_size": True}):
        extras["dynamic_img_size"] = True
    try:
        probe = _features_on_meta(name, **user, **extras)
    except Exception as err:
        raise ValueError(
            f"backbone {name!r} cannot give feature maps through timm (features_only=True "
            f"failed: {type(err).__name__}: {err})"
        ) from err
    nominal = _reductions(probe.feature_info)
    chosen = _chosen_levels(name, nominal, count, out_indices)
    if "output_stride" not in user and _accepts(
        name, {**user, **extras}, {"output_stride": output_stride, "out_indices": chosen}
    ):
        extras["output_stride"] = output_stride
    body = _features_on_meta(name, out_indices=chosen, **user, **extras).eval()
    fmt = str(getattr(getattr(body, "output_fmt", "NCHW"), "value", "NCHW"))
    if fmt not in ("NCHW", "NHWC"):
        raise ValueError(f"backbone {name!r} declares output_fmt {fmt!r}; expected NCHW or NHWC")
    info = body.feature_info
    strides = list(info.reduction()) if hasattr(info, "reduction") else _reductions(info)
    # meta tensors do not check indices: a body that indexes relative-position tables by the
    # grid (MViTv2) "runs" on meta at sizes it cannot take, so it is probed on random weights
    indexes_tables = any("rel_pos" in n for n, _ in body.named_parameters())
    try:
        if indexes_tables:
            raise _MetaUnsupported(type(body).__name__)
        m = size_multiple(body, strides, fmt)
    except _MetaUnsupported:  # reads values in its forward: probe a random-weight copy
        body = timm.create_model(
            name, features_only=True, pretrained=False, out_indices=chosen, **user, **extras
        ).eval()
        m = size_multiple(body, strides, fmt)
    fixed = None
    if m is None:
        fixed = _fixed_size(body, strides, fmt)
        if fixed is None:
            raise ValueError(
                f"backbone {name!r} runs at none of the input sizes tried (multiples of 1 to "
                f"{16 * max(strides)} px, and its pretrained_cfg input_size)"
            )
    return FeaturePlan(
        out_indices=chosen,
        kwargs=extras,
        size_multiple=m or 1,
        output_fmt=fmt,
        nominal_reductions=tuple(nominal[i] for i in chosen),
        fixed_size=fixed,
    )


def _chosen_levels(
    name: str, nominal: Sequence[int], count: int, out_indices: tuple[int, ...] | None
) -> tuple[int, ...]:
    """The levels read: chosen by reduction, or the user's ``out_indices`` (checked)."""
    if out_indices is None:
        return choose_levels(nominal, count)
    n = len(nominal)
    if any(not -n <= i < n for i in out_indices):
        raise ValueError(
            f"out_indices must index the {n} feature levels of backbone {name!r} (0..{n - 1}, or "
            f"-{n}..-1 from the last; reductions {list(nominal)}), got {list(out_indices)}; "
            "leave it out to pick F_2, F_3, F_4 by reduction"
        )
    return tuple(i % n for i in out_indices)[:count]


def _fixed_size(body: nn.Module, strides: Sequence[int], fmt: str) -> tuple[int, int] | None:
    """The one input size of a fixed-size model (its ``pretrained_cfg`` ``input_size``), if it runs."""
    cfg = getattr(body, "pretrained_cfg", None) or {}
    size = cfg.get("input_size")
    if size is None:
        return None
    hw = (int(size[-2]), int(size[-1]))
    device = next((p.device.type for p in body.parameters()), "meta")
    return hw if _runs(body, hw, strides, fmt, device) else None


def create_body(name: str, pretrained: bool, local: bool, **kwargs: Any) -> nn.Module:
    """The feature model of timm's ``name``; ImageNet weights through the hub only where it answers.

    Raises:
        RuntimeError: for ``pretrained`` weights (not ``local``) with no reachable hub.
    """
    use_hub = pretrained and not local
    offline = use_hub and not hub_reachable()
    try:
        with offline_hub() if offline else contextlib.nullcontext():
            return timm.create_model(name, features_only=True, pretrained=use_hub, **kwargs)
    except Exception as err:
        if not offline:
            raise
        raise RuntimeError(
            f"pretrained=True for backbone {name!r} needs the Hugging Face hub, which "
            "is not reachable (or HF_HUB_OFFLINE=1), and the weights are not in the local "
            "cache. Pass pretrained_file=PATH (a local .pth/.safetensors of timm's "
            "classifier) or a state dict instead."
        ) from err


def check_backbone_arguments(
    out_indices: Sequence[int] | None,
    output_stride: int,
    size_multiple: int | None,
    timm_kwargs: Mapping[str, Any],
) -> tuple[tuple[int, ...] | None, int | None]:
    """The arguments a [Backbone][fewzero.models.Backbone] is built from, checked before anything is built.

    Raises:
        ValueError: naming ``out_indices`` (not three levels, or not shallow to deep),
            ``in_chans`` (not 3), ``output_stride`` or ``size_multiple``.
    """
    if out_indices is not None:
        out_indices = tuple(out_indices)
        if len(out_indices) != 3:
            raise ValueError(
                f"out_indices must select 3 feature levels (F_2, F_3, F_4), got {out_indices!r}"
            )
        same_sign = all(i >= 0 for i in out_indices) or all(i < 0 for i in out_indices)
        if same_sign and list(out_indices) != sorted(set(out_indices)):
            raise ValueError(
                f"out_indices must run from shallow to deep (F_2, F_3, F_4: strictly "
                f"increasing), got {out_indices!r}; pass {tuple(sorted(set(out_indices)))!r}"
                + (" with three distinct levels" if len(set(out_indices)) < 3 else "")
            )
    if timm_kwargs.get("in_chans", 3) != 3:
        raise ValueError(
            f"in_chans must be 3: fewzero's models take RGB images, got "
            f"in_chans={timm_kwargs['in_chans']!r}; give grayscale or other images as RGB "
            "(fewzero.data.read_image converts them) and leave in_chans out"
        )
    if isinstance(output_stride, bool) or output_stride not in (8, 16, 32):
        raise ValueError(
            f"output_stride must be 8, 16 or 32 (the dilation timm's CNNs support; 32: none), "
            f"got {output_stride!r}"
        )
    if size_multiple is not None:
        size_multiple = check_positive_int("size_multiple", size_multiple)
    return out_indices, size_multiple
