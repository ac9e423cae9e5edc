"""benchmarks/studies/swap_table.py: a study's encoders under another method's heads, fold by fold."""

from __future__ import annotations

import shutil
from pathlib import Path


from conftest import benchmark_script


def _module():
    return benchmark_script("studies/swap_table.py")


def _study_runs(root: Path, label: str, run: Path, folds: tuple[int, ...] = (0,)) -> Path:
    """``root/LABEL/foldN-KEY/all`` copies of ``run``, laid out as a bench study's runs."""
    for fold in folds:
        shutil.copytree(run, root / label / f"fold{fold}-0123abcd" / "all")
    return root / label


def test_under_a_head_without_weights_the_swap_scores_as_the_encoder_run(synthetic_store, fixed_run, trained_run,
                                                                         tmp_path, capsys):
    """SSL-ALPNet's head has no weights: the fixed model's encoder under a trained SSL-ALPNet's head is
    the fixed model, so the swap's row is the encoder's row, and the head's row is another."""
    from fixed_model import OVERRIDES

    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.training.loop import train

    head = tmp_path / "head"
    train(apply_overrides(preset_spec("ssl-alpnet-cpu"), OVERRIDES), synthetic_store, head, steps=1, device="cpu",
          seed=0, show_progress=False)
    encoders = _study_runs(tmp_path / "runs", "Fixed", fixed_run())
    heads = _study_runs(tmp_path / "runs", "Trained", head)
    assert _module().main([str(encoders), str(heads), "--store", str(synthetic_store), "--split", "test"]) == 0
    out = capsys.readouterr().out
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| ") and "encoder" not in line]
    by_pair = {(r[0].strip(), r[1].strip()): [c.strip() for c in r[2:]] for r in rows}
    assert set(by_pair) == {("Trained", "Trained"), ("Fixed", "Fixed"), ("Fixed", "Trained")}
    assert by_pair["Fixed", "Trained"] == by_pair["Fixed", "Fixed"]
    assert by_pair["Trained", "Trained"] != by_pair["Fixed", "Fixed"]
    # --set reads every model with that inference option: global prototypes score otherwise
    assert _module().main([str(encoders), str(heads), "--store", str(synthetic_store), "--split", "test",
                           "--set", "pooler.type=masked-avg"]) == 0
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| Fixed")]
    assert [c.strip() for c in rows[0][2:]] != by_pair["Fixed", "Fixed"]
    # one folder twice: its models as trained, one row
    assert _module().main([str(heads), str(heads), "--store", str(synthetic_store), "--split", "test"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| Trained")]
    assert len(rows) == 1 and [c.strip() for c in rows[0].split("|")[3:-1]] == by_pair["Trained", "Trained"]


def test_the_table_takes_each_folds_mean_over_its_classes():
    scores = {0: {"a": (80.0, 70.0, 90.0), "b": (60.0, 50.0, 70.0)},
              1: {"a": (50.0, 40.0, 60.0), "b": (50.0, 40.0, 60.0)}}
    lines = _module().table([("E", "H", scores)]).splitlines()
    assert lines[0] == "| encoder | head | fold 0 | fold 1 | mean | precision / recall |"
    assert lines[2] == "| E | H | 70.00 | 50.00 | 60.00 ± 14.14 | 50.00 / 70.00 |"


def _one_line_error(swap, capsys, *folders: Path) -> str:
    assert swap.main([*map(str, folders), "--store", "x.h5"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_runs_that_do_not_pair_up_are_one_line_errors(tmp_path, capsys):
    swap = _module()
    for run in ("A/fold0-aaaa/all", "A/fold0-bbbb/all", "B/fold0-cccc/upper", "C/fold0-dddd/lower", "D/fold1-eeee/upper"):
        (tmp_path / run).mkdir(parents=True)
        (tmp_path / run / "run.json").write_text("{}")
    (tmp_path / "E").mkdir()
    assert "fold 0 has two runs" in _one_line_error(swap, capsys, tmp_path / "A", tmp_path / "B")
    assert "holds no foldN-KEY run folders" in _one_line_error(swap, capsys, tmp_path / "E", tmp_path / "B")
    assert "holds the groups ['upper']" in _one_line_error(swap, capsys, tmp_path / "B", tmp_path / "C")
    assert "holds folds [0]" in _one_line_error(swap, capsys, tmp_path / "B", tmp_path / "D")
