"""Plugin CLI commands: what the ``register_commands`` hooks add to the click group, and which plugin
owns each command. A command is kept only under a name no built-in command and no earlier plugin's
command has; one that would replace another is left out, with a warning, and listed among its
plugin's conflicts.
"""

from __future__ import annotations

import warnings
from typing import Any, Iterable, Iterator

import pluggy

from fewshotkit.host.core_components import CORE
from fewshotkit.host.plugin_loading import PluginInfo


class PluginCommands:
    """Runs the plugins' ``register_commands`` hooks and remembers which plugin added each command."""

    def __init__(self, pm: pluggy.PluginManager, plugins: dict[str, PluginInfo]) -> None:
        self.pm = pm
        self.plugins = plugins
        self.owners: dict[str, str] = {}  # CLI command name -> the plugin that added it

    def add(self, cli: Any, reserved: Iterable[str] = ()) -> Iterator[tuple[str, Exception]]:
        """Let each plugin's hook add click commands to the group ``cli`` (``reserved``: the built-in
        command names). A hook that raises leaves ``cli.commands`` as it found them and is yielded
        as (plugin, error), for the caller to record as a failed plugin; a generator, so no command
        is added until the caller iterates it to the end."""
        for impl in self.pm.hook.register_commands.get_hookimpls():
            name = str(self.pm.get_name(impl.plugin))
            before = dict(cli.commands)
            try:
                impl.function(cli=cli)
            except Exception as exc:
                cli.commands.clear()
                cli.commands.update(before)
                yield name, exc
                continue
            self._keep_own_commands(cli, before, set(reserved), name)

    def _keep_own_commands(self, cli: Any, before: dict[str, Any], reserved: set[str], plugin: str) -> None:
        """Undo what ``plugin`` did to ``cli.commands`` over a built-in or an earlier plugin's command."""
        for command, obj in list(cli.commands.items()):
            if before.get(command) is obj:
                continue
            if command not in reserved and command not in before:
                self.owners[command] = plugin
                continue
            if command in before:
                cli.commands[command] = before[command]
            else:
                del cli.commands[command]
            owner = CORE if command in reserved else self.owners.get(command, "another plugin")
            self.plugins[plugin].conflicts.append(f"command '{command}' (also in '{owner}')")
            warnings.warn(f"fewshotkit: plugin '{plugin}' adds the command '{command}', which '{owner}' already "
                          "has: it was left out; rename it in the plugin", RuntimeWarning, stacklevel=2)
