"""Fold the frozen backbone's BatchNorm into its convolutions, once.

A frozen backbone's BatchNorm is a fixed per-channel affine map, so ``bn(conv(x))`` equals a
convolution with rescaled weights and a bias. Folding removes the BatchNorm kernels (and their
layout copies under channels_last) from every step. The pairs are found by running the module
once: a BatchNorm whose input is exactly the output of a convolution (and of nothing else) is
folded into it; timm's ``BatchNormAct2d`` keeps its activation. The folded module's output is
checked against the original's before the change is kept.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["fold_batchnorm", "fold_or_keep", "has_batchnorm"]


def _replacement(bn: nn.Module) -> nn.Module:
    """What a folded BatchNorm becomes: nothing, or timm ``BatchNormAct2d``'s drop + act."""
    act, drop = getattr(bn, "act", None), getattr(bn, "drop", None)
    if act is None and drop is None:
        return nn.Identity()
    return nn.Sequential(drop or nn.Identity(), act or nn.Identity())


@torch.no_grad()
def fold_batchnorm(module: nn.Module, example: torch.Tensor, atol: float = 1e-5) -> nn.Module:
    """Return a copy of an eval-mode ``module`` with every ``Conv2d -> BatchNorm2d`` pair folded.

    Args:
        module: The network (in ``eval()``: its BatchNorm uses running statistics).
        example: An input to find the pairs with and to check the result on.
        atol: Largest accepted difference of any output, relative to the output's scale.

    Returns:
        The folded copy (``folded_batchnorms`` holds the number of pairs), or ``module`` itself
        when there is nothing to fold or the folded copy's output differs.
    """
    folded = copy.deepcopy(module)
    outputs: list[torch.Tensor] = []  # kept alive so that no id is reused during the forward
    producer: dict[int, nn.Conv2d] = {}
    pairs: list[tuple[nn.Conv2d, nn.BatchNorm2d]] = []

    def conv_hook(mod: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        outputs.append(out)
        producer[id(out)] = mod  # type: ignore[assignment]

    def bn_hook(mod: nn.Module, inp: tuple) -> None:
        src = producer.get(id(inp[0]))
        if src is not None and mod.running_var is not None:  # type: ignore[union-attr]
            pairs.append((src, mod))  # type: ignore[arg-type]

    hooks = []
    for m in folded.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.BatchNorm2d):
            hooks.append(m.register_forward_pre_hook(bn_hook))
    try:
        reference = folded(example)
    finally:
        for h in hooks:
            h.remove()
        outputs.clear()
    calls: dict[int, int] = {}
    for conv, bn in pairs:
        calls[id(conv)] = calls.get(id(conv), 0) + 1
        calls[id(bn)] = calls.get(id(bn), 0) + 1
    pairs = [(c, b) for c, b in pairs if calls[id(c)] == 1 and calls[id(b)] == 1]
    if not pairs:
        return module
    parents = {
        id(child): (parent, name)
        for parent in folded.modules()
        for name, child in parent.named_children()
    }
    for conv, bn in pairs:
        inv_std = torch.rsqrt(bn.running_var + bn.eps)
        scale = bn.weight * inv_std if bn.affine else inv_std
        shift = (bn.bias if bn.affine else 0.0) - bn.running_mean * scale
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        conv.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
        conv.bias = nn.Parameter(bias * scale + shift, requires_grad=conv.weight.requires_grad)
        parent, name = parents[id(bn)]
        setattr(parent, name, _replacement(bn))
    if not _close(reference, folded(example), atol):
        return module
    folded.folded_batchnorms = len(pairs)  # type: ignore[assignment]
    return folded


def _close(a: object, b: object, atol: float) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        scale = a.abs().max().clamp(min=1.0)
        return a.shape == b.shape and bool(((a - b).abs().max() / scale) <= atol)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_close(x, y, atol) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], atol) for k in a)
    return a == b


def has_batchnorm(module: nn.Module) -> bool:
    """Whether ``module`` holds a ``BatchNorm2d``."""
    return any(isinstance(m, nn.BatchNorm2d) for m in module.modules())


def fold_or_keep(body: nn.Module, size: tuple[int, int]) -> nn.Module:
    """``body`` with its BatchNorm folded (checked on a random ``size`` input), or as it was.

    A body that cannot run on its own at that size keeps its BatchNorm.
    """
    try:
        return fold_batchnorm(body, torch.randn(1, 3, *size))
    except Exception:
        return body
