"""The finished cells kept with the studies (``benchmarks/studies/cells/NAME/``) are cells bench reads.

A cell that fails here would be recomputed, or silently missing from ``--cached``'s tables, in the
checkout that resumes its study."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fewshotkit.apps.bench.cache import digest
from fewshotkit.evaluation.fold_scores import FoldScores

STUDIES = Path(__file__).resolve().parents[1] / "benchmarks" / "studies"
CELLS = sorted((STUDIES / "cells").rglob("*.json"))


@pytest.mark.parametrize("path", CELLS, ids=[str(p.relative_to(STUDIES / "cells")) for p in CELLS])
def test_a_kept_cell_belongs_to_its_study_and_its_key_is_its_settings(path: Path):
    study = path.relative_to(STUDIES / "cells").parts[0]
    assert (STUDIES / f"{study}.toml").is_file(), f"{path}: no study {study}.toml beside the cells"
    cell = json.loads(path.read_text())
    assert cell["key"] == digest(cell["settings"]), f"{path}: its key is not its settings' digest"
    settings = cell["settings"]
    assert re.match(rf"fold{settings['fold']}(_|$)", path.stem), f"{path}: named for another fold"
    assert set(settings["store"]) == {"data", "pseudolabels"}, f"{path}: the store key holds more than content"
    scores = FoldScores.from_json(cell["scores"])
    assert scores.fold == settings["fold"] and scores.queries, path
    assert all(model["steps"] == settings["steps"] for model in cell["timing"]["models"]), path


def test_the_kept_cells_are_of_the_plugin_code_here():
    """bench keys a cell on the code of every plugin the method used: after a change of one of them
    (not of its comments or docstrings) ``--cached`` misses the kept cells, and the docs' tables no
    longer rebuild. Change such a plugin together with a rerun of the studies that use it (or with
    their cells dropped)."""
    from fewshotkit.host.plugin_host import get_host

    host = get_host()
    here = {name: host.fingerprint(name) for name, info in host.plugins.items() if info.files is not None}
    stale: dict[str, list[str]] = {}
    byte_keyed: list[str] = []
    for path in CELLS:
        settings = json.loads(path.read_text())["settings"]
        used = [*settings["plugins"].items(), *settings.get("postprocess", {}).get("plugins", {}).items()]
        for name, fingerprint in used:
            if "sha256:" in (fingerprint or ""):
                byte_keyed.append(str(path.relative_to(STUDIES)))
            elif ":" in (fingerprint or "") and name in here and fingerprint != here[name]:
                stale.setdefault(name, []).append(str(path.relative_to(STUDIES)))
    assert not byte_keyed, (f"{len(byte_keyed)} kept cells (e.g. {byte_keyed[0]}) are keyed on plugin bytes: "
                            "rekey them with benchmarks/studies/rekey_cells.py")
    assert not stale, "; ".join(f"plugin '{name}' changed since {len(paths)} kept cells were computed "
                                f"(e.g. {paths[0]})" for name, paths in stale.items())


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["chaos-t2", "acdc"])
def test_the_kept_cells_are_keyed_on_the_store_the_public_scans_make(dataset, request, run_cli, tmp_path):
    """The scans ingested and pseudolabelled as the study files say give the very store every kept
    cell of that dataset names, so a fresh checkout rebuilds the docs' tables with ``--cached``.
    The sets are made as the kept cells' were, numpy sorting with AVX2 at most (on a CPU with
    AVX-512 its sort orders the ties of Felzenszwalb's edge costs otherwise: docs/store-format.md)."""
    from conftest import ACDC_SUBDIR, CHAOS_SUBDIR, require_data

    from fewshotkit.data.store.fingerprint import data_part, store_fingerprint
    from fewshotkit.data.store.reader import SliceStore

    stem = "chaos" if dataset == "chaos-t2" else "acdc"
    source = require_data(CHAOS_SUBDIR if stem == "chaos" else ACDC_SUBDIR,
                          request.config.getoption("--require-data"))
    keys = {(s["data"], s["pseudolabels"]) for s in (json.loads(p.read_text())["settings"]["store"] for p in CELLS
                                                    if p.relative_to(STUDIES / "cells").parts[1].startswith(stem))}
    if not keys:
        pytest.skip(f"no kept cell of {stem}")
    path = tmp_path / f"{stem}.h5"
    assert run_cli("ingest", dataset, str(source), "-o", str(path)).exit_code == 0
    from fewshotkit.core.device import numpy_dispatch

    avx512 = [t for t in numpy_dispatch() if "AVX512" in t or t == "X86_V4"]  # X86_V4, AVX512_ICL, ... (numpy 2.4)
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(avx512)}
    for name in sorted({name for _, name in keys if name}):
        run = subprocess.run([sys.executable, "-m", "fewshotkit", "pseudolabel", str(path), "--with",
                              name.rpartition("-")[0], "--jobs", "2"], env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
    with SliceStore(path) as store:
        made = {(store_fingerprint(store, name), name) for _, name in keys}
    differ = keys - made
    assert not differ, (f"{len(differ)} store keys of the kept {stem} cells are not the store "
                        f"`fewshotkit ingest {dataset}` and `fewshotkit pseudolabel` make: "
                        + "; ".join(f"{d} ({'same scans' if data_part(d) in {data_part(m) for m, _ in made} else 'other scans'})"
                                    for d, _ in differ))
