"""A run trained by an earlier fewshotkit (checkpoint format 1, before the package was laid out in
layers) still evaluates with the Dice it had and resumes as if it had never stopped.

``data/run-before-layers.tar.xz`` holds that run's ``run.json``, ``spec.toml``, ``metrics.jsonl``
and ``checkpoints/last.pt``, written by fewshotkit at commit a27ca8b: the ``ssl-alpnet-cpu`` preset
with ``image_size=64``, ``backbone.width=8``, ``backbone.out_channels=16``, SGD without momentum
(``training.momentum=0``, so the file stays small), ``lr=0.01``, the step schedule, checkpoints every
3 steps, trained supervised for 6 steps with seed 7 on the CPU on ``ingest_synthetic(volumes=6,
seed=0, slices=12, size=64)``. ``data/run-before-layers.json`` holds what that version measured:
the mean Dice ``fewshotkit eval`` gave the run, and the mean Dice and per-tensor sums of absolute
weights of the same run trained straight to 8 steps.

The tolerances allow for another CPU's floating-point kernels (a pixel whose probability lies
within rounding of the threshold may flip); on the machine that wrote the fixture the Dice and
the weights are equal bit for bit.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
import torch

DATA = Path(__file__).resolve().parent / "data"
ARCHIVE = DATA / "run-before-layers.tar.xz"
EXPECTED = json.loads((DATA / "run-before-layers.json").read_text(encoding="utf-8"))


@pytest.fixture
def old_run(tmp_path) -> tuple[Path, Path]:
    """(the unpacked run directory, the synthetic store it was trained on, made anew)."""
    from fewshotkit.data.ingest.synthetic import ingest_synthetic

    store = ingest_synthetic(tmp_path / "synthetic.h5", quiet=True, **EXPECTED["store"])
    with tarfile.open(ARCHIVE) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(tmp_path, filter="data")
        else:  # Python without extraction filters; the archive is ours
            archive.extractall(tmp_path)
    run = tmp_path / "old-run"
    record = json.loads((run / "run.json").read_text(encoding="utf-8"))
    record["store"] = str(store)  # the run names the store where it was trained
    (run / "run.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    return run, store


def _mean_dice(run_cli, run: Path, store: Path, output: Path) -> float:
    run_cli("eval", str(run), "--store", str(store), "--device", "cpu", "-o", str(output))
    return json.loads(output.read_text(encoding="utf-8"))["summary"]["dice"]["mean"]["mean"]


def test_an_old_run_evaluates_with_its_dice_and_resumes_exactly(old_run, tmp_path, run_cli):
    from fewshotkit.method.checkpoint import VERSION
    from fewshotkit.training import train

    run, store = old_run
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["version"] == 1
    assert _mean_dice(run_cli, run, store, tmp_path / "before.json") == pytest.approx(EXPECTED["eval_mean_dice"], abs=0.05)

    last = train(None, None, run, resume=True, steps=8, device="cpu", show_progress=False)
    payload = torch.load(last, weights_only=True)
    assert payload["step"] == 8 and payload["version"] == VERSION
    straight = EXPECTED["straight_8_steps"]
    sums = {name: float(tensor.double().abs().sum()) for name, tensor in payload["model"].items()}
    assert sums.keys() == straight["weight_abs_sums"].keys()
    for name, value in straight["weight_abs_sums"].items():
        assert sums[name] == pytest.approx(value, rel=1e-5), name
    steps_logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps_logged == [2, 4, 6, 8]
    assert _mean_dice(run_cli, run, store, tmp_path / "after.json") == pytest.approx(straight["eval_mean_dice"], abs=0.05)
