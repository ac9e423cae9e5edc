"""The ``fewshotkit`` command line: one click group, commands imported only when used.

Command modules must not import torch or timm at module level, so ``--help`` stays fast.
User errors (:class:`fewshotkit.core.errors.FewshotkitError`) print as one line on stderr; set
``FEWSHOTKIT_DEBUG=1`` to see the traceback of any error.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings

import click

from fewshotkit.core.version import __version__
from fewshotkit.core.errors import FewshotkitError

# command name -> "module:attribute"; each module owns its commands.
LAZY_COMMANDS = {
    "plugins": "fewshotkit.cli.plugins:plugins",
    "components": "fewshotkit.cli.plugins:components",
    "env": "fewshotkit.cli.plugins:env",
    "ingest": "fewshotkit.cli.data:ingest",
    "pseudolabel": "fewshotkit.cli.data:pseudolabel",
    "store": "fewshotkit.cli.store:store",
    "compose": "fewshotkit.cli.compose:compose",
    "train": "fewshotkit.cli.train:train",
    "curves": "fewshotkit.cli.curves:curves",
    "eval": "fewshotkit.cli.evaluate:eval_command",
    "bench": "fewshotkit.cli.bench:bench",
    "segment": "fewshotkit.cli.segment:segment",
    "demo": "fewshotkit.cli.demo:demo",
    "weights": "fewshotkit.cli.weights:weights",
}


class LazyGroup(click.Group):
    """A group whose built-in commands are imported on use and plugins add their own."""

    _commands_host: object = None  # the plugin host whose plugins' commands are added
    _plugin_commands: frozenset[str] = frozenset()

    def add_plugin_commands(self) -> None:
        """Add the commands of the current host's plugins, replacing those of an earlier host (an
        earlier in-process invocation configured with other plugins)."""
        from fewshotkit.host.plugin_host import get_host

        host = get_host()
        if self._commands_host is host:
            return
        for name in self._plugin_commands:
            self.commands.pop(name, None)
        before = set(self.commands)
        self._commands_host = host
        host.add_commands(self, reserved=LAZY_COMMANDS)
        self._plugin_commands = frozenset(set(self.commands) - before)

    def _lazy(self, name: str) -> click.Command | None:
        target = LAZY_COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # a command module absent from this install is left out
                return None
            raise
        return getattr(module, attr)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.add_plugin_commands()
        names = set(super().list_commands(ctx))
        names.update(n for n in LAZY_COMMANDS if self._lazy(n) is not None)
        return sorted(names)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        # Configure the host here: click resolves the subcommand before the group callback runs.
        from fewshotkit.host.plugin_host import configure

        configure(
            plugins_dirs=ctx.params.get("plugins_dir") or (),
            disabled=ctx.params.get("disabled") or (),
            strict=ctx.params.get("strict_plugins"),
        )
        return rest

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except FewshotkitError as exc:
            if os.environ.get("FEWSHOTKIT_DEBUG"):
                raise
            raise click.ClickException(str(exc)) from exc

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = self._lazy(name)
        if command is not None:
            return command
        self.add_plugin_commands()
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fewshotkit")
@click.option(
    "--plugins-dir",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="Load loose *.py plugin files from this directory (repeatable; also FEWSHOTKIT_PLUGINS_DIR).",
)
@click.option(
    "--disable-plugin",
    "disabled",
    multiple=True,
    metavar="NAME",
    help="Do not load the plugin NAME (repeatable; also FEWSHOTKIT_DISABLE_PLUGINS=a,b).",
)
@click.option(
    "--strict-plugins",
    is_flag=True,
    default=None,
    help="Fail when a plugin cannot be loaded instead of skipping it (also FEWSHOTKIT_STRICT_PLUGINS=1).",
)
def cli(plugins_dir: tuple[str, ...], disabled: tuple[str, ...], strict_plugins: bool | None) -> None:
    """fewshotkit: few-shot medical image segmentation composed from plugins.

    Ingest scans into a slice store, generate superpixel pseudolabels, compose a method from
    plugins, train it, evaluate it with the standard protocol and segment new scans.
    """
    # the plugin options were applied by LazyGroup.parse_args, before the subcommand was resolved;
    # configuring again here would load every plugin a second time


def _format_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> None:
    """Console entry point: user errors become one line on stderr and exit code 1."""
    debug = bool(os.environ.get("FEWSHOTKIT_DEBUG"))
    if not debug:
        warnings.formatwarning = _format_warning
    try:
        cli.main(args=argv, prog_name="fewshotkit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except FewshotkitError as exc:
        if debug:
            raise
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug, not a user error: still one line unless debugging
        if debug:
            raise
        click.echo(
            f"Error: unexpected {type(exc).__name__}: {exc} (set FEWSHOTKIT_DEBUG=1 for the traceback)",
            err=True,
        )
        sys.exit(1)
