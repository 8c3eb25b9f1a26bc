"""A large CPU batch through a frozen encoder in chunks: the same maps, sooner.

On CPU a convolution or attention over a batch of large images runs slower than the same images
in smaller groups (their activations leave the caches), while small images gain from batching.
So an encoder's batch on CPU is cut into chunks of at most
[CPU_CHUNK_PIXELS][fewzero.models.cpu_chunks.CPU_CHUNK_PIXELS] pixels. Each image's maps do not
depend on the others in its batch, so the result is the one batch's, to float rounding (oneDNN
may pick another kernel for another batch size; the results page measures the gain and where the
maps are equal to the bit). GPUs, ``torch.compile`` and export take the batch whole.

Examples:
    >>> import torch
    >>> calls = []
    >>> def compute(x):
    ...     calls.append(x.shape[0])
    ...     return [x.mean(1, keepdim=True)]
    >>> out = in_chunks(torch.randn(5, 3, 16, 16), compute, pixels=512)  # 2 images a chunk
    >>> calls, out[0].shape
    ([2, 2, 1], torch.Size([5, 1, 16, 16]))
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..checks import is_exporting

__all__ = ["CPU_CHUNK_PIXELS", "in_chunks"]

CPU_CHUNK_PIXELS = 1 << 18
"""Most pixels (batch x height x width) an encoder takes in one call on CPU: 512 x 512, about
where batching stops paying on two cores (the results page)."""


def in_chunks(
    images: torch.Tensor,
    compute: Callable[[torch.Tensor], list[torch.Tensor]],
    pixels: int | None = None,
) -> list[torch.Tensor]:
    """``compute(images)``, on CPU in chunks of at most ``pixels`` (default ``CPU_CHUNK_PIXELS``).

    Args:
        images: ``(B, C, H, W)``.
        compute: The encoder: a batch to its list of maps, each ``(B, ...)``.
        pixels: The chunk's budget; one image a chunk where an image alone is larger.

    Returns:
        The maps of the whole batch, as ``compute`` gives them.
    """
    budget = CPU_CHUNK_PIXELS if pixels is None else pixels
    size = max(1, budget // max(1, images.shape[-2] * images.shape[-1]))
    if (
        images.device.type != "cpu"
        or images.shape[0] <= size
        or is_exporting()
        or torch.compiler.is_compiling()
    ):
        return compute(images)
    parts = [compute(images[i : i + size]) for i in range(0, images.shape[0], size)]
    return [torch.cat(maps) for maps in zip(*parts)]
