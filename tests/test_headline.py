"""benchmarks/studies/headline.py on a hand-written bench section: where each row's choices were
made, the exclusion rule, a row missing folds and each method's own CPU time."""

from __future__ import annotations

from conftest import benchmark_script

SECTION = """<!-- bench:zoo -->
```console
$ fewshotkit bench --config zoo.toml
```

#### chaos: Dice (%), setting 2 (exclusion all), 1-shot, roy | full-volume protocols, folds 0,1,2; trained without 2 validation scans; inference fg_threshold=0.6, postprocess=largest-component

| method | roy: liver | roy: mean | full-volume: mean | published (Roy mean) |
|---|---:|---:|---:|---:|
| A (CPU recipe) | 70.00 ± 1.00 | 71.00 ± 2.00 | 50.00 ± 3.00 | 78.84 |
| B (CPU recipe) (folds 0,2) | 60.00 ± 1.00 | 61.00 ± 2.00 | 40.00 ± 3.00 | - |

Budget: 2000 steps per trained model (5 models trained, precision: float32); training time per model: 30.0 min (range 20.0-40.0) wall, 29.0 min (range 19.0-39.0) CPU; all training 150.0 min wall; evaluation 1.0 min.

CPU time per model, mean over folds: A (CPU recipe) 19.0 min; B (CPU recipe) 39.0 min.
<!-- /bench:zoo -->
"""


def _headline():
    return benchmark_script("studies/headline.py")


def test_rows_say_where_choices_were_made_and_each_method_its_own_time():
    headline = _headline()
    a, b = headline.section_rows(SECTION, "zoo")
    assert a == ("| CHAOS-T2 | 2 (all) | 3 folds | A (CPU recipe) | 2000 steps, float32 (19.0 CPU min a model) | "
                 "fg_threshold=0.6<br>postprocess=largest-component | 2 validation scans a fold | **71.00 ± 2.00** | "
                 "50.00 ± 3.00 | 78.84 | `fewshotkit bench --config zoo.toml` |")
    assert "| folds 0,2 | B (CPU recipe) | 2000 steps, float32 (39.0 CPU min a model) |" in b


def test_a_study_without_validation_scans_chose_on_the_test_scans():
    headline = _headline()
    plain = (SECTION.replace("; trained without 2 validation scans", "")
             .replace(" (exclusion all)", "").split("\nCPU time per model")[0] + "\n<!-- /bench:zoo -->\n")
    row = headline.section_rows(plain, "zoo")[0]
    assert "| CHAOS-T2 | 2 | 3 folds | A (CPU recipe) | 2000 steps, float32 (29.0 CPU min a model) |" in row
    assert "| the test scans |" in row


def test_rows_name_the_hardware_their_runs_recorded():
    headline = _headline()
    recorded = SECTION.replace("evaluation 1.0 min.", "evaluation 1.0 min. Trained on Some CPU, no bfloat16 units, 1 thread.")
    row = headline.section_rows(recorded, "zoo")[0]
    assert "| 2000 steps, float32 (19.0 CPU min a model; Some CPU, no bfloat16 units, 1 thread) |" in row

