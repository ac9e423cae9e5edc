"""``fewshotkit compose``: presets, parts, overrides, errors."""

from __future__ import annotations

from fewshotkit.method.spec import preset_spec
from fewshotkit.method.build import load_spec


def test_preset_round_trip(run_cli, tmp_path):
    out = tmp_path / "m.toml"
    result = run_cli("compose", "--preset", "ssl-alpnet", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert load_spec(out) == preset_spec("ssl-alpnet")


def test_bad_option_names_valid_ones(run_cli, tmp_path):
    out = tmp_path / "m.toml"
    result = run_cli("compose", "--preset", "ssl-alpnet", "--set", "pooler.gird=4", "-o", str(out))
    assert result.exit_code != 0
    assert "unknown option 'pooler.gird'" in result.output and "Valid options:" in result.output
    assert "train_window" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_compose_from_parts(run_cli, tmp_path):
    out = tmp_path / "m.toml"
    result = run_cli("compose", "--method", "panet", "--backbone", "timm", "--pooler", "masked-avg",
                     "--classifier", "cosine", "--set", "backbone.model=resnet34", "--set", "image_size=128",
                     "-o", str(out))
    assert result.exit_code == 0, result.output
    spec = load_spec(out)
    assert spec.method == "panet" and spec.preset is None and spec.image_size == 128
    assert spec.parts == {"backbone": {"type": "timm", "model": "resnet34"}, "pooler": {"type": "masked-avg"},
                          "classifier": {"type": "cosine"}}


def test_print_and_list(run_cli):
    result = run_cli("compose", "--preset", "senet")
    assert result.exit_code == 0 and 'method = "senet"' in result.output
    listing = run_cli("compose", "--list-presets")
    assert listing.exit_code == 0 and "ssl-alpnet-cpu" in listing.output


def test_errors(run_cli):
    assert "unknown preset" in run_cli("compose", "--preset", "nope").output
    assert "--preset NAME or parts" in run_cli("compose").output
    result = run_cli("compose", "--preset", "ssl-alpnet", "--backbone", "resnet")
    assert result.exit_code != 0 and "unknown backbone 'resnet'" in result.output


def test_components_lists_model_parts(run_cli):
    import json

    rows = json.loads(run_cli("components", "--json").output)
    names = {(r["kind"], r["name"]) for r in rows}
    expected = {("pooler", "alp"), ("pooler", "alp-local"), ("pooler", "masked-avg"), ("classifier", "cosine"),
                ("classifier", "cosine-softmax"), ("method", "composed"), ("method", "senet"),
                ("backbone", "timm"), ("backbone", "deeplab-resnet101"), ("backbone", "light")}
    assert expected <= names


def test_a_misspelt_part_is_reported_before_missing_tables(run_cli):
    result = run_cli("compose", "--pooler", "alpp")  # no preset: backbone and classifier are missing too
    assert result.exit_code != 0
    assert "unknown pooler 'alpp'" in result.output and "Did you mean 'alp'" in result.output
    assert "needs a [backbone] table" not in result.output
    complete_names = run_cli("compose", "--pooler", "alp")  # correct name: now completeness is reported
    assert "needs a [backbone] table" in complete_names.output and "--backbone NAME" in complete_names.output
