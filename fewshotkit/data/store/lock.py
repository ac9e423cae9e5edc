"""One writer at a time per store: an exclusive ``flock`` on a sidecar ``<store>.lock`` file.

Every command that writes a store (``ingest``, ``pseudolabel``) holds the lock from before it
reads the store until after its temporary copy is renamed into place. A second writer does not
wait: it fails at once with a one-line error naming the store and the process holding it, so
neither run's work is lost (re-run the second command when the first has finished). Readers
take no lock: a rename never disturbs a reader's open file.

The lock (:mod:`fewshotkit.core.lock`) is released by the kernel when the holder exits, even after
``kill -9``. The lock file stays beside an existing store; beside a store that was never created
(a failed first ``ingest``) it is removed. A store reached through a symbolic link is locked, and
written, at its real path.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from fewshotkit.core.atomic import remove_stale_temporaries
from fewshotkit.core.lock import exclusive_lock
from fewshotkit.core.outputs import real_path


def lock_path(store: str | os.PathLike) -> Path:
    """``chaos.h5`` -> ``chaos.h5.lock`` beside the real store (a symbolic link to a store is resolved,
    so the link and the store it points to share one lock)."""
    store = real_path(store)
    return store.with_name(store.name + ".lock")


@contextmanager
def store_lock(store: str | os.PathLike) -> Iterator[None]:
    """Hold the write lock of ``store``; raise a :class:`DataError` at once if another process holds it.

    While it is held, the temporary files a killed writer left beside the store are removed. A
    lock file beside a store that does not exist when the lock is released (a failed first
    ingest) is removed.
    """
    real = real_path(store)

    def busy(holder: str) -> str:
        return f"store '{store}' is being written by another process ({holder}); wait for it to finish, then re-run this command"

    with exclusive_lock(lock_path(store), busy, remove_when=lambda: not real.exists()):
        remove_stale_temporaries(real)
        yield
