"""How an input reaches a body: padded to its multiple and cropped back, or resized to its one size.

Most bodies take any size once it is a multiple of their patch or window
([pad_run_crop][fewzero.models.readers.fixed_size.pad_run_crop]); a body that runs at one size
only (LeViT, CaiT) gets its input resized to that size and its maps resampled to the input's
grid ([run_at_fixed_size][fewzero.models.readers.fixed_size.run_at_fixed_size]). Both return
NCHW maps whatever the body's own layout.

Examples:
    >>> import torch
    >>> run = lambda x: [x[:, :1, ::4, ::4]]
    >>> pad_run_crop(torch.ones(1, 3, 10, 13), 8, "NCHW", run)[0].shape
    torch.Size([1, 1, 3, 4])
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["pad_run_crop", "run_at_fixed_size"]

Run = Callable[[torch.Tensor], list[torch.Tensor]]


def _nchw(feats: list[torch.Tensor], output_fmt: str) -> list[torch.Tensor]:
    return [f.permute(0, 3, 1, 2) for f in feats] if output_fmt == "NHWC" else feats


def pad_run_crop(
    images: torch.Tensor,
    multiple: int,
    output_fmt: str,
    run: Run,
    then: Callable[[list[torch.Tensor]], list[torch.Tensor]] | None = None,
) -> list[torch.Tensor]:
    """``run`` on ``images`` padded (bottom, right, zeros) to ``multiple``; maps cropped back.

    Each map keeps the cells that cover the input, ``ceil(H * h / H_padded)`` rows. ``then``
    (resampling the maps onto one grid, say) runs on the padded input's NCHW maps, before the
    crop: the result is the crop of what the padded input gives, whatever ``then`` does.
    """
    h, w = images.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    x = F.pad(images, (0, pad_w, 0, pad_h)) if pad_h or pad_w else images
    feats = _nchw(run(x), output_fmt)
    if then is not None:
        feats = then(feats)
    if pad_h or pad_w:  # keep the cells that cover the input
        feats = [
            f[..., : -(-h * f.shape[-2] // (h + pad_h)), : -(-w * f.shape[-1] // (w + pad_w))]
            for f in feats
        ]
    return feats


def run_at_fixed_size(
    images: torch.Tensor,
    size: tuple[int, int],
    output_fmt: str,
    run: Run,
    stride: int | None = None,
) -> list[torch.Tensor]:
    """``run`` on ``images`` resized to the body's one ``size``; maps resampled to the input's grid.

    The grid is the one ``stride`` gives the input (every map on it), or, without ``stride``,
    the one each map's own stride gives it (the blocks of HSNet and DCAMA).
    """
    h, w = images.shape[-2:]
    fh, fw = size
    x = images
    if (h, w) != tuple(size):
        x = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
    out = []
    for f in _nchw(run(x), output_fmt):
        sy, sx = (stride, stride) if stride else (fh / f.shape[-2], fw / f.shape[-1])
        grid = (max(1, math.ceil(h / sy)), max(1, math.ceil(w / sx)))
        same = tuple(f.shape[-2:]) == grid
        out.append(f if same else F.interpolate(f, size=grid, mode="bilinear", align_corners=False))
    return out
