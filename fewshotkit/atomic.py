"""Writing files so nothing is ever half-written: a temporary file beside the target, then a rename."""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def temporary_path(target: Path, suffix: str = ".tmp") -> Path:
    """A fresh hidden file name next to ``target`` (same filesystem, so os.replace is atomic)."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)  # mkstemp makes 0600; the final file should get the usual mode
    return Path(name)


@contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``target`` only if the block succeeds.

    ``suffix`` matters to writers that pick a format from the name (``.nii.gz``, ``.png``).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(target, suffix)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)  # gone already after a successful replace


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` atomically and durably (fsync before the rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))
