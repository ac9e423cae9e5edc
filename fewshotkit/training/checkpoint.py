"""Resuming a run: the random states a checkpoint carries, the check that a resumed run trains on
the same data, and pruning old step checkpoints. The file format itself is
:mod:`fewshotkit.method.checkpoint`.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fewshotkit.core.errors import FewshotkitError

if TYPE_CHECKING:
    from fewshotkit.data.store.reader import SliceStore


# -- random states ------------------------------------------------------------------------------
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
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
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


def check_resume_store(previous_run: dict[str, Any], store: "SliceStore") -> None:
    """Refuse to continue a run on other data than it was trained on.

    ``previous_run`` is the run's run.json; its ``store_fingerprint`` (recorded at the start of
    training, see :func:`fewshotkit.data.store.fingerprint.store_fingerprint`) must equal the store's
    now, with the run's pseudolabel set. Runs recorded without a fingerprint are not checked.
    """
    from fewshotkit.data.store.fingerprint import store_fingerprint

    recorded = previous_run.get("store_fingerprint")
    if not recorded:
        return
    if store_fingerprint(store, previous_run.get("pseudolabel_set")) != recorded:
        raise FewshotkitError(
            f"--resume: store '{store.path}' no longer holds the data this run was trained on (its volumes, "
            "labels or pseudolabel set changed since the run started); resume only on the original store, "
            "or start a new run with --out"
        )


def prune_checkpoints(directory: Path, keep: int) -> None:
    """Keep the ``keep`` newest ``step_NNNNNN.pt`` files (``last.pt`` is never removed)."""
    numbered = sorted(directory.glob("step_*.pt"))
    for old in numbered[:-keep] if keep > 0 else numbered:
        old.unlink(missing_ok=True)
