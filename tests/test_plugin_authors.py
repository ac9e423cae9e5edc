"""What a plugin author meets: option listings, the guide's commands, bench caching keyed on plugin
code, missing plugins named from a run's record, run-time contract checks, --n-folds."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from fewshotkit.core.errors import FewshotkitError

from conftest import POOLER_PLUGIN, pseudolabelled_store

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO / "docs" / "writing-plugins.md"
SMALL = ["image_size=64", "backbone.width=8", "backbone.out_channels=16", "training.batch_size=1",
         "training.log_every=1"]

BROKEN_PARTS = textwrap.dedent(
    """
    import torch
    from torch import nn
    from fewshotkit import hookimpl
    from fewshotkit.method.composed import masked_average, resize_masks
    from fewshotkit.interfaces.backbone import Backbone
    from fewshotkit.interfaces.pooler import PrototypePooler


    class VectorPooler(PrototypePooler):
        def forward(self, features, masks):  # (C,) vectors instead of (P_c, C) tensors
            masks = resize_masks(masks, tuple(features.shape[-2:]))
            return list(masked_average(features, masks))


    class LyingBackbone(Backbone):
        def __init__(self):
            super().__init__()
            self.in_channels, self.out_channels, self.stride = 1, 64, 4  # declared
            self.conv = nn.Conv2d(1, 32, 3, stride=8, padding=1)  # actual: 32 channels, stride 8

        def forward(self, images):
            return self.conv(images)


    @hookimpl
    def register_poolers(register):
        register("vector", VectorPooler)


    @hookimpl
    def register_backbones(register):
        register("lying", LyingBackbone)
    """
)


def write(directory: Path, name: str, source: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.py"
    path.write_text(source)
    return path


def run_fewshotkit(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEWSHOTKIT_")}
    return subprocess.run([sys.executable, "-m", "fewshotkit", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def small_store(tmp_path_factory) -> Path:
    """3 synthetic 64 x 64 volumes (3 patients) with a felzenszwalb set: fewer scans than 5 folds."""
    return pseudolabelled_store(tmp_path_factory.mktemp("authors") / "three.h5", min_size=100, volumes=3,
                                seed=0, slices=10, size=64)


# -- 2: options ---------------------------------------------------------------------------------
def test_components_kind_name_lists_options_with_defaults_types_and_descriptions(run_cli):
    result = run_cli("components", "backbone", "timm", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    options = {o["name"]: o for o in info["options"]}
    assert {"model", "out_channels", "in_channels", "output_stride", "weights", "pretrained"} <= set(options)
    assert options["model"]["default"] == "resnet18" and options["model"]["type"] == "str"
    assert options["output_stride"]["default"] == 8 and "dilation" in options["output_stride"]["description"]
    assert info["plugin"] == "timm-backbones" and info["summary"]

    table = run_cli("components", "pooler", "--options")
    assert table.exit_code == 0 and "train_window" in table.output and "--set pooler.OPTION=VALUE" in table.output
    unknown = run_cli("components", "pooler", "alpp")
    assert unknown.exit_code != 0 and "Did you mean 'alp'" in unknown.output


def test_unknown_option_points_at_the_listing(fresh_host):
    with pytest.raises(FewshotkitError, match="fewshotkit components pooler alp"):
        fresh_host.get_registry().create("pooler", "alp", windw=3)


@pytest.mark.slow
# -- 4: the guide's commands ----------------------------------------------------------------------
def test_the_guides_commands_work_as_written(tmp_path):
    text = GUIDE.read_text()
    source = re.search(r"```python\n(# my_pooler\.py\n.*?)```", text, re.S).group(1)
    (tmp_path / "my_pooler.py").write_text(source)
    commands = [line[2:] for block in re.findall(r"```console\n(.*?)```", text, re.S)
                for line in block.splitlines() if line.startswith("$ ")]
    assert any("compose" in c for c in commands)
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "fewshotkit"
        result = run_fewshotkit(*argv[1:], cwd=tmp_path)
        assert result.returncode == 0, f"{command}: {result.stderr}"
    assert 'type = "max"' in (tmp_path / "max.toml").read_text()


def test_unknown_component_hints_at_a_missing_plugin(tmp_path):
    (tmp_path / "my_pooler.py").write_text("")
    result = run_fewshotkit("compose", "--preset", "ssl-alpnet", "--set", "pooler.type=max", cwd=tmp_path)
    assert result.returncode == 1
    assert "unknown pooler 'max'" in result.stderr and "--plugins-dir" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# -- 1 + 3 + 10: bench keyed on plugin code, --n-folds, the pooler axis -------------------------
def test_bench_retrains_after_a_loose_plugin_changes(fresh_host, small_store, tmp_path):
    from fewshotkit.apps.bench.study import Bench, BenchConfig

    plugins = tmp_path / "plugins"
    plugin = write(plugins, "gainpool", POOLER_PLUGIN)
    logs: list[str] = []

    def run() -> list[str]:
        fresh_host.reset()
        fresh_host.configure(plugins_dirs=[str(plugins)])
        logs.clear()
        config = BenchConfig(stores=[str(small_store)], methods=["ssl-alpnet-cpu"], poolers=["scaled-mean"],
                             out=str(tmp_path / "bench"), steps=1, n_folds=3, overrides=SMALL, device="cpu",
                             chunks=1)
        result = Bench(config, log=logs.append).run()
        assert [row[0] for row in result.tables["three"].rows] == ["SSL-ALPNet (CPU recipe) + scaled-mean"]
        return list(logs)

    first = run()
    assert any(m.startswith("training") for m in first)
    run_json = next((tmp_path / "bench" / "runs").rglob("run.json"))
    assert json.loads(run_json.read_text())["n_folds"] == 3
    assert any(m.startswith("cached") for m in run())  # nothing changed: served from the cache

    plugin.write_text(POOLER_PLUGIN.replace("SCALE = 1.0", "SCALE = 2.0"))
    third = run()
    assert any(m.startswith("training") for m in third) and not any(m.startswith("cached") for m in third)


def test_plugin_fingerprints(fresh_host, tmp_path):
    """A loose file's fingerprint hashes its code: comments and docstrings leave it, code changes it."""
    plugin = write(tmp_path, "gainpool", POOLER_PLUGIN)

    def fingerprint() -> str:
        fresh_host.reset()
        fresh_host.configure(plugins_dirs=[str(tmp_path)])
        return fresh_host.get_host().fingerprint("gainpool")

    loose = fingerprint()
    assert re.fullmatch(r"code:[0-9a-f]{16}", loose)
    assert fresh_host.get_host().fingerprint("alp").startswith(fresh_host.get_host().plugins["alp"].version)
    plugin.write_text('"""A pooler."""\n' + POOLER_PLUGIN.replace("SCALE = 1.0", "SCALE = 1.0  # the gain") + "\n\n# edited\n")
    assert fingerprint() == loose
    plugin.write_text(POOLER_PLUGIN.replace("SCALE = 1.0", "SCALE = 2.0"))
    assert fingerprint() != loose


def test_bench_options_and_help(run_cli):
    from fewshotkit.apps.bench.study import BenchConfig
    from fewshotkit.method.spec import PRESETS

    config = BenchConfig(stores=["s.h5"], methods=["ssl-alpnet-cpu"], out="x", folds="all", n_folds=3)
    assert config.folds == [0, 1, 2]
    with pytest.raises(FewshotkitError, match="--n-folds 3"):
        BenchConfig(stores=["s.h5"], methods=["m"], out="x", folds=[3], n_folds=3)
    help_text = " ".join(run_cli("bench", "--help").output.split()).replace("- ", "-")  # wrapped at hyphens
    for name in PRESETS:
        assert name in help_text
    assert "--n-folds" in help_text and "--pooler" in help_text


def test_eval_title_names_the_parts():
    from fewshotkit.cli.evaluate import _method_title

    spec = {"backbone": {"type": "light"}, "pooler": {"type": "max"}, "classifier": {"type": "cosine"}}
    assert _method_title({"method": "alpnet", "spec": spec}) == "alpnet (light + max + cosine)"
    assert _method_title({"method": "senet", "spec": {}}) == "senet"


def test_train_n_folds(small_store, tmp_path, run_cli):
    base = ["train", "--preset", "ssl-alpnet-cpu", "--store", str(small_store), "--steps", "1", "--device", "cpu",
            *(f"--set={s}" for s in SMALL)]
    refused = run_cli(*base, "--out", str(tmp_path / "five"))
    assert refused.exit_code == 1 and "give --n-folds 3" in refused.output
    assert not (tmp_path / "five").exists()
    done = run_cli(*base, "--out", str(tmp_path / "three"), "--n-folds", "3", "--fold", "2")
    assert done.exit_code == 0, done.output
    run = json.loads((tmp_path / "three" / "run.json").read_text())
    assert run["n_folds"] == 3 and run["fold"] == 2
    assert run["plugin_providers"]["pooler:alp"] == "alp"
    again = run_cli("train", "--resume", str(tmp_path / "three"), "--n-folds", "4")
    assert again.exit_code == 1 and "--n-folds" in again.output


# -- 5: a missing plugin is named -----------------------------------------------------------------
def test_loading_a_run_without_its_plugin_names_the_plugin(fresh_host, small_store, tmp_path):
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.training import load_method
    from fewshotkit.training.loop import train

    write(tmp_path / "plugins", "gainpool", POOLER_PLUGIN)
    fresh_host.configure(plugins_dirs=[str(tmp_path / "plugins")])
    spec = apply_overrides(preset_spec("ssl-alpnet-cpu"), [*SMALL, "pooler.type=scaled-mean"])
    last = train(spec, small_store, tmp_path / "run", steps=0, device="cpu", n_folds=3, show_progress=False)

    fresh_host.reset()  # a later process without --plugins-dir
    with pytest.raises(FewshotkitError) as info:
        load_method(last)
    message = str(info.value)
    assert "pooler 'scaled-mean'" in message and "plugin 'gainpool'" in message and "--plugins-dir" in message

    payload = torch.load(last, weights_only=True)  # an older run without plugin_providers: still named
    payload.pop("plugin_providers")
    payload["run"].pop("plugin_providers")
    payload.pop("state_sha256")  # older runs had no digest of their training state either
    torch.save(payload, tmp_path / "old.pt")
    with pytest.raises(FewshotkitError, match="plugin 'gainpool'.*not loaded now"):
        load_method(tmp_path / "old.pt")
    with pytest.raises(FewshotkitError, match="plugin 'gainpool'"):
        train(None, None, tmp_path / "run", resume=True, steps=1, device="cpu")


# -- 6: run-time contract checks ------------------------------------------------------------------
def _episode():
    from fewshotkit.interfaces.method import Episode

    masks = torch.zeros(1, 1, 2, 32, 32)
    masks[..., 0, :, :16], masks[..., 1, :, 16:] = 1, 1
    return Episode(torch.randn(1, 1, 1, 32, 32), masks, torch.randn(1, 1, 1, 32, 32))


def test_a_pooler_returning_vectors_is_named(fresh_host, tmp_path):
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.method.build import build_method

    write(tmp_path, "brokenparts", BROKEN_PARTS)
    fresh_host.configure(plugins_dirs=[str(tmp_path)])
    method = build_method(apply_overrides(preset_spec("ssl-alpnet-cpu"), [*SMALL, "pooler.type=vector"]))
    with pytest.raises(FewshotkitError) as info:
        method.eval()(_episode())
    message = str(info.value)
    assert "pooler 'vector' (plugin 'brokenparts')" in message and "(P_c, 16)" in message
    assert "\n" not in message


def test_a_backbone_lying_about_stride_and_channels_is_named(fresh_host, tmp_path):
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.method.build import build_method

    write(tmp_path, "brokenparts", BROKEN_PARTS)
    fresh_host.configure(plugins_dirs=[str(tmp_path)])
    spec = apply_overrides(preset_spec("ssl-alpnet-cpu"), ["image_size=64", "backbone.type=lying"])
    with pytest.raises(FewshotkitError, match=r"backbone 'lying' \(plugin 'brokenparts'\) declares out_channels=64 "
                                              r"and stride=4.*gave \(2, 32, 4, 4\)"):
        build_method(spec).eval()(_episode())


def test_a_training_that_breaks_a_contract_leaves_no_run_folder(fresh_host, small_store, tmp_path):
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.training.loop import train

    write(tmp_path / "plugins", "brokenparts", BROKEN_PARTS)
    fresh_host.configure(plugins_dirs=[str(tmp_path / "plugins")])
    spec = apply_overrides(preset_spec("ssl-alpnet-cpu"), [*SMALL, "pooler.type=vector"])
    with pytest.raises(FewshotkitError, match="pooler 'vector'"):
        train(spec, small_store, tmp_path / "run", steps=2, device="cpu", n_folds=3, show_progress=False)
    assert not (tmp_path / "run").exists()


def test_the_checks_cost_one_forward_only(fresh_host):
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.method.build import build_method

    method = build_method(apply_overrides(preset_spec("ssl-alpnet-cpu"), SMALL)).eval()
    assert method._contracts_checked is False
    method(_episode())
    assert method._contracts_checked is True
