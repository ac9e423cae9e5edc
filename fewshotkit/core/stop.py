"""Stop requests (Ctrl-C, or SIGTERM from a scheduler pre-empting the job): one flag per process.

Two kinds of work act on the flag:

- **Writing a store** (:func:`terminate_cleanly`): SIGTERM raises KeyboardInterrupt at once, so the
  writer's temporary file is removed on the way out and no partial store stays. Python drops an
  exception raised while a finalizer runs (it prints "Exception ignored in ..."), so the handler
  also sets the flag, and the store writer calls :func:`check` before every write step: a stop
  that was requested is honoured at the next volume at the latest.
- **Training** (:class:`StopRequest`): inside the ``with`` block the first SIGINT or SIGTERM only
  sets the flag, which the loop reads between steps so it can write a checkpoint before it stops;
  a second signal acts at once. Leaving the block clears the flag: the request was honoured.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

_requested = False


def _request_and_raise(signum: int, frame: Any) -> None:
    global _requested
    _requested = True
    raise KeyboardInterrupt


def terminate_cleanly() -> None:
    """Turn SIGTERM into KeyboardInterrupt (+ the flag) for the rest of this process."""
    signal.signal(signal.SIGTERM, _request_and_raise)


def requested() -> bool:
    """Whether a stop was requested."""
    return _requested


def check() -> None:
    """Raise KeyboardInterrupt again if a stop was requested (its first raise may have been dropped)."""
    if _requested:
        raise KeyboardInterrupt


class StopRequest:
    """While entered, the first SIGINT or SIGTERM sets the flag (:attr:`requested`) instead of
    stopping; the previous handlers come back then, so a second signal acts at once. Handlers can
    only be set from the main thread; elsewhere the block only reads the flag."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return _requested

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        global _requested
        _requested = True
        self._restore()

    def _restore(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def __exit__(self, *exc: Any) -> None:
        global _requested
        self._restore()
        _requested = False
