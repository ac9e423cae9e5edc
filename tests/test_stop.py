"""One stop mechanism: the flag a training's first Ctrl-C sets is the one a store writer checks,
a second signal acts at once, and leaving the training clears it."""

from __future__ import annotations

import signal

import pytest


def test_training_and_writers_share_one_stop_flag(monkeypatch):
    from fewshotkit.core import stop

    # start from Python's own handler, whatever an earlier test or library left installed
    monkeypatch.setattr(signal, "_fewshotkit_saved", signal.signal(signal.SIGINT, signal.default_int_handler),
                        raising=False)
    assert not stop.requested()
    with stop.StopRequest() as request:
        signal.raise_signal(signal.SIGINT)  # the first signal only sets the flag (raised in this thread: no race)
        assert request.requested and stop.requested()
        with pytest.raises(KeyboardInterrupt):
            stop.check()
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)  # the previous handler is back: a second signal stops
    assert not stop.requested() and signal.getsignal(signal.SIGINT) is signal.default_int_handler
