"""Data safety: outputs never overwrite inputs, one training per run directory, damaged pixels and
training states are refused, names that become paths are checked, bench cells stay apart and
recover from damage. Each test repeats a reported command on a tiny synthetic store."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from conftest import pseudolabelled_store

PRESET = "ssl-alpnet-cpu"


def one_line_error(result, *needles: str) -> str:
    """The single ``Error:`` line of a failed CliRunner result, which must contain ``needles``."""
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "unexpected" not in result.output and "Traceback" not in result.output, result.output
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return pseudolabelled_store(tmp_path_factory.mktemp("writes") / "syn.h5", volumes=5, seed=1, slices=8, size=64)


@pytest.fixture(scope="module")
def run_dir(store, tmp_path_factory) -> Path:
    """A one-step run trained on its own copy of the store (tests may change that copy's run)."""
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.training.loop import train

    root = tmp_path_factory.mktemp("run")
    shutil.copyfile(store, root / "train.h5")
    train(preset_spec(PRESET), root / "train.h5", root / "run", steps=1, device="cpu", show_progress=False)
    return root / "run"


@pytest.fixture
def store_copy(store, tmp_path) -> Path:
    return Path(shutil.copyfile(store, tmp_path / "copy.h5"))


@pytest.fixture
def run_copy(run_dir, tmp_path) -> Path:
    """A copy of ``run_dir`` and of its training store (run.json points to the original store)."""
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


def _nifti(path: Path, array_zhw: np.ndarray, dtype=np.float32) -> Path:
    nib.save(nib.Nifti1Image(np.ascontiguousarray(array_zhw.transpose(2, 1, 0)).astype(dtype),
                             np.diag([1.4, 1.4, 5.0, 1.0])), str(path))
    return path


@pytest.fixture
def scans(tmp_path) -> dict[str, Path]:
    from fewshotkit.data.ingest.synthetic import phantom

    out = {}
    for name, index in (("sup", 0), ("q", 1)):
        image, label = phantom(5, index, 10, 64)
        out[name] = _nifti(tmp_path / f"{name}.nii.gz", image)
        out[f"{name}_lab"] = _nifti(tmp_path / f"{name}_lab.nii.gz", label, np.uint8)
    return out


def _segment(run_dir: Path, scans: dict[str, Path], *extra: str) -> list[str]:
    return ["segment", "--checkpoint", str(run_dir), "--support", str(scans["sup"]), "--support-label",
            str(scans["sup_lab"]), "--query", str(scans["q"]), "--class", "1", "--device", "cpu", *extra]


# 1 ------------------------------------------------------------------------------------------------
def test_1_no_command_writes_onto_its_input(run_cli, run_dir, store_copy, scans, digest):
    """eval/store show/compose -o cl.h5, eval -o last.pt, segment -o the query, the support label or
    --overlay the query: each is one line and the file keeps its bytes."""
    last = run_dir / "checkpoints" / "last.pt"
    protected = [store_copy, last, scans["q"], scans["sup_lab"]]
    before = {p: digest(p) for p in protected}
    cases = [
        (["eval", str(run_dir), "--store", str(store_copy), "--device", "cpu", "-o", str(store_copy)], "input --store"),
        (["store", "show", str(store_copy), "1", "5", "-o", str(store_copy)], "input STORE"),
        (["compose", "--preset", PRESET, "-o", str(store_copy)], "is a slice store"),
        (["eval", str(run_dir), "--store", str(store_copy), "--device", "cpu", "-o", str(last)], "input RUN_OR_CHECKPOINT"),
        (["eval", str(run_dir), "--store", str(store_copy), "-o", str(run_dir / "run.json")], "input RUN_OR_CHECKPOINT"),
        (_segment(run_dir, scans, "-o", str(scans["q"])), "input --query"),
        (_segment(run_dir, scans, "-o", str(scans["sup_lab"])), "input --support-label"),
        (_segment(run_dir, scans, "-o", str(scans["q"].parent / "p.nii.gz"), "--overlay", str(scans["q"])),
         "input --query"),
        (["ingest", "synthetic", "-o", str(scans["q"]), "--force"], "is a scan or label image"),
    ]
    for args, needle in cases:
        one_line_error(run_cli(*args), needle)
    assert {p: digest(p) for p in protected} == before


def test_1_links_to_an_input_are_the_input(run_cli, run_dir, store_copy, digest):
    """A symbolic or a hard link to the store is the store."""
    soft, hard = store_copy.with_name("soft.h5"), store_copy.with_name("hard.h5")
    soft.symlink_to(store_copy)
    os.link(store_copy, hard)
    before = digest(store_copy)
    for link in (soft, hard):
        one_line_error(run_cli("eval", str(run_dir), "--store", str(store_copy), "-o", str(link)), "input --store")
        one_line_error(run_cli("store", "show", str(link), "1", "5", "-o", str(store_copy)), "input STORE")
    assert digest(store_copy) == before and soft.is_symlink()


def test_1_segment_replaces_a_nifti_only_with_force(run_cli, run_dir, scans, tmp_path):
    """An existing NIfTI that is no input: refused without --force, replaced with it; -o and
    --overlay may not be one file."""
    target = shutil.copyfile(scans["q"], tmp_path / "old_scan.nii.gz")
    one_line_error(run_cli(*_segment(run_dir, scans, "-o", str(target))), "already exists", "--force")
    one_line_error(run_cli(*_segment(run_dir, scans, "-o", str(target), "--overlay", str(target))), "same file")
    result = run_cli(*_segment(run_dir, scans, "-o", str(target), "--force"))
    assert result.exit_code == 0, result.output
    assert np.asarray(nib.load(target).dataobj).max() <= 1, "now the prediction, a label map"


# 2 ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_2_a_second_training_into_a_running_directory_is_refused(fresh_host, store_copy, tmp_path):
    """While one training runs into run2, a second train --out run2 and a train --resume run2 fail at
    once; the first finishes and owns the directory."""
    from fewshotkit.cli import cli
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.training.loop import train

    out = tmp_path / "run2"
    second: list = []

    def start_others(step: int) -> None:
        if step == 1:
            base = ["train", "--preset", PRESET, "--store", str(store_copy), "--out", str(out), "--steps", "1",
                    "--device", "cpu", "--seed", "2"]
            second.append(CliRunner().invoke(cli, base))
            second.append(CliRunner().invoke(cli, ["train", "--resume", str(out), "--device", "cpu"]))

    train(preset_spec(PRESET), store_copy, out, steps=2, device="cpu", seed=1, show_progress=False,
          on_step=start_others)
    for result in second:
        one_line_error(result, str(out), "being trained by another process", f"pid {os.getpid()}")
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed" and run["seed"] == 1 and run["final_step"] == 2


def _hold_lock(path: Path, fork: bool) -> subprocess.Popen:
    """A process holding the lock on ``path``; with ``fork`` it leaves a child holding it and exits."""
    code = (f"import os, sys, time\nfrom fewshotkit.core.lock import exclusive_lock\n"
            f"with exclusive_lock({str(path)!r}, str):\n"
            f"    print('held', flush=True)\n"
            f"    if {fork} and os.fork():\n        os._exit(0)\n"
            f"    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_2_a_lock_left_by_a_killed_run_is_free_and_orphans_are_named(tmp_path):
    from fewshotkit.core.errors import DataError
    from fewshotkit.core.lock import exclusive_lock

    lock = tmp_path / "run.lock"
    holder = _hold_lock(lock, fork=False)
    with pytest.raises(DataError, match=f"pid {holder.pid} on"):
        with exclusive_lock(lock, lambda who: f"busy: {who}"):
            pass
    holder.kill()
    holder.wait()
    with exclusive_lock(lock, lambda who: f"busy: {who}"):  # kill -9 released it: no stale lock
        pass
    parent = _hold_lock(lock, fork=True)
    parent.wait()
    try:
        with pytest.raises(DataError, match=f"pid {parent.pid} has ended, but processes it started still hold"):
            with exclusive_lock(lock, lambda who: f"busy: {who}"):
                pass
    finally:
        child = int(subprocess.run(["pgrep", "-f", str(lock)], capture_output=True, text=True).stdout.split()[0])
        os.kill(child, signal.SIGKILL)


# 4 ------------------------------------------------------------------------------------------------
def _damage(path: Path, dataset: str, change) -> None:
    """Rewrite ``dataset`` behind the store's back (as a damaged disk would): no record is updated."""
    with h5py.File(path, "r+") as f:
        data = f[dataset][()]
        f[dataset][...] = change(data)


def _blow_up(image: np.ndarray) -> np.ndarray:
    image[2, 10:20, 10:20] *= 1e20  # finite, as bytes damaged in the exponent are
    return image


def _relabel(label: np.ndarray) -> np.ndarray:
    label[3, 20:30, 20:30] = 1  # a valid class code where there was another
    return label


def _query_of_fold_1(path: Path) -> str:
    from fewshotkit.data.episodes.folds import get_fold
    from fewshotkit.data.store.reader import SliceStore

    with SliceStore(path) as s:
        return get_fold(s, 1).queries[0]


def test_4_damaged_pixels_are_found_by_check_and_refused_by_eval(run_cli, run_dir, store_copy):
    vol = _query_of_fold_1(store_copy)
    clean = run_cli("eval", str(run_dir), "--store", str(store_copy), "--device", "cpu", "--fold", "1")
    assert clean.exit_code == 0, clean.output
    for dataset, change, part in ((f"volumes/{vol}/image", _blow_up, "image"),
                                  (f"volumes/{vol}/label", _relabel, "label")):
        damaged = store_copy.with_name(f"{part}.h5")
        shutil.copyfile(store_copy, damaged)
        _damage(damaged, dataset, change)
        check = run_cli("store", "check", str(damaged))
        assert check.exit_code == 1 and f"{part} bytes do not match the sha256" in check.output, check.output
        one_line_error(run_cli("eval", str(run_dir), "--store", str(damaged), "--device", "cpu", "--fold", "1"),
                       f"volume '{vol}'", "sha256", "store check")


def test_4_stores_without_checksums_fall_back_to_the_recorded_sums(run_cli, run_dir, store_copy):
    from fewshotkit.data.store.fingerprint import store_fingerprint
    from fewshotkit.data.store.reader import SliceStore

    vol = _query_of_fold_1(store_copy)
    with h5py.File(store_copy, "r+") as f:
        for group in f["volumes"].values():
            del group.attrs["image_sha256"], group.attrs["label_sha256"]
    with SliceStore(store_copy) as s:
        old = store_fingerprint(s)
    assert run_cli("store", "check", str(store_copy)).exit_code == 0
    _damage(store_copy, f"volumes/{vol}/image", _blow_up)
    check = run_cli("store", "check", str(store_copy))
    assert check.exit_code == 1 and "voxel_sum" in check.output, check.output
    one_line_error(run_cli("eval", str(run_dir), "--store", str(store_copy), "--device", "cpu", "--fold", "1"),
                   "voxel_sum", "recorded at ingest")
    with SliceStore(store_copy) as s:
        assert store_fingerprint(s) == old, "a store without checksums keeps its fingerprint"


def test_4_the_fingerprint_covers_pixels(store_copy, tmp_path):
    """Two voxels of a volume swapped (the statistics and the class index stay equal, as a re-ingest
    of other data could give) with the checksums recorded anew: another fingerprint."""
    from fewshotkit.data.store.fingerprint import store_fingerprint
    from fewshotkit.data.store.reader import SliceStore
    with SliceStore(store_copy) as s:
        before, vid = store_fingerprint(s), s.volumes[0]
    with h5py.File(store_copy, "r+") as f:
        group = f["volumes"][vid]
        image = group["image"][()]
        z, y, x = np.unravel_index(np.argmax(image), image.shape)
        image[z, y, x], image[0, 0, 0] = image[0, 0, 0], image[z, y, x]
        group["image"][...] = image
        group.attrs["image_sha256"] = hashlib.sha256(image.astype("<f4").tobytes()).hexdigest()
    with SliceStore(store_copy) as s:
        assert store_fingerprint(s) != before


# 5 ------------------------------------------------------------------------------------------------
def test_5_pseudolabel_through_a_symlink_writes_the_real_store(store_copy, tmp_path):
    from fewshotkit.core.errors import DataError
    from fewshotkit.data.pseudolabel import run_pseudolabeler
    from fewshotkit.data.store.lock import store_lock

    elsewhere = tmp_path / "links"
    elsewhere.mkdir()
    link = elsewhere / "link.h5"
    link.symlink_to(store_copy)
    result = run_pseudolabeler(link, "felzenszwalb", {"min_size": 7}, jobs=1)
    assert link.is_symlink() and not (elsewhere / "link.h5.lock").exists()
    with h5py.File(store_copy, "r") as f:
        assert result.set_name in f["pseudolabels"]
    with store_lock(store_copy), pytest.raises(DataError, match="being written by another process"):
        run_pseudolabeler(link, "felzenszwalb", {"min_size": 9}, jobs=1)


# 6 ------------------------------------------------------------------------------------------------
def test_6_damaged_optimiser_state_is_refused_by_resume(run_cli, run_dir, run_copy):
    import torch

    last = run_copy / "checkpoints" / "last.pt"
    payload = torch.load(last, weights_only=True)
    state = next(iter(payload["optimizer"]["state"].values()))
    tensor = next(v for v in state.values() if isinstance(v, torch.Tensor) and v.numel() > 8)
    tensor.view(-1)[:64] = 7.7e14  # the digests inside stay as they were written
    torch.save(payload, last)
    one_line_error(run_cli("train", "--resume", str(run_copy), "--steps", "2", "--device", "cpu"),
                   str(last), "corrupt", "training state")
    # a checkpoint written before the state digest loads as before
    original = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    del original["state_sha256"]
    torch.save(original, last)
    result = run_cli("train", "--resume", str(run_copy), "--steps", "2", "--device", "cpu")
    assert result.exit_code == 0, result.output


def test_6_resume_with_fewer_steps_or_another_process_count(run_cli, run_copy):
    import torch

    from fewshotkit.method.checkpoint import save_checkpoint

    one_line_error(run_cli("train", "--resume", str(run_copy), "--steps", "0", "--device", "cpu"),
                   "--steps 0 is below the 1 steps")
    last = run_copy / "checkpoints" / "last.pt"
    payload = torch.load(last, weights_only=True)
    payload["rng"] = [payload["rng"][0], payload["rng"][0]]  # as written by a 2-process run
    save_checkpoint(last, {k: v for k, v in payload.items() if not k.endswith("_sha256")})
    with pytest.warns(UserWarning, match="resuming a 2-process run with 1 processes"):
        result = run_cli("train", "--resume", str(run_copy), "--steps", "2", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert json.loads((run_copy / "run.json").read_text())["final_step"] == 2


# 7 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../trav", "a;b", "with space", "..", "-dash"])
def test_7_component_names_that_are_not_file_names_are_refused(run_cli, tmp_path, name):
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "trav_plugin.py").write_text(
        "import numpy as np\nimport fewshotkit\n\n"
        "class Labeler:\n    ndim = 2\n    def params(self):\n        return {}\n"
        "    def __call__(self, image):\n        return np.ones(image.shape, dtype=np.int32)\n\n"
        "@fewshotkit.hookimpl\ndef register_pseudolabelers(register):\n"
        f"    register({name!r}, Labeler)\n")
    listing = run_cli("--plugins-dir", str(plugins), "plugins", "--json")
    assert listing.exit_code == 0, listing.output
    failed = next(p for p in json.loads(listing.output) if p["name"] == "trav_plugin")
    assert "is not allowed" in failed["error"] and repr(name) in failed["error"], failed
    components = run_cli("--plugins-dir", str(plugins), "components", "pseudolabeler", "--json")
    assert name not in components.output


# 8 ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_8_bench_methods_with_one_stem_get_their_own_rows_and_cells(run_cli, store_copy, tmp_path):
    from fewshotkit.core.names import safe_name

    assert [safe_name(t) for t in ("..", ".", "...", "v1.", "a.b")] == ["unnamed", "unnamed", "unnamed", "v1", "a.b"]
    assert ".." not in safe_name("a/../b") and "/" not in safe_name("a/../b")
    (tmp_path / "sub").mkdir()
    for spec in (tmp_path / "...toml", tmp_path / "sub" / "...toml"):
        assert run_cli("compose", "--preset", "alpnet-init", "-o", str(spec)).exit_code == 0
    out = tmp_path / "out"
    result = run_cli("bench", "--store", str(store_copy), "--method", str(tmp_path / "...toml"), "--method",
                     str(tmp_path / "sub" / "...toml"), "--recipe", "cpu", "--device", "cpu", "--fold", "0",
                     "-o", str(out))
    assert result.exit_code == 0, result.output
    cells = [p.relative_to(out).parts for p in (out / "cells").rglob("*.json")]
    assert len(cells) == 2 and all(len(c) == 4 for c in cells), cells  # cells/<store>/<method>/<fold>.json
    assert len({c[2] for c in cells}) == 2, cells
    assert all(len(p.relative_to(out).parts) == 7 for p in (out / "runs").rglob("last.pt"))
    rows = [r["label"] for r in json.loads((out / "copy_comparison.json").read_text())["rows"]]
    assert len(set(rows)) == 2, rows


@pytest.mark.slow
def test_bench_cache_follows_the_store_and_the_set_and_recomputes_a_damaged_cell(run_cli, store_copy, tmp_path):
    """A damaged cell file is computed again; a set made again with the same labels is read from the
    cache; other pseudolabels or a re-ingested store retrain."""
    from fewshotkit.data.ingest.synthetic import ingest_synthetic
    from fewshotkit.data.pseudolabel import run_pseudolabeler
    from fewshotkit.data.store import format as fmt
    from fewshotkit.data.store.fingerprint import set_labels_sha256

    out = tmp_path / "bench"
    args = ["bench", "--store", str(store_copy), "--method", PRESET, "--recipe", "cpu", "--steps", "1",
            "--device", "cpu", "--fold", "0", "-o", str(out)]

    def bench() -> str:
        result = run_cli(*args)
        assert result.exit_code == 0, result.output
        return result.output

    assert "training" in bench()
    cell = next((out / "cells").rglob("*.json"))
    cell.write_text('{"key": "trunc')
    again = bench()
    assert "unreadable" in again and "cached" not in again and json.loads(cell.read_text())["scores"]
    assert "cached" in bench()
    run_pseudolabeler(store_copy, "felzenszwalb", {}, jobs=1, force=True)  # the same set, made again
    assert "cached" in bench(), "the same labels: the set's fingerprint is its labels' sha256"
    with h5py.File(store_copy, "r+") as f:  # one label of the set changed (its sha256 recorded again)
        group = next(iter(f[fmt.PSEUDOLABELS].values()))
        first = sorted(group)[0]
        group[first][0, 0, 0] += 1
        group.attrs[fmt.SET_LABELS_SHA256] = set_labels_sha256(group, sorted(group))
    assert "training" in bench(), "other labels"
    ingest_synthetic(store_copy, volumes=5, seed=2, slices=8, size=64, overwrite=True, quiet=True)
    run_pseudolabeler(store_copy, "felzenszwalb", {}, jobs=1)
    assert "training" in bench()


def test_eval_refuses_a_changed_training_store(run_cli, run_dir):
    """The leakage guard: the store at the path the run trained on now holds other data."""
    from fewshotkit.data.ingest.synthetic import ingest_synthetic

    trained = Path(json.loads((run_dir / "run.json").read_text())["store"])
    saved = trained.with_name("saved.h5")
    shutil.copyfile(trained, saved)
    try:
        ingest_synthetic(trained, volumes=5, seed=3, slices=8, size=64, overwrite=True, quiet=True)
        one_line_error(run_cli("eval", str(run_dir), "--store", str(trained), "--device", "cpu"),
                       "changed since checkpoint", "fold split no longer applies")
    finally:
        os.replace(saved, trained)


# 12 -----------------------------------------------------------------------------------------------
def test_12_a_full_disk_for_the_overlay_names_the_overlay_only(run_cli, run_dir, scans, tmp_path, monkeypatch):
    from fewshotkit.core.atomic import atomic_path
    from fewshotkit.evaluation import figures

    def full(image, labels, path, **kwargs):
        with atomic_path(path, suffix=".png"):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(figures, "montage", full)
    prediction, overlay = tmp_path / "out" / "seg.nii.gz", tmp_path / "full" / "ov.png"
    result = run_cli(*_segment(run_dir, scans, "-o", str(prediction), "--overlay", str(overlay)))
    line = one_line_error(result, "no space left on device", str(overlay))
    assert str(prediction) not in result.output and "prediction:" not in result.output, line
    assert not prediction.exists() and not overlay.exists()


# 17 -----------------------------------------------------------------------------------------------
def test_17_a_failed_first_ingest_leaves_no_lock_file(run_cli, tmp_path):
    source, out = tmp_path / "src", tmp_path / "out"
    source.mkdir()
    out.mkdir()
    for name in ("image_1.nii.gz", "label_1.nii.gz"):
        (source / name).write_bytes(b"not a nifti")
    one_line_error(run_cli("ingest", "nifti", str(source), "-o", str(out / "s.h5"), "--labels", "1=liver"),
                   "cannot be read as NIfTI")
    assert list(out.iterdir()) == []


def test_17_the_lock_file_of_an_existing_store_stays(store_copy):
    from fewshotkit.data.store.lock import lock_path, store_lock

    with store_lock(store_copy):
        assert lock_path(store_copy).exists()
    assert lock_path(store_copy).exists(), "removing it would let two writers lock two different files"
