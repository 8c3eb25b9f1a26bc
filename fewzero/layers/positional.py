"""Sine positional encodings of a flattened sequence (Vaswani et al., 2017), as DCAMA adds them.

Position ``p`` of a sequence gets ``sin(p w_i)`` in even channels and ``cos(p w_i)`` in odd ones,
``w_i = 10000^(-2i / C)``. DCAMA adds them to each map flattened row by row (so a row's last
position and the next row's first are neighbours), queries and keys alike, each shot's keys
numbered from 0.
"""

from __future__ import annotations

import math

import torch

from ..checks import check_positive_int

__all__ = ["sine_positional_encoding"]


def sine_positional_encoding(
    length: int, channels: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """The encodings of positions ``0 .. length - 1``: ``(length, channels)`` in fp32.

    Computed in the same order of operations as the transformer's reference code (so a table
    stored with a checkpoint equals it to the bit). An odd ``channels`` ends on a sine.

    Examples:
        >>> pe = sine_positional_encoding(3, 4)
        >>> pe[0].tolist(), round(float(pe[1, 0]), 4)
        ([0.0, 1.0, 0.0, 1.0], 0.8415)
    """
    check_positive_int("length", length)
    check_positive_int("channels", channels)
    position = torch.arange(0, length, device=device).unsqueeze(1)
    div_term = torch.exp(
        torch.arange(0, channels, 2, device=device) * -(math.log(10000.0) / channels)
    )
    pe = torch.zeros(length, channels, device=device)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term[: channels // 2])
    return pe
