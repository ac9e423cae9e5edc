"""Plugin fingerprints hash code, not bytes; benchmarks/studies/rekey_cells.py carries cells over."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from conftest import POOLER_PLUGIN, benchmark_script, pseudolabelled_store

from fewshotkit.host.code_text import code_text
from fewshotkit.host.provenance import source_hash


def test_code_text_leaves_out_comments_docstrings_and_blank_lines_only():
    source = textwrap.dedent(
        '''
        """Module."""
        import os  # why


        class A:
            """Doc,
            on two lines: é."""

            def f(self, x="# not a comment"):
                """Only a docstring."""

            def g(self):
                s = """a string, not a docstring"""
                return s
        '''
    ).encode()
    assert code_text(source) == textwrap.dedent(
        '''\
        import os
        class A:
            def f(self, x="# not a comment"):
            def g(self):
                s = """a string, not a docstring"""
                return s
        '''
    )
    assert code_text(b"def f(:\n  # broken\n") == "def f(:\n  # broken\n"  # not Python: hashed whole


def test_code_text_keeps_what_python_reads():
    """Line breaks that only str.splitlines sees, lines inside string literals, encodings."""
    assert code_text(b'"""Doc."""\n\x0c\ndef f():\n    return 1  # c\n') == "def f():\n    return 1\n"
    assert code_text('x = "a\u2028b"  # c\ny = 1\n'.encode()) == 'x = "a\u2028b"\ny = 1\n'
    texts = {code_text(source) for source in (b'x = """a\n\nb"""\n', b'x = """a\nb"""\n', b'x = """a   \nb"""\n',
                                              b'x = f"""{1}\n\n{2}"""\n', b'x = f"""{1}\n{2}"""\n')}
    assert len(texts) == 5  # blank lines and trailing spaces inside a literal are its text
    joined = b'x = ("a"\n "b")\n'  # two literals on two rows: what lies between them is not text
    assert code_text(b'x = ("a"\n  # why\n\n "b")\n') == code_text(joined) == 'x = ("a"\n "b")\n'
    assert code_text(b"\xef\xbb\xbf# c\nx = 1\n") == code_text(b"x = 1\r\n") == "x = 1\n"
    latin = b"# -*- coding: latin-1 -*-\nx = '\xe9'\n"
    assert code_text(latin) == "x = '\u00e9'\n" != code_text(latin.replace(b"\xe9", b"\xe8"))


def test_source_hash_follows_code_in_a_package(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("X = 1\n")
    first = source_hash(package)
    (package / "__init__.py").write_text('"""The package."""\n\nX = 1  # one\n')
    assert source_hash(package) == first
    (package / "more.py").write_text("# only a comment\n")
    assert source_hash(package) != first  # a new module is a new name in the package


def _bench(store: Path, plugins: Path, out: Path, fresh_host) -> list[str]:
    from fewshotkit.apps.bench.study import Bench, BenchConfig

    fresh_host.reset()
    fresh_host.configure(plugins_dirs=[str(plugins)])
    logs: list[str] = []
    config = BenchConfig(stores=[str(store)], methods=["ssl-alpnet-cpu"], poolers=["scaled-mean"], out=str(out),
                         steps=1, n_folds=3, device="cpu", chunks=1,
                         overrides=["image_size=64", "backbone.width=8", "backbone.out_channels=16",
                                    "training.batch_size=1", "postprocess=largest-component"])
    Bench(config, log=logs.append).run()
    return logs


def test_cells_of_byte_fingerprints_are_served_again_after_rekeying(fresh_host, monkeypatch, tmp_path):
    """A study computed when fingerprints hashed bytes: after rekey_cells its cells and models are
    found under today's keys (nothing is trained or scored again); a second rekey changes nothing."""
    import fewshotkit.host.plugin_host as plugin_host

    rekey = benchmark_script("studies/rekey_cells.py")
    store = pseudolabelled_store(tmp_path / "three.h5", min_size=100, volumes=3, seed=0, slices=10, size=64)
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "gainmean.py").write_text(POOLER_PLUGIN)
    out = tmp_path / "bench"
    with monkeypatch.context() as former:
        former.setattr(plugin_host, "code_fingerprint", lambda path: f"sha256:{rekey.byte_hash(path)}")
        assert any(m.startswith("training") for m in _bench(store, plugins, out, fresh_host))
    cells = sorted((out / "cells").rglob("*.json"))
    assert cells and all("sha256:" in json.dumps(json.loads(p.read_text())["settings"]) for p in cells)
    assert all("largest-component-" in p.name for p in cells)  # a file name with the post-processors' digest
    before = sorted(p.name for p in out.glob("runs/*/*/*"))

    host = fresh_host.get_host()
    sources = [str(host.plugins[name].files) for name in host.plugins if ":" in (host.fingerprint(name) or "")]
    assert rekey.main([str(out), *(f"--source={source}" for source in sources)]) == 0
    after = sorted(p.name for p in out.glob("runs/*/*/*"))
    assert len(after) == len(before) and not set(after) & set(before)
    (plugins / "gainmean.py").write_text('"""A pooler."""\n' + POOLER_PLUGIN + "# edited\n")  # prose only
    logs = _bench(store, plugins, out, fresh_host)
    assert any(m.startswith("cached") for m in logs) and not any(m.startswith(("training", "evaluating")) for m in logs)

    counts = rekey.rekey([out], rekey.hash_map([Path(s) for s in sources]), say=lambda line: None)
    assert counts == {"unchanged": len(cells), "model folders renamed": 0}


def _cell(folder: Path, name: str, fingerprint: str, **settings) -> Path:
    from fewshotkit.apps.bench.cache import digest

    settings = {"spec": {}, "fold": 0, "plugins": {"gainmean": fingerprint}, "protocol": "roy", **settings}
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"key": digest(settings), "settings": settings}))
    return path


def test_rekey_names_files_anew_and_keeps_a_cell_of_other_settings(tmp_path):
    """The digests in a file name follow the key; a new name that holds another cell is not overwritten."""
    from fewshotkit.apps.bench.cache import variant_suffix

    rekey = benchmark_script("studies/rekey_cells.py")
    plugin = tmp_path / "plugins" / "gainmean.py"
    plugin.parent.mkdir()
    plugin.write_text(POOLER_PLUGIN)
    old, new = f"sha256:{rekey.byte_hash(plugin)}", f"code:{source_hash(plugin)}"
    cells = tmp_path / "cells" / "three" / "Row"
    keyed = _cell(cells, "fold1_key-00000000.json", old, fold=1)
    post = {"postprocess": {"tables": [{"type": "lcc"}], "plugins": {"gainmean": old}}}
    before = _cell(cells, f"fold0{variant_suffix(post)}.json", old, **post)
    post_new = {"postprocess": {"tables": [{"type": "lcc"}], "plugins": {"gainmean": new}}}
    other = _cell(cells, f"fold0{variant_suffix(post_new)}.json", new, steps=5, **post_new)

    counts = rekey.rekey([tmp_path], rekey.hash_map([plugin]), say=lambda line: None)
    assert counts == {"unchanged": 1, "rekeyed": 2, "model folders renamed": 0}
    written = {p.name: json.loads(p.read_text()) for p in cells.iterdir()}
    fold0, fold1 = (next(c for c in written.values() if c["settings"]["fold"] == f and "steps" not in c["settings"])
                    for f in (0, 1))
    assert sorted(written) == sorted([other.name, f"fold1_key-{fold1['key'][:8]}.json",
                                      f"fold0{variant_suffix(post_new)}_key-{fold0['key'][:8]}.json"])
    assert fold0["settings"]["postprocess"] == post_new["postprocess"]
    assert json.loads(other.read_text())["settings"]["steps"] == 5  # the other cell is kept
    assert not keyed.exists() and not before.exists()


def test_rekey_leaves_cells_of_other_code_and_names_them(tmp_path, capsys):
    from fewshotkit.apps.bench.cache import digest

    rekey = benchmark_script("studies/rekey_cells.py")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "gainmean.py").write_text(POOLER_PLUGIN)
    settings = {"spec": {}, "plugins": {"gainmean": "sha256:0123456789abcdef"}, "protocol": "roy"}
    cell = tmp_path / "cells" / "three" / "Row" / "fold0_key-00000000.json"
    cell.parent.mkdir(parents=True)
    cell.write_text(json.dumps({"key": digest(settings), "settings": settings}))
    assert rekey.main([str(tmp_path), "--source", str(plugins)]) == 0
    out = capsys.readouterr().out
    assert "no source has the code of gainmean sha256:0123456789abcdef" in out and "1 skipped" in out
    assert json.loads(cell.read_text())["settings"] == settings
    assert rekey.main([str(tmp_path / "absent"), "--source", str(plugins)]) == 2
    assert rekey.main([str(tmp_path), "--source", str(tmp_path / "absent")]) == 2
    assert "--source" in capsys.readouterr().err


def test_rekey_gives_cells_of_a_set_made_again_its_labels_fingerprint(tmp_path, capsys):
    """Cells keyed on a set's creation time, on the same scans and a set of the same name in the
    store, get the store's fingerprint; a cell of other scans or another set is left as it is."""
    from fewshotkit.apps.bench.cache import digest
    from fewshotkit.data.store.fingerprint import store_fingerprint
    from fewshotkit.data.store.reader import SliceStore

    rekey = benchmark_script("studies/rekey_cells.py")
    store = pseudolabelled_store(tmp_path / "s.h5", volumes=2, slices=4, size=32)
    with SliceStore(store) as opened:
        name = opened.resolve_pseudolabel_set("felzenszwalb")
        now = store_fingerprint(opened, name)
    data = now.split("/")[0]
    cells = tmp_path / "out" / "cells" / "syn" / "Row"
    runs = tmp_path / "out" / "runs" / "syn" / "Row"

    def cell(fold: int, fingerprint: str, pseudolabels: str | None = name) -> Path:
        settings = {"spec": {}, "fold": fold, "protocol": "roy", "plugins": {},
                    "store": {"data": fingerprint, "pseudolabels": pseudolabels}}
        (runs / f"fold{fold}-{rekey.training_digest(settings)}").mkdir(parents=True)
        cells.mkdir(parents=True, exist_ok=True)
        path = cells / f"fold{fold}.json"
        path.write_text(json.dumps({"key": digest(settings), "settings": settings}))
        return path

    made_before = cell(0, f"{data}/{'0' * 64}")
    other_scans = cell(1, f"v1:{'1' * 64}/{'0' * 64}")
    other_set = cell(2, f"{data}/{'0' * 64}", "felzenszwalb-00000000")
    untrained = cell(3, data, None)
    assert rekey.main([str(tmp_path / "out"), "--store", str(store)]) == 0
    assert "3 unchanged, 1 model folders renamed, 1 rekeyed" in capsys.readouterr().out
    rewritten = json.loads(made_before.read_text())
    assert rewritten["settings"]["store"]["data"] == now and rewritten["key"] == digest(rewritten["settings"])
    assert (runs / f"fold0-{rekey.training_digest(rewritten['settings'])}").is_dir()
    for path in (other_scans, other_set, untrained):
        assert json.loads(path.read_text())["settings"]["store"]["data"] != now
    assert rekey.main([str(tmp_path / "out")]) == 2 and "--store" in capsys.readouterr().err
    assert rekey.main([str(tmp_path / "out"), "--store", str(tmp_path / "absent.h5")]) == 2
