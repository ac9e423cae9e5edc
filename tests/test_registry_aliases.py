"""Aliases (other names of a component) and the core's own ``composed`` method."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from fewshotkit.core.errors import PluginError, UnknownComponentError
from fewshotkit.host.plugin_host import PluginHost
from fewshotkit.host.registry import Registry

COMPOSED = "fewshotkit.method.composed:ComposedPrototypeMethod"
ALIASED = textwrap.dedent(
    """
    from fewshotkit import hookimpl

    @hookimpl
    def register_poolers(register):
        register("gain-avg", "fewshotkit_panet.parts:MaskedAvgPooler", description="masked average",
                 aliases=["gavg", "mean-proto"])
    """
)


def write(directory: Path, name: str, source: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.py").write_text(source)
    return directory


def test_an_alias_resolves_to_its_component():
    registry = Registry()
    registry.add("method", "composed", COMPOSED, "core", aliases=("alpnet", "panet"))
    component = registry.get("method", "panet")
    assert component is registry.get("method", "composed") and component.name == "composed"
    assert registry.has("method", "alpnet") and not registry.has("pooler", "alpnet")
    assert component.aliases == ("alpnet", "panet")
    assert registry.names("method") == ["composed"]  # names only
    assert [c.name for c in registry.list("method")] == ["composed"]  # listed once
    assert [c.name for c in registry.list("method", "alp*")] == ["composed"]  # a wildcard matches aliases


def test_unknown_names_suggest_aliases_too():
    registry = Registry()
    registry.add("method", "composed", COMPOSED, "core", aliases=("alpnet",))
    with pytest.raises(UnknownComponentError) as exc:
        registry.get("method", "alpnett")
    assert "Did you mean 'alpnet'?" in str(exc.value) and "Known: composed." in str(exc.value)


@pytest.mark.parametrize(
    "name, aliases, message",
    [
        ("other", ("alpnet",), "method 'alpnet' is registered twice: as an alias of method 'composed' by plugin "
                               "'core' and by plugin 'p'"),
        ("other", ("composed",), "method 'composed' is registered twice: by plugin 'core' and by plugin 'p'"),
        ("alpnet", (), "method 'alpnet' is registered twice: as an alias of method 'composed'"),
        ("other", ("x", "x"), "plugin 'p': method 'other' lists 'x' twice"),
        ("other", ("other",), "lists 'other' twice"),
        ("other", "x", "aliases must be a list of non-empty strings"),
        ("other", ("",), "aliases must be a list of non-empty strings"),
    ],
)
def test_taken_or_malformed_aliases_are_plugin_errors(name, aliases, message):
    registry = Registry()
    registry.add("method", "composed", COMPOSED, "core", aliases=("alpnet",))
    with pytest.raises(PluginError) as exc:
        registry.add("method", name, COMPOSED, "p", aliases=aliases)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert registry.names("method") == ["composed"]


def test_removing_a_plugin_frees_its_aliases():
    registry = Registry()
    registry.add("pooler", "gain-avg", "m:A", "p", aliases=("gavg",))
    registry.remove_plugin("p")
    assert not registry.has("pooler", "gavg")
    registry.add("pooler", "gavg", "m:A", "q")  # the name is free again


def test_a_plugin_registers_its_own_aliases(fresh_host, tmp_path, run_cli):
    fresh_host.configure(plugins_dirs=[str(write(tmp_path, "aliased", ALIASED))])
    registry = fresh_host.get_registry()
    assert registry.get("pooler", "mean-proto").name == "gain-avg"
    assert type(registry.create("pooler", "gavg")).__name__ == "MaskedAvgPooler"
    rows = json.loads(run_cli("--plugins-dir", str(tmp_path), "components", "pooler", "--json").output)
    assert [r["aliases"] for r in rows if r["name"] == "gain-avg"] == [["gavg", "mean-proto"]]
    assert not any(r["name"] in ("gavg", "mean-proto") for r in rows)
    shown = run_cli("--plugins-dir", str(tmp_path), "components", "pooler", "gavg")
    assert shown.exit_code == 0 and "pooler 'gain-avg' (aliases: gavg, mean-proto)" in shown.output


def test_an_alias_another_plugin_holds_is_a_conflict(fresh_host, tmp_path):
    write(tmp_path, "aliased", ALIASED)
    write(tmp_path, "copycat", ALIASED.replace('"gain-avg"', '"gain-avg2"').replace('"gavg", ', ""))
    host = PluginHost(plugins_dirs=[tmp_path], load_entry_points=False)
    assert host.conflicts == [
        "pooler 'mean-proto' is registered twice: as an alias of pooler 'gain-avg' by plugin 'aliased' and by "
        "plugin 'copycat'. Disable one of them (--disable-plugin NAME)."
    ]
    assert host.plugins["copycat"].conflicts == ["pooler 'mean-proto' (also in 'aliased')"]
    assert host.registry.get("pooler", "mean-proto").plugin == "aliased"
    fresh_host.configure(plugins_dirs=[str(tmp_path)])
    with pytest.raises(PluginError, match="registered twice"):
        fresh_host.get_registry()


def test_the_core_registers_composed(fresh_host, tmp_path):
    host = PluginHost(load_entry_points=False)
    component = host.registry.get("method", "composed")
    assert component.plugin == "fewshotkit" and component.factory == COMPOSED
    assert host.plugins["fewshotkit"].source == "core" and "fewshotkit" not in host.versions()
    with pytest.raises(PluginError, match="cannot be disabled"):
        PluginHost(disabled=["fewshotkit"], load_entry_points=False)
    write(tmp_path, "fewshotkit", ALIASED)  # a loose plugin may not take the core's name
    with pytest.warns(RuntimeWarning, match="already loaded"):
        assert PluginHost(plugins_dirs=[tmp_path], load_entry_points=False).plugins["fewshotkit"].source == "core"


def test_a_composed_spec_builds_without_fingerprinting_the_core(fresh_host):
    from fewshotkit.method.composed import ComposedPrototypeMethod
    from fewshotkit.method.provenance import plugin_fingerprints, plugin_providers
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.method.build import build_method

    spec = apply_overrides(preset_spec("ssl-panet-cpu"), ["method=composed", "backbone.width=8"])
    assert isinstance(build_method(spec), ComposedPrototypeMethod)
    assert plugin_providers(spec)["method:composed"] == "fewshotkit"
    assert set(plugin_fingerprints(spec)) == {"panet", "timm-backbones"}


@pytest.mark.parametrize("method", ["alpnet", "panet", "adnet", "qnet", "regional"])
def test_old_method_names_build_the_composed_method(fresh_host, method):
    from fewshotkit.method.composed import ComposedPrototypeMethod
    from fewshotkit.method.build import parse_spec
    from fewshotkit.method.build import build_method

    spec = parse_spec(f'method = "{method}"\n[backbone]\ntype = "light"\nwidth = 8\n[pooler]\ntype = "masked-avg"\n'
                      '[classifier]\ntype = "cosine"\n')
    assert type(build_method(spec)) is ComposedPrototypeMethod


def _preset_plugins(name: str) -> set[str]:
    """The plugins each preset's bench cache key has fingerprinted since the presets were written."""
    if name.startswith("senet"):
        return {"senet"}
    if name.startswith(("ssl-qnet-cpu", "ssl-rpt", "ssl-gmrd")) or name == "ssl-qnet":
        return {"threshold", "timm-backbones"}  # the published forms: methods of the threshold plugin
    if "adnet" in name or "qnet" in name:
        return {"panet", "threshold", "timm-backbones"}
    if "regional" in name:
        return {"threshold", "timm-backbones"}
    return {"panet" if "panet" in name else "alp", "timm-backbones"}


def test_preset_fingerprints_keep_their_plugins(fresh_host):
    from fewshotkit.method.presets import PRESETS
    from fewshotkit.method.provenance import plugin_fingerprints
    from fewshotkit.method.spec import preset_spec

    host = fresh_host.get_host()
    for name in PRESETS:
        fingerprints = plugin_fingerprints(preset_spec(name))
        assert fingerprints == {p: host.fingerprint(p) for p in _preset_plugins(name)}, name


def test_the_paper_method_names_are_aliases_of_composed(run_cli, fresh_host):
    host = fresh_host.get_host()
    for name in ("alpnet", "panet", "adnet", "qnet", "regional"):
        component = host.registry.get("method", name)
        assert (component.name, component.plugin) == ("composed", "fewshotkit")
    assert not any("method" in host.plugins[p].components for p in ("alp", "panet"))
    # the threshold plugin's own methods are the published forms, none of the composed method's names
    assert host.plugins["threshold"].components["method"] == ["qnet-dual", "rpt", "gmrd"]
    rows = json.loads(run_cli("components", "method", "--json").output)
    assert [(r["name"], r["aliases"]) for r in rows if r["plugin"] == "fewshotkit"] == [
        ("composed", ["alpnet", "panet", "adnet", "qnet", "regional"])]
    assert {r["name"] for r in rows} == {"composed", "senet", "qnet-dual", "rpt", "gmrd"}


def test_a_checkpoint_that_recorded_plugin_alp_as_the_method_provider_loads(fresh_host, tmp_path):
    import torch

    from fewshotkit.method.composed import ComposedPrototypeMethod
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.method.build import build_method
    from fewshotkit.method.checkpoint import FORMAT, VERSION, load_method, save_checkpoint, spec_to_toml

    spec = apply_overrides(preset_spec("ssl-alpnet-cpu"), ["backbone.width=8"])
    torch.manual_seed(0)
    trained = build_method(spec)
    providers = {"method:alpnet": "alp", "backbone:light": "timm-backbones", "pooler:alp": "alp",
                 "classifier:cosine-softmax": "alp"}  # as runs recorded them before 'composed'
    path = save_checkpoint(tmp_path / "last.pt", {
        "format": FORMAT, "version": VERSION, "step": 3, "model": trained.state_dict(), "spec_toml": spec_to_toml(spec),
        "plugin_versions": {"alp": "0.1.0", "timm-backbones": "0.1.0"}, "plugin_providers": providers,
        "run": {"plugin_providers": providers}})
    loaded = load_method(path)
    assert type(loaded.method) is ComposedPrototypeMethod and loaded.spec.method == "alpnet"
    assert all(torch.equal(a, b) for a, b in zip(loaded.method.state_dict().values(), trained.state_dict().values()))
