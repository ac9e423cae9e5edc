"""Which protocol a fold is scored with (:class:`ProtocolConfig`: name, chunks, shots, how the query's
range is cut into chunks), checked where it is built and recorded with every result; what each
part means is :mod:`fewshotkit.evaluation.protocol`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.evaluation.query_range import CHUNK_RULES, PROTOCOLS

_CUTS = {
    "even": "first..last class slice split like np.array_split into C runs",
    "ssl-alpnet": "first..last class slice, slice z in chunk min((z - z0) // ((z1 - z0) / C), C - 1)",
    "qnet": "the class slices (every slice of an estimated range) cut at np.linspace(0, n, C + 1) truncated",
}
_SCORED = {
    "roy": "class z-range only (from the query's ground truth)",
    "estimated-range": "every slice; segmented: the support's class range mapped to the query by relative position",
    "full-volume": "every slice",
}


@dataclass(frozen=True)
class ProtocolConfig:
    """Which protocol: ``name`` roy | estimated-range | full-volume, C = ``chunks``, k = ``shots``,
    the query range cut into chunks by ``chunk_rule``."""

    name: str = "roy"
    chunks: int = 3
    shots: int = 1
    chunk_rule: str = "even"

    def __post_init__(self) -> None:
        if self.name not in PROTOCOLS:
            raise FewshotkitError(f"--protocol: unknown protocol '{self.name}'; use one of {', '.join(PROTOCOLS)}")
        if self.chunks < 1:
            raise FewshotkitError(f"--chunks must be >= 1, got {self.chunks}")
        if self.shots < 1:
            raise FewshotkitError(f"--shots must be >= 1, got {self.shots}")
        if self.chunk_rule not in CHUNK_RULES:
            raise FewshotkitError(f"--chunk-rule: unknown rule '{self.chunk_rule}'; "
                                  f"use one of {', '.join(CHUNK_RULES)}")

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "chunks": self.chunks,
            "shots": self.shots,
            "support_position": ("sorted class slices zs, chunk i -> zs[int(n*(2i+1)/(2C))]; "
                                 "k-shot: k nearest positions"),
            "chunk_rule": self.chunk_rule,
            "query_chunks": _CUTS[self.chunk_rule],
            "scored_slices": _SCORED[self.name],
            "dice": "3D per query scan, mean over scans, then over classes, in percent",
        }
