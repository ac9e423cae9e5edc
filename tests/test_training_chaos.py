"""The CPU recipe on the real CHAOS-T2 store, setting 2 (liver and spleen excluded): a handful of
steps, and no training episode comes from a slice showing liver or spleen or from a test-fold scan."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.data, pytest.mark.slow]


@pytest.fixture(scope="module")
def chaos_store(chaos_dir, tmp_path_factory) -> Path:
    """The CHAOS-T2 store with SLIC superpixels (3x cheaper than felzenszwalb: this test only
    checks which slices episodes come from, not what the superpixels look like)."""
    from fewshotkit.data.ingest.chaos import ingest_chaos_t2
    from fewshotkit.data.pseudolabel import run_pseudolabeler

    path = ingest_chaos_t2(chaos_dir, tmp_path_factory.mktemp("chaos") / "chaos.h5", quiet=True)
    run_pseudolabeler(path, "slic", {}, jobs=2)
    return path


def test_cpu_recipe_setting2_never_sees_excluded_classes_or_test_scans(chaos_store, tmp_path, run_cli):
    from fewshotkit.data.episodes.folds import get_fold
    from fewshotkit.data.store.reader import SliceStore

    out = tmp_path / "run"
    result = run_cli("train", "--preset", "ssl-alpnet-cpu", "--store", str(chaos_store), "--out", str(out),
                     "--fold", "0", "--setting", "2", "--exclude", "liver,spleen", "--steps", "3",
                     "--device", "cpu", "--log-episodes")
    assert result.exit_code == 0, result.output

    store = SliceStore(chaos_store)
    fold = get_fold(store, 0)
    test_scans = {*fold.queries, fold.support}
    episodes = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    run = json.loads((out / "run.json").read_text())
    assert len(episodes) == 3 * run["batch_size"] and run["exclude"] == ["liver", "spleen"]
    liver, spleen = store.class_value("liver"), store.class_value("spleen")
    for e in episodes:
        assert e["volume"] in fold.train and e["volume"] not in test_scans
        assert not np.isin(store.label(e["volume"], e["z"]), [liver, spleen]).any(), e
    # the filter is not vacuous: the store does have liver/spleen slices in the training scans
    assert any(store.class_slices(liver, v).size for v in fold.train)
