"""The option groups of the models' parts: the decoder (CCM) and SM-VCENet's class branch.

A model takes each part's options as one dict argument (``decoder={"channels": 64}``); the
[OptionGroup][fewzero.configs.OptionGroup] holds their defaults and rules, and the flat arguments
an earlier fewzero took for them (its configs load in today's terms).

Examples:
    >>> DECODER_OPTIONS.resolve("SMVCENet", "decoder", {"depth": 1})
    {'channels': 256, 'depth': 1, 'aspp_rates': (6, 12, 18)}
"""

from __future__ import annotations

from ..configs import OptionGroup

__all__ = ["CLASS_BRANCH_OPTIONS", "DECODER_OPTIONS"]

DECODER_OPTIONS = OptionGroup(
    defaults={"channels": 256, "depth": 3, "aspp_rates": (6, 12, 18)},
    rules={"channels": "positive_int", "depth": "positive_int"},
    moved={"decoder_channels": "channels", "decoder_depth": "depth", "aspp_rates": "aspp_rates"},
)
"""The [ClassComparisonModule][fewzero.heads.ClassComparisonModule]'s width (``channels``),
residual blocks (``depth``) and ASPP dilation rates (``aspp_rates``)."""

CLASS_BRANCH_OPTIONS = OptionGroup(
    defaults={
        "input": "layer4",
        "attention": "channel",
        "channels": None,
        "bins": (1, 2, 3, 6),
        "pooled_projection": True,
    },
    rules={"channels": "positive_int?"},
    choices={"input": ("layer4", "concat"), "attention": ("channel", "spatial")},
    moved={
        "class_input": "input",
        "attention": "attention",
        "class_channels": "channels",
        "bins": "bins",
        "pooled_projection": "pooled_projection",
    },
)
"""SM-VCENet's class branch: what it reads (``input``: ``"layer4"``, ``I_class = B_4(F_3)``, the
frozen layer4 output; ``"concat"``, eq. 1 literally, ``B_4(adapter(F_2 ⊕ F_3))`` with a trainable
1x1 adapter initialised to pass ``F_3`` through), SAM's non-local kind (``attention``:
``"channel"``, the paper's equations, or ``"spatial"``), its width ``C`` (``channels``; ``None``:
``I_class``'s channels), MAM's pyramid ``bins`` and MAM's exact pooled projection
(``pooled_projection``; ``False``: concat-then-conv)."""
