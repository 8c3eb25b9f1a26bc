"""Language-side class embeddings for the L-ZSSS baselines (SPNet, ZSVM) and the Fig. 4 analysis."""

import os
from pathlib import Path

from .sentence import minilm_class_embeddings
from .word_vectors import DEFAULT_ALIASES, class_words, load_word_vectors

__all__ = [
    "DEFAULT_ALIASES",
    "class_embedding_table",
    "class_words",
    "load_word_vectors",
    "minilm_class_embeddings",
]


def class_embedding_table(source: str, class_names: list[str] | tuple[str, ...]):
    """Class embedding table ``(len(class_names), d)`` as a float32 tensor.

    Args:
        source: ``"minilm"`` (all-MiniLM-L6-v2 from the ``language`` extra) or the path of a
            GloVe/fastText vector file.
        class_names: Names in class-id order.
    """
    import torch

    if source == "minilm":
        table = minilm_class_embeddings(class_names)
    elif not isinstance(source, (str, os.PathLike)) or not Path(source).is_file():
        raise ValueError(
            f"source must be 'minilm' or the path of a GloVe/fastText vector file, got "
            f"{source!r}" + ("" if not isinstance(source, (str, os.PathLike)) else ": no such file")
        )
    else:
        table = load_word_vectors(source, class_names)
    return torch.as_tensor(table, dtype=torch.float32)
