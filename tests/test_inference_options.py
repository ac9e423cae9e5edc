"""Inference options as one value: the dataclass, its checks, its ``--set`` aliases, and the one
click decorator that gives eval, segment and bench the same spellings."""

from __future__ import annotations

import pytest

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.evaluation.options import InferenceOptions

SHARED = ("--shots", "--chunks", "--batch-size", "--postprocess", "--drop-absent")


def test_defaults_are_the_protocols():
    options = InferenceOptions()
    assert (options.shots, options.chunks, options.batch_size, options.query_range) == (1, 3, 16, None)
    assert options.joint and not options.all_slices and options.postprocess is None and options.overrides == ()
    assert options.orientation == "as-is" and options.method_overrides() == []


@pytest.mark.parametrize("values, words", [
    ({"shots": 0}, "shots (--shots) must be a whole number >= 1, got 0"),
    ({"shots": -5}, "got -5"),
    ({"shots": 2.5}, "got 2.5"),
    ({"shots": True}, "got True"),
    ({"batch_size": 0}, "batch_size (--batch-size)"),
    ({"batch_size": -3}, "got -3"),
    ({"chunks": 0}, "chunks (--chunks)"),
    ({"query_range": (10, 2)}, "the first slice 10 is after the last 2"),
    ({"query_range": (-1, 4)}, "whole slice numbers >= 0"),
    ({"query_range": ("a", 4)}, "whole slice numbers"),
    ({"query_range": 7}, "two slice numbers"),
    ({"drop_absent": 2.0}, "drop_absent (--drop-absent)"),
    ({"drop_absent": "x"}, "drop_absent (--drop-absent)"),
    ({"support_orientation": "auto"}, "'support_orientation' must be one of"),
    ({"support_zoom": 2}, "support_zoom"),
    ({"fg_threshold": 1.0}, "fg_threshold"),
    ({"test_mirror": "yes"}, "test_mirror"),
    ({"all_slices": 1}, "all_slices must be true or false"),
    ({"postprocess": [3]}, "postprocess"),
    ({"overrides": "pooler.test_window=1"}, "list of KEY=VALUE"),
    ({"overrides": ("pooler",)}, "expected KEY=VALUE"),
])
def test_every_bad_value_is_one_line_naming_the_option(values, words):
    with pytest.raises(FewshotkitError) as caught:
        InferenceOptions(**values)
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_numpy_integers_and_names_are_accepted_and_normalised():
    import numpy as np

    options = InferenceOptions(shots=np.int64(2), query_range=(np.int32(1), 5), postprocess="largest-component")
    assert options.shots == 2 and type(options.shots) is int and options.query_range == (1, 5)
    assert options.postprocess == ({"type": "largest-component"},)
    assert InferenceOptions(postprocess="none").tables() == [] and InferenceOptions().tables() is None


def test_set_aliases_become_the_fields_and_the_option_itself_wins():
    options = InferenceOptions.from_values(overrides=["pooler.test_window=1", "postprocess=largest-component",
                                                      "drop_absent=0.2", "support_zoom=0.05", "fg_threshold=0.6"])
    assert options.overrides == ("pooler.test_window=1",)
    assert options.tables() == [{"type": "largest-component"}] and options.drop_absent == 0.2
    assert options.support_zoom == 0.05 and options.fg_threshold == 0.6
    assert options.method_overrides() == ["pooler.test_window=1", "support_zoom=0.05", "fg_threshold=0.6"]
    given = InferenceOptions.from_values(overrides=["drop_absent=0.2"], drop_absent=0.1)
    assert given.drop_absent == 0.1, "--drop-absent wins over --set drop_absent="
    assert InferenceOptions.from_values(overrides=["postprocess=none"]).tables() == []
    # null resets the model's own value: it stays an override, the field stays "the model's"
    reset = InferenceOptions.from_values(overrides=["drop_absent=0.3", "drop_absent=null"])
    assert reset.drop_absent is None and reset.overrides == ("drop_absent=null",)
    with pytest.raises(FewshotkitError, match="support_orientation"):
        InferenceOptions.from_values(overrides=["support_orientation=sideways"])


def test_unknown_keywords_get_a_did_you_mean():
    with pytest.raises(FewshotkitError, match="unknown inference option 'shot'. Did you mean 'shots'"):
        InferenceOptions.from_values(shot=2)
    with pytest.raises(FewshotkitError, match="Did you mean 'all_slices'"):
        InferenceOptions().replace(all_slice=True)


def test_for_spec_fills_the_models_own_values():
    from fewshotkit.evaluation.postprocess import ScanPostprocess
    from fewshotkit.method.spec import preset_spec

    spec = preset_spec("ssl-alpnet-cpu")
    spec.support_orientation, spec.drop_absent, spec.support_zoom = "search", 0.3, 0.1
    filled = InferenceOptions().for_spec(spec)
    assert filled.orientation == "search" and filled.support_zoom == 0.1 and filled.drop_absent == 0.3
    assert isinstance(filled.postprocess, ScanPostprocess) and filled.cleanup().drop_absent == 0.3
    mine = InferenceOptions(support_orientation="as-is", drop_absent=0.5, postprocess=()).for_spec(spec)
    assert mine.orientation == "as-is" and mine.cleanup().drop_absent == 0.5 and mine.cleanup().tables == []


def _params(command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def test_eval_segment_and_bench_share_the_spellings():
    from fewshotkit.cli.bench import bench
    from fewshotkit.cli.evaluate import eval_command
    from fewshotkit.cli.segment import segment

    for command in (eval_command, segment, bench):
        assert set(SHARED) <= _params(command), command.name
    assert {"--set"} <= _params(eval_command) and {"--set"} <= _params(segment) and "--eval-set" in _params(bench)
    assert {"--query-range", "--all-slices", "--joint", "--separate"} <= _params(segment)


@pytest.fixture
def files(tmp_path):
    paths = {name: tmp_path / name for name in ("run.pt", "s.h5", "sup.nii.gz", "lab.nii.gz", "q.nii.gz")}
    for path in paths.values():
        path.write_bytes(b"x")
    return {name: str(path) for name, path in paths.items()}


def _commands(files, *extra):
    """eval, segment and bench with ``extra`` options, each failing on the options before reading a file."""
    return [
        ("eval", files["run.pt"], "--store", files["s.h5"], *extra),
        ("segment", "--checkpoint", files["run.pt"], "--support", files["sup.nii.gz"], "--support-label",
         files["lab.nii.gz"], "--query", files["q.nii.gz"], "-o", "p.nii.gz", *extra),
        ("bench", "--store", files["s.h5"], "--method", "alpnet-init", *extra),
    ]


@pytest.mark.parametrize("extra, words", [
    (("--shots", "0"), "shots (--shots) must be a whole number >= 1, got 0"),
    (("--batch-size", "-3"), "batch_size (--batch-size) must be a whole number >= 1, got -3"),
    (("--chunks", "0"), "chunks (--chunks)"),
    (("--drop-absent", "2"), "drop_absent (--drop-absent)"),
])
def test_the_same_bad_value_is_the_same_message_on_every_command(run_cli, files, extra, words):
    for args in _commands(files, *extra):
        result = run_cli(*args)
        errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert result.exit_code == 1 and len(errors) == 1 and words in errors[0], (args[0], result.output)


def test_eval_n_folds_help_and_check_agree(run_cli, files):
    assert "x>=2" in run_cli("eval", "--help").output
    result = run_cli("eval", files["run.pt"], "--store", files["s.h5"], "--n-folds", "1")
    assert result.exit_code != 0 and "1 is not in the range x>=2" in result.output


def test_bench_takes_postprocess_in_every_spelling_as_one_evaluation(tmp_path):
    """--postprocess, --set postprocess= and --eval-set postprocess= score the same cell."""
    from fewshotkit.apps.bench.cache import evaluation_key
    from fewshotkit.apps.bench.study import BenchConfig
    from fewshotkit.method.spec import preset_spec

    spec = preset_spec("alpnet-init")
    base = {"stores": ["s.h5"], "methods": ["alpnet-init"], "out": str(tmp_path)}
    flagged = evaluation_key(BenchConfig(**base, postprocess=["largest-component"]), spec)
    aliased = evaluation_key(BenchConfig(**base, eval_overrides=["postprocess=largest-component"]), spec)
    spec.postprocess = [{"type": "largest-component"}]  # what --set postprocess=largest-component gives
    by_set = evaluation_key(BenchConfig(**base), spec)
    assert flagged[1] == aliased[1] == by_set[1] and flagged[1]["postprocess"]["tables"] == [{"type": "largest-component"}]
    assert flagged[0].tables() == aliased[0].tables() == by_set[0].tables() == [{"type": "largest-component"}]
    with pytest.raises(FewshotkitError, match="shots"):
        BenchConfig(**base, shots=0)


@pytest.mark.parametrize("item", ["fg_threshold=0.6", "support_zoom=0.05", "test_mirror=true",
                                  " support_orientation = search"])
def test_bench_set_of_an_inference_option_points_to_eval_set(tmp_path, item):
    """bench --set changes the models' key, so an option that only changes inference would retrain."""
    from fewshotkit.apps.bench.study import BenchConfig

    base = {"stores": ["s.h5"], "methods": ["alpnet-init"], "out": str(tmp_path)}
    with pytest.raises(FewshotkitError, match=r"^bench --set .*: an inference option; give it with --eval-set"):
        BenchConfig(**base, overrides=[item])
    BenchConfig(**base, eval_overrides=[item.replace(" ", "")])
