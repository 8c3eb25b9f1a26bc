"""Writing a file so that nothing is lost: atomically, with the user's permissions.

[replace_atomically][fewzero.files.replace_atomically] writes through a temporary file in the
target's folder and renames it over the target: a reader never sees a half-written file, and a
process killed mid-write leaves the old file as it was. The file gets the mode ``open()`` would
give it (``0o666`` less the user's umask), not the ``0o600`` of a temporary file, so colleagues on
a shared machine can read what fewzero wrote.

Examples:
    >>> import tempfile
    >>> from pathlib import Path
    >>> target = Path(tempfile.mkdtemp()) / "notes.txt"
    >>> _ = replace_atomically(target, lambda tmp: tmp.write_text("kept"))
    >>> target.read_text()
    'kept'
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["make_parent", "replace_atomically", "user_file_mode"]


def user_file_mode() -> int:
    """The mode ``open()`` gives a new file: ``0o666`` less the process's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def make_parent(path: str | os.PathLike[str], name: str = "path") -> Path:
    """Create the folders above the file ``path`` (as ``mkdir -p``), refusing what is in the way.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        IsADirectoryError: naming ``name`` when ``path`` is a folder.
        NotADirectoryError: naming ``name`` and the file that stands where a folder must be.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> make_parent(Path(tempfile.mkdtemp()) / "a" / "b.png").parent.is_dir()
        True
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{name} {str(path)!r} is a folder; give a file path in it")
    for above in path.parents:
        if above.exists():
            if not above.is_dir():
                raise NotADirectoryError(
                    f"{name} {str(path)!r}: {str(above)!r} is a file, not a folder; choose "
                    "another path"
                )
            break
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def replace_atomically(
    path: str | os.PathLike[str], write: Callable[[Path], object], name: str = "path"
) -> Path:
    """Write ``path`` through ``write(temporary path)``, then rename it over ``path``.

    Args:
        path: The file to write (its folder must exist).
        write: Writes the whole file to the path it is given.
        name: How errors name ``path`` (the caller's argument).

    Returns:
        ``path``.

    Raises:
        FileNotFoundError: naming ``name`` when the folder does not exist.
        IsADirectoryError: naming ``name`` when ``path`` is a folder.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"{name} {str(path)!r}: its folder {str(path.parent)!r} does not exist; create it "
            "first or choose another path"
        )
    if path.is_dir():
        raise IsADirectoryError(f"{name} {str(path)!r} is a folder; give a file path in it")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, user_file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
