"""Segment one or several classes of a query volume from one labelled support volume (no files).

The engine behind ``fewshotkit segment`` and the Python API, on arrays that are already
preprocessed (z-scored, Z x H x W). Per class, the support slices are chosen as in the protocol
(C chunks at 1/6, 1/2, 5/6 of the support's class slices) and the query range is estimated from
the support's by relative position (:func:`~fewshotkit.evaluation.query_range.estimated_query_range`)
unless given; with ``all_slices`` every slice is segmented.

Several classes share **one forward pass per query chunk** when the predictor allows it (an
N-way episode): the chunks split the union of the classes' ranges, chunk i's support is the union
of every class's chunk-i support slices with all classes' masks, each voxel takes the class of
the N-way argmax, and a class keeps only the slices of its own range. Otherwise (``joint=False``
or a method with ``multiway = False``) each class gets its own 1-way passes and a voxel claimed
by several classes goes to the most probable one. Slice presence and post-processing then act
on each class's mask (:mod:`fewshotkit.evaluation.postprocess`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from fewshotkit.core.errors import DataError, FewshotkitError
from fewshotkit.data.io.codes import smallest_unsigned
from fewshotkit.evaluation.options import InferenceOptions
from fewshotkit.evaluation.orientation import SEARCH, search_turns, turn
from fewshotkit.evaluation.support_slices import select_support
from fewshotkit.evaluation.query_range import assign_chunks, estimated_query_range
from fewshotkit.method.spec import check_orientation


@dataclass
class ClassSegment:
    """One segmented class: its label value, support slices per chunk and segmented query range."""

    value: int
    name: str
    support_slices: list[list[int]]
    query_range: tuple[int, int]
    dice: float | None = None  # percent, when the query's label is known


@dataclass
class VolumeSegmentation:
    """``labels`` (Z, H, W) holding the classes' values (uint8, or uint16 for values above 255);
    ``joint``: one pass per chunk for all."""

    labels: np.ndarray
    classes: list[ClassSegment]
    joint: bool
    support_turns: int = 0  # quarter turns the support was given (support_orientation="search")


def check_query_range(query_range: tuple[int, int], depth: int) -> None:
    """A query range (first, last slice) must lie in the query's slices 0..depth-1."""
    lo, hi = query_range
    if not 0 <= lo <= hi < depth:
        raise FewshotkitError(f"--query-range {lo}:{hi} is outside the query's slices 0..{depth - 1}")


def _plan(value: int, name: str, support_label: np.ndarray, depth: int, options: InferenceOptions,
          support_name: str) -> tuple[ClassSegment, np.ndarray]:
    """(the class's segment record, its chunk index per query slice (Z,), -1 = not segmented)."""
    zs = [int(z) for z in np.flatnonzero((support_label == value).any(axis=(1, 2)))]
    shots, chunks = options.shots, options.chunks
    if len(zs) < shots:
        raise DataError(f"{support_name} has {len(zs)} slice(s) of class {value}; --shots {shots} needs at least "
                        f"{shots}; give a support with more slices of the class or fewer shots")
    if options.query_range is not None:
        check_query_range(options.query_range, depth)
    lo, hi = options.query_range or estimated_query_range(zs, support_label.shape[0], depth)
    assignment = assign_chunks(depth, list(range(lo, hi + 1)), chunks, "full-volume" if options.all_slices else "roy",
                               options.chunk_rule)
    return ClassSegment(value, name, select_support(zs, chunks, shots), (lo, hi)), assignment


Plans = list[tuple[ClassSegment, np.ndarray]]


def segment_volume(
    predictor: Any,
    support_image: np.ndarray,
    support_label: np.ndarray,
    query_image: np.ndarray,
    classes: Sequence[int] | Mapping[int, str],
    *,
    options: InferenceOptions = InferenceOptions(),
    spacing: Sequence[float] | None = None,
    support_name: str = "the support label",
) -> VolumeSegmentation:
    """Segment ``classes`` (support label values, or value -> name) in ``query_image`` (Z, H, W).

    ``predictor``: a :class:`~fewshotkit.evaluation.inference.MethodPredictor` (or anything with
    its ``probabilities`` / ``class_probabilities`` / ``multiway``); ``support_image`` (Zs, H', W')
    float, ``support_label`` (Zs, H', W') int; support and query slices may differ in size when the
    predictor resizes them. ``options``: chunks and their rule, shots, query range, all slices, joint, the
    post-processing and the support orientation (``"search"`` first turns the support as the model
    finds most consistent with this query, :mod:`fewshotkit.evaluation.orientation`); a model's
    own values are filled in by :meth:`~fewshotkit.evaluation.options.InferenceOptions.for_spec`.
    ``spacing``: the query's (z, y, x) mm, for physical post-processing; ``support_name`` names
    the support label in error messages.
    """
    if not classes:
        raise FewshotkitError("segment: no class to segment")
    names = dict(classes) if isinstance(classes, Mapping) else {}
    depth, shape = query_image.shape[0], query_image.shape
    plans = [_plan(int(v), names.get(int(v), ""), support_label, depth, options, support_name) for v in classes]
    joint = options.joint and len(plans) > 1 and bool(getattr(predictor, "multiway", False))
    values = [p.value for p, _ in plans]
    labels, turns = _Labels(shape, values), 0
    cleanup = options.cleanup()

    def add(c: int, mask: np.ndarray, prob: np.ndarray) -> None:
        if cleanup:
            mask = cleanup(mask, prob, spacing, support_label == plans[c][0].value)
        labels.add(mask, prob, values[c])

    if check_orientation(options.orientation) == SEARCH or joint:  # every class's maps at once
        probs = np.zeros((len(plans), *shape), dtype=np.float32)
        masks = np.zeros((len(plans), *shape), dtype=bool)
        if check_orientation(options.orientation) == SEARCH:
            turns = _search(predictor, support_image, support_label, query_image, plans, probs if not joint else None)
            support_image, support_label = turn(support_image, turns), turn(support_label, turns)
        if joint:
            _joint_pass(predictor, support_image, support_label, query_image, plans, options, (probs, masks))
        else:  # the search's 1-way probabilities of the winning turn are the prediction
            np.greater(probs, 0.5, out=masks)
        for c in range(len(plans)):
            add(c, masks[c], probs[c])
    else:  # one class at a time: memory of one (Z, H, W) map, however many classes
        for c, (plan, own) in enumerate(plans):
            prob = np.zeros(shape, dtype=np.float32)
            for i, zs in enumerate(plan.support_slices):
                query_z = np.flatnonzero(own == i)
                if query_z.size:
                    prob[query_z] = predictor.probabilities(support_image[zs], support_label[zs] == plan.value,
                                                            query_image[query_z])
            add(c, prob > 0.5, prob)
    return VolumeSegmentation(labels.codes, [p for p, _ in plans], joint, turns)


def _search(predictor: Any, support_image: np.ndarray, support_label: np.ndarray, query_image: np.ndarray,
            plans: Plans, probs: np.ndarray | None) -> int:
    """The support's quarter turns most consistent with the query; with ``probs`` (N, Z, H, W), the
    1-way probabilities of the winning turn are written there."""
    where = [(c, zs, np.flatnonzero(own == i)) for c, (p, own) in enumerate(plans)
             for i, zs in enumerate(p.support_slices) if (own == i).any()]
    turns, found = search_turns(predictor, [(support_image[zs], support_label[zs] == plans[c][0].value,
                                             query_image[query_z]) for c, zs, query_z in where])
    if probs is not None:
        for (c, _, query_z), chunk in zip(where, found):
            probs[c, query_z] = chunk
    return turns


def _joint_pass(predictor: Any, support_image: np.ndarray, support_label: np.ndarray, query_image: np.ndarray,
                plans: Plans, options: InferenceOptions, out: tuple[np.ndarray, np.ndarray]) -> None:
    """One N-way pass per chunk of the classes' union range; fills (probabilities, masks), each (N, Z, H, W)."""
    probs, masks = out
    union = (min(p.query_range[0] for p, _ in plans), max(p.query_range[1] for p, _ in plans))
    assignment = assign_chunks(query_image.shape[0], list(range(union[0], union[1] + 1)), options.chunks,
                               "full-volume" if options.all_slices else "roy", options.chunk_rule)
    for i in range(options.chunks):
        query_z = np.flatnonzero(assignment == i)
        if not query_z.size:
            continue
        sup_z = sorted({z for p, _ in plans for z in p.support_slices[i]})
        sup_masks = np.stack([support_label[sup_z] == p.value for p, _ in plans], axis=1)  # (S, N, H, W)
        result = predictor.class_probabilities(support_image[sup_z], sup_masks, query_image[query_z])
        winner = result.argmax(axis=1)  # (Q, H, W) in 0..N
        for c in range(len(plans)):
            probs[c, query_z] = result[:, c + 1]
            masks[c, query_z] = winner == c + 1
    for c, (_, own) in enumerate(plans):
        masks[c, own < 0] = False  # a class keeps only its own range
        probs[c, own < 0] = 0.0


class _Labels:
    """One label map (Z, H, W) built a class at a time, in the smallest unsigned type that holds the
    class ``values``: a voxel two classes claim goes to the more probable, the earlier on a tie."""

    def __init__(self, shape: tuple[int, ...], values: Sequence[int]) -> None:
        self.codes = np.zeros(shape, dtype=smallest_unsigned(max(values)))
        self._best = np.full(shape, -1.0, dtype=np.float32)  # the probability of the class holding a voxel

    def add(self, mask: np.ndarray, prob: np.ndarray, value: int) -> None:
        """Class ``value``'s ``mask`` (Z, H, W) bool, with its probabilities (Z, H, W)."""
        take = mask & (prob > self._best)
        self._best[take] = prob[take]
        self.codes[take] = value
