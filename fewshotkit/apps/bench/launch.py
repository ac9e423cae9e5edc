"""Running a study's cells as jobs: several local processes at once, or SLURM jobs, through submitit.

The cell cache stays the only record of what is done. Every job runs cells through
:meth:`Bench.run_cell`, which writes the cell's file when it is finished; cells that share trained
models (the same method and fold under several protocols) go to one job, so no two jobs train the
same model. When the jobs are over, the study is run as usual in this process: every cell is a
cache hit, so its tables are those of a serial run. A failed job is reported with its log and does
not stop the others; re-running the same command runs only what is not cached yet.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fewshotkit.apps.bench.cells import CellRef, in_run_order
from fewshotkit.apps.bench.config import BenchConfig
from fewshotkit.apps.bench.launch_options import LaunchOptions, available_cores, parse_minutes
from fewshotkit.apps.bench.result import BenchResult
from fewshotkit.apps.bench.study import Bench
from fewshotkit.core.errors import FewshotkitError

#: the submitit executor of each launcher
CLUSTERS = {"local": "local", "slurm": "slurm"}


def job_groups(bench: Bench, refs: list[CellRef], order: str = "folds") -> list[list[CellRef]]:
    """The cells not cached yet, grouped into jobs (cells sharing trained models run in one job), in
    ``order``: ``folds``, every method's first fold (in the study's order), then the next; ``methods``,
    the order of ``refs``."""
    groups: dict[Path, list[CellRef]] = {}
    for ref in in_run_order(refs, bench.config.folds, order):
        site = bench.locate(ref)
        if bench.cached(site) is None:
            groups.setdefault(site.run_root, []).append(ref)
    return list(groups.values())


def run_job(config: BenchConfig, refs: list[CellRef], threads: int | None, plugins: dict[str, Any]) -> list[str]:
    """A job's body, in its own process: run ``refs`` one after another (each cached when done) with
    ``threads`` torch threads (None: the job's cores)."""
    import torch

    from fewshotkit.host.plugin_host import configure

    torch.set_num_threads(threads or available_cores())
    configure(**plugins)
    bench = Bench(config, log=lambda message: print(message, flush=True))
    for ref in refs:
        print(f"cell: {ref.describe()}", flush=True)
        bench.run_cell(ref)
    return [ref.describe() for ref in refs]


@dataclass
class JobFailure:
    """A job that ended without finishing its cells."""

    cells: list[CellRef]
    error: str  # the last line of its error
    log: Path  # its stderr file

    def describe(self) -> str:
        return f"failed: {'; '.join(r.describe() for r in self.cells)}: {self.error} (log: {self.log})"


@contextmanager
def _thread_env(threads: int | None) -> Iterator[None]:
    """OMP/MKL thread counts for the processes started inside (a job inherits the environment);
    None: the variables are left out, so a job's libraries use the cores it was given."""
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    saved = {name: os.environ.get(name) for name in names}
    for name in names:
        if threads is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = str(threads)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


#: A local job's time limit when ``--time`` is not given: none in practice (a year).
NO_LIMIT_MIN = 365 * 24 * 60


def make_executor(options: LaunchOptions, folder: Path, device: str) -> Any:
    """A submitit executor for ``options`` writing its jobs' files and logs to ``folder``."""
    try:
        import submitit
    except ImportError:  # pragma: no cover - a core dependency
        raise FewshotkitError("bench --launcher needs submitit: pip install submitit") from None
    try:
        executor = submitit.AutoExecutor(folder=folder, cluster=CLUSTERS[options.launcher])
    except RuntimeError as exc:  # no srun on this machine
        raise FewshotkitError(f"bench --launcher {options.launcher}: {exc} Run the study on a machine that can "
                              "submit SLURM jobs (a login node), or use --launcher local") from None
    params: dict[str, Any] = {"name": "fewshotkit-bench", "cpus_per_task": options.threads(),
                              "gpus_per_node": options.gpus if options.gpus is not None else _local_gpus(device),
                              "nodes": 1, "tasks_per_node": 1}
    if options.time is not None:
        params["timeout_min"] = parse_minutes(options.time)
    elif options.launcher == "local":
        params["timeout_min"] = NO_LIMIT_MIN  # submitit's own default would stop a local job after 2 minutes
    else:  # submitit would ask for 5 minutes, and a batch script cannot leave the limit to the partition
        raise FewshotkitError("bench --launcher slurm needs --time (each job's limit, e.g. --time 1:00:00 or "
                              "'time' in the config's [launcher]); `bench --plan` estimates each cell's cost")
    if options.launcher == "slurm":
        params.update(slurm_partition=options.partition, slurm_setup=options.setup)
    executor.update_parameters(**params)
    return executor


def _local_gpus(device: str) -> int:
    """One GPU per job when CUDA is there and the study does not ask for the CPU."""
    if device == "cpu":
        return 0
    import torch

    return 1 if torch.cuda.device_count() > 0 else 0


def _error_line(exc: BaseException) -> str:
    """The job's own error: the last line of the traceback submitit quotes between dashed lines, else
    the first line of the message (a job that was killed or timed out)."""
    parts = str(exc).split("----------------------\n")
    lines = [line.strip() for line in (parts[1] if len(parts) >= 3 else str(exc)).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return lines[-1] if len(parts) >= 3 else lines[0]


def run_jobs(bench: Bench, groups: list[list[CellRef]], options: LaunchOptions,
             log: Callable[[str], None], poll_s: float = 1.0) -> list[JobFailure]:
    """Run ``groups`` as jobs, at most ``options.jobs`` at once; returns the failed ones."""
    from fewshotkit.host.plugin_host import current_settings

    folder = Path(options.folder) if options.folder else bench.out / "jobs"
    executor = make_executor(options, folder, bench.config.device)
    gpus = int(executor.parameters.get("gpus_per_node") or 0) if options.launcher == "local" else 0
    visible = _visible_gpus() if gpus else []
    pending, failures = list(groups), []
    running: dict[int, tuple[Any, list[CellRef]]] = {}  # slot -> (job, its cells)
    try:
        while pending or running:
            for slot in (s for s in range(options.jobs or len(groups)) if s not in running):
                if not pending:
                    break
                cells = pending.pop(0)
                if visible:  # local jobs take turns on this machine's GPUs
                    first = slot * gpus % len(visible)
                    executor.update_parameters(local_visible_gpus=[visible[(first + k) % len(visible)]
                                                                   for k in range(gpus)])
                with _thread_env(options.threads()):
                    job = executor.submit(run_job, bench.config, cells, options.threads(), current_settings())
                running[slot] = (job, cells)
                log(f"job {job.job_id} started: {'; '.join(r.describe() for r in cells)} (log: {job.paths.stdout})")
            time.sleep(poll_s)
            for slot, (job, cells) in list(running.items()):
                if job.done():
                    del running[slot]
                    try:
                        job.result()
                        log(f"job {job.job_id} done: {len(cells)} cell{'s' if len(cells) > 1 else ''}")
                        for ref in cells:
                            bench.written_by_this_run(ref)
                    except Exception as exc:  # the job's own error, any type: reported, the others go on
                        failures.append(JobFailure(cells, _error_line(exc), Path(job.paths.stderr)))
                        log(failures[-1].describe())
    except BaseException:  # Ctrl-C, SIGTERM or an error here: nothing keeps running unseen
        _stop([job for job, _ in running.values()], options.launcher, log)
        raise
    return failures


def _stop(jobs: list[Any], launcher: str, log: Callable[[str], None], wait_s: float = 60.0) -> None:
    """Stop ``jobs`` and wait up to ``wait_s`` for the local ones to end. A local job's controller
    gets SIGTERM, which it forwards to its task: a training writes a checkpoint and stops, so a re-run
    resumes it (submitit's cancel sends SIGINT, which a process started in the background ignores,
    and kills the task a second later). A SLURM job is cancelled."""
    if not jobs:
        return
    log(f"stopping {len(jobs)} job{'s' if len(jobs) > 1 else ''}: trainings write a checkpoint; "
        "re-run the same command to resume")
    if launcher != "local":
        for job in jobs:
            job.cancel(check=False)
        return
    for job in jobs:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(job.job_id), signal.SIGTERM)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and not all(job.done() for job in jobs):
        time.sleep(0.2)


def _visible_gpus() -> list[int]:
    """This process's GPU indices as CUDA_VISIBLE_DEVICES numbers them (all of them when unset)."""
    import torch

    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed:
        return [int(x) for x in listed.split(",") if x.strip().isdigit()]
    return list(range(torch.cuda.device_count()))


def run_study(config: BenchConfig, options: LaunchOptions, log: Callable[[str], None],
              command: str | None = None, cached_only: bool = False, report: bool = True,
              entries: Collection[str] | None = None) -> BenchResult:
    """Run a study: its missing cells as jobs when ``options`` asks for it, else one after another in
    this process, in ``options.order``; then its tables from the cache (a serial run's, cell for cell).
    With ``cached_only``, just the tables of the cells cached so far; with ``report``, its table files,
    ``bench.json`` and ``results.md`` written too; with ``entries``, only those rows
    (``METHOD [+ POOLER] [+ SET]``). Returns the :class:`BenchResult`."""
    bench = Bench(config, log=log, command=command, cached_only=cached_only, only=entries)
    if not options.parallel and not cached_only and options.order == "folds":
        _run_in_order(bench, job_groups(bench, bench.refs(), options.order), log)
    elif options.parallel and not cached_only:
        groups = job_groups(bench, bench.refs(), options.order)
        if groups:
            threads = options.threads()
            log(f"{sum(map(len, groups))} cells to run in {len(groups)} jobs, {options.jobs or 'all'} at once "
                f"({options.launcher}; threads per job: {threads or 'its cores'})")
        failures = run_jobs(bench, groups, options, log) if groups else []
        if failures:
            raise FewshotkitError(
                f"bench: {len(failures)} of {len(groups)} jobs failed (each listed above with its log, first: "
                f"{failures[0].log}); the finished cells are cached: fix the cause and re-run the same command")
    return bench.run(report)


def _run_in_order(bench: Bench, groups: list[list[CellRef]], log: Callable[[str], None]) -> None:
    """Run the cells of ``groups`` in this process, group after group (the tables then read them
    from the cache, as after jobs)."""
    total = sum(map(len, groups))
    for done, ref in enumerate((ref for cells in groups for ref in cells), start=1):
        log(f"cell {done}/{total} to run: {ref.describe()}")
        bench.run_cell(ref)
