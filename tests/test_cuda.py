"""CUDA paths (skipped without a GPU; benchmarks/gpu_check.sh runs them on a GPU machine): device
placement, augmentation on the device, AMP training, checkpoint resume on the GPU, DDP with nccl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import pseudolabelled_store

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TINY = ["image_size=64", "backbone.width=8", "backbone.out_channels=32", "backbone.output_stride=8",
        "training.log_every=2", "training.checkpoint_every=2", "training.batch_size=2", "training.lr=0.01"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return pseudolabelled_store(tmp_path_factory.mktemp("cuda") / "syn.h5", min_size=100,
                                volumes=6, seed=0, slices=8, size=64)


def _spec():
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec

    return apply_overrides(preset_spec("ssl-alpnet-cpu"), TINY)


def test_method_and_episode_live_on_the_gpu():
    from fewshotkit.interfaces.method import Episode
    from fewshotkit.method.build import build_method

    method = build_method(_spec()).cuda().eval()
    x = torch.rand(1, 1, 1, 64, 64, device="cuda")
    masks = torch.zeros(1, 1, 2, 64, 64, device="cuda")
    masks[:, :, 1, 16:48, 16:48] = 1
    masks[:, :, 0] = 1 - masks[:, :, 1]
    with torch.inference_mode():
        logits = method(Episode(x, masks, x)).logits
    assert logits.is_cuda and logits.shape == (1, 1, 2, 64, 64)


def test_augmentation_runs_on_the_device():
    from fewshotkit.training.augment import Augmenter
    from fewshotkit.training.config import AugmentConfig

    gen = torch.Generator(device="cuda")
    gen.manual_seed(0)
    images = torch.rand(4, 1, 64, 64, device="cuda")
    masks = (torch.rand(4, 1, 64, 64, device="cuda") > 0.5).float()
    out, out_masks = Augmenter(AugmentConfig(), gen)(images, masks)
    assert out.is_cuda and out_masks is not None and out_masks.is_cuda and torch.isfinite(out).all()


def test_amp_training_and_resume_on_the_gpu(store, tmp_path):
    from fewshotkit.training.loop import train

    out = tmp_path / "run"
    train(_spec(), store, out, steps=4, device="cuda", amp=True, show_progress=False)
    run = json.loads((out / "run.json").read_text())
    assert run["amp"] in ("bfloat16", "float16") and run["device"].startswith("cuda")
    train(None, None, out, resume=True, steps=8, device="cuda")
    payload = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert payload["step"] == 8 and payload["rng"][0]["cuda"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6, 8] and all(r["loss"] == r["loss"] for r in records)


def test_ddp_nccl_world_size_one(store, tmp_path):
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--standalone",
               "-m", "fewshotkit", "train", "--preset", "ssl-alpnet-cpu", "--store", str(store), "--out", str(out),
               "--steps", "4", "--device", "cuda", *[a for s in TINY for a in ("--set", s)]]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    run = json.loads((out / "run.json").read_text())
    assert run["world_size"] == 1 and run["status"] == "completed" and run["device"].startswith("cuda")
    assert run["process_group"] == "nccl" and len(run["rank_weight_sha256"]) == 1


def test_a_cpu_run_resumes_on_the_gpu(store, tmp_path):
    from fewshotkit.training.loop import train

    out = tmp_path / "moved"
    train(_spec(), store, out, steps=2, device="cpu", show_progress=False)
    with pytest.warns(UserWarning, match="augmentation stream is re-seeded"):
        train(None, None, out, resume=True, steps=4, device="cuda", show_progress=False)
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "completed" and run["final_step"] == 4 and run["device"].startswith("cuda")
