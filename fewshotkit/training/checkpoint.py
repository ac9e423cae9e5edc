"""Resuming a run: the check that a resumed run trains on the same data, and pruning old step
checkpoints. The file format is :mod:`fewshotkit.method.checkpoint`; what a checkpoint holds is
:meth:`fewshotkit.training.trainer.Trainer.state_dict`; the random states are
:mod:`fewshotkit.training.streams`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fewshotkit.core.errors import FewshotkitError

if TYPE_CHECKING:
    from fewshotkit.data.store.reader import SliceStore


def check_resume_store(previous_run: dict[str, Any], store: "SliceStore") -> None:
    """Refuse to continue a run on other data than it was trained on.

    ``previous_run`` is the run's run.json; its ``store_fingerprint`` (recorded at the start of
    training, see :func:`fewshotkit.data.store.fingerprint.store_fingerprint`) must describe the
    store's data now, with the run's pseudolabel set (:func:`~fewshotkit.data.store.fingerprint.same_fingerprint`).
    Runs recorded without a fingerprint are not checked.
    """
    from fewshotkit.data.store.fingerprint import same_fingerprint, store_fingerprint

    recorded = previous_run.get("store_fingerprint")
    if not recorded:
        return
    if not same_fingerprint(store_fingerprint(store, previous_run.get("pseudolabel_set")), recorded):
        raise FewshotkitError(
            f"--resume: store '{store.path}' no longer holds the data this run was trained on (its volumes, "
            "labels or pseudolabel set changed since the run started); resume only on the original store, "
            "or start a new run with --out"
        )


def prune_checkpoints(directory: Path, keep: int) -> None:
    """Keep the ``keep`` newest ``step_NNNNNN.pt`` files by step (``last.pt`` is never removed)."""
    from fewshotkit.method.checkpoint import numbered_checkpoints

    numbered = numbered_checkpoints(directory)
    for old in numbered[:-keep] if keep > 0 else numbered:
        old.unlink(missing_ok=True)
