"""Read the pickled annotation files of the field's benchmarks without running code.

Some benchmarks ship their annotations as Python pickles (LVIS-92i's ``lvis_val.pkl``) or as
NumPy object arrays, which NumPy stores with pickle (PerMIS's ``masks.npz.npy``). A pickle may
name any callable to run while it loads; these readers let it build Python's plain containers,
NumPy arrays and their dtypes and scalars, and nothing else: a file that asks for another
callable is refused with its name.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["read_plain_npy", "read_plain_pickle"]

_PLAIN = {
    *(("builtins", n) for n in ("list", "dict", "set", "frozenset", "tuple", "str", "int", "float",
                                 "bool", "bytes", "bytearray", "complex")),  # fmt: skip
    ("collections", "OrderedDict"),
    ("collections", "defaultdict"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _PlainUnpickler(pickle.Unpickler):
    """Builds plain containers and NumPy arrays; refuses any other callable by name."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PLAIN:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"the file asks for {module}.{name}; only plain containers and NumPy arrays are read"
        )


def _load(stream: IO[bytes], path: Path, what: str) -> Any:
    try:
        return _PlainUnpickler(stream).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"{str(path)!r} is not {what}: {err}") from err


def read_plain_pickle(path: str | os.PathLike[str], what: str = "a plain pickle") -> Any:
    """The object a pickle file holds, built from plain containers and NumPy arrays only.

    Args:
        path: The pickle file.
        what: What the file should be, for the error message.

    Raises:
        FileNotFoundError: naming the missing file.
        ValueError: naming the file and the callable it asks for, or why it does not load.

    Examples:
        >>> import pickle, tempfile
        >>> from pathlib import Path
        >>> path = Path(tempfile.mkdtemp()) / "anno.pkl"
        >>> _ = path.write_bytes(pickle.dumps({3: {"a.jpg": {"annotations": []}}}))
        >>> read_plain_pickle(path)
        {3: {'a.jpg': {'annotations': []}}}
        >>> _ = path.write_bytes(pickle.dumps(print))
        >>> read_plain_pickle(path)
        Traceback (most recent call last):
        ...
        ValueError: ... the file asks for builtins.print; only plain containers and NumPy arrays are read
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {str(path)!r}")
    with open(path, "rb") as f:
        return _load(f, path, what)


def read_plain_npy(path: str | os.PathLike[str], what: str = "a NumPy object array") -> np.ndarray:
    """A ``.npy`` object array (``np.save`` of a list of dictionaries), read without running code.

    Raises:
        FileNotFoundError: naming the missing file.
        ValueError: naming the file when it is no NumPy file of format 1.0 or 2.0, not an
            object array, or asks for a callable other than plain containers and NumPy's.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {str(path)!r}")
    headers = {(1, 0): np.lib.format.read_array_header_1_0,
               (2, 0): np.lib.format.read_array_header_2_0}  # fmt: skip
    with open(path, "rb") as f:
        try:
            read_header = headers.get(np.lib.format.read_magic(f))
            if read_header is None:
                raise ValueError("a NumPy file of format 1.0 or 2.0 (np.save's) is expected")
            _, _, dtype = read_header(f)
        except ValueError as err:
            raise ValueError(f"{str(path)!r} is not {what}: {err}") from err
        if not dtype.hasobject:
            raise ValueError(f"{str(path)!r} is not {what}: an object array is expected, got "
                             f"dtype {dtype}")  # fmt: skip
        return np.asarray(_load(f, path, what), dtype=object)
