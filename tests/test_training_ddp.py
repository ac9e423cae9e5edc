"""DDP: the train command under torchrun with 2 CPU processes (gloo), on one node or as two nodes
(``--nnodes 2``), keeps the ranks' weights identical, samples a different episode stream per rank and
doubles the effective batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import pseudolabelled_store


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return pseudolabelled_store(tmp_path_factory.mktemp("store") / "syn.h5", min_size=100,
                                volumes=6, seed=1, slices=8, size=64)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(layout: str, store: Path, out: Path) -> list[subprocess.CompletedProcess]:
    """Train 4 steps at world size 2 (gloo): one node with 2 processes, or 2 nodes of 1 process (two
    torchrun launches on this machine meeting at one rendezvous address, as on two hosts)."""
    overrides = ["image_size=64", "backbone.width=8", "backbone.out_channels=32", "backbone.output_stride=8",
                 "training.log_every=2", "training.batch_size=2", "training.lr=0.01"]
    train = ["-m", "fewshotkit", "train", "--preset", "ssl-alpnet-cpu", "--store", str(store), "--out", str(out),
             "--steps", "4", "--device", "cpu", "--log-episodes", *[a for s in overrides for a in ("--set", s)]]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                            "MASTER_PORT", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE")}
    run = [sys.executable, "-m", "torch.distributed.run"]
    if layout == "one node":
        # --standalone binds the rendezvous store on localhost:0 and the workers share it: no port is
        # picked first and bound later (where another process could take it in between)
        commands = [[*run, "--nproc_per_node", "2", "--standalone", *train]]
    else:  # two launches must be told one address, so here a free port is picked first
        port = str(_free_port())
        commands = [[*run, "--nnodes", "2", "--node_rank", str(node), "--nproc_per_node", "1",
                     "--master_addr", "127.0.0.1", "--master_port", port, *train] for node in (0, 1)]
    launched = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                for c in commands]
    done = []
    for process, command in zip(launched, commands):
        stdout, stderr = process.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(command, process.returncode, stdout, stderr))
    return done


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["one node", "two nodes"])
def test_two_process_gloo_training_keeps_ranks_identical(store, tmp_path, layout):
    out = tmp_path / "ddp"
    done = _torchrun(layout, store, out)
    for node in done:
        assert node.returncode == 0, node.stdout[-2000:] + node.stderr[-4000:]
    assert sum(node.stdout.count("training finished") for node in done) == 1  # only rank 0 reports

    run = json.loads((out / "run.json").read_text())
    assert run["world_size"] == 2 and run["effective_batch_size"] == 4 and run["status"] == "completed"
    digests = run["rank_weight_sha256"]
    assert len(digests) == 2 and digests[0] == digests[1]

    episodes = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(episodes) == 4 * 4  # 4 steps x 2 ranks x batch 2
    per_rank = {r: [(e["volume"], e["z"], e["segment"]) for e in episodes if e["rank"] == r] for r in (0, 1)}
    assert per_rank[0] != per_rank[1]  # each rank draws its own stream

    checkpoint = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["step"] == 4 and len(checkpoint["rng"]) == 2  # every rank's RNG state, for resuming


@pytest.mark.parametrize("fail", [False, True], ids=["completed", "failed"])
def test_the_ddp_wrapper_is_freed_before_its_process_group_ends(store, tmp_path, monkeypatch, fail):
    """In-process DDP (world size 1, gloo): when the process group is destroyed, the run's DDP wrapper
    is gone, also when training failed (the exception's frames held it). Freed later, at interpreter
    shutdown, it aborted the rank: "terminate called without an active exception"."""
    import gc
    import weakref

    from fewshotkit.training import distributed as ddp
    from fewshotkit.training.loop import train
    from fewshotkit.training.trainer import HookBase
    from test_training import tiny_spec

    # port 0: the rank-0 store binds a free port itself (a port picked here and bound later could be taken between)
    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "0"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    class Watch(HookBase):
        def before_train(self) -> None:
            self.wrapper = weakref.ref(self.trainer.model)

        def after_step(self) -> None:
            if fail:
                raise RuntimeError("a failing step")

    watch, freed = Watch(), []
    destroy = ddp.dist.destroy_process_group

    def checked_destroy(*args, **kwargs):
        freed.append(watch.wrapper() is None)
        return destroy(*args, **kwargs)

    monkeypatch.setattr(ddp.dist, "destroy_process_group", checked_destroy)
    gc.disable()
    try:
        if fail:
            with pytest.raises(RuntimeError, match="a failing step"):
                train(tiny_spec(), store, tmp_path / "run", steps=2, device="cpu", show_progress=False, hooks=[watch])
        else:
            train(tiny_spec(), store, tmp_path / "run", steps=2, device="cpu", show_progress=False, hooks=[watch])
    finally:
        gc.enable()
    assert freed == [True] and not ddp.dist.is_initialized()
