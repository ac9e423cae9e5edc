"""Writing files so nothing is ever half-written: a temporary file beside the target, then a rename.

A full disk (or quota, or file-size limit) while writing anything becomes one
:class:`~fewshotkit.core.errors.DataError` naming the target; the temporary file is removed and the
previous target, if any, is kept.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from fewshotkit.core.errors import DataError, FewshotkitError

_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_ERRNO_IN_TEXT = re.compile(r"errno = (\d+)")  # how HDF5 reports a failed write
_NAME_CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789_"  # as tempfile's; remove_stale_temporaries matches them


def temporary_path(target: Path, suffix: str = ".tmp") -> Path:
    """A fresh hidden file name next to ``target`` (same filesystem, so os.replace is atomic).

    The file is created with mode 0o666 less the umask, as the final file would be; reading the
    umask with ``os.umask`` would change it for every thread for a moment.
    """
    for _ in range(100):
        name = "".join(secrets.choice(_NAME_CHARACTERS) for _ in range(8))
        path = target.parent / f".{target.name}.{name}{suffix}"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
        except FileExistsError:
            continue
        return path
    raise FileExistsError(errno.EEXIST, f"no free temporary file name beside '{target}'")


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Delete the temporary files :func:`temporary_path` made for ``target`` and a killed run left.

    Only call it while no other process can be writing ``target`` (e.g. holding its store lock).
    """
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.[A-Za-z0-9_]{{8}}\..+$")
    removed = []
    for path in target.parent.glob(f".{glob.escape(target.name)}.*"):
        if pattern.match(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc`` (or an exception it was raised from) is a no-space / quota / size-limit error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _NO_SPACE:
            return True
        text = str(current)
        if "No space left on device" in text or any(int(m) in _NO_SPACE for m in _ERRNO_IN_TEXT.findall(text)):
            return True
        current = current.__cause__ or current.__context__
    return False


def disk_full_error(target: str | os.PathLike) -> DataError:
    """The one-line error for a write to ``target`` that ran out of space."""
    return DataError(f"no space left on device while writing '{target}'; free space and re-run "
                     "(nothing was replaced)")


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some filesystems cannot sync a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``target`` only if the block succeeds.

    ``suffix`` matters to writers that pick a format from the name (``.nii.gz``, ``.png``).
    """
    target = Path(target)
    tmp: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_path(target, suffix)
        yield tmp
        os.replace(tmp, target)
        _fsync_folder(target.parent)
    except Exception as exc:
        # a user error raised inside the block (another file's full disk, named already) stays as it is:
        # this target was not written, so the message must not name it
        if is_disk_full(exc) and not isinstance(exc, FewshotkitError):
            raise disk_full_error(target) from exc
        raise
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)  # gone already after a successful replace


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` atomically and durably (the file synced before the rename, its folder after)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))
