"""benchmarks/studies/regenerate.py: a page's bench section rebuilt from its own command and the
cached cells, a changed table found by ``--check``, and a section without cells or kept as printed
left alone."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from conftest import benchmark_script, pseudolabelled_store


def _regenerate():
    return benchmark_script("studies/regenerate.py")


def test_the_command_of_a_section_is_read_with_cached_added():
    regenerate = _regenerate()
    page = ("intro\n<!-- bench:a -->\n```console\n$ fewshotkit bench --config s.toml --fold 0\n```\n| t |\n"
            "<!-- /bench:a -->\n<!-- bench:b -->\nno command\n<!-- /bench:b -->\n")
    found = regenerate.sections(page)
    assert list(found) == ["a", "b"]
    assert regenerate.command_of(found["a"]) == ["fewshotkit", "bench", "--config", "s.toml", "--fold", "0", "--cached"]
    assert regenerate.command_of(found["b"]) is None


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("fewshotkit") is None, reason="the fewshotkit command is not on PATH")
def test_a_section_rebuilds_from_its_cells_and_a_changed_table_is_found(tmp_path):
    regenerate = _regenerate()
    store = pseudolabelled_store(tmp_path / "syn.h5", volumes=5, seed=1, slices=16, size=64)
    command = ["fewshotkit", "bench", "--store", str(store), "--method", "alpnet-init", "--fold", "0",
               "--recipe", "cpu", "--device", "cpu", "-o", "out"]
    assert subprocess.run(command, cwd=tmp_path, capture_output=True).returncode == 0
    body = (tmp_path / "out" / "results.md").read_text()
    assert f"$ {' '.join(command)}" in body, "results.md opens with the command that made it"
    page = tmp_path / "page.md"
    page.write_text(f"# Results\n\n<!-- bench:demo -->\n{body.strip()}\n<!-- /bench:demo -->\n\n"
                    "<!-- bench:gone -->\n```console\n$ fewshotkit bench --store missing.h5 --method x\n```\n"
                    "<!-- /bench:gone -->\n")
    original = page.read_text()
    args = ["--readme", str(page), "--in", str(tmp_path)]
    assert regenerate.main(["--all", "--check", *args]) == 0, "every table is what its cells give"

    row = next(line for line in original.splitlines() if line.startswith("| ALPNet-init"))
    tampered = re.sub(r"\| \d+\.\d+ ", "| 99.99 ", row, count=1)
    assert tampered != row
    page.write_text(original.replace(row, tampered, 1))
    assert regenerate.main(["demo", "--check", *args]) == 1
    assert regenerate.main(["demo", "gone", *args]) == 0
    assert page.read_text() == original, "the changed table rebuilt, the section without cells left as it was"
    assert regenerate.main(["nothing", *args]) == 1

    printed = original.replace(row, tampered, 1).replace("<!-- bench:demo -->\n", "<!-- bench:demo -->\n<!-- printed -->\n")
    page.write_text(printed)
    assert regenerate.main(["--all", "--check", *args]) == 0, "a table kept as printed is not checked against the cells"
    assert regenerate.main(["demo", *args]) == 0
    assert page.read_text() == printed, "nor rebuilt from them"
