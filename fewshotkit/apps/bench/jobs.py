"""What a study's jobs run: groups of cells that share trained models, and, where such a group trains
several models (setting 2: one a class group), one job a model, so the models of one cell train side
by side and the cell's own job only evaluates them.

A job is described by a :class:`Job`; :func:`study_jobs` lists a study's jobs in the order they start
(a job that evaluates a cell starts once the jobs training its models have finished) and
:func:`run_job` is a job's body, in its own process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fewshotkit.apps.bench.cells import CellRef, in_run_order
from fewshotkit.apps.bench.models import model_finished, trained_model
from fewshotkit.apps.bench.study import Bench


@dataclass(frozen=True)
class Job:
    """The cells ``cells`` run one after another (each cached when done), or with ``model`` only that
    class group's model of them trained. ``needs`` names the model jobs that must finish first."""

    cells: tuple[CellRef, ...]
    run_root: Path  # the folder of the cells' models
    model: str | None = None
    needs: frozenset[tuple[Path, str]] = frozenset()  # the model jobs' (run_root, model)

    def describe(self) -> str:
        """The cells, ``;``-separated; a model job: ``model GROUP of`` its first cell."""
        if self.model is not None:
            return f"model {self.model} of {self.cells[0].describe()}"
        return "; ".join(ref.describe() for ref in self.cells)


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


def study_jobs(bench: Bench, groups: list[list[CellRef]]) -> list[Job]:
    """The jobs of ``groups`` (from :func:`job_groups`), in the order they start: a group whose cells
    train several models gets a job for each model not trained yet, then its own job, which needs them."""
    from fewshotkit.data.store.reader import SliceStore

    jobs: list[Job] = []
    for cells in groups:
        site = bench.locate(cells[0])
        plan = bench.models(site, SliceStore(site.ref.store))
        left = [group for group, _, _ in plan if len(plan) > 1 and not model_finished(site.run_root / group, site.steps)]
        jobs += [Job(tuple(cells), site.run_root, group) for group in left]
        jobs.append(Job(tuple(cells), site.run_root, needs=frozenset((site.run_root, group) for group in left)))
    return jobs


def train_group(bench: Bench, ref: CellRef, group: str) -> Path:
    """Train (or resume) the model of cell ``ref`` for class ``group``; returns its checkpoint."""
    from fewshotkit.data.store.reader import SliceStore

    site = bench.locate(ref)
    exclude = {g: excluded for g, excluded, _ in bench.models(site, SliceStore(ref.store))}[group]
    return trained_model(bench.config, site, site.run_root / group, exclude, bench.log)


def run_job(config: Any, job: Job, threads: int | None, plugins: dict[str, Any]) -> str:
    """A job's body, in its own process, with ``threads`` torch threads (None: the job's cores): the
    host configured with ``plugins``, then ``job`` run. Returns what it ran."""
    import torch

    from fewshotkit.apps.bench.launch_options import available_cores
    from fewshotkit.host.plugin_host import configure

    torch.set_num_threads(threads or available_cores())
    configure(**plugins)
    bench = Bench(config, log=lambda message: print(message, flush=True))
    if job.model is not None:
        print(f"model: {job.describe()}", flush=True)
        train_group(bench, job.cells[0], job.model)
    else:
        for ref in job.cells:
            print(f"cell: {ref.describe()}", flush=True)
            bench.run_cell(ref)
    return job.describe()
