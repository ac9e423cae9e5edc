"""``fewshotkit demo`` with a tiny budget: every stage runs, the outputs are written, a re-run reuses them."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    from fewshotkit.host import plugin_host
    from fewshotkit.apps.demo import run_demo

    plugin_host.reset()
    out = tmp_path_factory.mktemp("demo") / "out"
    messages: list[str] = []
    result = run_demo(out, steps=2, device="cpu", volumes=5, log=messages.append)
    return out, result, messages


def test_demo_runs_every_stage(demo_run):
    out, result, messages = demo_run
    assert [label for label, _ in result.table.rows] == ["SSL-ALPNet (CPU recipe)", "ALPNet-init"]
    assert result.table.columns == ["liver", "right kidney", "left kidney", "spleen", "mean"]
    names = {p.name for p in result.files}
    assert {"synthetic_comparison.md", "synthetic_comparison.csv", "synthetic_comparison.png", "bench.json"} <= names
    assert any(n.endswith("overlay.png") for n in names)
    assert [m.split(" ")[0] for m in messages if m[:2] in ("1/", "2/", "3/")] == ["1/4", "2/4", "3/4"]
    assert any(m.startswith("training") for m in messages)


def test_demo_cli_reuses_the_folder_and_prints_the_table(run_cli, demo_run):
    out, result, _ = demo_run
    stamp = result.store.stat().st_mtime_ns
    again = run_cli("demo", "-o", str(out), "--steps", "2", "--volumes", "5", "--device", "cpu")
    assert again.exit_code == 0, again.output
    assert "| method | liver | right kidney | left kidney | spleen | mean |" in again.output
    assert result.table.to_markdown() in again.output
    assert "training runs" not in again.output and again.output.count("cached") == 2
    assert result.store.stat().st_mtime_ns == stamp


def test_demo_dataset_needs_a_folder(run_cli, tmp_path):
    result = run_cli("demo", "--dataset", "chaos-t2", "-o", str(tmp_path / "d"))
    assert result.exit_code != 0 and "needs the dataset folder" in result.output
