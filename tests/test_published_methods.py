"""The published successors (Q-Net, RPT, GMRD) train on a synthetic store, save and load; their
bad-input errors; runs of the earlier presets still load."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from conftest import pseudolabelled_store
from fewshotkit.core.errors import FewshotkitError
from fewshotkit.method.presets import CPU_OPTIONS, PRESETS

PUBLISHED_PRESETS = ("ssl-qnet-cpu", "ssl-rpt-cpu", "ssl-gmrd-cpu")
TINY = ["image_size=64", "backbone.width=8", "backbone.out_channels=32", "training.log_every=2",
        "training.checkpoint_every=100", "training.batch_size=2"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return pseudolabelled_store(tmp_path_factory.mktemp("store") / "syn.h5", min_size=100,
                                volumes=6, seed=0, slices=12, size=64)


def tiny_spec(preset: str, *extra: str):
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec

    return apply_overrides(preset_spec(preset), [*TINY, *extra])


@pytest.mark.slow
@pytest.mark.parametrize("preset", PUBLISHED_PRESETS)
def test_a_few_training_steps_then_the_run_loads_and_segments(preset, store, tmp_path, fresh_host):
    from fewshotkit.interfaces.method import Episode
    from fewshotkit.training import load_method, train

    train(tiny_spec(preset), store, tmp_path / "run", steps=4, device="cpu", seed=0, show_progress=False)
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert metrics and all(math.isfinite(m["loss"]) for m in metrics)
    method = load_method(tmp_path / "run", "cpu").method
    fg = torch.zeros(1, 1, 1, 64, 64)
    fg[..., 16:40, 20:44] = 1
    with torch.inference_mode():
        logits = method(Episode(torch.randn(1, 1, 1, 64, 64), torch.cat([1 - fg, fg], dim=2),
                                torch.randn(1, 2, 1, 64, 64))).logits
    assert logits.shape == (1, 2, 2, 64, 64) and torch.allclose(logits.exp().sum(dim=2), torch.ones(1, 2, 64, 64))


def test_a_run_of_the_earlier_single_scale_qnet_preset_loads(store, tmp_path, fresh_host):
    from fewshotkit.method.composed import ComposedPrototypeMethod
    from fewshotkit.training import load_method, train

    spec = tiny_spec("ssl-qnet-single-cpu")
    spec.preset = "ssl-qnet-cpu"  # as runs recorded it before the preset became the published form
    train(spec, store, tmp_path / "run", steps=2, device="cpu", seed=0, show_progress=False)
    loaded = load_method(tmp_path / "run", "cpu")
    assert isinstance(loaded.method, ComposedPrototypeMethod) and loaded.spec.preset == "ssl-qnet-cpu"


def test_a_two_level_method_on_a_one_level_backbone_is_one_line(fresh_host):
    from fewshotkit.method.build import build_method

    with pytest.raises(FewshotkitError, match=r"has 1 feature level\(s\).*backbone.levels=2") as info:
        build_method(tiny_spec("ssl-qnet-cpu", "backbone.levels=1"))
    assert "\n" not in str(info.value)


def test_more_regions_than_the_supports_foreground_pixels_is_one_line(fresh_host):
    from fewshotkit.interfaces.method import Episode
    from fewshotkit.method.build import build_method

    method = build_method(tiny_spec("ssl-rpt-cpu", "options.regions=100")).eval()
    fg = torch.zeros(1, 1, 1, 64, 64)
    fg[..., 16:22, 20:26] = 1  # 36 pixels
    episode = Episode(torch.randn(1, 1, 1, 64, 64), torch.cat([1 - fg, fg], dim=2), torch.randn(1, 1, 1, 64, 64))
    with pytest.raises(FewshotkitError, match=r"'options.regions' = 100 is larger than the support's 36 foreground "
                                              r"pixels: lower it \(e.g. --set options.regions=36\)") as info, \
            torch.inference_mode():
        method(episode)
    assert "\n" not in str(info.value)
    fg[..., 16:40, 20:44] = 1  # 576 pixels, fewer than 100 on the 16 x 16 grid: one region per grid pixel
    with torch.inference_mode():
        logits = method(Episode(episode.support_images, torch.cat([1 - fg, fg], dim=2), episode.query_images)).logits
    assert torch.isfinite(logits).all()
    labels = torch.zeros(1, 1, 64, 64, dtype=torch.long)
    method.train()(Episode(episode.support_images, episode.support_masks, episode.query_images, labels))  # no error


def test_components_lists_the_published_methods_and_their_options(run_cli):
    listed = {row["name"]: row for row in json.loads(run_cli("components", "method", "--json").output)}
    assert {"qnet-dual", "rpt", "gmrd"} <= set(listed)
    assert all(listed[name]["plugin"] == "threshold" for name in ("qnet-dual", "rpt", "gmrd"))
    options = run_cli("components", "method", "gmrd").output
    assert all(word in options for word in ("fg_descriptors", "bg_descriptors", "grid", "descriptor_weight"))


@pytest.mark.slow
@pytest.mark.parametrize("preset", ("ssl-qnet", "ssl-rpt", "ssl-gmrd"))
def test_the_paper_presets_build_on_the_two_level_resnet101_and_segment(preset, fresh_host):
    from fewshotkit.interfaces.method import Episode
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.method.build import build_method

    torch.manual_seed(0)
    method = build_method(apply_overrides(preset_spec(preset), ["image_size=64"])).eval()
    levels = method.backbone.feature_levels()
    assert [(level.stride, level.channels) for level in levels] == [(4, 512), (8, 512)]
    images = torch.randn(2, 3, 64, 64)
    assert [tuple(f.shape) for f in method.backbone.forward_levels(images, (0, -1))] == \
        [(2, 512, 16, 16), (2, 512, 8, 8)]
    fg = torch.zeros(1, 1, 1, 64, 64)
    fg[..., 8:56, 8:56] = 1
    with torch.inference_mode():
        logits = method(Episode(torch.randn(1, 1, 1, 64, 64), torch.cat([1 - fg, fg], dim=2),
                                torch.randn(1, 1, 1, 64, 64))).logits
    assert logits.shape == (1, 1, 2, 64, 64) and torch.isfinite(logits).all()


def test_the_light_encoder_hands_out_a_level_at_half_its_stride():
    from fewshotkit_timm.light import LightEncoder

    images = torch.randn(1, 1, 64, 64)
    for stride in (8, 4):
        encoder = LightEncoder(out_channels=8, width=8, output_stride=stride, levels=2)
        assert [(level.stride, level.channels) for level in encoder.feature_levels()] == [(stride // 2, 8), (stride, 8)]
        fine, deep = encoder.forward_levels(images, (0, -1))
        assert fine.shape[-1] == 128 // stride and deep.shape[-1] == 64 // stride
        assert torch.equal(deep, encoder(images))  # the deepest level is forward's output
    assert len(LightEncoder(levels=1).feature_levels()) == 1
    with pytest.raises(FewshotkitError, match="backbone.levels' must be 1 or 2"):
        LightEncoder(levels=3)


def test_the_light_encoder_with_a_fourth_stage_hands_out_the_full_third_stage_at_stride_4():
    from fewshotkit_timm.light import LightEncoder

    torch.manual_seed(0)
    images = torch.randn(2, 1, 64, 64)
    encoder = LightEncoder(out_channels=8, width=8, output_stride=8, levels=2, fine_stage=3)
    assert [(level.stride, level.channels) for level in encoder.feature_levels()] == [(4, 8), (8, 8)]
    fine, deep = encoder.forward_levels(images, (0, -1))
    third = encoder.stage3(encoder.stage2(encoder.stem(images)))  # all of the third stage, at stride 4
    assert third.shape == (2, 32, 16, 16)
    assert torch.equal(fine, encoder.fine_proj(third))
    assert torch.equal(deep, encoder.proj(encoder.stage4(third))) and deep.shape == (2, 8, 8, 8)
    assert torch.equal(deep, encoder(images))
    assert torch.equal(encoder.forward_levels(images, (0,))[0], fine)
    with pytest.raises(FewshotkitError, match="fine_stage' must be 2, or 3 with backbone.output_stride=8"):
        LightEncoder(output_stride=4, levels=2, fine_stage=3)


def test_the_cpu_two_level_presets_use_the_fourth_stage_and_the_earlier_form_still_builds(fresh_host):
    from fewshotkit.method.spec import MethodSpec, preset_spec
    from fewshotkit.method.build import build_method

    for preset in ("ssl-qnet-cpu", "ssl-rpt-cpu"):
        backbone = build_method(preset_spec(preset)).backbone
        assert backbone.stage4 is not None and backbone.fine_proj.in_channels == 128  # the third stage's width
    # a run of the earlier form stored its backbone table without fine_stage: it builds that form
    earlier = preset_spec("ssl-qnet-cpu").to_dict()
    del earlier["backbone"]["fine_stage"]
    earlier.pop("preset", None)
    backbone = build_method(MethodSpec.from_dict(earlier)).backbone
    assert backbone.stage4 is None and backbone.fine_proj.in_channels == 64  # the second stage's width
    assert [level.stride for level in backbone.feature_levels()] == [4, 8]


@pytest.mark.parametrize("preset", ("ssl-qnet", "ssl-rpt", "ssl-gmrd"))
def test_the_cpu_recipe_of_a_paper_preset_is_its_cpu_preset(preset):
    from fewshotkit.apps.bench.methods import method_spec
    from fewshotkit.method.presets import PRESETS
    from fewshotkit.method.spec import preset_spec

    def table(spec) -> dict:
        return {k: v for k, v in spec.to_dict().items() if k != "preset"}

    assert table(method_spec(preset, recipe="cpu")) == table(preset_spec(f"{preset}-cpu"))
    assert PRESETS[f"{preset}-cpu"]["backbone"].get("levels", 1) == (1 if preset == "ssl-gmrd" else 2)


def _flat(table: dict, prefix: str = "") -> dict:
    """A nested spec table as {dotted key: value}."""
    out: dict = {}
    for key, value in table.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


CPU_PRESETS = sorted(name for name in PRESETS if name.endswith("-cpu"))


@pytest.mark.parametrize("cpu_preset", CPU_PRESETS)
def test_a_cpu_preset_differs_from_its_paper_preset_only_in_backbone_size_training_and_named_cpu_options(cpu_preset):
    paper, cpu = _flat(PRESETS[cpu_preset.removesuffix("-cpu")]), _flat(PRESETS[cpu_preset])
    differing = {key for key in paper.keys() | cpu.keys() if paper.get(key, KeyError) != cpu.get(key, KeyError)}
    named = CPU_OPTIONS.get(PRESETS[cpu_preset]["method"], {})
    allowed = {f"options.{key}" for key in named}
    free = {key for key in differing if key == "image_size" or key.split(".")[0] in ("backbone", "training")}
    assert differing - free == {key for key in allowed if paper.get(key) != named[key.split(".", 1)[1]]}
    assert all(cpu[key] == named[key.split(".", 1)[1]] for key in allowed)
