"""``fewshotkit bench``: a study of methods x stores x folds x settings, cached cell by cell."""

from __future__ import annotations

import dataclasses
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from fewshotkit.cli.options import PROTOCOL_CHOICES, VAL_FROM_CHOICES, VAL_FROM_HELP, inference_options
from fewshotkit.method.spec import PRESETS


@click.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="A TOML file with the keys below (stores, methods, folds, steps, ...); flags override it.")
@click.option("--store", "stores", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A slice store to compare on (repeatable).")
@click.option("--method", "methods", multiple=True, metavar="PRESET|SPEC.toml",
              help=f"A method (repeatable): a preset ({', '.join(PRESETS)}) or a spec file.")
@click.option("--pooler", "poolers", multiple=True, metavar="NAME",
              help="Run every composed method once per pooler (repeatable): a pooler axis, rows 'METHOD + NAME'.")
@click.option("--fold", "folds", multiple=True, type=click.IntRange(min=0), help="Fold (repeatable; default 0).")
@click.option("--all-folds", is_flag=True, help="Every fold (0 .. n-folds - 1).")
@click.option("--n-folds", type=click.IntRange(min=2), default=None,
              help="Folds over each store's scans (default 5; a store needs at least this many patients).")
@click.option("--steps", type=click.IntRange(min=0), default=None,
              help="Training steps for every trained method (the shared budget; default: each preset's). A config "
                   "file's 'steps' may instead be a table giving methods their own (equal training time).")
@click.option("--setting", "settings", multiple=True, type=click.Choice(["1", "2"]),
              help="1 (default) or 2 (exclude test classes); repeatable: one table per setting.")
@click.option("--val-scans", type=click.IntRange(min=0), default=None, metavar="N",
              help="Hold at least N scans (whole patients) out of every fold's training scans; the models never see them.")
@click.option("--val-from", type=click.Choice(VAL_FROM_CHOICES), default=None,
              help=VAL_FROM_HELP)
@click.option("--split", type=click.Choice(["test", "validation"]), default=None,
              help="Score the folds' test scans (default) or the held-out validation scans, on which budgets, levers "
                   "and inference options are chosen.")
@click.option("--exclusion", type=click.Choice(["any", "all"]), default=None,
              help="Setting 2's rule: 'any' (default, SSL-ALPNet's) drops every training slice showing any excluded "
                   "class; 'all' (Q-Net's, RPT's and GMRD's code) only slices showing all of them.")
@click.option("--protocol", "protocols", multiple=True, type=click.Choice(PROTOCOL_CHOICES),
              help="Protocol (repeatable: one column group per protocol; default roy).")
@click.option("--recipe", type=click.Choice(["cpu"]), default=None,
              help="cpu: give every method the CPU recipe's light backbone, 128 px size and training table "
                   "(as its -cpu preset).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Spec override for every method (after a --config file's 'overrides'). The inference options "
                   "(--eval-set, --postprocess, ...) share the trained models: their scores go to cells of "
                   "their own.")
@inference_options(bench=True)
@click.option("--pseudolabels", "pseudolabels", multiple=True, metavar="SET",
              help="Pseudolabel set (or pseudolabeler name) for self-supervised training; repeatable: one row per set.")
@click.option("--seed", type=int, default=None, help="Seed shared by every method (default 0).")
@click.option("--device", default=None, help="auto (default), cpu, cuda or cuda:N.")
@click.option("-o", "--out", default=None, type=click.Path(file_okay=False),
              help="Output folder (tables, PNG, JSON, cached cells and runs). Default: bench_out.")
@click.option("--launcher", type=click.Choice(["local", "slurm"]), default=None,
              help="How cells run: local (this machine; --jobs at once, cores split between them) or slurm "
                   "(one job per cell through submitit). Default local; also [launcher] launcher in the config.")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Jobs at once (local default 1: one cell after another in this process; slurm: jobs queued "
                   "at once, default all).")
@click.option("--order", "job_order", type=click.Choice(["folds", "methods"]), default=None,
              help="Which cells run first: folds (default), every method's first fold, then the next; methods, "
                   "every fold of the first method, then the next method.")
@click.option("--partition", default=None, help="slurm: the partition of every job.")
@click.option("--time", "time_limit", default=None, metavar="MINUTES|H:MM:SS",
              help="Time limit of each job (slurm: its --time).")
@click.option("--gpus-per-cell", type=click.IntRange(min=0), default=None,
              help="GPUs per job (local default: 1 when CUDA is there and --device is not cpu).")
@click.option("--cpus-per-cell", type=click.IntRange(min=1), default=None,
              help="CPU cores (torch threads) per job (local default: the cores split between --jobs).")
@click.option("--readings", "readings_mode", type=click.Choice(["all", "chosen"]), default=None,
              help="all: score every reading of the config's [readings] table (named sets of inference options) "
                   "and tabulate them, a column each, each method's best marked on the validation split; chosen: "
                   "score each method with the reading its validation scans chose.")
@click.option("--plan", "show_plan", is_flag=True,
              help="List the cells, which are cached and the estimated cost; run nothing.")
@click.option("--cached", "cached_only", is_flag=True,
              help="Write the tables from the cells already cached (a study under way); train and evaluate "
                   "nothing. A row with fewer folds names them.")
@click.option("--no-kept-cells", "no_kept_cells", is_flag=True,
              help="Read no cell from the study file's kept cells ('cells'): compute every cell from models "
                   "of the output folder (your own numbers where the kept ones came from another machine).")
def bench(config_path: str | None, stores: tuple[str, ...], methods: tuple[str, ...], poolers: tuple[str, ...],
          folds: tuple[int, ...], all_folds: bool, n_folds: int | None, steps: int | None, settings: tuple[str, ...],
          val_scans: int | None, val_from: str | None, split: str | None, exclusion: str | None,
          protocols: tuple[str, ...], recipe: str | None, overrides: tuple[str, ...], inference: dict[str, Any],
          pseudolabels: tuple[str, ...], seed: int | None, device: str | None, out: str | None,
          launcher: str | None, jobs: int | None, job_order: str | None, partition: str | None, time_limit: str | None,
          gpus_per_cell: int | None, cpus_per_cell: int | None, readings_mode: str | None, show_plan: bool,
          cached_only: bool, no_kept_cells: bool) -> None:
    """Compare methods on the same folds, seeds and budget (tables like the paper's Tables 1-3).

    Finished (method, fold) cells and interrupted trainings are cached in the output folder:
    re-run the same command to resume. With --jobs or --launcher slurm, cells run as jobs and a
    failed one does not stop the others.
    """
    from fewshotkit.apps.bench.config import inference_keys
    from fewshotkit.apps.bench.launch_options import LaunchOptions
    from fewshotkit.core.outputs import FOLDER, Output, check_outputs
    from fewshotkit.core.stop import terminate_cleanly

    if all_folds and folds:
        raise click.UsageError("give --fold or --all-folds, not both")
    flags: dict[str, Any] = {
        "stores": list(stores) or None, "methods": list(methods) or None,
        "folds": "all" if all_folds else (list(folds) or None), "steps": steps,
        "setting": [int(s) for s in settings] or None, "exclusion": exclusion, "val_scans": val_scans,
        "val_from": val_from, "split": split, "protocol": list(protocols) or None, "recipe": recipe,
        "overrides": list(overrides) or None, **inference_keys(inference), "pseudolabels": list(pseudolabels) or None,
        "seed": seed, "device": device, "out": out, "n_folds": n_folds, "poolers": list(poolers) or None,
    }
    config = _config(config_path, flags)
    if no_kept_cells:
        config = dataclasses.replace(config, cells=None)
    check_outputs([Output(config.out, "-o", FOLDER)],
                  {"--store": config.stores, "--method": [m for m in config.methods if m.endswith(".toml")],
                   "--config": config_path})
    options = LaunchOptions.from_sources(config.launcher, launcher=launcher, jobs=jobs, order=job_order,
                                         partition=partition, time=time_limit, gpus=gpus_per_cell,
                                         cpus=cpus_per_cell)
    if show_plan:
        _print_plans(config, readings_mode, options)
        return
    terminate_cleanly()  # `kill PID` stops the study's jobs with it, as Ctrl-C does
    _run(config, options, readings_mode, cached_only)


def _config(config_path: str | None, flags: dict[str, Any]) -> Any:
    """The study: the TOML file with the flags given over it, or the flags alone."""
    from fewshotkit.apps.bench.study import BenchConfig

    if config_path:
        return BenchConfig.from_toml(config_path, **flags)
    given: dict[str, Any] = {k: v for k, v in flags.items() if v is not None}
    given.setdefault("out", "bench_out")
    return BenchConfig(stores=given.pop("stores", []), methods=given.pop("methods", []), **given)


def _run(config: Any, options: Any, readings_mode: str | None, cached_only: bool) -> None:
    """Run the study (or each reading of it) and show its tables."""
    from fewshotkit.core.console import console

    # the command line for results.md, global options (--plugins-dir, ...) included; None in-process
    from_shell = Path(sys.argv[0]).name in ("fewshotkit", "__main__.py") and "bench" in sys.argv[1:]
    command = "fewshotkit " + shlex.join(sys.argv[1:]) if from_shell else None

    def log(message: str) -> None:
        console.print(f"[dim]{message}[/dim]")

    if readings_mode == "all":
        from fewshotkit.apps.bench.readings import run_all

        tables, files = run_all(config, options, log, command=command, cached_only=cached_only)
        _show(tables.values(), files)
        return
    if readings_mode == "chosen":
        from fewshotkit.apps.bench.readings import run_chosen

        result = run_chosen(config, options, log, command=command, cached_only=cached_only)
    else:
        from fewshotkit.apps.bench.launch import run_study

        result = run_study(config, options, log=log, command=command, cached_only=cached_only)
    _show(result.tables.values(), result.files)


def _print_plans(config: Any, readings_mode: str | None, options: Any) -> None:
    """The plan of the study, or of each of its readings (nothing is trained or written)."""
    from fewshotkit.apps.bench.readings import planned
    from fewshotkit.apps.bench.study import Bench

    def quiet(message: str) -> None:  # the plan lists what it reads instead
        del message

    benches = planned(config, readings_mode, options, quiet) if readings_mode else {"": Bench(config)}
    for name, each in benches.items():
        if name:
            click.echo(f"reading '{name}':")
        _print_plan(each, options)


def _show(tables: Any, files: Any) -> None:
    """Each table in the terminal and as Markdown ready to paste, then the files written."""
    from fewshotkit.core.console import console

    for table in tables:
        console.print(table.to_rich())
        console.print("\nMarkdown (ready to paste):\n", style="dim")
        click.echo(table.to_markdown())
    console.print(f"written: {', '.join(str(p) for p in files)}")


def _print_plan(bench: Any, options: Any) -> None:
    """The cells of a study's ``bench``, cached or not, and their estimated cost."""
    from fewshotkit.apps.bench.plan import duration, plan, summary
    from fewshotkit.core.console import print_table

    config = bench.config
    planned = plan(bench, options.order)
    rows = []
    for cell in planned:
        estimate = "-" if cell.cached else ("unknown" if cell.seconds is None else duration(cell.seconds))
        rows.append((Path(cell.ref.store).stem, cell.ref.setting, cell.row, cell.ref.fold, cell.ref.protocol,
                     "cached" if cell.cached else f"to run ({cell.other})" if cell.other else "to run",
                     cell.models, cell.steps_left, estimate))
    print_table(f"bench plan: {config.out}", ("store", "setting", "method", "fold", "protocol", "state", "models",
                                             "steps to run", "estimate"), rows)
    click.echo(summary(planned, options.jobs or 1))
