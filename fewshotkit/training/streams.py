"""A training process's random streams and their states in a checkpoint.

Each process draws episodes from its own numpy Generator and augments them with its own torch
Generator, both seeded from the run's seed and the process's rank, so ranks see different episodes
and a run is reproducible. A checkpoint holds every random state of every rank (python, numpy,
torch CPU/CUDA and the two streams) as plain data and tensors, safe for ``weights_only`` loading;
restoring them makes a resumed run continue exactly.
"""

from __future__ import annotations

import random
import warnings
from typing import Any

import numpy as np
import torch

from fewshotkit.training import distributed as ddp


def stream_seed(*parts: int) -> int:
    """A 32-bit seed derived from ``parts`` (the run's seed, the rank, a stream number ...)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


class RandomStreams:
    """The episode sampler's ``sampler`` (numpy) and the augmentation's ``augment`` (torch, on
    ``device``) Generators of rank ``info.rank``, seeded from ``seed``."""

    def __init__(self, seed: int, info: ddp.DistInfo, device: torch.device) -> None:
        self.seed = seed
        self.info = info
        self.device = device
        self.sampler = np.random.default_rng(np.random.SeedSequence([seed, info.rank]))
        self.augment = torch.Generator(device=device)
        self.augment.manual_seed(stream_seed(seed, info.rank, 1))

    def state_dict(self) -> list[dict[str, Any]]:
        """Every rank's random states, rank by rank (a collective call: every rank makes it)."""
        return ddp.all_gather(capture_rng(self.sampler, self.augment), self.info)

    def load_state_dict(self, states: list[dict[str, Any]], step: int) -> None:
        """Continue from ``states`` (:meth:`state_dict` of a run at ``step`` completed steps).

        With another number of processes, or an augmentation state of another device type, the
        streams are re-seeded from the step instead (deterministic, but not an exact continuation)
        and a warning says so.
        """
        rank = self.info.rank
        if len(states) != self.info.world_size:
            warnings.warn(f"resuming a {len(states)}-process run with {self.info.world_size} processes: "
                          "episode streams are re-seeded, so the run is not an exact continuation", stacklevel=3)
            fresh = np.random.default_rng(np.random.SeedSequence([self.seed, rank, step]))
            self.sampler.bit_generator.state = fresh.bit_generator.state  # the trainer holds self.sampler
            self.augment.manual_seed(stream_seed(self.seed, rank, step, 1))
        elif not restore_rng(states[rank], self.sampler, self.augment):
            warnings.warn(f"resuming on {self.device.type} a run whose last checkpoint was written on another "
                          "device type: the augmentation stream is re-seeded, so the run is not an exact "
                          "continuation", stacklevel=3)
            self.augment.manual_seed(stream_seed(self.seed, rank, step, 1))


def capture_rng(sampler_rng: np.random.Generator, aug_generator: torch.Generator) -> dict[str, Any]:
    """Every random state of this process (plain data + tensors, safe for weights_only loading)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "sampler": sampler_rng.bit_generator.state,
        "augment": aug_generator.get_state(),
    }


def restore_rng(state: dict[str, Any], sampler_rng: np.random.Generator, aug_generator: torch.Generator) -> bool:
    """Inverse of :func:`capture_rng`; False when the augmentation state is another device type's
    (a run trained on the CPU resumed on a GPU, or back), which ``aug_generator`` cannot take."""
    random.setstate(_tuplify(state["python"]))
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        if len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        else:
            warnings.warn(f"resuming with {torch.cuda.device_count()} CUDA devices a run saved with "
                          f"{len(state['cuda'])}: their random states are not restored, so the run is not an "
                          "exact continuation", stacklevel=2)
    sampler_rng.bit_generator.state = state["sampler"]
    # a CPU generator's state (Mersenne Twister) and a CUDA one's (Philox) differ in size
    if state["augment"].numel() != aug_generator.get_state().numel():
        return False
    aug_generator.set_state(state["augment"])
    return True


def _tuplify(value: Any) -> Any:
    """random.setstate wants nested tuples; a round trip may give lists."""
    if isinstance(value, (list, tuple)):
        return tuple(_tuplify(v) for v in value)
    return value
