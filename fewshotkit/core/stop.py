"""SIGTERM as Ctrl-C for the commands that write a store, with a flag that outlives the exception.

The handler raises KeyboardInterrupt, so the writer's temporary file is removed on the way out and no
partial store stays. Python drops an exception raised while a finalizer runs (it prints "Exception
ignored in ..."), so the handler also sets a flag, and the store writer calls :func:`check` before
every write step: a stop that was requested is honoured at the next volume at the latest.
"""

from __future__ import annotations

import signal
from typing import Any

_requested = False


def _handler(signum: int, frame: Any) -> None:
    global _requested
    _requested = True
    raise KeyboardInterrupt


def terminate_cleanly() -> None:
    """Turn SIGTERM into KeyboardInterrupt (+ the flag) for the rest of this process."""
    signal.signal(signal.SIGTERM, _handler)


def check() -> None:
    """Raise KeyboardInterrupt again if a stop was requested (its first raise may have been dropped)."""
    if _requested:
        raise KeyboardInterrupt
