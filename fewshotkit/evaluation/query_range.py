"""Which slices of a query scan are segmented with which support chunk, and which are scored.

The three protocols differ only here:

- ``roy``: the query's own ground truth gives the class's z-range (first..last class slice), which
  is split into C chunks; only those slices are segmented and scored. An oracle: a new scan has
  no label.
- ``estimated-range``: the z-range is *estimated* from the support scan by relative position
  (:func:`estimate_range`, exactly what ``fewshotkit segment`` does), split into C chunks and
  segmented; every slice of the scan is scored, so false positives anywhere count and missed
  organ slices outside the estimate are false negatives.
- ``full-volume``: every slice is segmented and scored; slices below the true range use chunk 0,
  slices above it chunk C - 1.

How a range is cut into C chunks (``chunk_rule``) differs between the field's public codes
(11 slices, C = 3):

- ``even`` (the default): first..last split like ``np.array_split``, the longer runs first: 4, 4, 3;
- ``ssl-alpnet``: SSL-ALPNet's test code, slice z of z0..z1 in chunk
  ``min((z - z0) // ((z1 - z0) / C), C - 1)``: 4, 3, 4;
- ``qnet``: the test scripts of Q-Net, RPT, GMRD and ADNet's EP1 protocol, which keep only the n
  slices showing the class and cut them at ``np.linspace(0, n, C + 1)`` truncated: 3, 4, 4. A slice inside the
  range that does not show the class is not segmented (nor scored under ``roy``); under
  ``full-volume`` it takes the chunk of the class slice before it. Without the query's label
  (``estimated-range``, ``segment``) every slice of the range counts.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

PROTOCOLS = ("roy", "estimated-range", "full-volume")
#: how a query's range is cut into chunks (module docstring)
CHUNK_RULES = ("even", "ssl-alpnet", "qnet")


def estimate_range(support_range: tuple[int, int], support_depth: int, query_depth: int) -> tuple[int, int]:
    """Map a z-range of the support scan to the same relative position in the query scan.

    ``[z0, z1]`` of a support of depth Zs -> ``[round(z0 (Zq-1)/(Zs-1)), round(z1 (Zq-1)/(Zs-1))]``,
    clipped to the query's slices 0..Zq-1. Halves round up, computed in integers: Python's
    ``round`` sends halves to the even neighbour, so two support ranges of one length could map
    to query ranges of different lengths, and a float product can land a hair off the half.
    """
    scale_num, scale_den = query_depth - 1, max(support_depth - 1, 1)

    def mapped(z: int) -> int:
        return max(0, min((2 * z * scale_num + scale_den) // (2 * scale_den), query_depth - 1))

    return mapped(int(support_range[0])), mapped(int(support_range[1]))


def estimated_query_range(support_class_slices: Sequence[int], support_depth: int, query_depth: int) -> tuple[int, int]:
    """The query z-range of a class estimated from the support's class slices (any order)."""
    zs = sorted(int(z) for z in support_class_slices)
    if not zs:
        raise ValueError("the support scan has no slice with the class")
    return estimate_range((zs[0], zs[-1]), support_depth, query_depth)


def query_chunks(class_slices: Sequence[int], chunks: int = 3, rule: str = "even") -> list[np.ndarray]:
    """The slices of each of ``chunks`` chunks (C arrays of z, ascending) of the range of
    ``class_slices`` cut by ``rule`` (:data:`CHUNK_RULES`, module docstring)."""
    zs = np.asarray(sorted(class_slices), dtype=np.int64)
    if zs.size == 0:
        raise ValueError("the query scan has no slice with the class")
    if rule == "qnet":
        cuts = np.linspace(0, zs.size, chunks + 1).astype(np.int64)
        return [zs[cuts[i]:cuts[i + 1]] for i in range(chunks)]
    span = np.arange(zs[0], zs[-1] + 1)
    if rule == "ssl-alpnet":
        width = (zs[-1] - zs[0]) / chunks
        # (z - z0) // width as Python floats divide: floor((z - z0) / width) rounds some quotients up
        # to a whole number first (11 slices, C = 6), and SSL-ALPNet's code floor-divides
        index = np.zeros(span.size, dtype=np.int64) if width == 0 else np.minimum(
            ((span - zs[0]) // width).astype(np.int64), chunks - 1)
        return [span[index == i] for i in range(chunks)]
    if rule != "even":
        raise ValueError(f"unknown chunk rule '{rule}'; use one of {', '.join(CHUNK_RULES)}")
    return list(np.array_split(span, chunks))


def assign_chunks(depth: int, class_slices: Sequence[int], chunks: int = 3, protocol: str = "roy",
                  rule: str = "even") -> np.ndarray:
    """Chunk index (Z,) per slice of a scan of ``depth`` slices over the range of ``class_slices``.

    -1 marks slices that are not segmented; with ``protocol="full-volume"`` slices below the range
    get chunk 0, slices above it chunk C - 1 and a slice inside it that ``rule`` leaves out the
    chunk of the slice before it, so every slice is segmented.
    """
    assignment = np.full(depth, -1, dtype=np.int64)
    for i, run in enumerate(query_chunks(class_slices, chunks, rule)):
        assignment[run] = i
    if protocol == "full-volume":
        first, last = min(class_slices), max(class_slices)
        assignment[:first] = 0
        assignment[last + 1 :] = chunks - 1
        for z in range(first + 1, last):
            if assignment[z] < 0:
                assignment[z] = assignment[z - 1]
    return assignment


def plan_query(protocol: str, depth: int, truth_slices: Sequence[int], support_slices: Sequence[int],
               support_depth: int, chunks: int = 3, rule: str = "even") -> tuple[np.ndarray, np.ndarray]:
    """(chunk index (Z,) with -1 = not segmented, scored (Z,) bool) for one query scan and class.

    ``truth_slices``: the query's class slices (ground truth); ``support_slices``: the support's;
    ``rule``: how the range is cut into chunks (:data:`CHUNK_RULES`).
    """
    if protocol == "estimated-range":
        lo, hi = estimated_query_range(support_slices, support_depth, depth)
        return assign_chunks(depth, list(range(lo, hi + 1)), chunks, "roy", rule), np.ones(depth, dtype=bool)
    assignment = assign_chunks(depth, truth_slices, chunks, protocol, rule)
    return assignment, (assignment >= 0) if protocol == "roy" else np.ones(depth, dtype=bool)
