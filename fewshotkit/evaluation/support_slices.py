"""Which support slices serve each chunk of the Roy et al. protocol (step 1 of
:mod:`fewshotkit.evaluation.protocol`): the slice at list position ``int(n * (2i + 1) / (2C))``
of the support's n class slices, or for k shots the k nearest that position."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from fewshotkit.core.errors import DataError


def support_positions(n_slices: int, chunks: int = 3) -> list[int]:
    """List positions (into the sorted class slices) of each chunk's support slice."""
    if n_slices < 1:
        raise ValueError("the support scan has no slice with the class")
    if chunks < 1:
        raise ValueError(f"chunks (--chunks) must be >= 1, got {chunks}")
    return [int(n_slices * (2 * i + 1) / (2 * chunks)) for i in range(chunks)]


def select_support(class_slices: Sequence[int], chunks: int = 3, shots: int = 1) -> list[list[int]]:
    """Support z indices per chunk: ``chunks`` lists of ``shots`` slice indices each."""
    zs = sorted(int(z) for z in class_slices)
    n = len(zs)
    if shots > n:
        raise ValueError(f"{shots}-shot support needs at least {shots} class slices, the scan has {n}")
    chosen = []
    for centre in support_positions(n, chunks):
        nearest = sorted(range(n), key=lambda p: (abs(p - centre), p))[:shots]
        chosen.append(sorted(zs[p] for p in nearest))
    return chosen


def slices_with_class(label: np.ndarray, value: int) -> list[int]:
    """The z indices of the slices of ``label`` (Z, H, W) that hold ``value``, ascending."""
    return [int(z) for z in np.flatnonzero((label == value).any(axis=(1, 2)))]


def support_plan(support_label: np.ndarray, wanted: list[tuple[int, str]], chunks: int, shots: int,
                 where: str) -> tuple[dict[str, list[list[int]]], dict[str, list[int]]]:
    """(class name -> support slices per chunk, class name -> the support's class slices) of the
    support's label map (Z, H, W) for each wanted (value, name); ``where`` starts the error raised
    when a class has fewer slices than ``shots``."""
    support_z: dict[str, list[list[int]]] = {}
    support_range: dict[str, list[int]] = {}
    for value, name in wanted:
        zs = support_range[name] = slices_with_class(support_label, value)
        if len(zs) < shots:
            raise DataError(
                f"{where} has {len(zs)} slice(s) with class '{name}', {shots}-shot needs at least {shots}; "
                "choose another fold or fewer shots"
            )
        support_z[name] = select_support(zs, chunks, shots)
    return support_z, support_range
