"""``fewshotkit pseudolabel``: parallel run, naming, no-op re-run, check/show, interruption."""

from __future__ import annotations

import json
import time

import h5py
import numpy as np
import pytest

from fewshotkit.core.device import numpy_simd
from fewshotkit.data.ingest.synthetic import ingest_synthetic
from fewshotkit.data.pseudolabel import parse_set_options, set_name
from fewshotkit.data.store.check import check_store
from fewshotkit.data.store.reader import SliceStore

from conftest import pseudolabelled_store
from test_ingest import _kill_midway


def test_parse_set_options():
    assert parse_set_options(["min_size=400", "sigma=0.8", "name=abc", "flag=true", "xs=[1, 2]"]) == {
        "min_size": 400, "sigma": 0.8, "name": "abc", "flag": True, "xs": [1, 2]}
    name = set_name("felzenszwalb", {"scale": 1.0, "min_size": 400})
    assert name.startswith("felzenszwalb-") and len(name) == len("felzenszwalb-") + 8
    assert set_name("felzenszwalb", {"min_size": 400.0, "scale": 1}) == name  # canonical: order and 1 == 1.0
    assert set_name("felzenszwalb", {"scale": 1.0, "min_size": 300}) != name


def test_pseudolabel_check_show(tmp_path, run_cli):
    from fewshotkit_superpixel.labelers import Felzenszwalb

    store = tmp_path / "demo.h5"
    ingest_synthetic(store, volumes=3, slices=6, size=64, quiet=True)
    result = run_cli("pseudolabel", str(store), "--with", "felzenszwalb", "--set", "min_size=100", "--jobs", "2")
    assert result.exit_code == 0, result.output
    s = SliceStore(store)
    (name,) = s.pseudolabel_sets
    assert name == set_name("felzenszwalb", Felzenszwalb(min_size=100).params())
    attrs = s.pseudolabel_set_attrs(name)
    assert attrs["params"]["min_size"] == 100 and attrs["plugin"] == "superpixel" and attrs["plugin_version"]
    assert attrs["made_with"] == f"numpy {np.__version__} ({numpy_simd()})"  # its sort's SIMD orders ties
    pl = s.pseudolabel("felzenszwalb", "2")
    assert pl.dtype == np.int32 and pl.shape == s.shape("2") and pl.max() >= 3
    assert pl[:, 0, 0].max() == 0  # outside the body is unlabelled
    np.testing.assert_array_equal(pl[3], Felzenszwalb(min_size=100)(s.pseudolabel_input("2", 3)))
    s.close()
    mtime = store.stat().st_mtime_ns
    again = run_cli("pseudolabel", str(store), "--with", "felzenszwalb", "--set", "min_size=100")
    assert "already exists" in again.output and store.stat().st_mtime_ns == mtime
    assert run_cli("store", "check", str(store)).exit_code == 0
    png = tmp_path / "slice.png"
    assert run_cli("store", "show", str(store), "2", "3", "-o", str(png)).exit_code == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    info = json.loads(run_cli("store", "info", str(store), "--json").output)
    assert info["n_slices"] == 18 and name in info["pseudolabel_sets"]
    assert {k: info["pseudolabel_sets"][name][k] for k in ("made_with", "labels_sha256")} == {
        k: attrs[k] for k in ("made_with", "labels_sha256")}
    assert "made with" in run_cli("store", "info", str(store)).output
    bad = run_cli("pseudolabel", str(store), "--with", "felzenszwalb", "--set", "min_sise=3")
    assert bad.exit_code == 1 and "min_size" in bad.output


def test_numpy_simd_names_the_targets_numpy_dispatches_to():
    """What a set records of the numpy that sorted for it: the dispatch targets in use, fewer when
    ``NPY_DISABLE_CPU_FEATURES`` switches some off (read when numpy is imported)."""
    import os
    import subprocess
    import sys

    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    from fewshotkit.core.device import numpy_dispatch

    assert numpy_dispatch() == {t: bool(__cpu_features__[t]) for t in __cpu_dispatch__}
    assert numpy_simd() == (" ".join(t for t in __cpu_dispatch__ if __cpu_features__[t]) or "baseline")
    code = "from fewshotkit.core.device import numpy_simd; print(numpy_simd())"
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(__cpu_dispatch__)}
    off = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert off.stdout.strip() == "baseline"


def test_check_flags_bad_pseudolabels(tmp_path, run_cli):
    store = tmp_path / "demo.h5"
    ingest_synthetic(store, volumes=2, slices=4, size=48, quiet=True)
    run_cli("pseudolabel", str(store), "--with", "felzenszwalb", "--jobs", "1")
    name = SliceStore(store).pseudolabel_sets[0]
    assert check_store(store) == []
    with h5py.File(store, "a") as f:
        f[f"pseudolabels/{name}/1"][0, 0, 0] += 1
    (changed,) = check_store(store)
    assert changed.startswith(f"pseudolabel set '{name}': its labels differ from the sha256 recorded") and \
        "--with felzenszwalb --force" in changed
    with h5py.File(store, "a") as f:
        del f[f"pseudolabels/{name}/2"]
    assert any("volume '2' missing" in p for p in check_store(store))


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_killed_pseudolabel_keeps_previous_store(tmp_path, sig, digest):
    import signal

    store = tmp_path / "demo.h5"
    # ~10 s of felzenszwalb at one job: the kill (1 s after the temporary copy appears) lands mid-run even on a
    # fast machine, never after the rename
    ingest_synthetic(store, volumes=30, slices=24, size=128, quiet=True)
    before = digest(store)
    _kill_midway(["pseudolabel", str(store), "--with", "felzenszwalb", "--jobs", "1"], store, tmp_path,
                 sig=getattr(signal, sig), delay=1.0)
    assert digest(store) == before
    assert check_store(store) == [] and SliceStore(store).pseudolabel_sets == []
    if sig == "SIGTERM":
        assert not list(tmp_path.glob(".demo.h5.*"))


def test_parallel_equals_serial(tmp_path):
    from fewshotkit.data.pseudolabel import run_pseudolabeler

    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    ingest_synthetic(a, volumes=2, slices=5, size=64, seed=4, quiet=True)
    b.write_bytes(a.read_bytes())
    ra = run_pseudolabeler(a, "slic", {"n_segments": 30}, jobs=1)
    rb = run_pseudolabeler(b, "slic", {"n_segments": 30}, jobs=2)
    assert ra.set_name == rb.set_name and ra.computed and rb.computed
    sa, sb = SliceStore(a), SliceStore(b)
    for vol in sa.volumes:
        np.testing.assert_array_equal(sa.pseudolabel(ra.set_name, vol), sb.pseudolabel(rb.set_name, vol))
    assert not list(tmp_path.glob(".*.tmp"))


PLUGIN_3D = '''
import numpy as np
from fewshotkit import hookimpl


class Blocks:
    """3D test pseudolabeler: 4-slice x size x size blocks, checks it gets the spacing."""

    ndim = 3

    def __init__(self, size: int = 16):
        self.size = size

    def __call__(self, image, spacing=None):
        assert image.ndim == 3 and spacing == (5.0, 2.5, 2.5)
        z, h, w = image.shape
        zz, yy, xx = np.mgrid[:z, :h, :w]
        per_row = -(-w // self.size)
        return ((zz // 4) * 1000 + (yy // self.size) * per_row + xx // self.size + 1).astype(np.int32)

    def params(self):
        return {"size": self.size}


@hookimpl
def register_pseudolabelers(register):
    register("blocks3d", Blocks, description="test")
'''


def _plugin_and_store(tmp_path, source: str):
    """A plugins folder holding ``source`` as one loose plugin, and a synthetic store of 2 volumes of 8 slices."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "test_plugin.py").write_text(source)
    return plugins, ingest_synthetic(tmp_path / "demo.h5", volumes=2, slices=8, size=32, quiet=True)


def test_3d_pseudolabeler_gets_volumes(tmp_path, run_cli):
    plugins, store = _plugin_and_store(tmp_path, PLUGIN_3D)
    result = run_cli("--plugins-dir", str(plugins), "pseudolabel", str(store), "--with", "blocks3d",
                     "--set", "size=8", "--jobs", "1")
    assert result.exit_code == 0, result.output
    s = SliceStore(store)
    assert s.resolve_pseudolabel_set("blocks3d") == set_name("blocks3d", {"size": 8})
    pl = s.pseudolabel("blocks3d", "2")
    assert pl[0, 0, 0] == 1 and pl[4, 0, 0] == 1001 and pl[0, 31, 31] == 16


def test_a_stop_request_whose_interrupt_was_dropped_still_stops_the_pseudolabels(tmp_path, monkeypatch):
    """As for the store writer: the SIGTERM flag stops the set at its next volume, the store stays as it was."""
    from fewshotkit.core import stop
    from fewshotkit.data.pseudolabel import run_pseudolabeler

    path = ingest_synthetic(tmp_path / "s.h5", volumes=2, slices=4, size=32, quiet=True)
    before = path.read_bytes()
    monkeypatch.setattr(stop, "_requested", True)
    with pytest.raises(KeyboardInterrupt):
        run_pseudolabeler(path, "felzenszwalb", {}, jobs=1)
    assert path.read_bytes() == before and not list(tmp_path.glob(".s.h5*"))


PLUGIN_SHORT_3D = '''
import numpy as np
from fewshotkit import hookimpl


class Short:
    """3D test pseudolabeler that labels every slice but the last."""

    ndim = 3

    def __call__(self, image, spacing=None):
        return np.ones(image[1:].shape, np.int32)

    def params(self):
        return {}


@hookimpl
def register_pseudolabelers(register):
    register("short3d", Short, description="test")
'''


def test_a_3d_pseudolabeler_must_label_every_slice_of_a_volume(tmp_path, run_cli):
    plugins, store = _plugin_and_store(tmp_path, PLUGIN_SHORT_3D)
    before = store.read_bytes()
    result = run_cli("--plugins-dir", str(plugins), "pseudolabel", str(store), "--with", "short3d", "--jobs", "1")
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert "pseudolabeler 'short3d' returned shape (7, 32, 32)" in line and "expected (8, 32, 32)" in line
    assert store.read_bytes() == before


def test_a_set_of_the_same_name_with_other_recorded_params_is_replaced_only_with_force(tmp_path, run_cli):
    from fewshotkit.data.pseudolabel import run_pseudolabeler

    store = ingest_synthetic(tmp_path / "demo.h5", volumes=2, slices=4, size=48, quiet=True)
    name = run_pseudolabeler(store, "felzenszwalb", {"min_size": 100}, jobs=1).set_name
    with h5py.File(store, "a") as f:
        f[f"pseudolabels/{name}"].attrs["params"] = "{not json"
        f[f"pseudolabels/{name}/1"][0] = 0  # no felzenszwalb run gives this: replacing it would show
    before = store.read_bytes()
    result = run_cli("pseudolabel", str(store), "--with", "felzenszwalb", "--set", "min_size=100", "--jobs", "1")
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert f"pseudolabel set {name}" in line and "--force" in line
    assert store.read_bytes() == before
    forced = run_cli("pseudolabel", str(store), "--with", "felzenszwalb", "--set", "min_size=100", "--jobs", "1",
                     "--force")
    assert forced.exit_code == 0, forced.output
    with SliceStore(store) as s:
        assert s.pseudolabel_sets == [name] and s.pseudolabel_set_attrs(name)["params"]["min_size"] == 100
        assert s.pseudolabel(name, "1", 0).max() > 0


def test_a_set_recorded_with_nan_params_is_found_again():
    from fewshotkit.data.store import format as fmt
    from fewshotkit.data.store.sets import find_set

    class Group(dict):
        def __init__(self, attrs):
            super().__init__()
            self.attrs = attrs

    sets = {"blocks-1": Group({fmt.SET_COMPONENT: "blocks", fmt.SET_PARAMS: json.dumps({"scale": float("nan")})})}
    assert find_set(sets, "blocks", {"scale": float("nan")}) == "blocks-1"
    assert find_set(sets, "blocks", {"scale": 1.0}) is None


def test_a_set_made_again_with_the_same_labels_keeps_the_fingerprint_and_other_labels_change_it(tmp_path):
    """A set is named in the store's fingerprint by its labels' sha256, not by when it was made, so a
    study's kept cells are found again on a store pseudolabelled anew; a set made before the sha256
    was recorded keeps the fingerprint of its creation time."""
    from fewshotkit.data.pseudolabel import run_pseudolabeler
    from fewshotkit.data.store import format as fmt
    from fewshotkit.data.store.fingerprint import set_labels_sha256, store_fingerprint
    from fewshotkit.data.store.reader import SliceStore

    path = pseudolabelled_store(tmp_path / "s.h5", volumes=2, slices=4, size=32)

    def fingerprint() -> tuple[str, str]:
        with SliceStore(path) as store:
            name = store.resolve_pseudolabel_set("felzenszwalb")
            return name, store_fingerprint(store, name)

    name, first = fingerprint()
    with h5py.File(path, "r") as f:
        created, recorded = (f[fmt.PSEUDOLABELS][name].attrs[k] for k in (fmt.ATTR_CREATED, fmt.SET_LABELS_SHA256))
    time.sleep(1.1)  # the creation time's resolution
    run_pseudolabeler(path, "felzenszwalb", {}, jobs=1, force=True)
    with h5py.File(path, "r+") as f:
        group = f[fmt.PSEUDOLABELS][name]
        assert group.attrs[fmt.ATTR_CREATED] != created and group.attrs[fmt.SET_LABELS_SHA256] == recorded
    assert fingerprint() == (name, first)

    with h5py.File(path, "r+") as f:
        group = f[fmt.PSEUDOLABELS][name]
        vid = sorted(group)[0]
        group[vid][0, 0, 0] += 1
        assert set_labels_sha256(group, sorted(group)) != recorded
        group.attrs[fmt.SET_LABELS_SHA256] = set_labels_sha256(group, sorted(group))
    changed = fingerprint()[1]
    assert changed != first and changed.split("/")[0] == first.split("/")[0], "the data part is the same"

    with h5py.File(path, "r+") as f:  # a set made before the sha256 was recorded
        del f[fmt.PSEUDOLABELS][name].attrs[fmt.SET_LABELS_SHA256]
    legacy = fingerprint()[1]
    with h5py.File(path, "r+") as f:
        f[fmt.PSEUDOLABELS][name].attrs[fmt.ATTR_CREATED] = "2020-01-01T00:00:00+0000"
    assert fingerprint()[1] not in (legacy, first, changed)
