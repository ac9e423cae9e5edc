"""One fold's protocol result: 3D counts per class and query scan, and the metrics over them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fewshotkit.evaluation.metrics import Counts


@dataclass
class FoldScores:
    """3D counts per class and query scan of one fold; metrics in percent."""

    fold: int
    support: str
    queries: tuple[str, ...]
    classes: list[str]
    counts: dict[str, dict[str, Counts]] = field(default_factory=dict)
    support_slices: dict[str, list[list[int]]] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    #: query scan (in a bench's setting 2, "scan (class group)") -> quarter turns (orientation search)
    support_turns: dict[str, int] = field(default_factory=dict)

    def per_class(self, metric: str = "dice") -> dict[str, float]:
        """Class -> metric averaged over the query scans that contain the class (percent)."""
        out = {}
        for name in self.classes:
            values = [100.0 * getattr(c, metric) for c in self.counts.get(name, {}).values()]
            out[name] = float(np.mean(values)) if values else float("nan")
        return out

    def mean(self, metric: str = "dice") -> float:
        """Metric averaged over scans, then over classes (percent)."""
        values = [v for v in self.per_class(metric).values() if not np.isnan(v)]
        return float(np.mean(values)) if values else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {
            "fold": self.fold,
            "support": self.support,
            "queries": list(self.queries),
            "support_slices": self.support_slices,
            **({"support_turns": self.support_turns} if self.support_turns else {}),
            "per_scan": {
                name: {scan: c.to_json() for scan, c in scans.items()} for name, scans in self.counts.items()
            },
            "per_class": {m: self.per_class(m) for m in ("dice", "precision", "recall")},
            "mean": {m: self.mean(m) for m in ("dice", "precision", "recall")},
            "skipped": [list(s) for s in self.skipped],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "FoldScores":
        counts = {
            name: {scan: Counts(int(c["tp"]), int(c["fp"]), int(c["fn"])) for scan, c in scans.items()}
            for name, scans in data["per_scan"].items()
        }
        return cls(
            fold=int(data["fold"]),
            support=data["support"],
            queries=tuple(data["queries"]),
            classes=list(data["per_class"]["dice"]),
            counts=counts,
            support_slices=data.get("support_slices", {}),
            skipped=[tuple(s) for s in data.get("skipped", [])],
            support_turns={scan: int(k) for scan, k in data.get("support_turns", {}).items()},
        )
