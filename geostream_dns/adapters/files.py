"""Atomic file writes: a reader sees the old file or the new one, never half."""

from __future__ import annotations

import os
import pathlib
import tempfile


def atomic_write_text(path: pathlib.Path, text: str, *, durable: bool = True,
                      mode: int | None = None) -> None:
    """Write `text` to `path` through a temporary file in the same folder and
    `os.replace`. `durable` also fsyncs the file and the folder, so the new
    content survives a crash right after the call."""
    atomic_write_bytes(path, text.encode("utf-8"), durable=durable, mode=mode)


def atomic_write_bytes(path: pathlib.Path, data: bytes, *, durable: bool = True,
                       mode: int | None = None) -> None:
    """`atomic_write_text` for bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        try:  # make the rename itself durable
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError:
            pass
