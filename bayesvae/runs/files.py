"""Files written whole or not at all, and read without running code.

Every writer here goes through a temporary file beside its target, fsynced, then renamed onto it
(``os.replace``), so a crash leaves either the old file or the new one. Files get the mode the
user's umask gives (``mkstemp``'s 0600 is widened), and ``torch`` files are read with
``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import torch

__all__ = [
    "UnsafeFileError",
    "atomic_write",
    "atomic_path",
    "write_text",
    "write_torch",
    "safe_torch_load",
    "fsync_folder",
    "umask_mode",
    "TEMP_SUFFIX",
]

#: suffix of every temporary file (a leftover from a killed write is removed on the next save)
TEMP_SUFFIX = ".tmp"


class UnsafeFileError(ValueError):
    """A run folder's or checkpoint's file holds something other than tensors and plain values
    (e.g. a pickled object that would run code on load); it was refused, not loaded."""


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` with the process's umask applied (what ``open()`` would give a new file)."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def fsync_folder(folder: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (a rename inside it) to disk; a no-op where folders cannot be
    opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_beside(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    os.chmod(tmp, umask_mode())
    return tmp


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(handle)`` on a temporary file beside ``path``, fsync it, then rename it onto
    ``path``. A crash or an error midway (a full disk) leaves any earlier ``path`` untouched and
    removes the temporary file."""
    path = Path(path)
    tmp = _temp_beside(path)
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a writer that wants a file name (netCDF, a
    figure); it is renamed onto ``path`` when the block ends without an error, else removed."""
    path = Path(path)
    tmp = _temp_beside(path)
    try:
        yield Path(tmp)
        os.chmod(tmp, umask_mode())  # a writer may have recreated the file
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def write_torch(path: str | os.PathLike[str], obj: Any) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (serialized in memory first, so a failure to
    serialize never touches the disk)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write(path, lambda handle: handle.write(buffer.getvalue()))


def safe_torch_load(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain values only, never an
    arbitrary pickled object; anything else raises :class:`UnsafeFileError` naming the file."""
    import pickle

    path = Path(path)
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UnsafeFileError(
            f"{path} holds objects other than tensors and plain values and was not loaded "
            f"(bayesvae never unpickles arbitrary objects): {first}"
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{path} is not a readable bayesvae file: {first}") from None
