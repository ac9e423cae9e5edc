"""``fewshotkit eval`` and ``fewshotkit bench`` end to end on a small synthetic store (tiny budgets)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

STUDIES = Path(__file__).resolve().parents[1] / "benchmarks" / "studies"


@pytest.fixture(scope="module")
def store_path(synthetic_store):
    return synthetic_store


@pytest.fixture(scope="module")
def checkpoint(fixed_run):
    """The fixed-weight model's checkpoint: its predictions are known (tests/fixed_model.py)."""
    return fixed_run() / "checkpoints" / "last.pt"


def test_eval_writes_results_predictions_and_figures(run_cli, store_path, trained_run, tmp_path):
    """The end-to-end test with a trained model: train, evaluate, recompute the Dice from the files."""
    from fewshotkit.data.store.reader import SliceStore

    out = tmp_path / "results.json"
    result = run_cli("eval", str(trained_run), "--store", str(store_path), "--fold", "1",
                     "--class", "liver", "--class", "spleen", "--device", "cpu", "-o", str(out),
                     "--save-predictions", str(tmp_path / "pred"), "--figures", str(tmp_path / "fig"))
    assert result.exit_code == 0, result.output
    assert "liver" in result.output and "| fold | liver | spleen | mean |" in result.output
    doc = json.loads(out.read_text())
    for key in ("spec", "plugin_versions", "git_commit", "seed", "device", "protocol", "summary"):
        assert key in doc
    assert doc["protocol"]["name"] == "roy" and doc["protocol"]["chunks"] == 3
    fold = doc["folds"][0]
    assert fold["fold"] == 1 and set(fold["per_class"]["dice"]) == {"liver", "spleen"}

    # the NIfTI predictions let anyone recompute the per-scan Dice with their own tools
    store = SliceStore(store_path)
    scan = fold["queries"][0]
    pred_file = tmp_path / "pred" / f"{scan}_liver.nii.gz"
    image = nib.load(pred_file)
    assert np.allclose(image.affine, store.to_nifti(scan, np.zeros(store.shape(scan), np.uint8)).affine)
    pred = np.asarray(image.dataobj).transpose(2, 1, 0) > 0
    truth = store.label(scan) == store.class_value("liver")
    zs = np.flatnonzero(truth.any(axis=(1, 2)))
    rng = slice(zs[0], zs[-1] + 1)
    tp = int((pred[rng] & truth[rng]).sum())
    dice = 200.0 * tp / (pred[rng].sum() + truth[rng].sum())
    assert dice == pytest.approx(fold["per_scan"]["liver"][scan]["dice"])
    assert (tmp_path / "fig" / "fold1_overlay.png").stat().st_size > 1000


def test_eval_full_volume_counts_more_false_positives(store_path, checkpoint):
    from fewshotkit.evaluation.evaluate import EvalRun, evaluate_checkpoint

    roy, _ = evaluate_checkpoint(checkpoint, store_path, folds=[0], classes=["liver"], run=EvalRun(device="cpu"))
    full, _ = evaluate_checkpoint(checkpoint, store_path, folds=[0], classes=["liver"], run=EvalRun(device="cpu"),
                                  protocol="full-volume")
    scan = roy["folds"][0]["queries"][0]
    a, b = roy["folds"][0]["per_scan"]["liver"][scan], full["folds"][0]["per_scan"]["liver"][scan]
    assert b["tp"] == a["tp"] and b["fn"] == a["fn"] and b["fp"] >= a["fp"]


def test_checkpoint_of_an_unknown_method_is_a_one_line_error(fresh_host, store_path, checkpoint, tmp_path, capsys):
    import torch

    from fewshotkit.cli import main
    from fewshotkit.method.checkpoint import save_checkpoint

    payload = torch.load(checkpoint, weights_only=True)
    payload["spec_toml"] = payload["spec_toml"].replace('method = "alpnet"', 'method = "no-such-method"')
    bad = tmp_path / "bad.pt"
    save_checkpoint(bad, payload)  # a valid checkpoint (digests recomputed) of a method no plugin provides
    with pytest.raises(SystemExit) as exc:
        main(["eval", str(bad), "--store", str(store_path), "--device", "cpu"])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error:") and "no-such-method" in err and len(err.splitlines()) == 1


def test_eval_set_changes_inference_options_and_refuses_weight_or_training_changes(run_cli, store_path, checkpoint,
                                                                                 tmp_path):
    from fewshotkit.evaluation.evaluate import EvalRun, evaluate_checkpoint
    from fewshotkit.evaluation.options import InferenceOptions

    base, _ = evaluate_checkpoint(checkpoint, store_path, folds=[0], classes=["liver"], run=EvalRun(device="cpu"))
    fine, _ = evaluate_checkpoint(checkpoint, store_path, folds=[0], classes=["liver"], run=EvalRun(device="cpu"),
                                  options=InferenceOptions(overrides=("pooler.test_window=1", "image_size=96")))
    assert base["spec"]["pooler"]["test_window"] == 2 and base["spec"]["image_size"] == 128
    assert fine["spec"]["pooler"]["test_window"] == 1 and fine["spec"]["image_size"] == 96
    scan = base["folds"][0]["queries"][0]
    assert fine["folds"][0]["per_scan"]["liver"][scan] != base["folds"][0]["per_scan"]["liver"][scan]

    out = tmp_path / "r.json"
    result = run_cli("eval", str(checkpoint), "--store", str(store_path), "--class", "liver", "--device", "cpu",
                     "--set", "pooler.test_window=1", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "pooler.test_window=1" in result.output
    assert json.loads(out.read_text())["spec"]["pooler"]["test_window"] == 1
    # the support's orientation searched per query scan: each scan's turn is in the results and printed
    result = run_cli("eval", str(checkpoint), "--store", str(store_path), "--class", "liver", "--device", "cpu",
                     "--set", "support_orientation=search", "-o", str(out))
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["spec"]["support_orientation"] == "search"
    turns = document["folds"][0]["support_turns"]
    assert set(turns) == set(document["folds"][0]["queries"]) and set(turns.values()) <= {0, 1, 2, 3}
    assert f"support turned for {sum(k > 0 for k in turns.values())} of {len(turns)} query scans" in result.output
    # a clean-up set this way is named once in the table title, as the clean-up
    result = run_cli("eval", str(checkpoint), "--store", str(store_path), "--class", "liver", "--device", "cpu",
                     "--set", "drop_absent=0.3", "--set", "postprocess=largest-component")
    assert result.exit_code == 0, result.output
    words = " ".join(result.output.split())  # the title wraps
    assert "largest-component, drop-absent 0.3" in words and "drop_absent=" not in words
    assert "postprocess=" not in words
    for item, words in (("backbone.out_channels=64", "weights no longer fit"), ("training.lr=0.1", "training options")):
        result = run_cli("eval", str(checkpoint), "--store", str(store_path), "--device", "cpu", "--set", item)
        assert result.exit_code != 0 and words in result.output, result.output


def test_eval_rejects_fold_and_all_folds(run_cli, store_path, checkpoint):
    result = run_cli("eval", str(checkpoint), "--store", str(store_path), "--fold", "0", "--all-folds")
    assert result.exit_code != 0 and "not both" in result.output


@pytest.mark.slow
def test_bench_two_methods_writes_tables_and_png_then_resumes(run_cli, store_path, tmp_path):
    out = tmp_path / "bench"
    args = ["bench", "--store", str(store_path), "--method", "ssl-alpnet-cpu", "--method", "alpnet-init",
            "--recipe", "cpu", "--steps", "2", "--device", "cpu", "--fold", "0", "-o", str(out)]
    first = run_cli(*args)
    assert first.exit_code == 0, first.output
    stem = out / "syn_comparison"
    md = stem.with_suffix(".md").read_text()
    assert "| method | liver | right kidney | left kidney | spleen | mean |" in md
    assert "| SSL-ALPNet (CPU recipe) |" in md and "| ALPNet-init |" in md
    assert stem.with_suffix(".csv").read_text().startswith("method,liver,liver_std")
    assert stem.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    table = json.loads(stem.with_suffix(".json").read_text())
    assert [r["label"] for r in table["rows"]] == ["SSL-ALPNet (CPU recipe)", "ALPNet-init"]

    again = run_cli(*args)  # every (method, fold) cell is cached: nothing is trained again
    assert again.exit_code == 0 and "training" not in again.output and again.output.count("cached") == 2
    assert stem.with_suffix(".md").read_text() == md

    # other training settings in the same folder: cells of their own, beside the first ones
    other = run_cli(*args, "--set", "training.lr=0.002")
    assert other.exit_code == 0 and "training" in other.output, other.output
    assert len(list((out / "cells").rglob("fold0_key-*.json"))) == 2
    kept = run_cli(*args)
    assert kept.exit_code == 0 and kept.output.count("cached") == 2 and "evaluating" not in kept.output
    assert stem.with_suffix(".md").read_text() == md
    assert run_cli(*args, "--set", "training.lr=0.002").output.count("cached") == 2


def test_bench_config_file(tmp_path, store_path):
    from fewshotkit.apps.bench.study import BenchConfig
    from fewshotkit.core.errors import FewshotkitError

    path = tmp_path / "bench.toml"
    path.write_text(f'stores = ["{store_path}"]\nmethods = ["alpnet-init"]\nout = "x"\nfolds = "all"\nsetting = 2\n')
    config = BenchConfig.from_toml(path, steps=5)
    assert config.folds == [0, 1, 2, 3, 4] and config.steps == 5 and config.setting == [2]
    path.write_text(f'stores = ["{store_path}"]\nmethods = ["alpnet-init"]\nout = "x"\n'
                    'overrides = ["image_size=160"]\neval_overrides = "pooler.test_window=1"\n')
    config = BenchConfig.from_toml(path, overrides=["postprocess=largest-component"],
                                   eval_overrides=["support_zoom=0.05"])
    assert config.overrides == ["image_size=160", "postprocess=largest-component"], "--set adds to the file's"
    assert config.eval_overrides == ["pooler.test_window=1", "support_zoom=0.05"]
    assert BenchConfig.from_toml(path).overrides == ["image_size=160"]
    path.write_text('stores = ["a.h5"]\nmethods = ["x"]\nout = "x"\nstepz = 3\n')
    with pytest.raises(FewshotkitError, match="stepz"):
        BenchConfig.from_toml(path)

    # one value where a list is meant, repeats, a file without out / stores / methods, two stores of one name
    path.write_text(f'stores = "{store_path}"\nmethods = ["alpnet-init", "alpnet-init"]\nfolds = 2\n'
                    'overrides = "image_size=160"\n')
    config = BenchConfig.from_toml(path, folds=None)
    assert (config.stores, config.methods, config.folds, config.overrides, config.out) == (
        [str(store_path)], ["alpnet-init"], [2], ["image_size=160"], "bench_out")
    assert BenchConfig(stores=[str(store_path)], methods=["alpnet-init"], out="x", folds=[0, 0, 1]).folds == [0, 1]
    path.write_text('out = "x"\n')
    with pytest.raises(FewshotkitError, match="at least one store"):
        BenchConfig.from_toml(path)
    twin = tmp_path / "twin" / store_path.name
    twin.parent.mkdir()
    with pytest.raises(FewshotkitError, match=f"share the name '{store_path.stem}'"):
        BenchConfig(stores=[str(store_path), str(twin)], methods=["alpnet-init"], out="x")


def test_bench_takes_fold_or_all_folds_not_both(run_cli, store_path):
    both = run_cli("bench", "--store", str(store_path), "--method", "alpnet-init", "--fold", "1", "--all-folds")
    assert both.exit_code == 2 and "--fold or --all-folds, not both" in both.output


def test_eval_warns_when_evaluated_scans_were_training_scans(store_path, checkpoint):
    from fewshotkit.evaluation.evaluate import EvalRun, evaluate_checkpoint

    with pytest.warns(RuntimeWarning, match=r"was trained \(fold 0\) on 2 of the scans"):
        evaluate_checkpoint(checkpoint, store_path, folds=[2], classes=["spleen"], run=EvalRun(device="cpu"))


@pytest.mark.slow
def test_bench_protocol_column_groups_reuse_the_models(run_cli, store_path, tmp_path):
    out = tmp_path / "bench3"
    args = ["bench", "--store", str(store_path), "--method", "alpnet-init", "--recipe", "cpu", "--device", "cpu",
            "--fold", "0", "-o", str(out), "--protocol", "roy", "--protocol", "estimated-range",
            "--protocol", "full-volume", "--set", "postprocess=largest-component"]
    first = run_cli(*args)
    assert first.exit_code == 0, first.output
    table = json.loads((out / "syn_comparison.json").read_text())
    for protocol in ("roy", "estimated-range", "full-volume"):
        assert f"{protocol}: liver" in table["columns"] and f"{protocol}: mean" in table["columns"]
    assert "| method | roy: liver |" in (out / "syn_comparison.md").read_text()
    assert "inference postprocess=largest-component" in (out / "syn_comparison.md").read_text()
    assert len(list((out / "runs").rglob("last.pt"))) == 1, "one model serves every protocol"
    doc = json.loads((out / "bench.json").read_text())
    assert set(doc["results"]["syn"]) == {"roy", "estimated-range", "full-volume"}
    # another post-processing re-evaluates the cells and trains nothing; each keeps its own cells
    again = run_cli(*args[:-1], "postprocess=none")
    assert again.exit_code == 0 and "training" not in again.output and "cached" not in again.output
    back = run_cli(*args)
    assert back.exit_code == 0 and back.output.count("cached") == 3


@pytest.mark.slow
def test_bench_eval_set_re_evaluates_the_same_trained_model_into_cells_of_its_own(run_cli, store_path, tmp_path):
    out = tmp_path / "bench_eval_set"
    args = ["bench", "--store", str(store_path), "--method", "ssl-alpnet-cpu", "--steps", "2", "--device", "cpu",
            "--fold", "0", "-o", str(out)]
    plain = run_cli(*args)
    assert plain.exit_code == 0 and "training" in plain.output, plain.output
    finer = run_cli(*args, "--eval-set", "pooler.test_window=1")
    assert finer.exit_code == 0 and "training" not in finer.output and "cached" not in finer.output, finer.output
    assert len(list((out / "runs").rglob("last.pt"))) == 1, "the inference option shares the trained model"
    cells = sorted(p.name for p in (out / "cells").rglob("*.json"))
    assert len(cells) == 2 and any("_set-" in name for name in cells)
    assert "inference pooler.test_window=1" in (out / "syn_comparison.md").read_text()
    assert run_cli(*args).output.count("cached") == 1 and run_cli(*args, "--eval-set", "pooler.test_window=1").output.count("cached") == 1
    # slice presence at 1 keeps one slice per query scan and class: fewer predicted voxels, same model
    gated = run_cli(*args, "--eval-set", "drop_absent=1")
    assert gated.exit_code == 0 and "training" not in gated.output, gated.output

    def predicted(variant):
        (cell,) = [p for p in (out / "cells").rglob("*.json") if ("_set-" in p.name) == bool(variant)
                   and (variant is None or json.loads(p.read_text())["settings"]["inference"] == [variant])]
        per_scan = json.loads(cell.read_text())["scores"]["per_scan"]
        return sum(c["tp"] + c["fp"] for scans in per_scan.values() for c in scans.values())

    assert 0 < predicted("drop_absent=1") < predicted(None)
    bench_set = run_cli(*args, "--set", "drop_absent=1")  # --set: evaluation too, as postprocess (no training)
    assert bench_set.exit_code == 0 and "training" not in bench_set.output, bench_set.output
    (cell,) = (out / "cells").rglob("*_drop-absent-1.json")
    per_scan = json.loads(cell.read_text())["scores"]["per_scan"]
    assert sum(c["tp"] + c["fp"] for scans in per_scan.values() for c in scans.values()) == predicted("drop_absent=1")
    for item, words in (("pooler.no_such_option=1", "no_such_option"), ("training.lr=1", "belong in --set")):
        bad = run_cli(*args, "--eval-set", item)
        assert bad.exit_code != 0 and words in bad.output, bad.output


@pytest.mark.slow
def test_bench_both_settings_one_table_each_and_a_rerun_recomputes_nothing(run_cli, store_path, tmp_path):
    out = tmp_path / "bench_s12"
    args = ["bench", "--store", str(store_path), "--method", "ssl-alpnet-cpu", "--recipe", "cpu", "--steps", "2",
            "--device", "cpu", "--fold", "0", "--setting", "1", "--setting", "2", "-o", str(out)]
    first = run_cli(*args)
    assert first.exit_code == 0, first.output
    s1, s2 = (out / "syn_comparison.md").read_text(), (out / "syn_setting2_comparison.md").read_text()
    assert "setting 1" in s1 and "setting 2" in s2
    assert "cell 1/2:" in first.output and "cell 2/2:" in first.output  # progress over the whole run
    runs = sorted(p.parent.parent.name for p in (out / "runs").rglob("last.pt"))
    assert runs == ["all", "lower", "upper"], "setting 1: one SSL model; setting 2: one model per excluded group"
    doc = json.loads((out / "bench.json").read_text())
    assert set(doc["results"]) == {"syn", "syn_setting2"}

    again = run_cli(*args)
    assert again.exit_code == 0 and "training" not in again.output and again.output.count("cached") == 2
    assert (out / "syn_comparison.md").read_text() == s1 and (out / "syn_setting2_comparison.md").read_text() == s2
    # the orientation search in setting 2: each group's model turns the support for itself, all recorded
    search = run_cli(*args[:-6], "--setting", "2", "--eval-set", "support_orientation=search", "-o", str(out))
    assert search.exit_code == 0 and "training" not in search.output, search.output
    (cell,) = (out / "cells" / "syn_setting2").rglob("*_set-*.json")
    scores = json.loads(cell.read_text())["scores"]
    assert sorted(scores["support_turns"]) == sorted(f"{scan} ({group})" for scan in scores["queries"]
                                                     for group in ("lower", "upper"))


@pytest.mark.slow
def test_bench_pseudolabel_axis_one_row_per_set_sharing_each_sets_cells(run_cli, store_path, tmp_path):
    import shutil

    from fewshotkit.data.pseudolabel import run_pseudolabeler
    from fewshotkit.data.store.reader import SliceStore

    store = tmp_path / "syn.h5"
    shutil.copy(store_path, store)
    out = tmp_path / "bench_sets"
    common = ["bench", "--store", str(store), "--method", "ssl-alpnet-cpu", "--steps", "2", "--device", "cpu",
              "--fold", "0", "-o", str(out)]
    unnamed = run_cli(*common)  # the store's only set, not named: the cell file has no set in its name
    assert unnamed.exit_code == 0, unnamed.output
    run_pseudolabeler(store, "supervoxel", {"n_segments": 20}, jobs=1)
    axis = [*common, "--method", "alpnet-init-cpu", "--pseudolabels", "felzenszwalb", "--pseudolabels", "supervoxel"]
    both = run_cli(*axis)
    assert both.exit_code == 0, both.output
    assert both.output.count("cached") == 1, "the felzenszwalb cell is the earlier bench's"
    table = json.loads((out / "syn_comparison.json").read_text())
    assert [r["label"] for r in table["rows"]] == ["SSL-ALPNet (CPU recipe) + felzenszwalb",
                                                   "SSL-ALPNet (CPU recipe) + supervoxel",
                                                   "ALPNet-init (untrained light encoder)"]
    with SliceStore(store) as reader:
        sets = sorted(reader.pseudolabel_sets)
    runs = [json.loads(p.read_text()) for p in (out / "runs").rglob("run.json")]
    assert sorted(r["pseudolabel_set"] for r in runs if r.get("pseudolabel_set")) == sets, "one model per set"
    again = run_cli(*axis)
    assert again.exit_code == 0 and "training" not in again.output and again.output.count("cached") == 3
    assert "(2 models trained" in (out / "results.md").read_text(), "one model per set in the timing"
    alone = run_cli(*common, "--pseudolabels", "supervoxel")  # a piece of the study: one set
    assert alone.exit_code == 0 and "training" not in alone.output and alone.output.count("cached") == 1


@pytest.mark.parametrize("path", sorted(STUDIES.glob("*.toml")), ids=lambda p: p.name)
def test_shipped_study_configs_are_valid(path):
    from fewshotkit.apps.bench.study import BenchConfig, method_spec

    config = BenchConfig.from_toml(path)
    assert config.folds == [0, 1, 2, 3, 4]
    for method in config.methods:
        method_spec(method, config.recipe, config.overrides)  # every preset and override resolves


def test_recipe_cpu_is_the_cpu_preset(tmp_path):
    """``--recipe cpu`` gives a method the CPU recipe's backbone (where it has one), 128 px and
    training table with its own regime, keeps 0 steps at 0, and leaves a spec already in that form."""
    from fewshotkit.apps.bench.study import method_spec
    from fewshotkit.method.spec import preset_spec

    recipe = preset_spec("ssl-alpnet-cpu")
    for name in ("ssl-adnet", "alpnet", "senet", "alpnet-init"):
        paper, cpu = preset_spec(name), method_spec(name, "cpu")
        assert paper.image_size == 256 and cpu.image_size == 128
        assert cpu.parts.get("backbone") == (recipe.parts["backbone"] if "backbone" in paper.parts else None)
        assert {k: v for k, v in cpu.parts.items() if k != "backbone"} == \
            {k: v for k, v in paper.parts.items() if k != "backbone"}
        if paper.training["steps"]:  # + the learned threshold's parameter group (docs/training.md)
            groups = {"groups": {"threshold": {"lr_scale": 10.0, "weight_decay": 0.0}}} if name == "ssl-adnet" else {}
            assert cpu.training == {**recipe.training, "regime": paper.training["regime"], **groups}
        else:
            assert cpu.training["steps"] == 0
        assert cpu.to_dict() | {"preset": name} == preset_spec(f"{name}-cpu").to_dict() | {"preset": name}
    bf16 = preset_spec("ssl-alpnet-cpu-bf16")
    assert method_spec("ssl-alpnet-cpu-bf16", "cpu").training == bf16.training  # 3000 steps, amp: kept
    assert method_spec("ssl-alpnet", "cpu").to_dict() | {"preset": "x"} == recipe.to_dict() | {"preset": "x"}
    bare = tmp_path / "bare.toml"  # a user spec without [training] or image_size
    bare.write_text('method = "alpnet"\n[backbone]\ntype = "deeplab-resnet101"\n[pooler]\ntype = "alp"\n'
                    '[classifier]\ntype = "cosine-softmax"\n')
    spec = method_spec(str(bare), "cpu")
    assert spec.image_size == 128 and spec.parts["backbone"] == recipe.parts["backbone"]
    assert spec.training == {**recipe.training, "regime": "ssl"}


def test_a_spec_without_steps_trains_for_the_bench_s_steps(tmp_path, store_path):
    """A user's spec whose [training] names no steps trains (as ``fewshotkit train`` would), for
    ``--steps`` when given; only a spec saying ``steps = 0`` is an untrained method."""
    from fewshotkit.apps.bench.study import Bench, BenchConfig, method_spec
    from fewshotkit.training.config import TrainingConfig

    bare = tmp_path / "bare.toml"
    bare.write_text('method = "alpnet"\n[backbone]\ntype = "deeplab-resnet101"\n[pooler]\ntype = "alp"\n'
                    '[classifier]\ntype = "cosine-softmax"\n[training]\nregime = "ssl"\n')
    spec = method_spec(str(bare))

    def budget(steps):
        bench = Bench(BenchConfig(stores=[str(store_path)], methods=[str(bare)], out="x", steps=steps))
        return bench._budget(str(bare), spec)

    assert budget(3) == (3, "ssl") and budget(None) == (TrainingConfig.steps, "ssl")
    assert Bench(BenchConfig(stores=[str(store_path)], methods=["alpnet-init"], out="x", steps=3))._budget(
        "alpnet-init", method_spec("alpnet-init")) == (0, "ssl")


def test_a_published_setting_2_figure_is_shown_under_its_own_exclusion_rule():
    """Q-Net's, RPT's and GMRD's setting-2 figures drop a slice only when it shows every test class
    (``all``), SSL-ALPNet's when it shows any: a figure is shown beside a row only under its rule."""
    from fewshotkit.apps.bench.methods import published_dice

    assert published_dice("ssl-qnet-cpu", "chaos-t2", 1) == 81.02
    assert published_dice("ssl-qnet-cpu", "chaos-t2", 2, "any") is None
    assert published_dice("ssl-qnet-cpu", "chaos-t2", 2, "all") == 68.59
    assert published_dice("ssl-alpnet-cpu", "chaos-t2", 2, "any") == 73.02
    assert published_dice("ssl-alpnet-cpu", "chaos-t2", 2, "all") is None
    assert published_dice("ssl-gmrd", "acdc", 1) is None


@pytest.mark.slow
def test_bench_published_column_report_and_readme_section(run_cli, store_path, tmp_path, monkeypatch):
    from conftest import benchmark_script
    from fewshotkit.apps.bench import methods as bench_methods
    from fewshotkit.data.store.reader import SliceStore

    with SliceStore(store_path) as store:
        preset = store.preset
    monkeypatch.setitem(bench_methods.PUBLISHED, preset, {"ssl-alpnet": (71.5, 60.25)})
    out = tmp_path / "bench_pub"
    args = ["bench", "--store", str(store_path), "--method", "ssl-alpnet-cpu", "--method", "alpnet-init-cpu",
            "--steps", "2", "--device", "cpu", "--fold", "0", "-o", str(out)]
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    table = json.loads((out / "syn_comparison.json").read_text())
    rows = {r["label"]: r for r in table["rows"]}
    assert table["columns"][-1] == "published (Roy mean)"
    assert rows["SSL-ALPNet (CPU recipe)"]["published (Roy mean)"]["mean"] == 71.5  # the -cpu form's family
    assert np.isnan(rows["ALPNet-init (untrained light encoder)"]["published (Roy mean)"]["mean"])
    doc = json.loads((out / "bench.json").read_text())
    recall = doc["summary"]["syn"]["roy"]["ssl-alpnet-cpu"]["recall"]["mean"]
    assert 0.0 <= recall["mean"] <= 100.0
    [cell] = [c for c in doc["timings"]["syn"] if c["method"] == "SSL-ALPNet (CPU recipe)"]
    assert cell["steps"] == 2 and cell["models"][0]["train_seconds"] > 0
    report = (out / "results.md").read_text()
    assert "| SSL-ALPNet (CPU recipe) |" in report and "Budget: 2 steps per trained model (1 models trained" in report
    assert "| method | roy: precision | roy: recall |" in report  # P / R beside each Dice table
    pr_row = next(line for line in report.splitlines() if line.startswith("| SSL-ALPNet (CPU recipe) |")
                  and report.index(line) > report.index("roy: precision"))
    assert f"{recall['mean']:.2f}" in pr_row

    to_readme = benchmark_script("studies/to_readme.py")
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- bench:bench_pub -->\nSTALE TABLE\n<!-- /bench:bench_pub -->\ntail\n")
    assert to_readme.main([str(out), "--readme", str(readme)]) == 0
    text = readme.read_text()
    assert "STALE TABLE" not in text and "| SSL-ALPNet (CPU recipe) |" in text and text.endswith("tail\n")
    readme.write_text("# no markers\n")
    assert to_readme.main([str(out), "--readme", str(readme)]) == 1


def test_cpu_forms_keep_each_methods_regime_and_take_the_recipe():
    from fewshotkit.method.presets import PRESETS

    recipe = PRESETS["ssl-alpnet-cpu"]
    for name in ("senet-cpu", "panet-cpu", "alpnet-cpu", "ssl-panet-cpu", "ssl-qnet-single-cpu"):
        form, base = PRESETS[name], PRESETS[name.removesuffix("-cpu")]
        assert form["image_size"] == recipe["image_size"] and form["training"]["regime"] == base["training"]["regime"]
        assert {k: v for k, v in form["training"].items() if k not in ("regime", "groups")} == \
            {k: v for k, v in recipe["training"].items() if k != "regime"}
        # the learned threshold's own parameter group (docs/training.md)
        assert form["training"].get("groups") is None  # a threshold head trains like every other weight
        assert form.get("backbone", recipe["backbone"]) == recipe["backbone"]
    assert PRESETS["alpnet-init-cpu"]["training"]["steps"] == 0
