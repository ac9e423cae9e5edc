"""One writer at a time per store: an exclusive ``flock`` on a sidecar ``<store>.lock`` file.

Every command that writes a store (``ingest``, ``pseudolabel``) holds the lock from before it
reads the store until after its temporary copy is renamed into place. A second writer does not
wait: it fails at once with a one-line error naming the store and the process holding it, so
neither run's work is lost (re-run the second command when the first has finished). Readers
take no lock: a rename never disturbs a reader's open file.

The lock is released by the kernel when the holder exits, even after ``kill -9``; the lock file
itself stays (removing it would let two processes lock two different files).
"""

from __future__ import annotations

import fcntl
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from fewshotkit.core.atomic import remove_stale_temporaries
from fewshotkit.core.errors import DataError


def lock_path(store: str | os.PathLike) -> Path:
    """``chaos.h5`` -> ``chaos.h5.lock`` in the same folder."""
    store = Path(store)
    return store.with_name(store.name + ".lock")


@contextmanager
def store_lock(store: str | os.PathLike) -> Iterator[None]:
    """Hold the write lock of ``store``; raise a :class:`DataError` at once if another process holds it.

    While it is held, the temporary files a killed writer left beside the store are removed.
    """
    store = Path(store)
    path = lock_path(store)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except OSError as exc:
        raise DataError(f"cannot create the lock file '{path}' for store '{store}' ({exc.strerror}); "
                        "the store's folder must be writable") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
            raise DataError(
                f"store '{store}' is being written by another process ({holder or 'unknown'}); "
                "wait for it to finish, then re-run this command"
            ) from None
        try:  # who holds it, for the message of a second writer (best effort: the disk may be full)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()}, {' '.join([Path(sys.argv[0]).name, *sys.argv[1:2]])}".encode(), 0)
        except OSError:
            pass
        remove_stale_temporaries(store)
        yield
    finally:
        os.close(fd)  # releases the lock
