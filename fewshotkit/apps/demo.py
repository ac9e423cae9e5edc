"""``fewshotkit demo``: the whole pipeline end to end, on synthetic scans or on a real dataset.

Steps: build the store (synthetic phantoms, or ``ingest <dataset>`` of a folder), compute
Felzenszwalb superpixel pseudolabels (the paper's minimum size of 400 px at 256 x 256, scaled to
the store's slice area, so 100 px for the 128 x 128 synthetic slices), train the CPU recipe (SSL-ALPNet with the light encoder
at 128 x 128) on fold 0 for a short budget, evaluate it with the standard protocol next to the
untrained baseline (ALPNet-init: same architecture, no training), then print the Dice table and
write the table (markdown / CSV / JSON), the bar chart and the Fig. 4-style overlays.

Everything lands in the output folder and is cached there (the bench engine), so running the
demo again reuses the store, pseudolabels, trained model and scores.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from fewshotkit.core.errors import FewshotkitError

#: dataset -> (ingest function "module:attr", default training steps)
DATASETS: dict[str, tuple[str | None, int]] = {
    "synthetic": (None, 1000),
    "chaos-t2": ("fewshotkit.data.ingest.chaos:ingest_chaos_t2", 2000),
    "synapse-ct": ("fewshotkit.data.ingest.synapse:ingest_synapse_ct", 2000),
    "ms-cmrseg": ("fewshotkit.data.ingest.ms_cmrseg:ingest_ms_cmrseg", 2000),
    "acdc": ("fewshotkit.data.ingest.acdc:ingest_acdc", 2000),
}
DEMO_METHODS = ("ssl-alpnet-cpu", "alpnet-init")
PSEUDOLABELER = "felzenszwalb"
PAPER_MIN_SIZE, PAPER_SLICE_AREA = 400, 256 * 256


def superpixel_min_size(store_path: str | os.PathLike) -> int:
    """Felzenszwalb ``min_size`` for the store: 400 px scaled from 256 x 256 to its slice area."""
    from fewshotkit.data.store.reader import SliceStore

    with SliceStore(store_path) as store:
        _, h, w = store.shape(store.volumes[0])
    return max(16, round(PAPER_MIN_SIZE * h * w / PAPER_SLICE_AREA))


@dataclass
class DemoResult:
    store: Path
    table: Any  # ScoreTable
    files: list[Path]


def check_source(dataset: str, source: str | os.PathLike | None) -> None:
    """A one-line error unless ``dataset`` is known and ``source`` fits it (a folder for real data,
    none for the synthetic scans)."""
    if dataset not in DATASETS:
        raise FewshotkitError(f"--dataset '{dataset}' is not known; datasets: {', '.join(DATASETS)}")
    if DATASETS[dataset][0] is None:
        if source is not None:
            raise FewshotkitError("the synthetic demo takes no PATH; give --dataset chaos-t2 PATH (or another dataset)")
        return
    if source is None:
        raise FewshotkitError(f"--dataset {dataset} needs the dataset folder: fewshotkit demo --dataset {dataset} PATH")
    if not Path(source).is_dir():
        raise FewshotkitError(f"'{source}' is not a folder; give the {dataset} dataset folder")


def build_store(out: Path, dataset: str, source: str | os.PathLike | None, seed: int, volumes: int) -> Path:
    """The demo's store in ``out`` (reused when present)."""
    import importlib

    check_source(dataset, source)
    target, _ = DATASETS[dataset]
    store = out / f"{dataset}.h5"
    if store.is_file():
        return store
    if target is None:
        from fewshotkit.data.ingest.synthetic import ingest_synthetic

        return Path(ingest_synthetic(store, volumes=volumes, seed=seed, quiet=True))
    module, _, attr = target.partition(":")
    ingest = getattr(importlib.import_module(module), attr)
    return Path(ingest(source, store))


def run_demo(
    out: str | os.PathLike = "fewshotkit-demo",
    *,
    dataset: str = "synthetic",
    source: str | os.PathLike | None = None,
    steps: int | None = None,
    device: str = "auto",
    seed: int = 0,
    volumes: int = 10,
    log: Callable[[str], None] = lambda message: None,
) -> DemoResult:
    """Run the demo into ``out``; ``steps`` defaults to the dataset's budget (see :data:`DATASETS`)."""
    from fewshotkit.apps.bench.study import Bench, BenchConfig
    from fewshotkit.data.pseudolabel import run_pseudolabeler

    check_source(dataset, source)  # before the output folder is made
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log(f"1/4 store ({dataset})")
    store = build_store(out, dataset, source, seed, volumes)
    min_size = superpixel_min_size(store)
    log(f"2/4 superpixel pseudolabels ({PSEUDOLABELER}, min_size={min_size})")
    pseudo = run_pseudolabeler(store, PSEUDOLABELER, {"min_size": min_size})
    budget = DATASETS[dataset][1] if steps is None else steps
    log(f"3/4 training the CPU recipe for {budget} steps, then 4/4 evaluating fold 0 with the untrained baseline")
    config = BenchConfig(stores=[str(store)], methods=list(DEMO_METHODS), out=str(out), folds=[0], steps=budget,
                         recipe="cpu", device=device, seed=seed, pseudolabels=[pseudo.set_name], figures=True)
    result = Bench(config, log=log).run()
    table = result.tables[store.stem]
    figures = sorted((out / "figures").glob(f"{store.stem}_*overlay.png"))
    return DemoResult(store, table, [*result.files, *figures])
