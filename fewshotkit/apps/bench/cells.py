"""The unit a study is made of and cached by: a cell, one method's scores on one fold of one store in
one setting with one protocol, and where its result lives (:class:`CellSite`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


def in_run_order(refs: list["CellRef"], folds: list[int], order: str) -> list["CellRef"]:
    """``refs`` (a study's cells, method by method) in the order they run: ``folds``, every method's
    first fold of ``folds`` first, then the next (a stable sort); ``methods``, as given."""
    return sorted(refs, key=lambda ref: folds.index(ref.fold)) if order == "folds" else refs


@dataclass(frozen=True)
class CellRef:
    """One cell: ``method`` (with ``pooler``, trained on the ``pseudolabels`` set) on ``fold`` of
    ``store`` in ``setting`` with ``protocol``."""

    store: str
    method: str
    fold: int
    pooler: str | None = None
    protocol: str = "roy"
    setting: int = 1
    pseudolabels: str | None = None

    def describe(self) -> str:
        """``METHOD [+ POOLER] [+ SET], fold F, PROTOCOL, setting S on STORE`` for logs and errors."""
        method = " + ".join(x for x in (self.method, self.pooler, self.pseudolabels) if x is not None)
        return f"{method}, fold {self.fold}, {self.protocol}, setting {self.setting} on {Path(self.store).stem}"


@dataclass
class CellSite:
    """Where a cell's result is cached, the key that decides a hit and the folder of its trained models."""

    ref: CellRef
    label: str  # the table row
    shown: str  # the row with its pseudolabel set, for the log
    named: str  # "_SET" when the cell's file names its pseudolabel set, else ""
    spec: Any  # the method spec the models are trained with (no evaluation-only options)
    steps: int
    regime: str
    pseudolabels: str | None
    key: dict[str, Any]
    digest: str
    path: Path
    run_root: Path  # the models; every cell that shares it shares the trained models
    options: Any = None  # the InferenceOptions its models are evaluated with (post-processing resolved)
    older: Path | None = None  # the file name cells had before pseudolabel sets were named

    @property
    def keyed(self) -> Path:
        """The cell's file when ``path`` holds the cell of other training settings (``--set
        training.lr=...`` and the like): the same name with the key's digest, so neither is lost."""
        return self.path.with_name(f"{self.path.stem}_key-{self.digest[:8]}{self.path.suffix}")
