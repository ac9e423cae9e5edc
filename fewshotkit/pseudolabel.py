"""Running a pseudolabeler over every slice (2D) or volume (3D) of a store, in parallel processes.

Crash safety: the new set is written into a copy of the store (a temporary file in the same
folder) which replaces the store by ``os.replace`` only when complete and flushed. Killing the
run at any moment leaves the previous store untouched (plus, after SIGKILL, a stray hidden
``.<store>.*.tmp`` file that the next run ignores).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from fewshotkit.errors import FewshotkitError
from fewshotkit.store import format as fmt
from fewshotkit.store.reader import SliceStore
from fewshotkit.atomic import temporary_path
from fewshotkit.store.writer import fsync_path

SLICES_PER_TASK = 4


def set_name(component: str, params: dict[str, Any]) -> str:
    """``felzenszwalb-min_size=400-scale=1.0-sigma=1.0``: the component and its sorted parameters."""
    parts = [component] + [f"{k}={json.dumps(v) if isinstance(v, str) else v}" for k, v in sorted(params.items())]
    return "-".join(parts).replace("/", "_").replace('"', "")


@dataclass
class PseudolabelResult:
    set_name: str
    computed: bool  # False when the set existed and nothing was done
    seconds: float
    segments_per_slice: float


_worker: dict[str, Any] = {}


def _init_worker(store: SliceStore, labeler: Any) -> None:
    _worker["store"] = store
    _worker["labeler"] = labeler


def _run_task(vol: str, z0: int, z1: int) -> tuple[str, int, np.ndarray]:
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
    return vol, z0, out


def parse_set_options(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``["min_size=400", "sigma=0.8"]`` -> options; values are TOML/JSON literals, else strings."""
    import tomllib

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise FewshotkitError(f"--set '{pair}' is not KEY=VALUE (e.g. --set min_size=400)")
        try:
            value = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = text
        options[key.strip()] = value
    return options


def run_pseudolabeler(
    store_path: str | os.PathLike,
    name: str,
    options: dict[str, Any] | None = None,
    *,
    jobs: int | None = None,
    force: bool = False,
    description: str | None = None,
) -> PseudolabelResult:
    """Compute pseudolabeler ``name`` (built through the registry with ``options``) over the store."""
    from fewshotkit.console import make_progress
    from fewshotkit.plugin_host import get_host, get_registry

    start = time.perf_counter()
    store = SliceStore(store_path)
    component = get_registry().get("pseudolabeler", name)
    labeler = component.create(**(options or {}))
    ndim = int(getattr(labeler, "ndim", 2))
    if ndim not in (2, 3):
        raise FewshotkitError(f"pseudolabeler '{name}' has ndim={ndim}; only 2 and 3 are supported")
    params = labeler.params()
    target = set_name(name, params)
    existing = store.pseudolabel_sets
    if target in existing and not force:
        store.close()
        return PseudolabelResult(target, False, time.perf_counter() - start, float("nan"))
    plugin_version = get_host().plugins.get(component.plugin)
    jobs = max(1, jobs or os.cpu_count() or 1)

    tasks: list[tuple[str, int, int]] = []
    for vol in store.volumes:
        z = store.shape(vol)[0]
        if ndim == 3:
            spacing = np.asarray(store.volume_attrs(vol).get("spacing", ()), dtype=np.float64).ravel()
            if spacing.size != 3 or not (np.isfinite(spacing).all() and (spacing > 0).all()):
                store.close()
                raise FewshotkitError(f"volume '{vol}' of '{store_path}' has no valid voxel spacing "
                                      f"({spacing.tolist()}); the 3D pseudolabeler '{name}' needs it: "
                                      f"re-ingest the store from its scans")
            tasks.append((vol, 0, z))
        else:
            tasks.extend((vol, z0, min(z0 + SLICES_PER_TASK, z)) for z0 in range(0, z, SLICES_PER_TASK))
    store.close()

    path = Path(store_path)
    tmp = temporary_path(path)
    segments = 0
    try:
        shutil.copyfile(path, tmp)
        shutil.copymode(path, tmp)
        with h5py.File(tmp, "a") as out:
            sets = out[fmt.PSEUDOLABELS]
            if target in sets:
                del sets[target]
            group = sets.create_group(target)
            for vol in store.volumes:
                z, h, w = store.shape(vol)
                group.create_dataset(vol, shape=(z, h, w), dtype=np.int32, chunks=(1, h, w))
            with make_progress() as progress:
                bar = progress.add_task(description or f"pseudolabel {name}", total=store.n_slices)

                def take(vol: str, z0: int, labels: np.ndarray) -> None:
                    nonlocal segments
                    expected = (labels.shape[0], *store.shape(vol)[1:])
                    if labels.shape != expected or labels.min(initial=0) < 0:
                        raise FewshotkitError(f"pseudolabeler '{name}' returned shape {labels.shape} with min "
                                              f"{labels.min()} for volume '{vol}'; expected {expected} and ids >= 0")
                    group[vol][z0:z0 + labels.shape[0]] = labels
                    segments += int(labels.reshape(labels.shape[0], -1).max(axis=1).sum())
                    progress.advance(bar, labels.shape[0])

                if jobs == 1:
                    _init_worker(store, labeler)
                    for task in tasks:
                        take(*_run_task(*task))
                else:
                    _parallel(store, labeler, tasks, jobs, take)
            group.attrs[fmt.SET_PLUGIN] = component.plugin
            group.attrs[fmt.SET_COMPONENT] = name
            group.attrs[fmt.SET_PARAMS] = json.dumps(params, default=str)
            group.attrs[fmt.SET_PLUGIN_VERSION] = (plugin_version.version if plugin_version else None) or ""
            group.attrs[fmt.SET_NDIM] = ndim
            group.attrs["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        fsync_path(tmp)
        os.replace(tmp, path)
    finally:
        _worker.clear()
        tmp.unlink(missing_ok=True)
    return PseudolabelResult(target, True, time.perf_counter() - start, segments / max(store.n_slices, 1))


def _parallel(store: SliceStore, labeler: Any, tasks: list[tuple[str, int, int]], jobs: int, take) -> None:
    """Run tasks in ``jobs`` processes, at most 2 * jobs in flight, handing results to ``take``."""
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    pending = list(reversed(tasks))
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(store, labeler)) as pool:
        running: set[Future] = set()
        try:
            while pending or running:
                while pending and len(running) < 2 * jobs:
                    running.add(pool.submit(_run_task, *pending.pop()))
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    take(*future.result())
        except BaseException:
            for future in running:
                future.cancel()
            raise
