"""Faults and bad inputs, and pseudolabel set names: each test reproduces
one failure on small synthetic stores and checks it now ends in a one-line error or a
correct result, with nothing lost. Concurrency and kill tests use real subprocesses."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "FEWSHOTKIT_DEBUG": ""}


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real command line in a subprocess."""
    return subprocess.run([sys.executable, "-m", "fewshotkit", *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout)


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fewshotkit", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def one_line_error(result, *needles: str) -> str:
    """The single ``Error:`` line of a failed command (CliRunner result or CompletedProcess)."""
    code = getattr(result, "exit_code", getattr(result, "returncode", None))
    text = result.output if hasattr(result, "exit_code") else result.stderr
    assert code == 1, text
    errors = [line for line in text.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "unexpected" not in text and "Traceback" not in text, text
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]


def sets_of(path: Path) -> list[str]:
    with h5py.File(path, "r") as f:
        return sorted(f["pseudolabels"])


@pytest.fixture(scope="module")
def store(synthetic_store) -> Path:
    return synthetic_store


@pytest.fixture(scope="module")
def run_dir(trained_run) -> Path:
    return trained_run


@pytest.fixture
def store_copy(store, tmp_path) -> Path:
    copy = tmp_path / "copy.h5"
    shutil.copyfile(store, copy)
    return copy


# 1 ------------------------------------------------------------------------------------------------
def test_1_a_second_writer_fails_at_once_and_loses_nothing(store_copy):
    from fewshotkit.data.store.lock import store_lock

    before = sets_of(store_copy)
    with store_lock(store_copy):  # another writer holds the store
        blocked = cli("pseudolabel", str(store_copy), "--with", "slic", "-j", "1")
    one_line_error(blocked, str(store_copy), "being written by another process")
    assert sets_of(store_copy) == before
    # two real concurrent writers: whoever reports success has its set in the store
    runs = [start("pseudolabel", str(store_copy), "--with", "felzenszwalb", "--set", "min_size=300", "-j", "1"),
            start("pseudolabel", str(store_copy), "--with", "slic", "-j", "1")]
    outcomes = [(p.wait(timeout=300), p.stderr.read()) for p in runs]
    final = sets_of(store_copy)
    for (code, err), component in zip(outcomes, ("felzenszwalb", "slic")):
        if code == 0:
            assert sum(s.startswith(component) for s in final) >= 1 + (component == "felzenszwalb"), (final, err)
        else:
            assert code == 1 and "being written by another process" in err, err
    assert any(code == 0 for code, _ in outcomes)


# 2 ------------------------------------------------------------------------------------------------
def test_2_ingest_needs_force_and_resume_refuses_other_data(run_cli, store, run_dir, tmp_path):
    target = tmp_path / "s.h5"
    shutil.copyfile(store, target)
    refused = run_cli("ingest", "synthetic", "-o", str(target), "--volumes", "5", "--slices", "8", "--size", "64")
    one_line_error(refused, str(target), "--force")
    assert sets_of(target) == sets_of(store)  # the pseudolabel set is still there
    # a run on a copy of the store, then the copy is replaced by other data
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    record = json.loads((run / "run.json").read_text())
    assert record["store_fingerprint"].startswith("v1:")
    record["store"] = str(target)
    (run / "run.json").write_text(json.dumps(record))
    replaced = run_cli("ingest", "synthetic", "-o", str(target), "--volumes", "5", "--slices", "8", "--size", "64",
                       "--seed", "9", "--force")
    assert replaced.exit_code == 0, replaced.output
    resumed = run_cli("train", "--resume", str(run), "--steps", "2")
    one_line_error(resumed, str(target), "no longer holds the data")
    assert json.loads((run / "run.json").read_text())["fold_train"] == record["fold_train"]


# 3 ------------------------------------------------------------------------------------------------
def _flip_weights(path: Path, n: int = 256) -> None:
    """XOR ``n`` bytes in the middle of the largest tensor record of a torch zip checkpoint."""
    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(path, "r+b") as handle:
        handle.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(handle.read(4), dtype="<u2")
        offset = info.header_offset + 30 + int(name_len) + int(extra_len) + info.file_size // 2
        handle.seek(offset)
        data = bytearray(handle.read(n))
        handle.seek(offset)
        handle.write(bytes(b ^ 0xFF for b in data))


def test_3_a_corrupted_checkpoint_is_an_error_naming_it(run_cli, store, run_dir, tmp_path):
    import torch

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    last = run / "checkpoints" / "last.pt"
    _flip_weights(last)
    one_line_error(run_cli("eval", str(run), "--store", str(store), "--device", "cpu"), str(last), "corrupt")
    # a checkpoint from before checkpoints carried a digest: checked against run.json's weight hash
    shutil.copyfile(run_dir / "checkpoints" / "last.pt", last)
    payload = torch.load(last, weights_only=True)
    del payload["model_sha256"]
    torch.save(payload, last)
    assert run_cli("eval", str(run), "--store", str(store), "--device", "cpu").exit_code == 0
    _flip_weights(last)
    one_line_error(run_cli("eval", str(run), "--store", str(store), "--device", "cpu"), str(last), "run.json")


# 4 ------------------------------------------------------------------------------------------------
def _fold0(path: Path):
    from fewshotkit.data.episodes.folds import get_fold
    from fewshotkit.data.store.reader import SliceStore

    with SliceStore(path) as s:
        return get_fold(s, 0)


@pytest.mark.parametrize("fault, message", [("nan", "NaN"), ("code", "unknown label values [9]"),
                                            ("short", "label shape")])
def test_4_eval_refuses_a_corrupt_store(run_cli, run_dir, store_copy, fault, message):
    query = _fold0(store_copy).queries[0]
    with h5py.File(store_copy, "a") as f:
        group = f["volumes"][query]
        if fault == "nan":
            group["image"][2, 10:20, 10:20] = np.nan
        elif fault == "code":
            group["label"][2, 10:12, 10:12] = 9
        else:
            label = group["label"][:-2]
            del group["label"]
            group.create_dataset("label", data=label, chunks=(1, *label.shape[1:]))
    result = run_cli("eval", str(run_dir), "--store", str(store_copy), "--device", "cpu")
    one_line_error(result, str(store_copy), f"volume '{query}'", message)


def test_4_training_on_a_nan_store_names_the_data(run_cli, store_copy, tmp_path):
    scan = _fold0(store_copy).train[0]
    with h5py.File(store_copy, "a") as f:
        f["volumes"][scan]["image"][1] = np.nan
    result = run_cli("train", "--preset", "ssl-alpnet-cpu", "--store", str(store_copy), "--out", str(tmp_path / "r"),
                     "--steps", "1", "--device", "cpu")
    line = one_line_error(result, f"volume '{scan}'", "NaN")
    assert "lr" not in line


# 5 ------------------------------------------------------------------------------------------------
def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_5_full_disk_during_ingest_and_pseudolabel(run_cli, store_copy, monkeypatch, digest):
    before = digest(store_copy)
    monkeypatch.setattr(h5py.File, "flush", _no_space)
    ingest = run_cli("ingest", "synthetic", "-o", str(store_copy), "--volumes", "5", "--slices", "8", "--size", "64",
                     "--force")
    one_line_error(ingest, "no space left on device", str(store_copy))
    labels = run_cli("pseudolabel", str(store_copy), "--with", "slic", "-j", "1")
    one_line_error(labels, "no space left on device", str(store_copy))
    assert digest(store_copy) == before and not temporaries(store_copy.parent)


def test_5_full_disk_while_checkpointing(run_cli, run_dir, tmp_path, monkeypatch, digest):
    import torch

    def full(obj, handle, *args, **kwargs):  # what torch.save does on a full disk
        handle.write(b"\0" * 100)
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598") from None

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    last = run / "checkpoints" / "last.pt"
    before = digest(last)
    monkeypatch.setattr(torch, "save", full)
    one_line_error(run_cli("train", "--resume", str(run), "--steps", "2"), "no space left on device", "last.pt")
    assert digest(last) == before and not temporaries(last.parent)
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and "no space left" in record["error"]


def _nifti(path: Path, array_zhw: np.ndarray, dtype=np.float32) -> Path:
    affine = np.diag([1.4, 1.4, 5.0, 1.0])
    nib.save(nib.Nifti1Image(np.ascontiguousarray(array_zhw.transpose(2, 1, 0)).astype(dtype), affine), str(path))
    return path


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> dict[str, Path]:
    from fewshotkit.data.ingest.synthetic import phantom

    root = tmp_path_factory.mktemp("scans")
    out = {}
    for name, index in (("support", 0), ("query", 1)):
        image, label = phantom(5, index, 10, 64)
        out[name] = _nifti(root / f"{name}.nii.gz", image)
        out[f"{name}_label"] = _nifti(root / f"{name}_label.nii.gz", label, np.uint8)
    return out


def test_5_segment_keeps_the_prediction_when_the_overlay_fails(run_dir, scans, tmp_path, monkeypatch):
    from fewshotkit.core.errors import DataError
    from fewshotkit.evaluation import figures
    from fewshotkit.apps.segment import ScanFiles, segment_files

    output = tmp_path / "pred.nii.gz"
    output.write_bytes(b"previous prediction")

    def no_room(*args, **kwargs):
        raise DataError("no space left on device while writing 'm.png'; free space and re-run")

    monkeypatch.setattr(figures, "montage", no_room)
    with pytest.raises(DataError, match="no space left"):
        segment_files(run_dir, ScanFiles(scans["support"], scans["support_label"], scans["query"]), output, classes=1,
                      device="cpu", overlay=tmp_path / "m.png")
    assert output.read_bytes() == b"previous prediction" and not temporaries(tmp_path)


def test_5_real_full_disk_is_one_line_without_a_segfault(tmp_path):
    """A 1 MiB tmpfs (needs mount rights; tests elsewhere simulate ENOSPC by patching the writer)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        result = cli("ingest", "synthetic", "-o", str(mount / "s.h5"), "--volumes", "6", "--slices", "8", "--size", "64")
        one_line_error(result, "no space left on device")
        assert not any(mount.iterdir()) or [p.name for p in mount.iterdir()] == ["s.h5.lock"]
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


# 6 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, message", [(2.5, "non-integer label values"), (70000, "above 65535")])
def test_6_segment_validates_the_support_label(run_cli, run_dir, scans, tmp_path, value, message):
    label = np.asarray(nib.load(scans["support_label"]).dataobj).transpose(2, 1, 0).astype(np.float32)
    label[label == 2] = value
    bad = _nifti(tmp_path / "bad_label.nii.gz", label)
    result = run_cli("segment", "--checkpoint", str(run_dir), "--support", str(scans["support"]),
                     "--support-label", str(bad), "--class", "1", "--query", str(scans["query"]), "--device", "cpu",
                     "-o", str(tmp_path / "p.nii.gz"))
    one_line_error(result, str(bad), message)


# 7 ------------------------------------------------------------------------------------------------
def test_7_prediction_file_names_do_not_collide(run_cli, run_dir, store_copy, tmp_path):
    with h5py.File(store_copy, "a") as f:
        f.attrs["classes"] = json.dumps({"1": "liver", "2": "right kidney", "3": "right-kidney", "4": "spleen"})
    out = tmp_path / "pred"
    result = run_cli("eval", str(run_dir), "--store", str(store_copy), "--device", "cpu", "--save-predictions", str(out))
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in out.glob("*.nii.gz"))
    expected = 4 * len(_fold0(store_copy).queries)
    assert len(files) == expected and f"predictions: {expected} NIfTI files" in result.output, (files, result.output)


# 8 ------------------------------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    """The live processes whose parent is ``pid``, from every /proc/N/stat: /proc/PID/task/PID/children
    lists only the children of the main thread (a pool may fork from another) and needs a kernel option."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.append(int(stat.parent.name))
    return sorted(found)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def _wait(condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_8_pseudolabel_workers_die_with_their_parent_and_on_sigterm(tmp_path, digest):
    from fewshotkit.data.ingest.synthetic import ingest_synthetic

    path = ingest_synthetic(tmp_path / "big.h5", volumes=3, slices=24, size=256, quiet=True)
    before = digest(path)
    args = ("pseudolabel", str(path), "--with", "felzenszwalb", "-j", "2")
    parent = start(*args)
    assert _wait(lambda: len(_children(parent.pid)) >= 2, 120), parent.stderr
    workers = _children(parent.pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert _wait(lambda: not any(_alive(w) for w in workers), 20), "workers outlived a killed parent"
    assert temporaries(tmp_path)  # kill -9 left the copy behind ...
    parent = start(*args)
    assert _wait(lambda: len(_children(parent.pid)) >= 2, 120), parent.stderr
    workers = _children(parent.pid)
    os.kill(workers[0], signal.SIGTERM)
    assert _wait(lambda: not _alive(workers[0]), 10), "a worker ignored SIGTERM"
    assert parent.wait(timeout=60) == 1
    assert "a pseudolabel worker process died" in parent.stderr.read()
    assert _wait(lambda: not any(_alive(w) for w in workers), 20)
    assert not temporaries(tmp_path) and digest(path) == before  # ... which the next writer removed


# 9 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("labels, top, message", [("1=liver,1=spleen", 1, "value 1 is given twice"),
                                                  ("1=liver,2=liver", 2, "'liver' is given to values 1 and 2")])
def test_9_ambiguous_label_maps_are_refused(run_cli, scans, tmp_path, labels, top, message):
    shutil.copyfile(scans["support"], tmp_path / "image_1.nii.gz")
    label = np.asarray(nib.load(scans["support_label"]).dataobj).transpose(2, 1, 0)
    _nifti(tmp_path / "label_1.nii.gz", np.where(label > top, 0, label), np.uint8)  # values 0..top
    result = run_cli("ingest", "nifti", str(tmp_path), "-o", str(tmp_path / "x.h5"), "--labels", labels)
    one_line_error(result, "--labels", message)
    assert not (tmp_path / "x.h5").exists()


# 10 -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("setting, message", [("pooler.test_window=abc", "must be an integer"),
                                              ("classifier.scale=-1", "classifier.scale"),
                                              ("options.bg_weight=\"heavy\"", "must be a number")])
def test_10_compose_validates_option_values(run_cli, tmp_path, setting, message):
    out = tmp_path / "spec.toml"
    result = run_cli("compose", "--preset", "ssl-alpnet-cpu", "--set", setting, "-o", str(out))
    one_line_error(result, message)
    assert not out.exists()


# 11 -----------------------------------------------------------------------------------------------
def test_11_bad_values_are_errors_not_unexpected(run_cli, store_copy, tmp_path):
    one_line_error(run_cli("pseudolabel", str(store_copy), "--with", "felzenszwalb", "--set", "min_size=abc"),
                   "min_size", "must be an integer")
    spec = tmp_path / "heavy.toml"
    spec.write_text(run_cli("compose", "--preset", "ssl-alpnet-cpu").output.replace("bg_weight = 0.05",
                                                                                      'bg_weight = "heavy"'))
    result = run_cli("train", str(spec), "--store", str(store_copy), "--out", str(tmp_path / "r"), "--steps", "1",
                     "--device", "cpu")
    one_line_error(result, "bg_weight")


def test_11_store_check_lists_malformed_metadata(run_cli, store_copy):
    with h5py.File(store_copy, "a") as f:
        f.attrs["classes"] = "{not json"
        del f["volumes"]["3"]
    result = run_cli("store", "check", str(store_copy))
    one_line_error(result, "problem(s) found")
    assert "problem: root attribute 'classes' is not valid JSON" in result.output
    assert "problem: volume '3' is listed in 'volume_order' but missing" in result.output
    one_line_error(run_cli("store", "info", str(store_copy)), "malformed metadata", "store check")


# 12 -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("setting, message", [("min_size=-5", "an integer >= 0"), ("sigma=nan", "a number >= 0")])
def test_12_out_of_range_options_are_refused(run_cli, store_copy, setting, message):
    before = sets_of(store_copy)
    one_line_error(run_cli("pseudolabel", str(store_copy), "--with", "felzenszwalb", "--set", setting), message)
    assert sets_of(store_copy) == before


# 13 -----------------------------------------------------------------------------------------------
def test_13_housekeeping(run_cli, run_dir, store_copy, tmp_path):
    from fewshotkit.data.ingest.common import load_nifti

    stale = store_copy.parent / f".{store_copy.name}.abcd1234.tmp"  # what kill -9 leaves
    stale.write_bytes(b"partial copy")
    assert run_cli("pseudolabel", str(store_copy), "--with", "felzenszwalb", "--set", "min_size=200", "-j", "1"
                   ).exit_code == 0
    assert not stale.exists()
    out = tmp_path / "r.json"
    result = run_cli("eval", str(run_dir), "--store", str(store_copy), "--device", "cpu", "--class", "liver",
                     "--class", "liver", "--class", "1", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["classes"] == ["liver"]
    with pytest.raises(Exception, match="is a folder"):
        load_nifti(tmp_path)
    folder_scan = run_cli("segment", "--checkpoint", str(run_dir), "--support", str(tmp_path), "--support-label",
                          str(tmp_path), "--query", str(tmp_path), "-o", str(tmp_path / "p.nii.gz"))
    assert folder_scan.exit_code == 2 and "is a directory" in folder_scan.output


def test_13_query_range_backwards(run_cli, run_dir, scans, tmp_path):
    result = run_cli("segment", "--checkpoint", str(run_dir), "--support", str(scans["support"]), "--support-label",
                     str(scans["support_label"]), "--class", "1", "--query", str(scans["query"]), "--query-range",
                     "5:2", "--device", "cpu", "-o", str(tmp_path / "p.nii.gz"))
    one_line_error(result, "--query-range '5:2'", "after the last")


# pseudolabel set names ---------------------------------------------------------------------------------
def test_pseudolabel_set_names_are_short_stable_and_chosen_with_pseudolabels(run_cli, store_copy, tmp_path):
    (name,) = sets_of(store_copy)
    assert re.fullmatch(r"felzenszwalb-[0-9a-f]{8}", name)
    mtime = store_copy.stat().st_mtime_ns
    again = run_cli("pseudolabel", str(store_copy), "--with", "felzenszwalb", "--set", "scale=1", "--set", "min_size=400")
    assert again.exit_code == 0 and "already exists" in again.output and store_copy.stat().st_mtime_ns == mtime
    assert run_cli("pseudolabel", str(store_copy), "--with", "felzenszwalb", "--set", "min_size=300").exit_code == 0
    assert len(sets_of(store_copy)) == 2
    result = run_cli("train", "--preset", "ssl-alpnet-cpu", "--store", str(store_copy), "--out", str(tmp_path / "r"),
                     "--steps", "1", "--device", "cpu")
    line = one_line_error(result, "--pseudolabels NAME", *sets_of(store_copy))
    assert "min_size=300" in line
    shown = run_cli("store", "show", str(store_copy), "1", "3", "-o", str(tmp_path / "s.png"))
    assert shown.exit_code == 0 and "no pseudolabel panel" in shown.output and "--set NAME" in shown.output
