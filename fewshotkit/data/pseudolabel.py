"""Running a pseudolabeler over every slice (2D) or volume (3D) of a store, in parallel processes.

Crash safety: the new set is written into a copy of the store (a temporary file in the same
folder) which replaces the store by ``os.replace`` only when complete and flushed, all under the
store's write lock (:mod:`fewshotkit.data.store.lock`): a second writer fails at once instead of
replacing the store with a copy that lacks this run's set. Killing the run at any moment leaves
the previous store untouched; the next writer removes the temporary file a SIGKILL left. A full
disk is a one-line error and leaves no temporary file. Worker processes die with their parent
(even after ``kill -9``) and stop on SIGTERM.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from fewshotkit.core import stop
from fewshotkit.core.atomic import disk_full_error, is_disk_full, temporary_path
from fewshotkit.core.device import numpy_simd
from fewshotkit.core.outputs import real_path
from fewshotkit.core.errors import FewshotkitError
from fewshotkit.core.option_types import check_option_values
from fewshotkit.data.store import format as fmt
from fewshotkit.data.store.fingerprint import set_labels_sha256
from fewshotkit.data.store.lock import store_lock
from fewshotkit.data.store.reader import SliceStore
from fewshotkit.data.store.sets import describe_set, find_set, set_name
from fewshotkit.data.store.writer import discard_h5, fsync_path

SLICES_PER_TASK = 4
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class PseudolabelResult:
    set_name: str
    computed: bool  # False when the set existed and nothing was done
    seconds: float
    segments_per_slice: float


_worker: dict[str, Any] = {}


def _init_worker(store: SliceStore, labeler: Any, parent: int | None = None) -> None:
    """Set up a worker process; with ``parent`` (its pid) the worker also dies when the parent does."""
    if parent is not None:
        _die_with_parent(parent)
    _worker["store"] = store
    _worker["labeler"] = labeler


def _die_with_parent(parent: int) -> None:
    """SIGTERM ends this worker; so does the death of ``parent`` (prctl on Linux, else a watchdog).

    The parent's SIGTERM handler (an exception, to clean up) is inherited through fork: reset it,
    or a terminated worker would block in its exit handlers. Ctrl-C is left to the parent, which
    stops the pool.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    else:
        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _run_task(vol: str, z0: int, z1: int) -> tuple[str, int, int, np.ndarray]:
    """Pseudolabels int32 (z1 - z0, H, W) of slices [z0, z1) of ``vol`` (or the whole volume, 3D)."""
    store: SliceStore = _worker["store"]
    labeler = _worker["labeler"]
    try:
        if labeler.ndim == 3:
            spacing = tuple(store.volume_attrs(vol)["spacing"])
            out = np.asarray(labeler(store.pseudolabel_input(vol), spacing), dtype=np.int32)
        else:
            out = np.stack([np.asarray(labeler(store.pseudolabel_input(vol, z)), dtype=np.int32)
                            for z in range(z0, z1)])
    except FewshotkitError as exc:  # name the volume at fault
        raise FewshotkitError(f"volume '{vol}' of '{store.path}': {exc}") from None
    return vol, z0, z1, out


def parse_set_options(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``["min_size=400", "sigma=0.8"]`` -> options, parsed as every ``--set`` is
    (:func:`fewshotkit.core.userinput.parse_value`: TOML literals, ``null`` -> None, else strings)."""
    from fewshotkit.core.userinput import parse_assignment

    return dict(parse_assignment(pair, "min_size=400") for pair in pairs)


def run_pseudolabeler(
    store_path: str | os.PathLike,
    name: str,
    options: dict[str, Any] | None = None,
    *,
    jobs: int | None = None,
    force: bool = False,
    description: str | None = None,
) -> PseudolabelResult:
    """Compute pseudolabeler ``name`` (built through the registry with ``options``) over the store.

    A set made by the same pseudolabeler with the same parameters is kept (nothing to do)
    unless ``force``; it is then recomputed under its existing name. A set of the new set's name
    whose recorded parameters differ (or cannot be read) is an error unless ``force`` replaces it.
    """
    from fewshotkit.host.plugin_host import get_registry

    start = time.perf_counter()
    component = get_registry().get("pseudolabeler", name)
    options = {k: v for k, v in (options or {}).items() if v is not None}
    component.check_options(options)
    check_option_values("pseudolabeler", name, component.load(), options)
    labeler = component.create(**options)
    ndim = int(getattr(labeler, "ndim", 2))
    if ndim not in (2, 3):
        raise FewshotkitError(f"pseudolabeler '{name}' has ndim={ndim}; only 2 and 3 are supported")
    params = labeler.params()
    path = real_path(store_path)  # through a symbolic link: the real store gets the set
    SliceStore(path).close()  # a missing or invalid store is reported before the lock file is made
    with store_lock(path):
        store = SliceStore(path)
        try:
            sets = store._h5()[fmt.PSEUDOLABELS]
            existing = find_set(sets, name, params)
            if existing is not None and not force:
                return PseudolabelResult(existing, False, time.perf_counter() - start, float("nan"))
            target = existing or set_name(name, params)
            if target != existing and target in sets and not force:
                raise FewshotkitError(f"pseudolabel set {describe_set(target, dict(sets[target].attrs))} in '{path}' "
                                      "has the name of the set to make but other recorded parameters (or unreadable "
                                      "ones); pass --force to replace it")
            tasks = _tasks(store, name, ndim)
        finally:
            store.close()
        segments = _write_set(store, path, target, component, labeler, params, ndim, tasks, jobs, description)
    return PseudolabelResult(target, True, time.perf_counter() - start, segments / max(store.n_slices, 1))


def _tasks(store: SliceStore, name: str, ndim: int) -> list[tuple[str, int, int]]:
    """(volume, z0, z1) work items: SLICES_PER_TASK slices (2D) or a whole volume (3D) each."""
    tasks: list[tuple[str, int, int]] = []
    for vol in store.volumes:
        z = store.shape(vol)[0]
        if ndim == 3:
            spacing = np.asarray(store.volume_attrs(vol).get("spacing", ()), dtype=np.float64).ravel()
            if spacing.size != 3 or not (np.isfinite(spacing).all() and (spacing > 0).all()):
                raise FewshotkitError(f"volume '{vol}' of '{store.path}' has no valid voxel spacing "
                                      f"({spacing.tolist()}); the 3D pseudolabeler '{name}' needs it: "
                                      f"re-ingest the store from its scans")
            tasks.append((vol, 0, z))
        else:
            tasks.extend((vol, z0, min(z0 + SLICES_PER_TASK, z)) for z0 in range(0, z, SLICES_PER_TASK))
    return tasks


def _write_set(store: SliceStore, path: Path, target: str, component: Any, labeler: Any, params: dict[str, Any],
               ndim: int, tasks: list[tuple[str, int, int]], jobs: int | None, description: str | None) -> int:
    """Copy the store, write set ``target`` into the copy, rename it over the store; returns the segment count.

    The caller holds the store's lock. Any failure removes the copy; a full disk is one line.
    """
    tmp = temporary_path(path)
    out: h5py.File | None = None
    try:
        shutil.copyfile(path, tmp)
        shutil.copymode(path, tmp)
        out = h5py.File(tmp, "a")
        sets = out[fmt.PSEUDOLABELS]
        if target in sets:
            del sets[target]
        group = sets.create_group(target)
        _describe_set(group, component, params, ndim)
        segments = _label_slices(store, group, component, labeler, tasks, max(1, jobs or os.cpu_count() or 1),
                                 description or f"pseudolabel {component.name}")
        group.attrs[fmt.SET_LABELS_SHA256] = set_labels_sha256(group, store.volumes)
        out.close()
        fsync_path(tmp)
        stop.check()
        os.replace(tmp, path)
    except BaseException as exc:
        if out is not None:
            discard_h5(out, tmp)
        if is_disk_full(exc):
            raise disk_full_error(path) from exc
        raise
    finally:
        _worker.clear()
        tmp.unlink(missing_ok=True)
    return segments


def _label_slices(store: SliceStore, group: h5py.Group, component: Any, labeler: Any,
                  tasks: list[tuple[str, int, int]], jobs: int, description: str) -> int:
    """Label every slice of ``store`` into one dataset a volume under ``group`` (Z, H, W) int32, with a
    progress bar; returns the segment count (ids on each slice, summed)."""
    from fewshotkit.core.console import make_progress

    # open datasets (and the set's attributes) are only written by the flush below or by calls that
    # raise; a dataset closed with unwritten data would only print its write error
    datasets = {}
    for vol in store.volumes:
        z, h, w = store.shape(vol)
        datasets[vol] = group.create_dataset(vol, shape=(z, h, w), dtype=np.int32, chunks=(1, h, w))
    segments = 0
    with make_progress() as progress:
        bar = progress.add_task(description, total=store.n_slices)

        def take(vol: str, z0: int, z1: int, labels: np.ndarray) -> None:
            nonlocal segments
            stop.check()  # a SIGTERM whose KeyboardInterrupt was dropped still stops the set
            expected = (z1 - z0, *store.shape(vol)[1:])
            if labels.shape != expected or labels.min(initial=0) < 0:
                raise FewshotkitError(f"pseudolabeler '{component.name}' returned shape {labels.shape} with "
                                      f"min {labels.min(initial=0)} for slices {z0}..{z1 - 1} of volume '{vol}'; "
                                      f"expected {expected} and ids >= 0")
            datasets[vol][z0:z0 + labels.shape[0]] = labels
            segments += sum(int(np.count_nonzero(np.bincount(s.ravel())[1:])) for s in labels)  # ids on each slice
            progress.advance(bar, labels.shape[0])

        if jobs == 1:
            _init_worker(store, labeler)
            for task in tasks:
                take(*_run_task(*task))
        else:
            _parallel(store, labeler, tasks, jobs, take)
    group.file.flush()
    return segments


def _describe_set(group: h5py.Group, component: Any, params: dict[str, Any], ndim: int) -> None:
    """The set's provenance attributes: the plugin and component that made it, their parameters and
    version, and the numpy that sorted for it (its SIMD targets decide the order of equal keys)."""
    from fewshotkit.host.plugin_host import get_host

    plugin_version = get_host().plugins.get(component.plugin)
    group.attrs[fmt.SET_PLUGIN] = component.plugin
    group.attrs[fmt.SET_COMPONENT] = component.name
    group.attrs[fmt.SET_PARAMS] = json.dumps(params, default=str)
    group.attrs[fmt.SET_PLUGIN_VERSION] = (plugin_version.version if plugin_version else None) or ""
    group.attrs[fmt.SET_NDIM] = ndim
    group.attrs[fmt.SET_MADE_WITH] = f"numpy {np.__version__} ({numpy_simd()})"
    group.attrs[fmt.ATTR_CREATED] = time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _parallel(store: SliceStore, labeler: Any, tasks: list[tuple[str, int, int]], jobs: int, take) -> None:
    """Run tasks in ``jobs`` processes, at most 2 * jobs in flight, handing each result (volume, z0, z1,
    labels (z1 - z0, H, W)) to ``take``."""
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    pending = list(reversed(tasks))
    initargs = (store, labeler, os.getpid())
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=initargs) as pool:
        running: set[Future] = set()
        try:
            while pending or running:
                while pending and len(running) < 2 * jobs:
                    running.add(pool.submit(_run_task, *pending.pop()))
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    take(*future.result())
        except BrokenProcessPool:
            raise FewshotkitError(f"a pseudolabel worker process died (killed, or out of memory) while labelling "
                                  f"'{store.path}'; nothing was written: re-run, with fewer --jobs if memory is short"
                                  ) from None
        except BaseException:
            for future in running:
                future.cancel()
            raise
