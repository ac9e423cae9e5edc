"""torch.distributed helpers: the same ``train`` runs alone or under ``torchrun`` (DDP).

Under torchrun (RANK, WORLD_SIZE, LOCAL_RANK set; also with WORLD_SIZE 1) the process group starts with
nccl on CUDA and gloo on the CPU; each rank uses its own GPU, samples its own episode stream and
only rank 0 writes files.
"""

from __future__ import annotations

import gc
import hashlib
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from fewshotkit.core.device import resolve_device
from fewshotkit.core.errors import FewshotkitError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    launched: bool = False  # started by torchrun (a process group even with world size 1)

    @property
    def enabled(self) -> bool:
        return self.launched or self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_name: str) -> tuple[DistInfo, torch.device]:
    """Start the process group when launched by torchrun; returns (info, this rank's device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_name)
    if world <= 1 and "RANK" not in os.environ:
        return DistInfo(), device
    try:
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    except (KeyError, ValueError):
        raise FewshotkitError("WORLD_SIZE > 1 but RANK is not set: launch distributed training with torchrun") from None
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise FewshotkitError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA devices; "
                "use --nproc_per_node <= the number of GPUs"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local_rank, launched=True), device


def teardown(info: DistInfo) -> None:
    """Free the finished run's objects, then end the process group (when there is one).

    The collection is explicit because reference cycles (torch's lazy imports leave some frames in
    one) can keep the DDP wrapper alive past training; freed during interpreter shutdown, after its
    process group, it aborted a rank ("terminate called without an active exception"). It also
    hands a run's (GPU) memory back as soon as ``train`` returns.
    """
    gc.collect()
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on at least one (e.g. a Ctrl-C on one rank)."""
    if not info.enabled:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def all_gather(obj: Any, info: DistInfo) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` (just ``[obj]`` without DDP)."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def mean_over_ranks(values: dict[str, float], info: DistInfo, device: torch.device) -> dict[str, float]:
    """Average named scalars over ranks (for logging)."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], device=device, dtype=torch.float64)
    dist.all_reduce(tensor)
    tensor /= info.world_size
    return dict(zip(keys, tensor.tolist()))


def parameter_digest(model: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer, in order: equal digests mean identical weights."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
