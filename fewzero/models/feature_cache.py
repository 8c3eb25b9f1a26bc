"""A memo of a frozen backbone's features, per input image.

A frozen backbone maps the same image to the same features every time. Evaluating several models
over one backbone (the toy demo's table: the untrained row, SM-VCENet, DeepLab, few-shot
SM-VCENet at 1 and 5 shots, the prototype baseline) or over several protocols (the support-swap
and N-way episodes reuse the same queries) computes them again and again; a
[`FeatureCache`][fewzero.models.FeatureCache] computes each once::

    cache = FeatureCache()
    for model in models:                # backbones with equal weights share entries
        with cached_features(model, cache):
            evaluate(model, episodes)

Entries are keyed by the image's exact bytes (and shape, dtype, device and autocast dtype) and by
the backbone's owner key ([cache_owner][fewzero.models.Backbone.cache_owner]): a digest of its
weights' content and of everything else that changes its features (name, levels, dilation,
padding, folding, timm arguments). A backbone with other weights or settings never reads
another's features, and a changed image is a new entry.

**When the weights are read.** The content digest is exact (every byte of every parameter and
buffer) and is recomputed whenever [cached_features][fewzero.models.cached_features] enters a
block, and whenever a tensor is replaced (``.to(dtype)``, ``param.data = ...``) or changed in
place through autograd-visible ops (``load_state_dict``, ``copy_``, ``mul_``, optimiser steps:
they bump the tensor's version). Writes through ``.data`` (EMA updates, weight copies) bump no
version: they are seen at the next block entry, so do not write a backbone's weights through
``.data`` *inside* a ``cached_features`` block (a frozen backbone has no reason to). The cost is
in ``benchmarks/feature_cache_key.py``. Only frozen backbones use it, and never under
``torch.compile`` or export. The least recently used entries are dropped beyond ``max_bytes``
(size the cache for the images that repeat: at 96 px an EfficientNet-Lite0 entry is 0.27 MB, at
321 px a ResNet50 one is about 24 MB).
"""

from __future__ import annotations

import contextlib
import hashlib
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator

import torch
from torch import nn

from ..checks import is_exporting
from .cpu_chunks import in_chunks

__all__ = [
    "Compute",
    "FeatureCache",
    "cached_features",
    "through_cache",
    "weights_fingerprint",
]

Compute = Callable[[torch.Tensor], list[torch.Tensor]]
"""Maps a batch of images to its feature maps (what a cache entry holds)."""

# (storage, version) signature of a module's tensors -> content digest: the digest is recomputed
# only when a tensor is replaced or changed in place (``load_state_dict`` bumps ``_version``).
_DIGESTS: weakref.WeakKeyDictionary[nn.Module, tuple[tuple[tuple[int, int], ...], str]] = (
    weakref.WeakKeyDictionary()
)


def weights_fingerprint(module: nn.Module, exact: bool = False) -> str:
    """A digest of every parameter and buffer of ``module`` (names, dtypes, shapes and values).

    Equal weights give equal fingerprints across modules. The digest is memoised per module and
    recomputed when a tensor was replaced or modified in place through a versioned op; with
    ``exact=True`` it is recomputed from the content in any case (what catches writes through
    ``.data``, which bump no version; see [fewzero.models.feature_cache][fewzero.models.feature_cache]).
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module, got a {type(module).__name__}")
    tensors = list(module.named_parameters()) + list(module.named_buffers())
    signature = tuple((t.data_ptr(), t._version, t.dtype, tuple(t.shape)) for _, t in tensors)
    memo = _DIGESTS.get(module)
    if not exact and memo is not None and memo[0] == signature:
        return memo[1]
    h = hashlib.blake2b(digest_size=16)
    for name, t in tensors:
        h.update(name.encode())
        h.update(f"{tuple(t.shape)}|{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    digest = h.hexdigest()
    _DIGESTS[module] = (signature, digest)
    return digest


class FeatureCache:
    """Per-image memo of frozen-backbone features ([fewzero.models.feature_cache][fewzero.models.feature_cache]).

    Args:
        max_bytes: Bytes of features kept (least recently used entries dropped first).

    Attributes:
        hits: Images whose features came from the cache.
        misses: Images whose features were computed.
    """

    def __init__(self, max_bytes: int = 2**30) -> None:
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError(f"max_bytes must be a positive int, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self._store: OrderedDict[tuple[str, str], tuple[torch.Tensor, ...]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        """Drop every entry and reset the counters."""
        self._store.clear()
        self.hits = self.misses = self.nbytes = 0

    @staticmethod
    def _key(image: torch.Tensor) -> str:
        dtype = (
            torch.get_autocast_dtype(image.device.type)
            if torch.is_autocast_enabled(image.device.type)
            else None
        )
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{tuple(image.shape)}|{image.dtype}|{image.device}|{dtype}".encode())
        h.update(image.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    def features(
        self,
        owner: str,
        images: torch.Tensor,
        compute: Callable[[torch.Tensor], list[torch.Tensor]],
    ) -> list[torch.Tensor]:
        """``compute(images)``, from the cache for every image seen before with ``owner``.

        Args:
            owner: The backbone's weights fingerprint ([`weights_fingerprint`][fewzero.models.weights_fingerprint]).
            images: ``(B, 3, H, W)``.
            compute: The backbone's own forward, run once on the images not in the cache.

        Returns:
            What ``compute(images)`` returns: a list of ``(B, C_i, h_i, w_i)`` maps.
        """
        keys = [(owner, self._key(img)) for img in images]
        first: dict[tuple[str, str], int] = {}
        for i, k in enumerate(keys):
            if k not in self._store:
                first.setdefault(k, i)  # an image repeated in the batch is computed once
        missing = list(first.values())
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            fresh = compute(images[missing] if len(missing) < len(keys) else images)
            for j, i in enumerate(missing):
                if keys[i] not in self._store:
                    entry = tuple(f[j].clone() for f in fresh)
                    self._store[keys[i]] = entry
                    self.nbytes += sum(t.numel() * t.element_size() for t in entry)
        for k in keys:
            self._store.move_to_end(k)
        out = [torch.stack(level) for level in zip(*(self._store[k] for k in keys))]
        while self.nbytes > self.max_bytes and self._store:
            _, entry = self._store.popitem(last=False)
            self.nbytes -= sum(t.numel() * t.element_size() for t in entry)
        return out


@contextlib.contextmanager
def cached_features(
    model: nn.Module, cache: FeatureCache | None, exact: bool = True
) -> Iterator[nn.Module]:
    """Within the block, ``model``'s frozen backbones (``.encoder``) read from ``cache``.

    Entering the block re-reads every backbone's weights (an exact content digest), so a change
    made before it, through ``.data`` included, gives new cache keys; ``exact=False`` uses the
    memoised digest instead (recomputed when a tensor was replaced or changed in place through
    a versioned op: what a block entered once per query affords). ``cache=None`` leaves the
    model as it is. The previous cache is restored on exit.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got a {type(model).__name__}")
    if cache is not None and not isinstance(cache, FeatureCache):
        raise TypeError(
            f"cache must be a fewzero.models.FeatureCache or None, got a {type(cache).__name__}"
        )
    backbones = [m for m in model.modules() if hasattr(m, "cache") and hasattr(m, "frozen")]
    saved = [b.cache for b in backbones]
    if cache is not None:
        for b in backbones:
            b.cache = cache
            weights_fingerprint(b.body, exact=exact)
    try:
        yield model
    finally:
        for b, old in zip(backbones, saved):
            b.cache = old


def through_cache(
    cache: FeatureCache | None, key: Callable[[], str], images: torch.Tensor, compute: Compute
) -> list[torch.Tensor]:
    """``compute(images)``, through ``cache`` under the owner ``key()`` where one may be used.

    Not under ``torch.compile`` or export (the cache is host-side bookkeeping); ``key`` is
    called only when the cache is used. The key tells the maps of one image apart (a
    backbone's owner key, then the kind: levels, blocks, low level).
    """
    chunked = lambda x: in_chunks(x, compute)  # noqa: E731  (large CPU batches: cpu_chunks)
    if cache is None or is_exporting() or torch.compiler.is_compiling():
        return chunked(images)
    return cache.features(key(), images, chunked)
