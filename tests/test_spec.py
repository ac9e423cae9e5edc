"""Method specs: presets, TOML round trip, overrides, validation, building."""

from __future__ import annotations

import pytest

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.host.plugin_host import plugin_versions
from fewshotkit.method.overrides import apply_overrides
from fewshotkit.method.build import build_method, validate_spec
from fewshotkit.method.spec import PRESETS, MethodSpec, preset_spec, save_spec
from fewshotkit.method.build import load_spec


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_validate_and_round_trip(name, tmp_path, fresh_host):
    spec = preset_spec(name)
    validate_spec(spec)
    assert spec.preset == name
    assert spec.training["regime"] == ("ssl" if name.startswith(("ssl-", "alpnet-init")) else "supervised")
    path = tmp_path / "m.toml"
    save_spec(spec, path)
    assert load_spec(path) == spec
    assert MethodSpec.from_dict(spec.to_dict()) == spec
    assert [p.name for p in tmp_path.iterdir()] == ["m.toml"]  # no temporary file left


def test_alpnet_init_is_untrained():
    assert preset_spec("alpnet-init").training == {"regime": "ssl", "steps": 0}


def test_bf16_preset_is_the_measured_study():
    """``ssl-alpnet-cpu-bf16`` is the spec benchmarks/studies/chaos_recipe_3000.toml trained (the README's
    numbers for it), under its own name."""
    import dataclasses
    from pathlib import Path

    from fewshotkit.apps.bench.config import BenchConfig
    from fewshotkit.apps.bench.methods import method_spec

    study = BenchConfig.from_toml(Path(__file__).resolve().parents[1] / "benchmarks" / "studies" / "chaos_recipe_3000.toml")
    measured = method_spec(study.methods[0], study.recipe, study.overrides)
    assert dataclasses.replace(preset_spec("ssl-alpnet-cpu-bf16"), preset=measured.preset) == measured


def test_unknown_preset_suggests():
    with pytest.raises(FewshotkitError, match="Did you mean 'ssl-alpnet'.*Presets: ssl-alpnet"):
        preset_spec("ssl-alpnett")


def test_overrides_parse_values():
    spec = apply_overrides(
        preset_spec("ssl-alpnet"),
        ["pooler.train_window=2", "backbone.type=timm", "backbone.model=resnet34", "options.align_weight=0.5",
         "image_size=128", "training.steps=100", "training.sched.gamma=0.95", "pooler.local_only=true"],
    )
    assert spec.parts["pooler"]["train_window"] == 2 and spec.parts["pooler"]["local_only"] is True
    assert spec.parts["backbone"] == {"type": "timm", "out_channels": 256, "model": "resnet34"}
    assert spec.options["align_weight"] == 0.5 and spec.image_size == 128
    assert spec.training["steps"] == 100 and spec.training["sched"] == {"gamma": 0.95}
    assert preset_spec("ssl-alpnet").parts["pooler"]["train_window"] == 4  # the input is not modified


@pytest.mark.parametrize(
    "assignment, message",
    [("pooler.window", "KEY=VALUE"), ("window=4", "SECTION.KEY"), ("poolr.window=4", "Did you mean 'pooler'"),
     ("image_size=tiny", "image_size"), ("pooler.a.b=1", "flat")],
)
def test_bad_overrides(assignment, message):
    with pytest.raises(FewshotkitError, match=message):
        apply_overrides(preset_spec("ssl-alpnet"), [assignment])


def test_validation_names_valid_options(fresh_host):
    with pytest.raises(FewshotkitError, match=r"unknown option 'pooler.gird'.*Valid options: .*train_window"):
        validate_spec(apply_overrides(preset_spec("ssl-alpnet"), ["pooler.gird=4"]))
    with pytest.raises(FewshotkitError, match=r"options.align_wieght.*Did you mean 'options.align_weight'"):
        validate_spec(apply_overrides(preset_spec("ssl-alpnet"), ["options.align_wieght=1"]))
    with pytest.raises(FewshotkitError, match=r"unknown pooler 'alpp'.*Did you mean 'alp'"):
        validate_spec(apply_overrides(preset_spec("ssl-alpnet"), ["pooler.type=alpp"]))
    with pytest.raises(FewshotkitError, match=r"takes no \[backbone\] table"):
        validate_spec(apply_overrides(preset_spec("senet"), ["backbone.type=light"]))
    spec = preset_spec("ssl-panet")
    del spec.parts["classifier"]
    with pytest.raises(FewshotkitError, match=r"needs a \[classifier\] table"):
        validate_spec(spec)


def test_load_errors_name_the_file(tmp_path, fresh_host):
    bad = tmp_path / "bad.toml"
    bad.write_text("method = alpnet\n")
    with pytest.raises(FewshotkitError, match="bad.toml.*not valid TOML"):
        load_spec(bad)
    bad.write_text('method = "alpnet"\nbogus = 1\n')
    with pytest.raises(FewshotkitError, match="bad.toml.*unknown key 'bogus'"):
        load_spec(bad)
    bad.write_text('method = "alpnet"\n[backbone]\ntype = "light"\ndepth = 3\n[pooler]\ntype = "alp"\n'
                   '[classifier]\ntype = "cosine"\n')
    with pytest.raises(FewshotkitError, match="bad.toml.*backbone.depth"):
        load_spec(bad)
    with pytest.raises(FewshotkitError, match="does not exist"):
        load_spec(tmp_path / "missing.toml")


def test_build_cpu_recipe_and_values_checked(fresh_host):
    from fewshotkit_alp.pooling import ALPPooler

    method = build_method(preset_spec("ssl-alpnet-cpu"))
    assert isinstance(method.pooler, ALPPooler) and method.backbone.out_channels == 256
    assert method.bg_weight == 0.05 and method.align_weight == 1.0
    with pytest.raises(FewshotkitError, match="pooler.train_window"):
        build_method(apply_overrides(preset_spec("ssl-alpnet-cpu"), ["pooler.train_window=0"]))
    with pytest.raises(FewshotkitError, match="backbone.weights"):
        build_method(apply_overrides(preset_spec("ssl-alpnet"), ["backbone.weights='/nonexistent/w.pth'"]))


def test_timm_pretrained_without_file_is_a_clear_error(fresh_host):
    spec = apply_overrides(preset_spec("ssl-panet"), ["backbone.type=timm", "backbone.pretrained=true"])
    with pytest.raises(FewshotkitError, match="backbone.weights=PATH"):
        build_method(spec)


def test_timm_weights_from_local_file(tmp_path, fresh_host):
    import timm
    import torch

    reference = timm.create_model("resnet18", pretrained=False)
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, tmp_path / "r18.pth")
    spec = apply_overrides(preset_spec("ssl-panet"), ["backbone.type=timm", "backbone.model=resnet18",
                                                      "backbone.in_channels=1", f"backbone.weights='{tmp_path / 'r18.pth'}'"])
    backbone = build_method(spec).backbone
    expected = reference.conv1.weight.sum(dim=1, keepdim=True)  # RGB filters summed for a 1-channel input
    assert torch.allclose(backbone.body.conv1.weight, expected)
    assert torch.equal(backbone.body.layer4[1].conv2.weight, reference.layer4[1].conv2.weight)


def test_plugin_versions(fresh_host):
    versions = plugin_versions()
    assert {"alp", "panet", "senet", "timm-backbones"} <= set(versions)


def test_changing_a_part_type_drops_the_old_options(fresh_host):
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.method.build import validate_spec

    spec = apply_overrides(preset_spec("ssl-alpnet"), ["pooler.type=masked-avg"])
    assert spec.parts["pooler"] == {"type": "masked-avg"}
    validate_spec(spec)


def test_option_free_component_rejects_options(fresh_host):
    from fewshotkit.core.errors import FewshotkitError
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.method.build import validate_spec

    spec = apply_overrides(preset_spec("ssl-panet"), ["pooler.window=3"])
    with pytest.raises(FewshotkitError, match="pooler.window"):
        validate_spec(spec)


def test_null_resets_an_option_and_both_set_parsers_agree(fresh_host):
    from fewshotkit.data.pseudolabel import parse_set_options
    from fewshotkit.core.userinput import parse_value

    spec = apply_overrides(preset_spec("ssl-alpnet"), ["pooler.threshold=null", "training.steps=none"])
    assert "threshold" not in spec.parts["pooler"] and "steps" not in spec.training
    validate_spec(spec)
    assert parse_value("null") is None and parse_value("4") == 4 and parse_value("a b") == "a b"
    for text in ("null", "4", "0.5", "true", "[1, 2]", "abc"):
        assert parse_set_options([f"k={text}"])["k"] == parse_value(text)


def test_one_did_you_mean_helper():
    from fewshotkit.core.userinput import did_you_mean, look_up

    assert did_you_mean("alpp", ["alp", "masked-avg"]) == " Did you mean 'alp'?"
    assert did_you_mean("ALP", ["alp"]) == " Did you mean 'alp'?"
    assert did_you_mean("zzz", ["alp"]) == ""
    with pytest.raises(FewshotkitError, match=r"unknown thing 'alpp'. Did you mean 'alp'\? Things: alp, b"):
        look_up("alpp", ["alp", "b"], "thing")
