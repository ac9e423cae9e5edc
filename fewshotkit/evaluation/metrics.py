"""Overlap metrics from confusion counts (numpy only).

A 3D score sums true positives, false positives and false negatives over all scored slices of a
scan *before* dividing, so a scan is one sample whatever its number of slices.

Conventions for empty denominators (both masks empty, or nothing predicted):

- Dice ``2TP / (2TP + FP + FN)`` is 1 when prediction and ground truth are both empty;
- precision ``TP / (TP + FP)`` is 1 when nothing is predicted and nothing was missed, else 0;
- recall ``TP / (TP + FN)`` is 1 when the ground truth is empty and nothing is predicted, else 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Counts:
    """Voxel counts of one binary comparison (prediction vs. ground truth)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def dice(self) -> float:
        denominator = 2 * self.tp + self.fp + self.fn
        return 1.0 if denominator == 0 else 2.0 * self.tp / denominator

    @property
    def precision(self) -> float:
        if self.tp + self.fp == 0:
            return 1.0 if self.fn == 0 else 0.0
        return self.tp / (self.tp + self.fp)

    @property
    def recall(self) -> float:
        if self.tp + self.fn == 0:
            return 1.0 if self.fp == 0 else 0.0
        return self.tp / (self.tp + self.fn)

    def to_json(self) -> dict[str, float | int]:
        """Counts plus the three metrics in percent."""
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "dice": 100.0 * self.dice,
            "precision": 100.0 * self.precision,
            "recall": 100.0 * self.recall,
        }


def confusion(prediction: np.ndarray, truth: np.ndarray) -> Counts:
    """Counts of two boolean arrays of the same shape (any number of dimensions)."""
    prediction = np.asarray(prediction, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    if prediction.shape != truth.shape:
        raise ValueError(f"prediction shape {prediction.shape} differs from ground truth {truth.shape}")
    tp = int(np.count_nonzero(prediction & truth))
    return Counts(tp=tp, fp=int(np.count_nonzero(prediction)) - tp, fn=int(np.count_nonzero(truth)) - tp)
