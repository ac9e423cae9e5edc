"""The plugin host: entry points, loose plugin files, failures, blocking, duplicates, names."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fewshotkit.host import hookspecs
from fewshotkit.core.errors import FewshotkitError, PluginError
from fewshotkit.host.plugin_host import HOOK_TO_KIND, PluginHost

REPO = Path(__file__).resolve().parents[1]

BROKEN = "import this_module_does_not_exist\n"
DUPLICATE = textwrap.dedent(
    """
    from fewshotkit import hookimpl

    @hookimpl
    def register_pseudolabelers(register):
        register("felzenszwalb", "fewshotkit_superpixel.labelers:Felzenszwalb")
    """
)
TYPO_HOOK = textwrap.dedent(
    """
    from fewshotkit import hookimpl

    @hookimpl
    def register_pseudolabeler(register):
        pass
    """
)
GOOD = textwrap.dedent(
    """
    from fewshotkit import hookimpl

    __version__ = "1.2.3"

    class Threshold:
        ndim = 2
        def __init__(self, level: float = 0.0):
            self.level = level
        def __call__(self, image, spacing=None):
            return (image > self.level).astype("int32")

    @hookimpl
    def register_pseudolabelers(register):
        register("threshold", Threshold, description="pixels above a level")
    """
)


def write_plugin(directory: Path, name: str, source: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.py"
    path.write_text(source)
    return path


def run_fewshotkit(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEWSHOTKIT_")}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "fewshotkit", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_builtin_plugins_load_through_entry_points(fresh_host):
    host = fresh_host.get_host()
    info = host.plugins["superpixel"]
    assert info.source == "entry-point" and info.error is None
    assert info.components["pseudolabeler"] == ["felzenszwalb", "slic"]
    assert "register_pseudolabelers" in info.hooks


def test_plugins_json_lists_builtin_components(run_cli):
    result = run_cli("plugins", "--json")
    assert result.exit_code == 0
    plugins = {p["name"]: p for p in json.loads(result.output)}
    assert set(plugins["superpixel"]["components"]["pseudolabeler"]) == {"felzenszwalb", "slic"}
    assert plugins["superpixel"]["version"]
    # an editable plugin: bench keys its results on the version and a hash of its code
    assert re.fullmatch(re.escape(plugins["superpixel"]["version"]) + r"\+code:[0-9a-f]{16}", plugins["superpixel"]["fingerprint"])
    assert plugins["fewshotkit"]["fingerprint"] == plugins["fewshotkit"]["version"]  # the core is not hashed


def test_components_filters_by_kind_and_glob(run_cli):
    result = run_cli("components", "pseudolabeler", "-q", "fel*", "--json")
    assert [c["name"] for c in json.loads(result.output)] == ["felzenszwalb"]


def test_broken_plugin_is_skipped_and_reported(tmp_path, run_cli):
    plugins_dir = tmp_path / "plugins"
    write_plugin(plugins_dir, "broken_one", BROKEN)
    write_plugin(plugins_dir, "good_one", GOOD)
    with pytest.warns(RuntimeWarning, match="broken_one"):
        result = run_cli("--plugins-dir", str(plugins_dir), "components", "--json")
    assert result.exit_code == 0
    names = {c["name"] for c in json.loads(result.output)}
    assert {"felzenszwalb", "threshold"} <= names

    with pytest.warns(RuntimeWarning):
        listing = json.loads(run_cli("--plugins-dir", str(plugins_dir), "plugins", "--json").output)
    by_name = {p["name"]: p for p in listing}
    assert "this_module_does_not_exist" in by_name["broken_one"]["error"]
    assert by_name["good_one"]["error"] is None and by_name["good_one"]["version"] == "1.2.3"


def test_broken_plugin_cli_subprocess_lenient_and_strict(tmp_path):
    plugins_dir = tmp_path / "plugins"
    write_plugin(plugins_dir, "broken_one", BROKEN)
    env = {"FEWSHOTKIT_PLUGINS_DIR": str(plugins_dir)}

    lenient = run_fewshotkit("components", env_extra=env)
    assert lenient.returncode == 0, lenient.stderr
    assert "felzenszwalb" in lenient.stdout
    assert "broken_one" in lenient.stderr  # one warning line

    listing = run_fewshotkit("plugins", env_extra=env)
    assert listing.returncode == 0 and "FAILED" in listing.stdout

    strict = run_fewshotkit("--strict-plugins", "components", env_extra=env)
    assert strict.returncode != 0
    assert "broken_one" in strict.stderr
    assert "Traceback" not in strict.stderr
    assert len(strict.stderr.strip().splitlines()) == 1

    strict_env = run_fewshotkit("plugins", env_extra={**env, "FEWSHOTKIT_STRICT_PLUGINS": "1"})
    assert strict_env.returncode != 0 and "broken_one" in strict_env.stderr


def test_debug_switch_shows_traceback(tmp_path):
    plugins_dir = tmp_path / "plugins"
    write_plugin(plugins_dir, "broken_one", BROKEN)
    env = {"FEWSHOTKIT_PLUGINS_DIR": str(plugins_dir), "FEWSHOTKIT_DEBUG": "1"}
    result = run_fewshotkit("--strict-plugins", "components", env_extra=env)
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_duplicate_component_names_both_plugins(tmp_path):
    plugins_dir = tmp_path / "plugins"
    write_plugin(plugins_dir, "copycat", DUPLICATE)
    result = run_fewshotkit("--plugins-dir", str(plugins_dir), "components")
    assert result.returncode != 0
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1
    assert "'superpixel'" in message and "'copycat'" in message and "felzenszwalb" in message


def test_disabled_plugin_is_not_loaded(tmp_path, run_cli):
    plugins_dir = tmp_path / "plugins"
    write_plugin(plugins_dir, "copycat", DUPLICATE)
    # disabling the built-in resolves the clash: the copy now owns the name
    result = run_cli("--plugins-dir", str(plugins_dir), "--disable-plugin", "superpixel", "components", "--json")
    assert result.exit_code == 0
    owners = {c["name"]: c["plugin"] for c in json.loads(result.output)}
    assert owners["felzenszwalb"] == "copycat"


def test_disable_by_environment(fresh_host, monkeypatch):
    monkeypatch.setenv("FEWSHOTKIT_DISABLE_PLUGINS", "superpixel")
    registry = fresh_host.get_registry()
    assert "felzenszwalb" not in registry.names("pseudolabeler")


def test_misspelt_hook_name_fails_the_plugin(tmp_path):
    write_plugin(tmp_path, "typo", TYPO_HOOK)
    with pytest.warns(RuntimeWarning, match="register_pseudolabeler"):
        host = PluginHost(plugins_dirs=[tmp_path], load_entry_points=False)
    assert host.plugins["typo"].error
    with pytest.raises(PluginError, match="typo"):
        PluginHost(plugins_dirs=[tmp_path], load_entry_points=False, strict=True)


def test_missing_plugins_dir_is_a_user_error(tmp_path):
    result = run_fewshotkit("--plugins-dir", str(tmp_path / "nope"), "components")
    assert result.returncode != 0
    assert "nope" in result.stderr and "Traceback" not in result.stderr


def test_unknown_name_suggests_close_match(fresh_host):
    registry = fresh_host.get_registry()
    with pytest.raises(FewshotkitError, match="Did you mean 'felzenszwalb'"):
        registry.get("pseudolabeler", "felzenswalb")


def test_unknown_option_lists_valid_ones(fresh_host):
    registry = fresh_host.get_registry()
    with pytest.raises(FewshotkitError) as excinfo:
        registry.create("pseudolabeler", "felzenszwalb", min_sise=100)
    message = str(excinfo.value)
    assert "min_sise" in message and "Did you mean 'min_size'" in message
    assert "scale" in message and "sigma" in message


def test_none_options_are_dropped(fresh_host):
    labeler = fresh_host.get_registry().create("pseudolabeler", "felzenszwalb", min_size=None, scale=2.0)
    assert labeler.min_size == 400 and labeler.scale == 2.0


def test_light_commands_do_not_import_torch():
    code = (
        "import sys\n"
        "from fewshotkit.cli import main\n"
        "for args in (['--help'], ['components'], ['plugins', '--json']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as e:\n"
        "        assert not e.code, e.code\n"
        "heavy = [m for m in ('torch', 'timm', 'skimage', 'h5py') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_every_hook_is_documented():
    doc = (REPO / "docs" / "writing-plugins.md").read_text()
    specs = [name for name in dir(hookspecs) if name.startswith("register_")]
    assert set(HOOK_TO_KIND) | {"register_commands"} == set(specs)
    for name in specs:
        assert getattr(hookspecs, name).__doc__, name
        assert name in doc, f"{name} is not documented in docs/writing-plugins.md"


def test_plugin_can_add_a_command(tmp_path):
    source = textwrap.dedent(
        """
        import click
        from fewshotkit import hookimpl

        @hookimpl
        def register_commands(cli):
            @cli.command(name="hello")
            def hello():
                "Say hello."
                click.echo("hello from a plugin")
        """
    )
    write_plugin(tmp_path, "greeter", source)
    result = run_fewshotkit("--plugins-dir", str(tmp_path), "hello")
    assert result.returncode == 0, result.stderr
    assert "hello from a plugin" in result.stdout


def test_env_reports_versions_and_device(run_cli):
    info = json.loads(run_cli("env", "--json").output)
    assert info["torch"] != "not installed" and info["timm"] != "not installed"
    assert info["device"] == "cpu" or info["device"].startswith("cuda: ")
    assert int(info["threads"]) >= 1
    from fewshotkit.core.device import numpy_simd

    assert info["numpy_simd"] == numpy_simd() and info["cpu"].endswith("bfloat16 units")


def test_misspelt_hook_name_gets_a_suggestion(tmp_path):
    write_plugin(tmp_path, "typo", TYPO_HOOK.replace("register_pseudolabeler", "register_pooler"))
    with pytest.warns(RuntimeWarning, match="Did you mean 'register_poolers'"):
        host = PluginHost(plugins_dirs=[tmp_path], load_entry_points=False)
    assert "unknown hook 'register_pooler'" in host.plugins["typo"].error


def test_plugins_command_shows_a_duplicate_instead_of_failing(tmp_path):
    plugins_dir = tmp_path / "plugins"
    write_plugin(plugins_dir, "copycat", DUPLICATE)
    listing = run_fewshotkit("--plugins-dir", str(plugins_dir), "plugins")
    assert listing.returncode == 0, listing.stderr
    text = " ".join(listing.stdout.split())
    assert "pseudolabeler 'felzenszwalb' is registered twice" in text and "'copycat'" in text
    as_json = {p["name"]: p for p in json.loads(run_fewshotkit("--plugins-dir", str(plugins_dir), "plugins",
                                                                   "--json").stdout)}
    assert as_json["copycat"]["conflicts"] and as_json["superpixel"]["error"] is None
    assert run_fewshotkit("--plugins-dir", str(plugins_dir), "components").returncode != 0  # still refused


def test_a_namesake_that_fails_keeps_the_loaded_plugins_record(tmp_path):
    write_plugin(tmp_path, "superpixel", GOOD)  # same name as the built-in entry point
    with pytest.warns(RuntimeWarning, match="already loaded"):
        host = PluginHost(plugins_dirs=[tmp_path])
    assert host.plugins["superpixel"].error is None and host.plugins["superpixel"].source == "entry-point"
    assert "superpixel" in host.versions()
    assert any(info.error and info.source == "file" for info in host.plugins.values())


def test_a_plugin_failing_half_way_leaves_no_components(tmp_path):
    source = GOOD.replace('register("threshold", Threshold, description="pixels above a level")',
                          'register("threshold", Threshold)\n    raise RuntimeError("boom")')
    write_plugin(tmp_path, "halfway", source)
    with pytest.warns(RuntimeWarning, match="boom"):
        host = PluginHost(plugins_dirs=[tmp_path], load_entry_points=False)
    assert "threshold" not in host.registry.names("pseudolabeler") and "halfway" not in host.versions()


def test_plugin_code_outside_an_installation_is_fingerprinted_by_its_source(tmp_path):
    """A source checkout is hashed whatever metadata importlib finds first (a stale egg-info in the
    working directory has no direct_url.json), so cache keys do not depend on the directory."""
    from fewshotkit.host.provenance import is_editable

    class Metadata:  # a distribution whose metadata says nothing about editable installs
        def read_text(self, name):
            return None

    checkout = tmp_path / "src" / "my_plugin"
    installed = tmp_path / "lib" / "site-packages" / "my_plugin"
    for path in (checkout, installed):
        path.mkdir(parents=True)
    assert is_editable(Metadata(), checkout)
    assert not is_editable(Metadata(), installed)
    assert is_editable(None, installed)
