"""Temporary files, durable renames, unique file names, and the demo's and `weights`' input checks."""

from __future__ import annotations

import os
import stat
import textwrap

import pytest

from fewshotkit.core import atomic
from fewshotkit.core.errors import FewshotkitError
from fewshotkit.core.names import unique_safe_names


def test_a_temporary_file_gets_the_usual_mode_without_touching_the_process_umask(tmp_path, monkeypatch):
    previous = os.umask(0o027)
    try:
        monkeypatch.setattr(os, "umask", lambda mask: pytest.fail("os.umask changes it for every thread"))
        path = atomic.temporary_path(tmp_path / "store.h5")
    finally:
        monkeypatch.undo()
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert atomic.remove_stale_temporaries(tmp_path / "store.h5") == [path]


def test_an_atomic_write_syncs_the_folder_after_the_rename(tmp_path, monkeypatch):
    synced: list[bool] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(stat.S_ISDIR(os.fstat(fd).st_mode)), real_fsync(fd)))
    atomic.write_text(tmp_path / "a.json", "{}")
    assert synced == [False, True] and (tmp_path / "a.json").read_text() == "{}"


def test_unique_safe_names_stay_unique_when_an_appended_key_meets_another_name():
    names = unique_safe_names({1: "a", 2: "a", 3: "a-1"})
    assert len(set(names.values())) == 3 and names[1] == "a-1" and names[2] == "a-2"
    clashing_keys = unique_safe_names({"a b": "x", "a-b": "x"})  # both keys are 'a-b' as file names
    assert len(set(clashing_keys.values())) == 2
    assert unique_safe_names({"x": "right kidney", "y": "right-kidney"}) == {"x": "right-kidney-x",
                                                                              "y": "right-kidney-y"}


def test_the_demo_checks_its_dataset_and_path_before_making_the_output_folder(tmp_path):
    from fewshotkit.apps.demo import run_demo

    with pytest.raises(FewshotkitError, match="--dataset 'nope' is not known"):
        run_demo(tmp_path / "out1", dataset="nope")
    with pytest.raises(FewshotkitError, match="synthetic demo takes no PATH"):
        run_demo(tmp_path / "out2", source=tmp_path)
    with pytest.raises(FewshotkitError, match="needs the dataset folder"):
        run_demo(tmp_path / "out3", dataset="chaos-t2")
    assert not any((tmp_path / f"out{i}").exists() for i in (1, 2, 3))


def test_weights_takes_an_alias_and_lists_a_broken_backbone_as_failed(tmp_path, fresh_host, run_cli):
    (tmp_path / "brokenbb.py").write_text(textwrap.dedent("""
        from fewshotkit import hookimpl

        @hookimpl
        def register_backbones(register):
            register("broken-bb", "no_such_module_here:Backbone", aliases=["bb-alias"])
        """))
    fresh_host.configure(plugins_dirs=[str(tmp_path)])
    from fewshotkit.cli.weights import weights_rows

    rows = weights_rows(None, None)
    broken = [row for row in rows if row["backbone"] == "broken-bb"]
    assert len(broken) == 1 and "no_such_module_here" in broken[0]["error"]
    assert len([row for row in rows if not row.get("error")]) >= 1
    assert weights_rows("bb-alias", None) == broken
    result = run_cli("--plugins-dir", str(tmp_path), "weights")
    assert result.exit_code == 0 and "FAILED" in result.output
