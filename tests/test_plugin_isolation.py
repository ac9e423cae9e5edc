"""One plugin's failure or clash never leaks into the others, the registries or the CLI."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from fewshotkit.core.errors import PluginError
from fewshotkit.host import plugin_loading
from fewshotkit.host.plugin_host import PluginHost

FAILS_FIRST = textwrap.dedent(
    """
    import click
    from fewshotkit import hookimpl

    class Pool:
        pass

    @hookimpl
    def register_pseudolabelers(register):
        register("felzenszwalb", "x.y:Z")  # a clash with the built-in, before the failure below

    @hookimpl
    def register_poolers(register):
        raise RuntimeError("boom")

    @hookimpl
    def register_classifiers(register):
        register("late-classifier", Pool)

    @hookimpl
    def register_commands(cli):
        @cli.command(name="from-a-failed-plugin")
        def command():
            click.echo("should not exist")
    """
)


def write(directory: Path, name: str, source: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def command_plugin(command: str, body: str = 'click.echo("hi")') -> str:
    return textwrap.dedent(
        f"""
        import click
        from fewshotkit import hookimpl

        @hookimpl
        def register_commands(cli):
            @cli.command(name={command!r})
            def command():
                {body}
        """
    )


def test_a_plugin_failing_in_any_hook_registers_nothing_clashes_with_nothing_and_adds_no_command(tmp_path, fresh_host):
    write(tmp_path, "halfway", FAILS_FIRST)
    fresh_host.configure(plugins_dirs=[str(tmp_path)])
    with pytest.warns(RuntimeWarning, match="boom"):
        registry = fresh_host.get_registry()  # the failed plugin's clash does not block the registry
    host = fresh_host.get_host()
    assert "late-classifier" not in registry.names("classifier")
    assert registry.get("pseudolabeler", "felzenszwalb").plugin == "superpixel"
    assert host.conflicts == [] and host.plugins["halfway"].components == {}
    import click

    group = click.Group()
    host.add_commands(group)
    assert "from-a-failed-plugin" not in group.commands


def test_a_plugin_naming_one_component_twice_fails(tmp_path):
    write(tmp_path, "twice", """
        from fewshotkit import hookimpl

        @hookimpl
        def register_classifiers(register):
            register("same", "m:A")
            register("other", "m:B", aliases=["same"])
        """)
    with pytest.warns(RuntimeWarning, match="registers classifier 'same' twice"):
        host = PluginHost(plugins_dirs=[tmp_path], load_entry_points=False)
    assert host.conflicts == [] and "same" not in host.registry.names("classifier")


def test_one_module_under_two_entry_points_fails_the_second_only(monkeypatch):
    eps = [importlib.metadata.EntryPoint(name, "fewshotkit.host.core_components", "fewshotkit")
           for name in ("again", "twice")]
    monkeypatch.setattr(plugin_loading, "entry_points", lambda group: eps)
    with pytest.warns(RuntimeWarning, match="already loaded as plugin 'fewshotkit'"):
        host = PluginHost()
    assert host.plugins["again"].error and host.plugins["twice"].error
    assert host.registry.get("method", "composed").plugin == "fewshotkit"


def test_a_namesake_file_in_a_second_folder_is_not_run(tmp_path):
    marker = tmp_path / "ran"
    write(tmp_path / "a", "dup", "VALUE = 'first'\n")
    write(tmp_path / "b", "dup", f"open({str(marker)!r}, 'w').close()\nVALUE = 'second'\n")
    with pytest.warns(RuntimeWarning, match="already loaded"):
        host = PluginHost(plugins_dirs=[tmp_path / "a", tmp_path / "b"], load_entry_points=False)
    assert not marker.exists()
    assert sys.modules["fewshotkit_plugins_dir.dup"].VALUE == "first"
    assert host.plugins["dup"].error is None


def test_a_plugin_that_exits_at_import_is_skipped(tmp_path):
    write(tmp_path, "quitter", "raise SystemExit(3)\n")
    with pytest.warns(RuntimeWarning, match="quitter"):
        host = PluginHost(plugins_dirs=[tmp_path], load_entry_points=False)
    assert "SystemExit" in host.plugins["quitter"].error


def test_a_plugin_command_never_replaces_a_built_in_or_an_earlier_plugins(tmp_path, run_cli):
    write(tmp_path, "a_first", command_plugin("hello", 'click.echo("first")'))
    write(tmp_path, "b_second", command_plugin("hello", 'click.echo("second")'))
    write(tmp_path, "c_trainer", command_plugin("train", 'click.echo("hijacked")'))
    with pytest.warns(RuntimeWarning) as caught:
        result = run_cli("--plugins-dir", str(tmp_path), "hello")
    assert result.output.strip() == "first"
    messages = " ".join(str(w.message) for w in caught)
    assert "'b_second' adds the command 'hello', which 'a_first' already has" in messages
    assert "'c_trainer' adds the command 'train', which 'fewshotkit' already has" in messages
    assert "hijacked" not in run_cli("--plugins-dir", str(tmp_path), "train", "--help").output
    listing = {p["name"]: p for p in json.loads(run_cli("--plugins-dir", str(tmp_path), "plugins", "--json").output)}
    assert listing["b_second"]["conflicts"] == ["command 'hello' (also in 'a_first')"]


def test_a_plugin_whose_command_hook_fails_keeps_no_component(tmp_path):
    write(tmp_path, "cmdfail", """
        from fewshotkit import hookimpl

        @hookimpl
        def register_classifiers(register):
            register("kept-not", "m:A")

        @hookimpl
        def register_commands(cli):
            raise RuntimeError("no commands today")
        """)
    import click

    host = PluginHost(plugins_dirs=[tmp_path], load_entry_points=False)
    with pytest.warns(RuntimeWarning, match="no commands today"):
        host.add_commands(click.Group())
    assert "kept-not" not in host.registry.names("classifier") and "cmdfail" not in host.versions()


def test_each_invocation_gets_the_commands_of_its_own_plugins(tmp_path, run_cli):
    write(tmp_path, "greeter", command_plugin("hello"))
    assert run_cli("--help").exit_code == 0  # adds the (no) plugin commands of a host without the folder
    assert run_cli("--plugins-dir", str(tmp_path), "hello").output.strip() == "hi"
    assert "No such command 'hello'" in run_cli("hello").output


def test_a_plugin_command_loads_the_plugins_once(tmp_path):
    marker = tmp_path / "imports"
    write(tmp_path / "plugins", "counter", f"open({str(marker)!r}, 'a').write('x')\n"
          + command_plugin("count", "from fewshotkit.host.plugin_host import get_registry; get_registry()"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEWSHOTKIT_")}
    result = subprocess.run([sys.executable, "-m", "fewshotkit", "--plugins-dir", str(tmp_path / "plugins"), "count"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert marker.read_text() == "x"


def test_a_missing_plugins_folder_is_refused_before_any_command_runs(tmp_path, run_cli, fresh_host, monkeypatch):
    result = run_cli("--plugins-dir", str(tmp_path / "nope"), "env", "--json")
    assert result.exit_code != 0 and "--plugins-dir" in result.output and "nope" in result.output
    monkeypatch.setenv("FEWSHOTKIT_PLUGINS_DIR", str(tmp_path / "gone"))
    with pytest.raises(PluginError, match="FEWSHOTKIT_PLUGINS_DIR: '.*gone' is not a folder"):
        fresh_host.get_host()


def test_a_misspelt_disabled_plugin_is_reported():
    with pytest.warns(RuntimeWarning, match="names 'superpixl', which no installed plugin is called. "
                                            "Did you mean 'superpixel'?"):
        host = PluginHost(disabled=["superpixl"])
    assert host.plugins["superpixel"].error is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PluginHost(disabled=["superpixel"])
