"""User-facing errors: the CLI prints them as one line, without a traceback."""

from __future__ import annotations


class FewshotkitError(Exception):
    """A problem the user can fix (bad input, unknown name, bad option).

    The message must name the file or option at fault and say what to do.
    """


class UnknownComponentError(FewshotkitError, KeyError):
    """A component name no loaded plugin registered; ``kind`` and ``name`` say which."""

    kind: str = ""
    name: str = ""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PluginError(FewshotkitError):
    """A plugin failed to load or registered something invalid."""


class DataError(FewshotkitError):
    """Missing, corrupt or inconsistent input data."""
