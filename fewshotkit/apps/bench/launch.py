"""Running a study's cells as jobs: several local processes at once, or SLURM jobs, through submitit.

The cell cache stays the only record of what is done. Every job runs cells through
:meth:`Bench.run_cell`, which writes the cell's file when it is finished; cells that share trained
models (the same method and fold under several protocols) go to one job, so no two jobs train the
same model. A cell that trains several models (setting 2) has them trained by jobs of their own, side
by side, before its job evaluates them (:mod:`fewshotkit.apps.bench.jobs`). When the jobs are over, the study is run as usual in this process: every cell is a
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

from fewshotkit.apps.bench.cells import CellRef
from fewshotkit.apps.bench.config import BenchConfig
from fewshotkit.apps.bench.jobs import Job, job_groups, run_job, study_jobs
from fewshotkit.apps.bench.launch_options import LaunchOptions, parse_minutes
from fewshotkit.apps.bench.result import BenchResult
from fewshotkit.apps.bench.study import Bench
from fewshotkit.core.errors import FewshotkitError

#: the submitit executor of each launcher
CLUSTERS = {"local": "local", "slurm": "slurm"}


@dataclass
class JobFailure:
    """A job that ended without finishing its cells (or, ``log`` None, did not start: a model it
    needs failed)."""

    job: Job
    error: str  # the last line of its error
    log: Path | None  # its stderr file

    def describe(self) -> str:
        where = f" (log: {self.log})" if self.log is not None else ""
        return f"failed: {self.job.describe()}: {self.error}{where}"


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


def _take_ready(pending: list[Job], running: list[Job], failed: set[tuple[Path, str]],
                failures: list[JobFailure], log: Callable[[str], None]) -> Job | None:
    """Remove from ``pending`` and return the first job whose model jobs have all finished (None: none
    is ready yet); a job that needs a model whose job failed is dropped as a failure of its own."""
    unfinished = {(job.run_root, job.model) for job in [*pending, *running] if job.model is not None}
    for job in list(pending):
        if job.needs & failed:
            pending.remove(job)
            failures.append(JobFailure(job, "not run: a model it needs failed to train", None))
            log(failures[-1].describe())
        elif not job.needs & unfinished:
            pending.remove(job)
            return job
    return None


def run_jobs(bench: Bench, jobs: list[Job], options: LaunchOptions,
             log: Callable[[str], None], poll_s: float = 1.0) -> list[JobFailure]:
    """Run ``jobs`` (from :func:`~fewshotkit.apps.bench.jobs.study_jobs`), at most ``options.jobs`` at
    once, each when the model jobs it needs have finished; returns the failed ones."""
    from fewshotkit.host.plugin_host import current_settings

    folder = Path(options.folder) if options.folder else bench.out / "jobs"
    executor = make_executor(options, folder, bench.config.device)
    gpus = int(executor.parameters.get("gpus_per_node") or 0) if options.launcher == "local" else 0
    visible = _visible_gpus() if gpus else []
    pending, failures, failed = list(jobs), list[JobFailure](), set[tuple[Path, str]]()
    running: dict[int, tuple[Any, Job]] = {}  # slot -> (submitit job, what it runs)
    try:
        while pending or running:
            for slot in (s for s in range(options.jobs or len(jobs)) if s not in running):
                job = _take_ready(pending, [job for _, job in running.values()], failed, failures, log)
                if job is None:
                    break
                if visible:  # local jobs take turns on this machine's GPUs
                    first = slot * gpus % len(visible)
                    executor.update_parameters(local_visible_gpus=[visible[(first + k) % len(visible)]
                                                                   for k in range(gpus)])
                with _thread_env(options.threads()):
                    handle = executor.submit(run_job, bench.config, job, options.threads(), current_settings())
                running[slot] = (handle, job)
                log(f"job {handle.job_id} started: {job.describe()} (log: {handle.paths.stdout})")
            time.sleep(poll_s)
            for slot, (handle, job) in list(running.items()):
                if handle.done():
                    del running[slot]
                    try:
                        handle.result()
                    except Exception as exc:  # the job's own error, any type: reported, the others go on
                        failures.append(JobFailure(job, _error_line(exc), Path(handle.paths.stderr)))
                        log(failures[-1].describe())
                        if job.model is not None:
                            failed.add((job.run_root, job.model))
                        continue
                    cells = len(job.cells)
                    log(f"job {handle.job_id} done: " + (f"model {job.model}" if job.model is not None
                                                         else f"{cells} cell{'s' if cells > 1 else ''}"))
                    for ref in job.cells if job.model is None else ():
                        bench.written_by_this_run(ref)
    except BaseException:  # Ctrl-C, SIGTERM or an error here: nothing keeps running unseen
        _stop([handle for handle, _ in running.values()], options.launcher, log)
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
        jobs = study_jobs(bench, groups)
        if jobs:
            threads, models = options.threads(), sum(job.model is not None for job in jobs)
            log(f"{sum(map(len, groups))} cells to run in {len(jobs)} jobs"
                + (f" ({models} of them train one model of a cell each)" if models else "")
                + f", {options.jobs or 'all'} at once ({options.launcher}; threads per job: {threads or 'its cores'})")
        failures = run_jobs(bench, jobs, options, log) if jobs else []
        if failures:
            raise FewshotkitError(
                f"bench: {len(failures)} of {len(jobs)} jobs failed (each listed above with its log, first: "
                f"{failures[0].log}); the finished cells are cached: fix the cause and re-run the same command")
    return bench.run(report)


def _run_in_order(bench: Bench, groups: list[list[CellRef]], log: Callable[[str], None]) -> None:
    """Run the cells of ``groups`` in this process, group after group (the tables then read them
    from the cache, as after jobs)."""
    total = sum(map(len, groups))
    for done, ref in enumerate((ref for cells in groups for ref in cells), start=1):
        log(f"cell {done}/{total} to run: {ref.describe()}")
        bench.run_cell(ref)
