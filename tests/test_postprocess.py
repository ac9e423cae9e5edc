"""Post-processors: the built-in three on hand-made masks, the pipeline, spec composition and the
plugin kind (listing, a third-party post-processor through --plugins-dir, applied by ``eval``)."""

from __future__ import annotations

import json
import textwrap

import nibabel as nib
import numpy as np
import pytest

from fewshotkit.core.errors import FewshotkitError


def _create(name: str, **options):
    from fewshotkit.host.plugin_host import PluginHost

    return PluginHost().registry.create("postprocessor", name, **options)


def _two_blobs() -> np.ndarray:
    """(16, 10, 10): a 4 x 4 x 4 cube at z 2..5 (64 voxels) and a 2 x 2 x 2 cube at z 10..11 (8 voxels)."""
    mask = np.zeros((16, 10, 10), bool)
    mask[2:6, 1:5, 1:5] = True
    mask[10:12, 6:8, 6:8] = True
    return mask


def test_largest_component_keeps_the_biggest_3d_blob():
    mask = _two_blobs()
    out = _create("largest-component")(mask)
    assert out.sum() == 64 and out[2:6, 1:5, 1:5].all()
    # a voxel touching the cube only by a corner joins it with connectivity 3, not with 1
    mask[6, 5, 5] = True
    assert _create("largest-component")(mask).sum() == 65
    assert _create("largest-component", connectivity=1)(mask).sum() == 64


def test_min_size_in_voxels_and_in_mm3():
    mask = _two_blobs()
    assert _create("min-size", min_size=8)(mask).sum() == 72
    assert _create("min-size", min_size=9)(mask).sum() == 64
    # 8 voxels of 2 x 1 x 1.5 mm = 24 mm^3; 64 voxels = 192 mm^3
    by_volume = _create("min-size", min_size=25, unit="mm3")
    assert by_volume(mask, (2.0, 1.0, 1.5)).sum() == 64
    assert by_volume(mask, (4.0, 1.0, 1.5)).sum() == 72  # twice the slice spacing: 48 mm^3 survives
    with pytest.raises(FewshotkitError, match="spacing"):
        by_volume(mask, None)


def test_z_continuity_drops_slices_outside_the_main_component():
    mask = _two_blobs()
    mask[4, 8, 0] = True  # a stray voxel on a slice inside the main component's span
    out = _create("z-continuity")(mask)
    assert out[10:12].sum() == 0, "the far blob's slices go"
    assert out[4, 8, 0], "slices inside the span are kept whole"
    assert not _create("largest-component")(mask)[4, 8, 0]


def _kidneys() -> tuple[np.ndarray, np.ndarray]:
    """A query prediction (20, 32, 32) with a big blob on the image's left and a smaller one on its
    right, and a support (12, 64, 48) of another size whose mask sits on the right."""
    mask = np.zeros((20, 32, 32), bool)
    mask[5:15, 10:20, 2:12] = True  # 1000 voxels, left
    mask[5:15, 11:19, 22:30] = True  # 640 voxels, right
    support = np.zeros((12, 64, 48), bool)
    support[4:8, 22:38, 33:44] = True
    return mask, support


def test_nearest_to_support_keeps_the_component_on_the_supports_side():
    mask, support = _kidneys()
    near = _create("nearest-to-support")
    out = near(mask, None, support=support)
    assert out.sum() == 640 and out[10, 15, 25], "the right blob, although the smaller one"
    assert _create("largest-component")(mask).sum() == 1000
    assert near(mask, None, support=support[:, :, ::-1]).sum() == 1000, "support on the left -> the left blob"
    # a candidate must hold min_fraction of the largest component's voxels
    assert _create("nearest-to-support", min_fraction=0.7)(mask, None, support=support).sum() == 1000
    # "zyx" also weighs the relative slice position: a support high in its scan picks a blob high in the query
    mask[17:20, 24:32, 0:8] = True  # 192 voxels, far up and on the left
    high = np.zeros_like(support)
    high[10:12, 30:36, 10:14] = True
    assert _create("nearest-to-support", min_fraction=0.1, axes="zyx")(mask, None, support=high).sum() == 192
    assert _create("nearest-to-support", min_fraction=0.1)(mask, None, support=high).sum() == 1000
    with pytest.raises(FewshotkitError, match="needs the support"):
        near(mask)


def test_pipeline_passes_the_support_to_support_aware_post_processors(fresh_host):
    from fewshotkit.evaluation.postprocess import build_postprocess

    mask, support = _kidneys()
    pipeline = build_postprocess([{"type": "min-size", "min_size": 10}, "nearest-to-support"])
    assert pipeline(mask, None, None, support).sum() == 640
    with pytest.raises(FewshotkitError, match="post-processor 'nearest-to-support' needs the support's mask"):
        pipeline(mask)


@pytest.mark.parametrize(
    "name, options, message",
    [("min-size", {"unit": "cm3"}, "unit must be one of"), ("largest-component", {"connectivity": 4}, "connectivity"),
     ("min-size", {"min_size": -1}, "min_size must be >= 0"),
     ("nearest-to-support", {"min_fraction": 0}, "min_fraction must be in"),
     ("nearest-to-support", {"axes": "xy"}, "axes must be one of")],
)
def test_bad_options_are_one_line_errors(name, options, message):
    with pytest.raises(FewshotkitError, match=message):
        _create(name, **options)


def test_pipeline_applies_slice_presence_then_post_processors_in_order(fresh_host):
    from fewshotkit.evaluation.postprocess import build_postprocess, drop_absent_slices

    mask = _two_blobs()
    probs = mask * 0.9
    probs[10:12] *= 0.05  # the small blob is barely probable
    assert drop_absent_slices(mask, probs, 0.5)[10:12].sum() == 0
    assert drop_absent_slices(mask, probs, 0.01).sum() == 72
    # only predicted pixels count: a faint probability everywhere does not keep the small blob's slices
    hazy = np.where(mask, 0.9, 0.05)  # masses: cube slices 14.4, blob slices 3.6 (0.25 x)
    assert drop_absent_slices(mask, hazy, 0.3)[10:12].sum() == 0
    assert drop_absent_slices(mask, hazy, 0.2).sum() == 72
    assert build_postprocess("min-size,largest-component")(mask).sum() == 0  # default min_size 100 voxels
    pipeline = build_postprocess([{"type": "min-size", "min_size": 8}, "largest-component"], drop_absent=0.5)
    assert [name for name, _ in pipeline.steps] == ["min-size", "largest-component"]
    assert pipeline(mask, probs).sum() == 64
    assert pipeline.to_json() == {"postprocess": [{"type": "min-size", "min_size": 8}, {"type": "largest-component"}],
                                  "drop_absent": 0.5}
    with pytest.raises(FewshotkitError, match="needs foreground probabilities"):
        build_postprocess([], drop_absent=0.2)(mask)
    with pytest.raises(FewshotkitError, match="--drop-absent"):
        build_postprocess([], drop_absent=1.5)
    with pytest.raises(FewshotkitError, match="Did you mean 'largest-component'"):
        build_postprocess(["largest-componnt"])


def test_spec_postprocess_list_round_trips_and_is_validated(fresh_host):
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import dump_spec, preset_spec
    from fewshotkit.method.build import parse_spec

    spec = apply_overrides(preset_spec("ssl-alpnet-cpu"),
                           ['postprocess=[{type="min-size", min_size=500, unit="mm3"}, "z-continuity"]'])
    assert spec.postprocess == [{"type": "min-size", "min_size": 500, "unit": "mm3"}, {"type": "z-continuity"}]
    assert parse_spec(dump_spec(spec)).postprocess == spec.postprocess
    assert apply_overrides(spec, ["postprocess=none"]).postprocess == []
    assert apply_overrides(spec, ["postprocess=largest-component"]).postprocess == [{"type": "largest-component"}]
    with pytest.raises(FewshotkitError, match="postprocess.min_sz"):
        parse_spec(dump_spec(spec).replace("min_size", "min_sz"))
    with pytest.raises(FewshotkitError, match="each entry is a name or a table"):
        apply_overrides(spec, ["postprocess=[1, 2]"])


def test_components_lists_the_three_postprocessors(run_cli):
    rows = json.loads(run_cli("components", "postprocessor", "--json").output)
    assert {r["name"] for r in rows} >= {"largest-component", "min-size", "z-continuity"}
    assert {r["kind"] for r in rows} == {"postprocessor"}


def test_compose_postprocess_option(run_cli, tmp_path):
    out = tmp_path / "m.toml"
    result = run_cli("compose", "--preset", "ssl-alpnet-cpu", "--postprocess", "largest-component",
                     "--postprocess", "z-continuity", "-o", str(out))
    assert result.exit_code == 0, result.output
    from fewshotkit.method.build import load_spec

    assert [t["type"] for t in load_spec(out).postprocess] == ["largest-component", "z-continuity"]


THIRD_PARTY = textwrap.dedent(
    '''
    import numpy as np
    from fewshotkit import hookimpl
    from fewshotkit.interfaces.postprocessor import Postprocessor


    class LargestSlice(Postprocessor):
        """Keep only the slice with the most predicted voxels."""

        def __call__(self, mask, spacing=None):
            out = np.zeros_like(mask, dtype=bool)
            if mask.any():
                z = int(mask.sum(axis=(1, 2)).argmax())
                out[z] = mask[z]
            return out


    @hookimpl
    def register_postprocessors(register):
        register("largest-slice", LargestSlice, description="one slice only")
    '''
)


@pytest.fixture(scope="module")
def trained(synthetic_store, fixed_run):
    """The shared synthetic store and the fixed-weight model (known predictions, tests/fixed_model.py)
    with a spec asking for largest-component."""
    return synthetic_store, fixed_run("postprocess=largest-component") / "checkpoints" / "last.pt"


def test_third_party_postprocessor_through_plugins_dir_in_eval(run_cli, trained, tmp_path):
    store, checkpoint = trained
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "my_cleanup.py").write_text(THIRD_PARTY)
    listed = run_cli("--plugins-dir", str(plugins), "components", "postprocessor", "--json")
    assert "largest-slice" in listed.output
    out, preds = tmp_path / "r.json", tmp_path / "pred"
    result = run_cli("--plugins-dir", str(plugins), "eval", str(checkpoint), "--store", str(store), "--fold", "0",
                     "--class", "liver", "--protocol", "estimated-range", "--postprocess", "largest-slice",
                     "--device", "cpu", "-o", str(out), "--save-predictions", str(preds))
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["protocol"]["name"] == "estimated-range"
    assert doc["protocol"]["postprocess"] == [{"type": "largest-slice"}]
    files = sorted(preds.glob("*.nii.gz"))
    assert len(files) == len(doc["folds"][0]["queries"])
    kept = [np.count_nonzero(np.asarray(nib.load(path).dataobj).any(axis=(0, 1))) for path in files]
    assert kept == [1] * len(files), "the plugin's post-processor was applied (and the model found the liver)"


def test_eval_applies_the_spec_postprocess_by_default(trained, fresh_host):
    from fewshotkit.evaluation.evaluate import EvalRun, evaluate_checkpoint
    from fewshotkit.evaluation.options import InferenceOptions

    store, checkpoint = trained
    doc, _ = evaluate_checkpoint(checkpoint, store, folds=[0], classes=["spleen"], run=EvalRun(device="cpu"))
    assert doc["protocol"]["postprocess"] == [{"type": "largest-component"}]
    doc, _ = evaluate_checkpoint(checkpoint, store, folds=[0], classes=["spleen"], run=EvalRun(device="cpu"),
                                 options=InferenceOptions(postprocess=(), drop_absent=0.1))
    assert doc["protocol"]["postprocess"] == [] and doc["protocol"]["drop_absent"] == 0.1


def test_drop_absent_is_a_spec_key_the_argument_replaces(trained, fresh_host):
    from fewshotkit.evaluation.evaluate import EvalRun, evaluate_checkpoint
    from fewshotkit.evaluation.options import InferenceOptions
    from fewshotkit.evaluation.postprocess import spec_postprocess
    from fewshotkit.method.overrides import apply_inference_overrides
    from fewshotkit.method.spec import MethodSpec, preset_spec

    spec = preset_spec("ssl-alpnet-cpu")
    assert "drop_absent" not in spec.to_dict() and spec_postprocess(spec).drop_absent is None  # off: keys stay
    gated = apply_inference_overrides(spec, ["drop_absent=0.3"])
    assert MethodSpec.from_dict(gated.to_dict()).drop_absent == 0.3
    assert spec_postprocess(gated).drop_absent == 0.3 and spec_postprocess(gated, drop_absent=0.1).drop_absent == 0.1
    assert apply_inference_overrides(gated, ["drop_absent=null"]).drop_absent is None
    for bad in ("0", "1.5", "true", "most"):
        with pytest.raises(FewshotkitError, match="'drop_absent' must be a fraction in \\(0, 1\\]"):
            apply_inference_overrides(spec, [f"drop_absent={bad}"])
    store, checkpoint = trained
    doc, _ = evaluate_checkpoint(checkpoint, store, folds=[0], classes=["spleen"], run=EvalRun(device="cpu"),
                                 options=InferenceOptions.from_values(overrides=["drop_absent=0.2"]))
    assert doc["protocol"]["drop_absent"] == 0.2 and doc["spec"]["drop_absent"] == 0.2
    doc, _ = evaluate_checkpoint(checkpoint, store, folds=[0], classes=["spleen"], run=EvalRun(device="cpu"),
                                 options=InferenceOptions.from_values(overrides=["drop_absent=0.2"], drop_absent=0.1))
    assert doc["protocol"]["drop_absent"] == 0.1 and doc["spec"]["drop_absent"] == 0.1  # --drop-absent wins

    def predicted(overrides):
        doc, _ = evaluate_checkpoint(checkpoint, store, folds=[0], classes=["liver"], run=EvalRun(device="cpu"),
                                     options=InferenceOptions.from_values(postprocess=[], overrides=overrides))
        return sum(c["tp"] + c["fp"] for scans in doc["folds"][0]["per_scan"].values() for c in scans.values())

    assert 0 < predicted(["drop_absent=1"]) < predicted([])  # the spec's key clears slices: one left per scan


def test_the_documented_plugin_example_works(tmp_path):
    import re
    from pathlib import Path

    from fewshotkit.host.plugin_host import PluginHost

    doc = (Path(__file__).resolve().parents[1] / "docs" / "postprocessing.md").read_text()
    (tmp_path / "my_cleanup.py").write_text(re.findall(r"```python\n(.*?)```", doc, flags=re.S)[0])
    host = PluginHost(plugins_dirs=[tmp_path], load_entry_points=False, strict=True)
    fill = host.registry.create("postprocessor", "fill-holes")
    mask = np.zeros((3, 7, 7), bool)
    mask[1, 1:6, 1:6] = True
    mask[1, 3, 3] = False
    out = fill(mask, None)
    assert out[1, 3, 3] and out.sum() == 25 and np.array_equal(fill(out, None), out)
    assert not fill(np.zeros_like(mask), None).any()
