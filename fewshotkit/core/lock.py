"""Exclusive, non-blocking locks on a lock file: one writer at a time for a store or a run directory.

The lock is an ``flock`` on the lock file, so the kernel releases it when its holder exits, even
after ``kill -9``: a lock file a dead process left behind is never stale, the next command simply
takes it. The holder writes ``pid N on HOST: COMMAND`` into the file for the message a second
writer gets. A lock still held although that pid has ended on this host is held by processes it
left behind (forked workers inherit the lock); the message says so, with the pid, instead of
blaming a process that no longer exists.

A second writer does not wait: it fails at once with one line, so neither run's work is lost.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from fewshotkit.core.errors import DataError


def _holder() -> str:
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    name = program.parent.name if program.name == "__main__.py" else program.name  # python -m fewshotkit
    return f"pid {os.getpid()} on {socket.gethostname()}: {' '.join([name, *sys.argv[1:2]])}"


def describe_holder(text: str) -> str:
    """What a busy lock's file says about its holder, checked against the running processes."""
    text = text.strip()
    parts = text.split(" ", 4)  # "pid", N, "on", HOST:, COMMAND
    if len(parts) >= 4 and parts[0] == "pid" and parts[1].isdigit() and parts[3].rstrip(":") == socket.gethostname():
        pid = int(parts[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return f"pid {pid} has ended, but processes it started still hold the lock; end them"
        except PermissionError:
            pass  # alive, another user's
    return text or "unknown process"


def _open_locked(path: Path, busy: Callable[[str], str]) -> int:
    """A descriptor of ``path`` holding its exclusive lock; raise :class:`DataError` when it is held."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise DataError(f"cannot create the lock file '{path}' ({exc.strerror}); its folder must be "
                            "writable") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 300, 0).decode("utf-8", "replace")
            os.close(fd)
            raise DataError(busy(describe_holder(holder))) from None
        try:  # the file may have been removed by the previous holder between our open and flock
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextmanager
def exclusive_lock(path: str | os.PathLike, busy: Callable[[str], str],
                   remove_when: Callable[[], bool] = lambda: False) -> Iterator[None]:
    """Hold the lock on the file ``path`` (created if missing) for the block.

    ``busy(holder)`` is the one-line message when another process holds it. On release the lock
    file is removed when ``remove_when()`` is true (e.g. the store it guards was never created).
    """
    path = Path(path)
    fd = _open_locked(path, busy)
    try:
        try:  # best effort: the disk may be full
            text = _holder().encode()  # written before the old text is cut: a reader never finds it empty
            os.pwrite(fd, text, 0)
            os.ftruncate(fd, len(text))
        except OSError:
            pass
        yield
    finally:
        try:
            if remove_when():
                path.unlink(missing_ok=True)  # still held: a process that opened it re-checks the inode
        finally:
            os.close(fd)  # releases the lock
