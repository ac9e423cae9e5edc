"""``fewshotkit bench`` cells as jobs (submitit's local executor; no SLURM needed) and ``bench --plan``."""

from __future__ import annotations

import dataclasses
import shutil
import textwrap
from pathlib import Path

import pytest
import torch

from conftest import pseudolabelled_store

pytest.importorskip("submitit", reason="bench --launcher runs cells through submitit")

TABLES = ("syn_comparison.md", "syn_comparison.csv", "syn_comparison.json")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return pseudolabelled_store(tmp_path_factory.mktemp("jobs") / "syn.h5", volumes=5, seed=1, slices=16, size=96)


def test_bench_help_shows_the_launcher_options(run_cli):
    result = run_cli("bench", "--help")
    for option in ("--launcher", "--jobs", "--order", "--partition", "--time", "--gpus-per-cell", "--cpus-per-cell",
                   "--plan"):
        assert option in result.output


def test_two_cells_as_local_jobs_give_the_serial_tables_and_a_rerun_computes_nothing(run_cli, store, tmp_path):
    config = tmp_path / "study.toml"
    config.write_text(textwrap.dedent(f"""\
        stores = ["{store}"]
        methods = ["ssl-alpnet-cpu", "alpnet-init"]
        recipe = "cpu"
        steps = 2
        device = "cpu"
        out = "{tmp_path / 'jobs'}"

        [launcher]
        launcher = "local"
        jobs = 2
        """))
    plan = run_cli("bench", "--config", str(config), "--plan")
    assert plan.exit_code == 0, plan.output
    assert "2 cells: 0 cached, 2 to run; 2 training steps to run" in plan.output
    header, *cells = [line.split("\t") for line in plan.output.splitlines() if "\t" in line]
    assert header[-1] == "estimate" and len(cells) == 2, plan.output  # piped: whole cells, one line per row
    assert all(len(cell) == len(header) and cell[5] == "to run" for cell in cells), plan.output
    assert not (tmp_path / "jobs" / "cells").exists(), "--plan runs nothing"

    serial = run_cli("bench", "--config", str(config), "--jobs", "1", "-o", str(tmp_path / "serial"))
    assert serial.exit_code == 0 and "job " not in serial.output, serial.output
    # each job trains with the serial run's thread count: another count rounds differently
    threads = str(torch.get_num_threads())
    parallel = run_cli("bench", "--config", str(config), "--cpus-per-cell", threads)
    assert parallel.exit_code == 0, parallel.output
    assert parallel.output.count("started") == 2 and "2 cells to run in 2 jobs, 2 at once" in parallel.output
    assert "cached:" not in parallel.output, "the cells its jobs wrote are this run's, not cached ones"
    for name in TABLES:
        assert (tmp_path / "jobs" / name).read_text() == (tmp_path / "serial" / name).read_text(), name
    logs = sorted((tmp_path / "jobs" / "jobs").glob("*_log.out"))
    assert len(logs) == 2 and any("training" in log.read_text() for log in logs)

    again = run_cli("bench", "--config", str(config))
    assert again.exit_code == 0 and "started" not in again.output and again.output.count("cached:") == 2
    plan = run_cli("bench", "--config", str(config), "--plan")
    assert "2 cells: 2 cached, 0 to run" in plan.output and plan.output.count("cached") >= 3
    # other inference options: the same models, so the plan takes the pace of their cells
    other = run_cli("bench", "--config", str(config), "--eval-set", "fg_threshold=0.9", "--plan")
    assert "2 cells: 0 cached, 2 to run; 0 training steps to run; about" in other.output, other.output
    assert "without a measured pace" not in other.output, other.output



def test_a_plan_takes_the_pace_of_models_under_way_when_no_cell_of_their_row_has_finished(run_cli, store, tmp_path):
    """A study's first fold still training: the other folds' cells take the pace its metrics log records."""
    import json

    from fewshotkit.apps.bench.methods import method_label
    from fewshotkit.core.names import safe_name

    config = tmp_path / "study.toml"
    out = tmp_path / "o"
    config.write_text(f'stores = ["{store}"]\nmethods = ["ssl-alpnet-cpu"]\nsteps = 8\nfolds = [0, 1]\nout = "{out}"\n')
    before = run_cli("bench", "--config", str(config), "--plan")
    assert "2 without a measured pace" in before.output, before.output

    runs = out / "runs" / store.stem / safe_name(method_label("ssl-alpnet-cpu")) / "fold0-0123456789abcdef" / "all"
    runs.mkdir(parents=True)
    records = [{"step": 2, "loss": 1.0, "train_s": 7.0}, {"step": 4, "loss": 0.9, "train_s": 12.0}]
    (runs / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + '{"step": 6, "tr')
    under_way = run_cli("bench", "--config", str(config), "--plan")
    assert under_way.exit_code == 0, under_way.output
    assert "without a measured pace" not in under_way.output, under_way.output
    estimates = [line.split("\t")[-1] for line in under_way.output.splitlines() if "\tto run\t" in line]
    assert estimates == ["24 s", "24 s"], under_way.output  # 8 steps at 12 s / 4 steps, evaluation untimed

BROKEN = '''
from torch import nn

from fewshotkit import hookimpl
from fewshotkit.interfaces.backbone import Backbone


class BrokenBackbone(Backbone):
    def __init__(self, out_channels: int = 16, in_channels: int = 1):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, 8
        self.conv = nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, images):
        raise RuntimeError("this backbone is broken")


@hookimpl
def register_backbones(register):
    register("broken", BrokenBackbone)
'''


def test_a_failed_job_is_reported_with_its_log_and_the_other_cells_are_cached(run_cli, store, tmp_path, monkeypatch):
    """The slurm launcher, run by submitit's local executor: the broken method's job fails (its
    plugin comes from --plugins-dir, as the jobs' host is configured like this one), the other's
    cell is cached, and the next run computes only the missing cell."""
    from fewshotkit.apps.bench import launch
    from fewshotkit.method.spec import preset_spec, save_spec

    monkeypatch.setitem(launch.CLUSTERS, "slurm", "local")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "broken_backbone.py").write_text(BROKEN)
    spec = preset_spec("alpnet-init-cpu")
    spec.parts["backbone"] = {"type": "broken", "out_channels": 16}
    save_spec(spec, tmp_path / "broken.toml")
    out = tmp_path / "study"
    args = ["--plugins-dir", str(plugins), "bench", "--store", str(store), "--method", "alpnet-init-cpu",
            "--device", "cpu", "--launcher", "slurm", "--partition", "any", "--time", "10", "-o", str(out)]
    result = run_cli(*args, "--method", str(tmp_path / "broken.toml"))
    assert result.exit_code == 1, result.output
    compact = "".join(result.output.split())  # the console wraps long paths
    assert "1of2jobsfailed" in compact and "failed:" + str(tmp_path / "broken.toml") in compact, result.output
    logs = [path for path in (out / "jobs").glob("*_log.err") if "this backbone is broken" in path.read_text()]
    assert len(logs) == 1 and f"thisbackboneisbroken(log:{logs[0]})" in compact
    cells = list((out / "cells").rglob("*.json"))
    assert len(cells) == 1 and "ALPNet-init" in str(cells[0])

    again = run_cli(*args)  # the finished cell is reused: nothing runs
    assert again.exit_code == 0 and "started" not in again.output and "cached:" in again.output, again.output


def test_a_steps_table_gives_methods_their_own_budget(run_cli, store, tmp_path):
    from fewshotkit.method.spec import preset_spec

    config = tmp_path / "study.toml"
    body = f'stores = ["{store}"]\nmethods = ["ssl-alpnet-cpu", "ssl-panet-cpu", "alpnet-init"]\nout = "{tmp_path / "o"}"\n'
    config.write_text(body + 'steps = {"ssl-alpnet-cpu" = 3, "alpnet-init" = 5}\n')
    plan = run_cli("bench", "--config", str(config), "--plan")
    assert plan.exit_code == 0, plan.output
    preset = int(preset_spec("ssl-panet-cpu").training["steps"])  # not in the table: the preset's own
    assert f"3 cells: 0 cached, 3 to run; {3 + preset} training steps to run" in plan.output  # alpnet-init trains none
    shared = run_cli("bench", "--config", str(config), "--steps", "4", "--plan")  # the flag overrides the table
    assert "8 training steps to run" in shared.output, shared.output
    for table, message in (('{"ssl-alpnet" = 3}', "names 'ssl-alpnet', which is not one of the bench's methods"),
                           ('{"ssl-alpnet-cpu" = -1}', "steps for ssl-alpnet-cpu must be a whole number >= 0")):
        config.write_text(body + f"steps = {table}\n")
        bad = run_cli("bench", "--config", str(config), "--plan")
        assert bad.exit_code == 1 and message in " ".join(bad.output.split()), bad.output


def test_cached_tables_of_a_study_under_way(run_cli, store, tmp_path):
    """``--cached`` trains and evaluates nothing: a row with fewer folds than the study names them, a
    row with none is left out, and a study with no cell cached is a one-line error."""
    out = tmp_path / "o"

    def bench(methods: tuple[str, ...], folds: tuple[int, ...], *flags: str):
        return run_cli("bench", "--store", str(store), *(f"--method={m}" for m in methods), *(f"--fold={f}" for f in folds),
                       "--recipe", "cpu", "--steps", "2", "--device", "cpu", "-o", str(out), *flags)

    both = ("ssl-alpnet-cpu", "alpnet-init")
    empty = bench(both, (0, 1), "--cached")
    assert empty.exit_code == 1 and "no cell of syn is cached" in " ".join(empty.output.split()), empty.output
    assert bench(both, (0,)).exit_code == 0
    assert bench(("alpnet-init",), (0, 1)).exit_code == 0
    cells = sorted((out / "cells").rglob("*.json"))
    assert len(cells) == 3

    partial = bench(both, (0, 1), "--cached")
    assert partial.exit_code == 0 and "training" not in partial.output, partial.output
    assert sorted((out / "cells").rglob("*.json")) == cells, "--cached computes no cell"
    table = (out / "syn_comparison.md").read_text().splitlines()
    assert {line.split(" | ")[0] for line in table[4:]} == {"| ALPNet-init", "| SSL-ALPNet (CPU recipe) (fold 0)"}, table
    assert "folds 0,1" in table[0], table
    assert bench(("ssl-panet-cpu",), (0, 1), "--cached").exit_code == 1, "no row has a cached cell"

    # cells are keyed by the store's content, not its path: copied elsewhere, they build the same table
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(out / "cells", elsewhere / "o" / "cells")
    shutil.copyfile(store, elsewhere / store.name)
    moved = run_cli("bench", "--store", str(elsewhere / store.name), *(f"--method={m}" for m in both), "--fold=0",
                    "--fold=1", "--recipe", "cpu", "--steps", "2", "--device", "cpu", "-o", str(elsewhere / "o"), "--cached")
    assert moved.exit_code == 0, moved.output
    assert (elsewhere / "o" / "syn_comparison.md").read_text() == (out / "syn_comparison.md").read_text()

    # every row holds fold 0 alone: the title names it, no row repeats it
    alone = bench(("ssl-alpnet-cpu",), (0, 1), "--cached")
    assert alone.exit_code == 0, alone.output
    table = (out / "syn_comparison.md").read_text().splitlines()
    assert "fold 0" in table[0] and "folds" not in table[0], "the rows' common folds name the table"
    assert [line.split(" | ")[0] for line in table[4:] if line.startswith("| SSL")] == ["| SSL-ALPNet (CPU recipe)"], table


def test_slurm_options_reach_the_batch_script(tmp_path, monkeypatch):
    import submitit.slurm.slurm as slurm

    from fewshotkit.apps.bench.launch import make_executor
    from fewshotkit.apps.bench.launch_options import LaunchOptions

    monkeypatch.setattr(slurm.SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # as if srun were there
    options = LaunchOptions(launcher="slurm", partition="gpu", time="1:30:00", gpus=1, cpus=8,
                            setup=["module load cuda"])
    script = make_executor(options, tmp_path, "auto")._executor._make_submission_file_text("COMMAND", "0")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --cpus-per-task=8", "module load cuda"):
        assert line in script


def test_job_time_limits(tmp_path, monkeypatch):
    import submitit.slurm.slurm as slurm

    from fewshotkit.apps.bench.launch import NO_LIMIT_MIN, make_executor
    from fewshotkit.apps.bench.launch_options import LaunchOptions
    from fewshotkit.core.errors import FewshotkitError

    local = make_executor(LaunchOptions(jobs=2), tmp_path / "local", "cpu")._executor.parameters
    assert local["timeout_min"] == NO_LIMIT_MIN >= 60 * 24 * 30  # a long training is not stopped
    assert make_executor(LaunchOptions(jobs=2, time="0:30:00"), tmp_path / "l30", "cpu")._executor.parameters[
        "timeout_min"] == 30
    monkeypatch.setattr(slurm.SlurmExecutor, "affinity", classmethod(lambda cls: 1))
    with pytest.raises(FewshotkitError, match="--launcher slurm needs --time"):
        make_executor(LaunchOptions(launcher="slurm", partition="gpu"), tmp_path / "slurm", "cpu")


def test_a_spec_file_named_in_a_study_file_is_found_beside_it(tmp_path, store, monkeypatch):
    from fewshotkit.apps.bench.config import BenchConfig
    from fewshotkit.apps.bench.methods import method_label
    from fewshotkit.core.errors import FewshotkitError
    from fewshotkit.method.checkpoint import spec_to_toml
    from fewshotkit.method.spec import preset_spec

    studies = tmp_path / "studies"
    (studies / "specs").mkdir(parents=True)
    (studies / "specs" / "mine.toml").write_text(spec_to_toml(preset_spec("alpnet-init-cpu")))
    study = studies / "s.toml"
    study.write_text(f'stores = ["{store}"]\nmethods = ["alpnet-init", "specs/mine.toml"]\nout = "x"\n'
                     'steps = { "specs/mine.toml" = 3 }\n')
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    config = BenchConfig.from_toml(study)
    beside = str(studies / "specs" / "mine.toml")
    assert config.methods == ["alpnet-init", beside] and config.steps == {beside: 3}
    assert method_label(beside, None, config.methods) == "mine"
    # methods given on the command line are as the user typed them (relative to where bench runs), and
    # the file's steps table finds a spec file however it is named
    (tmp_path / "elsewhere" / "mine.toml").write_text(spec_to_toml(preset_spec("alpnet-init-cpu")))
    assert BenchConfig.from_toml(study, methods=["mine.toml"], steps=2).methods == ["mine.toml"]
    typed = "../studies/specs/mine.toml"
    assert BenchConfig.from_toml(study, methods=[typed]).steps == {typed: 3}
    # one method as a string; two names of one file in the steps table
    study.write_text(f'stores = ["{store}"]\nmethods = "specs/mine.toml"\nout = "x"\n'
                     'steps = { "specs/mine.toml" = 3, "./specs/mine.toml" = 4 }\n')
    with pytest.raises(FewshotkitError, match="names one spec file twice"):
        BenchConfig.from_toml(study)
    study.write_text(f'stores = ["{store}"]\nmethods = "specs/mine.toml"\nout = "x"\n')
    assert BenchConfig.from_toml(study).methods == [beside]


def test_launcher_section_flags_and_bad_values(tmp_path, store):
    from fewshotkit.apps.bench.config import BenchConfig
    from fewshotkit.apps.bench.launch_options import LaunchOptions, parse_minutes
    from fewshotkit.core.errors import FewshotkitError

    path = tmp_path / "b.toml"
    path.write_text(f'stores = ["{store}"]\nmethods = ["alpnet-init"]\nout = "x"\n'
                    '[launcher]\nlauncher = "slurm"\npartition = "a100"\ntime = "2:00:00"\n')
    config = BenchConfig.from_toml(path)
    options = LaunchOptions.from_sources(config.launcher, jobs=3, partition=None)
    assert (options.launcher, options.partition, options.jobs, options.threads()) == ("slurm", "a100", 3, None)
    assert LaunchOptions(jobs=2, cpus=None).threads() >= 1 and LaunchOptions(cpus=6).threads() == 6
    assert not LaunchOptions().parallel and LaunchOptions(jobs=2).parallel
    assert [parse_minutes(v) for v in (45, "45", "30:00", "1:30:00", "1-00:00:00", "0:10:30")] == [45, 45, 30, 90, 1440, 11]
    assert [parse_minutes(v) for v in ("2-12", "2-12:00", "2-12:00:30")] == [3600, 3600, 3601], "SLURM's D-H[:MM[:SS]]"
    for nothing in ("0", "0:00", "0-0"):
        with pytest.raises(FewshotkitError, match="no time"):
            parse_minutes(nothing)
    assert LaunchOptions(setup="module load cuda").setup == ["module load cuda"]
    with pytest.raises(FewshotkitError, match="'setup' must be a list of shell lines"):
        LaunchOptions(setup=["ok", 3])
    with pytest.raises(FewshotkitError, match="'partition' must be a string"):
        LaunchOptions(partition=["a100"])
    with pytest.raises(FewshotkitError, match="unknown key.*partiton"):
        LaunchOptions.from_sources({"partiton": "x"})
    with pytest.raises(FewshotkitError, match="H:MM:SS"):
        LaunchOptions(time="two hours")
    with pytest.raises(FewshotkitError, match="local, slurm"):
        LaunchOptions(launcher="pbs")


def _processes_naming(path: Path) -> list[int]:
    """The ids of the processes whose command line holds ``path``."""
    import subprocess

    listing = subprocess.run(["ps", "-ww", "-eo", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split(None, 1)[0]) for line in listing.splitlines() if str(path) in line]


@pytest.mark.slow
def test_a_terminated_study_stops_its_jobs_and_their_trainings_write_a_checkpoint(store, tmp_path):
    """SIGTERM to `fewshotkit bench --jobs 2` (a scheduler, or `kill PID`) reaches its jobs: each
    training writes a checkpoint and stops (the same command resumes from it), none keeps running."""
    import os
    import re
    import signal
    import subprocess
    import sys
    import time

    import torch

    out, log = tmp_path / "study", tmp_path / "bench.log"
    command = [sys.executable, "-m", "fewshotkit", "bench", "--store", str(store), "--method", "ssl-alpnet-cpu",
               "--method", "ssl-panet-cpu", "--steps", "100000", "--device", "cpu", "--jobs", "2", "-o", str(out),
               "--set", "backbone.width=8", "--set", "training.batch_size=1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "300"}
    runs = out / "runs" / "syn"
    try:
        with log.open("w") as sink:
            study = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
            deadline = time.monotonic() + 120
            while len(list(runs.rglob("metrics.jsonl"))) < 2 and time.monotonic() < deadline:
                time.sleep(0.5)  # until both jobs are training
            study.send_signal(signal.SIGTERM)
            study.wait(timeout=120)
        output = log.read_text()
        assert study.returncode == 130 and "stopping 2 jobs" in output, output
        assert len(re.findall(r"job \d+ started", output)) == 2
        assert not _processes_naming(out), "a job of the study is still running"
        errors = [path.read_text() for path in (out / "jobs").glob("*_log.err")]
        assert len(errors) == 2 and all(text.rstrip().endswith("KeyboardInterrupt") for text in errors), errors
        steps = [torch.load(path, map_location="cpu", weights_only=False)["step"] for path in runs.rglob("last.pt")]
        assert len(steps) == 2 and all(step > 0 for step in steps), steps
    finally:
        for pid in _processes_naming(out):
            os.kill(pid, signal.SIGKILL)


def test_a_study_reads_the_cells_kept_beside_its_file(run_cli, store, tmp_path):
    """``cells`` in a study file names a folder of finished cells (relative to the file): a fresh
    output folder rebuilds the study's tables from them with ``--cached``, and writes nothing there."""
    first = tmp_path / "first"
    flags = ("--recipe", "cpu", "--steps", "2", "--device", "cpu")
    assert run_cli("bench", "--store", str(store), "--method=alpnet-init", "--fold=0", *flags, "-o", str(first)).exit_code == 0
    studies = tmp_path / "studies"
    shutil.copytree(first / "cells", studies / "cells" / "mine")
    study = studies / "mine.toml"
    study.write_text(textwrap.dedent(f"""\
        stores = ["{store}"]
        methods = ["alpnet-init"]
        recipe = "cpu"
        out = "{tmp_path / 'fresh'}"
        cells = "cells/mine"
    """))
    kept = sorted((studies / "cells").rglob("*"))
    rebuilt = run_cli("bench", "--config", str(study), "--device", "cpu", "--cached")
    assert rebuilt.exit_code == 0, rebuilt.output
    assert (tmp_path / "fresh" / "syn_comparison.md").read_text() == (first / "syn_comparison.md").read_text()
    assert sorted((studies / "cells").rglob("*")) == kept, "the kept cells are read, never written"
    assert not (tmp_path / "fresh" / "cells").exists() or not any((tmp_path / "fresh" / "cells").rglob("*.json"))
    # --no-kept-cells: the kept cells are not read, so this output folder has every cell to compute
    ignored = run_cli("bench", "--config", str(study), "--device", "cpu", "--no-kept-cells", "--plan")
    assert ignored.exit_code == 0 and "0 cached, 1 to run" in ignored.output, ignored.output
    # another reading of the same row: its pace comes from the kept cells
    plan = run_cli("bench", "--config", str(study), "--device", "cpu", "--eval-set", "fg_threshold=0.9", "--plan")
    assert plan.exit_code == 0 and "1 to run" in plan.output and "at this study's measured pace" in plan.output, plan.output

    # a kept cell of code that has changed since: the plan says which plugin
    import json

    from fewshotkit.apps.bench.cache import digest

    (kept_cell,) = (studies / "cells").rglob("*.json")
    kept_cell_text = kept_cell.read_text()
    cell = json.loads(kept_cell_text)
    plugin = sorted(cell["settings"]["plugins"])[0]
    cell["settings"]["plugins"][plugin] = "an older version"
    cell["key"] = digest(cell["settings"])
    kept_cell.write_text(json.dumps(cell))
    stale = run_cli("bench", "--config", str(study), "--device", "cpu", "--plan")
    assert stale.exit_code == 0 and f"plugin code changed: {plugin}" in " ".join(stale.output.split()), stale.output
    cell["settings"]["plugins"][plugin] = "0.1.0+sha256:0123456789abcdef"  # keyed before fingerprints hashed code
    cell["key"] = digest(cell["settings"])
    kept_cell.write_text(json.dumps(cell))
    bytes_keyed = run_cli("bench", "--config", str(study), "--device", "cpu", "--plan")
    assert f"keyed on the bytes of plugins {plugin}" in " ".join(bytes_keyed.output.split()), bytes_keyed.output
    cell["settings"]["plugins"][plugin] = json.loads(kept_cell_text)["settings"]["plugins"][plugin]
    cell["settings"]["store"]["data"] = "v1:" + "0" * 64  # other scans
    cell["key"] = digest(cell["settings"])
    kept_cell.write_text(json.dumps(cell))
    planned = run_cli("bench", "--config", str(study), "--device", "cpu", "--plan")
    assert "to run (other store)" in " ".join(planned.output.split()), planned.output

    # --no-kept-cells computes the cell in the output folder and leaves the kept one as it is
    kept_text = kept_cell.read_text()
    own = run_cli("bench", "--config", str(study), "--device", "cpu", "--no-kept-cells")
    assert own.exit_code == 0 and any((tmp_path / "fresh" / "cells").rglob("*.json")), own.output
    assert kept_cell.read_text() == kept_text

    study.write_text(study.read_text().replace('cells = "cells/mine"', 'cells = "cells/theirs"'))
    missing = run_cli("bench", "--config", str(study), "--device", "cpu", "--cached")
    assert missing.exit_code == 1 and "cells/theirs' is not a folder" in " ".join(missing.output.split()), missing.output


def test_a_study_with_every_cell_cached_submits_no_job(run_cli, store, tmp_path):
    """Nothing to run, nothing to launch: a cached study re-run for a cluster needs no cluster."""
    out = tmp_path / "o"
    flags = ("--store", str(store), "--method=alpnet-init", "--fold=0", "--recipe", "cpu", "--device", "cpu", "-o", str(out))
    assert run_cli("bench", *flags).exit_code == 0
    again = run_cli("bench", *flags, "--launcher", "slurm", "--partition", "gpu")  # no --time, no srun here
    assert again.exit_code == 0, again.output
    assert not (out / "jobs").exists()


def test_cached_tables_leave_out_only_the_tables_with_no_cell(run_cli, store, tmp_path):
    out = tmp_path / "o"
    flags = ("--store", str(store), "--method=alpnet-init", "--fold=0", "--recipe", "cpu", "--device", "cpu", "-o", str(out))
    assert run_cli("bench", *flags).exit_code == 0
    both = run_cli("bench", *flags, "--setting", "1", "--setting", "2", "--cached")
    assert both.exit_code == 0, both.output
    assert "no cell of syn_setting2 is cached" in " ".join(both.output.split()) and "left out" in both.output
    assert (out / "syn_comparison.md").is_file() and not list(out.glob("syn_setting2*"))
    second = run_cli("bench", *flags, "--setting", "2", "--cached")
    assert second.exit_code == 1 and "no cell of syn_setting2 is cached" in " ".join(second.output.split())


def test_figures_of_two_readings_of_one_row_keep_names_of_their_own(run_cli, store, tmp_path):
    study = tmp_path / "study.toml"
    study.write_text(f'stores = ["{store}"]\nmethods = ["alpnet-init"]\nrecipe = "cpu"\nout = "{tmp_path / "o"}"\n'
                     "figures = true\n")
    for flags in ((), ("--eval-set", "fg_threshold=0.9")):
        assert run_cli("bench", "--config", str(study), "--device", "cpu", *flags).exit_code == 0
    overlays = sorted(p.name for p in (tmp_path / "o" / "figures").glob("*_overlay.png"))
    assert len(overlays) == 2 and all(name.startswith("syn_") for name in overlays), overlays


def test_jobs_start_fold_by_fold_unless_the_study_asks_for_methods_first(store, tmp_path):
    from fewshotkit.apps.bench.config import BenchConfig
    from fewshotkit.apps.bench.jobs import job_groups
    from fewshotkit.apps.bench.launch_options import LaunchOptions
    from fewshotkit.apps.bench.study import Bench
    from fewshotkit.core.errors import FewshotkitError

    config = BenchConfig(stores=[str(store)], methods=["alpnet-init", "ssl-alpnet-cpu"], folds=[2, 0, 1],
                         protocol=["roy", "full-volume"], recipe="cpu", device="cpu", out=str(tmp_path))
    bench = Bench(config)

    def started(order: str) -> list[tuple[str, int]]:
        groups = job_groups(bench, bench.refs(), LaunchOptions.from_sources({"order": order}).order)
        assert all(len({(r.method, r.fold) for r in cells}) == 1 and len(cells) == 2 for cells in groups), \
            "a job holds one model's cells, every protocol"
        return [(cells[0].method, cells[0].fold) for cells in groups]

    assert started("folds") == [(m, f) for f in (2, 0, 1) for m in ("alpnet-init", "ssl-alpnet-cpu")]
    assert started("methods") == [(m, f) for m in ("alpnet-init", "ssl-alpnet-cpu") for f in (2, 0, 1)]
    with pytest.raises(FewshotkitError, match="--order must be one of folds, methods"):
        LaunchOptions(order="random")


def test_one_cell_after_another_goes_fold_by_fold_too(run_cli, store, tmp_path):
    flags = ["bench", "--store", str(store), "--method", "alpnet-init", "--method", "ssl-alpnet-cpu",
             "--steps", "0", "--fold", "0", "--fold", "1", "--recipe", "cpu", "--device", "cpu",
             "-o", str(tmp_path / "o")]
    planned = run_cli(*flags, "--plan")
    rows = [line.split("\t") for line in planned.output.splitlines() if "\t" in line][1:]
    assert [row[3] for row in rows] == ["0", "0", "1", "1"], "the plan lists the cells in the order they run"
    first = run_cli(*flags)
    assert first.exit_code == 0, first.output
    ran = [line.split(": ", 1)[1] for line in first.output.splitlines() if " to run: " in line]
    assert [(r.split(",")[0], r.split(",")[1].strip()) for r in ran] == [
        ("alpnet-init", "fold 0"), ("ssl-alpnet-cpu", "fold 0"),
        ("alpnet-init", "fold 1"), ("ssl-alpnet-cpu", "fold 1")]
    assert "cached:" not in first.output, "cells this run wrote are not reported as cached"
    methods_first = run_cli(*flags[:-2], "-o", str(tmp_path / "m"), "--order", "methods")
    assert methods_first.exit_code == 0 and " to run: " not in methods_first.output, "the serial run's own order"
    again = run_cli(*flags)
    assert again.exit_code == 0 and again.output.count("cached:") == 4 and " to run: " not in again.output


def test_a_setting_2_cell_trains_its_models_side_by_side_then_evaluates_them(run_cli, store, tmp_path):
    """Setting 2 trains a model per class group: each is a job of its own, the cell's job starts when
    both have finished, and the tables are those of a serial run."""
    flags = ["bench", "--store", str(store), "--method", "ssl-alpnet-cpu", "--setting", "2", "--steps", "2",
             "--device", "cpu", "--protocol", "roy", "--protocol", "full-volume"]
    serial = run_cli(*flags, "-o", str(tmp_path / "serial"))
    assert serial.exit_code == 0, serial.output
    threads = str(torch.get_num_threads())
    parallel = run_cli(*flags, "-o", str(tmp_path / "jobs"), "--jobs", "2", "--cpus-per-cell", threads)
    assert parallel.exit_code == 0, parallel.output
    assert "2 cells to run in 3 jobs (2 of them train one model of a cell each), 2 at once" in parallel.output
    started = [line.split("started: ")[1] for line in parallel.output.splitlines() if "started: " in line]
    assert [s.split(" of ")[0] for s in started[:2]] == ["model upper", "model lower"], started
    assert started[2].startswith("ssl-alpnet-cpu, fold 0, roy"), "the cell's job comes last"
    finished = parallel.output.index("done: model lower"), parallel.output.index("done: model upper")
    assert parallel.output.index(f"started: {started[2]}") > max(finished), "evaluated once both are trained"
    for name in ("syn_setting2_comparison.md", "syn_setting2_comparison.csv"):
        assert (tmp_path / "jobs" / name).read_text() == (tmp_path / "serial" / name).read_text(), name


def test_a_cell_whose_model_failed_to_train_is_not_started(tmp_path):
    from fewshotkit.apps.bench.cells import CellRef
    from fewshotkit.apps.bench.jobs import Job
    from fewshotkit.apps.bench.launch import _take_ready

    cell, root = (CellRef("syn.h5", "ssl-alpnet-cpu", 0, setting=2),), tmp_path / "fold0"
    upper, lower = Job(cell, root, "upper"), Job(cell, root, "lower")
    evaluate = Job(cell, root, needs=frozenset({(root, "upper"), (root, "lower")}))
    other = Job((CellRef("syn.h5", "alpnet-init", 0, setting=2),), tmp_path / "other")
    logged: list[str] = []

    pending, failures = [evaluate, other], []
    assert _take_ready(pending, [upper], set(), failures, logged.append) is other, "waits for its model"
    assert _take_ready(pending, [upper], set(), failures, logged.append) is None and pending == [evaluate]
    assert _take_ready(pending, [], set(), failures, logged.append) is evaluate and not failures
    pending = [lower, evaluate]
    assert _take_ready(pending, [], {(root, "upper")}, failures, logged.append) is lower
    assert _take_ready(pending, [], {(root, "upper")}, failures, logged.append) is None and pending == []
    assert len(failures) == 1 and failures[0].job is evaluate and failures[0].log is None
    assert logged == ["failed: ssl-alpnet-cpu, fold 0, roy, setting 2 on syn: not run: a model it needs failed to "
                      "train"]


def test_a_plans_wall_time_counts_the_models_of_a_setting_2_cell_as_jobs():
    from fewshotkit.apps.bench.cells import CellRef
    from fewshotkit.apps.bench.plan import PlannedCell, summary

    ref = CellRef("syn.h5", "ssl-alpnet-cpu", 0, setting=2)
    cell = PlannedCell(ref, "SSL-ALPNet", cached=False, models=2, steps_left=4000, seconds=7200.0)
    assert "about 2.0 h of compute for 1 of them" in summary([cell], jobs=2)
    assert "(1.0 h wall with 2 jobs at once, at best)" in summary([cell], jobs=2)
    assert "(2.0 h wall with 2 jobs" in summary([dataclasses.replace(cell, models=1)], jobs=2)
    assert "wall" not in summary([cell])


def test_the_plan_says_when_only_the_pseudolabels_of_a_kept_cell_differ():
    """Same scans and set name, other labels (the set made again on a CPU that sorts ties otherwise):
    the plan names the set instead of saying "other store"."""
    from fewshotkit.apps.bench.plan import store_difference

    scans = "v1:" + "a" * 64 + "+" + "b" * 64
    kept = {"data": scans + "/" + "c" * 64, "pseudolabels": "felzenszwalb-0d755f88"}
    assert store_difference(kept, {**kept, "data": scans + "/" + "d" * 64}) == (
        "same scans, other labels in pseudolabel set felzenszwalb-0d755f88")
    assert store_difference(kept, {"data": scans + "/" + "d" * 64, "pseudolabels": "slic-1"}) == "other pseudolabel set"
    assert store_difference(kept, {**kept, "data": "v1:" + "e" * 64 + "/" + "c" * 64}) == "other store"
    assert store_difference({"data": None}, kept) == "other store"
