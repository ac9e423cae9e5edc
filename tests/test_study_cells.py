"""The finished cells kept with the studies (``benchmarks/studies/cells/NAME/``) are cells bench reads.

A cell that fails here would be recomputed, or silently missing from ``--cached``'s tables, in the
checkout that resumes its study."""

from __future__ import annotations

import json
import re
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
