"""The 1-way few-shot evaluation protocol of Roy et al. (2020), as used by SSL-ALPNet.

For every evaluated class and fold:

1. **Support slices.** Take the sorted list ``zs`` of the support scan's slices that contain the
   class (n = len(zs)). Chunk ``i`` (0 <= i < C) is served by the support slice at list position
   ``int(n * (2i + 1) / (2C))``, i.e. 1/6, 1/2 and 5/6 for C = 3. ``int`` truncates towards zero,
   exactly like the reference code (n = 10 gives positions 1, 5, 8).
   k-shot (``shots = k``): the k support slices whose list positions are nearest that position
   (ties go to the lower position), sorted by z. The support scan must hold at least k class slices.
2. **Query chunks.** In each query scan the slices from the first to the last slice containing the
   class (inclusive, gaps included) are split into C chunks the way ``np.array_split`` splits:
   contiguous runs whose lengths differ by at most one, the longer ones first
   (11 slices -> 4, 4, 3). Chunk i is segmented with support slice(s) i. ``chunk_rule`` selects
   SSL-ALPNet's cut (4, 3, 4) or Q-Net's (3, 4, 4) instead (:mod:`fewshotkit.evaluation.query_range`).
3. **Scoring.** ``roy``: only those slices are scored, so false positives outside the organ's
   z-range are never counted. ``estimated-range``: the query has no label, so the range of step 2
   is estimated from the support's class range by relative position, exactly as ``fewshotkit
   segment`` does it, and *every* slice is scored. ``full-volume``: every slice of the query scan
   is segmented and scored; slices below the range use chunk 0's support, slices above it chunk
   C-1's (see :mod:`fewshotkit.evaluation.query_range`).
   TP/FP/FN are summed over the scan's scored slices (3D Dice per scan); scores are averaged over
   query scans, then over classes.
4. **Post-processing** (optional, :mod:`fewshotkit.evaluation.postprocess`): slice presence and
   the post-processors act on each query scan's whole prediction before it is scored.

A query scan that does not contain the class is skipped (and listed in the results); a support
scan without the class, or with fewer class slices than shots, is a :class:`DataError`.

The protocol needs no model: any :data:`Predictor` callable works, which keeps it testable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol, cast

import numpy as np

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.evaluation.fold_scores import FoldScores
from fewshotkit.evaluation.metrics import confusion
from fewshotkit.evaluation.options import InferenceOptions
from fewshotkit.evaluation.orientation import SEARCH, require_probabilities, search_turns, turn
from fewshotkit.evaluation.protocol_config import ProtocolConfig
from fewshotkit.evaluation.query_range import PROTOCOLS, assign_chunks, plan_query, query_chunks
from fewshotkit.evaluation.support_slices import select_support, slices_with_class, support_plan, support_positions
from fewshotkit.method.spec import check_orientation

__all__ = ["PROTOCOLS", "FoldLike", "FoldScores", "PredictionSink", "Predictor", "ProtocolConfig", "StoreLike",
           "assign_chunks", "evaluate_fold", "query_chunks", "resolve_classes", "select_support", "support_positions"]

#: ``predict(support_images (S, H, W) float32, support_masks (S, H, W) bool,
#: query_images (Q, H, W) float32) -> foreground (Q, H, W) bool``
Predictor = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

#: ``sink(scan_id, class_name, prediction (Z, H, W) uint8)``: receives every query scan's
#: prediction (slices that were not segmented are 0).
PredictionSink = Callable[[str, str, np.ndarray], None]


class SoftPredictor(Protocol):
    """A predictor that also gives foreground probabilities (Q, H, W) float (for post-processing)."""

    def probabilities(self, support_images: np.ndarray, support_masks: np.ndarray,
                      query_images: np.ndarray) -> np.ndarray: ...


class StoreLike(Protocol):
    """What the protocol reads from a slice store (see :class:`fewshotkit.data.store.SliceStore`)."""

    classes: dict[int, str]

    def image(self, volume: str, z: int | None = None) -> np.ndarray: ...

    def label(self, volume: str, z: int | None = None) -> np.ndarray: ...

    def class_value(self, name_or_value: Any) -> int: ...


class FoldLike(Protocol):
    """What the protocol reads from a fold (read-only, so frozen dataclasses qualify)."""

    @property
    def index(self) -> int: ...

    @property
    def queries(self) -> tuple[str, ...]: ...

    @property
    def support(self) -> str: ...


def resolve_classes(store: StoreLike, classes: Iterable[Any] | None) -> list[tuple[int, str]]:
    """(value, name) of the classes to evaluate; all of the store's classes when None."""
    if classes is None:
        return sorted(store.classes.items())
    out = []
    for item in classes:
        value = store.class_value(item)
        out.append((value, store.classes[value]))
    return out


def _spacing(store: Any, scan: str) -> tuple[float, ...] | None:
    """The scan's voxel spacing (z, y, x) in mm when the store records it."""
    attrs = getattr(store, "volume_attrs", None)
    spacing = attrs(scan).get("spacing") if attrs is not None else None
    return tuple(float(s) for s in spacing) if spacing is not None else None


def evaluate_fold(
    store: StoreLike,
    fold: FoldLike,
    predictor: Predictor,
    *,
    classes: Iterable[Any] | None = None,
    protocol: str = "roy",
    options: InferenceOptions = InferenceOptions(),
    sink: PredictionSink | None = None,
    show_progress: bool = False,
) -> FoldScores:
    """Run one fold of ``protocol`` with ``predictor``; see the module docstring.

    ``options``: chunks and their rule, shots, the post-processing (a built one, or tables; None: none) and the
    support orientation. With post-processing that needs probabilities (slice presence) or
    ``support_orientation="search"`` (:mod:`fewshotkit.evaluation.orientation`: per query scan, the
    support turned as the model finds most consistent), ``predictor`` must have a
    ``probabilities(support_images, support_masks, query_images) -> (Q, H, W) float`` method; the
    foreground is then where the probability exceeds 0.5.
    """
    config = ProtocolConfig(protocol, options.chunks, options.shots, options.chunk_rule)
    cleanup = options.cleanup()
    soft = _soft(predictor, cleanup.needs_probabilities)
    search = check_orientation(options.orientation) == SEARCH
    if search:
        require_probabilities(predictor)
    wanted = resolve_classes(store, classes)
    support = (np.asarray(store.image(fold.support), dtype=np.float32), np.asarray(store.label(fold.support)))
    plan = support_plan(support[1], wanted, config.chunks, config.shots,
                        f"fold {fold.index}: support scan '{fold.support}'")
    scores = FoldScores(fold.index, fold.support, tuple(fold.queries), [n for _, n in wanted],
                        support_slices=plan[0])
    steps: Iterable[tuple[str, int, str]] = [(scan, value, name) for scan in fold.queries for value, name in wanted]
    if show_progress:
        from fewshotkit.core.console import track

        steps = track(steps, f"fold {fold.index}", total=len(fold.queries) * len(wanted))
    query: _Query | None = None
    for scan, value, name in steps:
        if query is None or query.scan != scan:
            query = _Query.load(store, scan, predictor, support, wanted, plan, config, search)
            if search:
                scores.support_turns[scan] = query.turns
        zs = slices_with_class(query.label, value)
        if not zs:
            scores.skipped.append((scan, name))
            continue
        assignment, scored = plan_query(config.name, query.image.shape[0], zs, plan[1][name],
                                        support[0].shape[0], config.chunks, config.chunk_rule)
        prediction, probabilities = _Episode(predictor, query.support_image, query.support_label == value,
                                             query.image, soft).predict(assignment, plan[0][name], query.found(value))
        if cleanup:
            prediction = cleanup(prediction, probabilities, _spacing(store, scan), query.support_label == value)
        scores.counts.setdefault(name, {})[scan] = confusion(prediction[scored], (query.label == value)[scored])
        if sink is not None:
            sink(scan, name, prediction.astype(np.uint8))
    return scores


@dataclass
class _Query:
    """One query scan's image and label (Z, H, W), the support image and label (Zs, Hs, Ws) as
    turned for it (``turns`` quarter turns), and the probabilities the orientation search made:
    (class value, chunk) -> (Q, H, W) float."""

    scan: str
    image: np.ndarray
    label: np.ndarray
    support_image: np.ndarray
    support_label: np.ndarray
    turns: int
    searched: dict[tuple[int, int], np.ndarray]

    @classmethod
    def load(cls, store: StoreLike, scan: str, predictor: Any, support: tuple[np.ndarray, np.ndarray],
             wanted: list[tuple[int, str]], plan: tuple[dict[str, list[list[int]]], dict[str, list[int]]],
             config: ProtocolConfig, search: bool) -> "_Query":
        """Read ``scan`` and, with ``search``, turn the support as the model finds most consistent."""
        image, label = np.asarray(store.image(scan), dtype=np.float32), np.asarray(store.label(scan))
        k, searched = _support_turns(predictor, (image, label), support, wanted, plan, config) if search else (0, {})
        turned = (turn(support[0], k), turn(support[1], k)) if k else support
        return cls(scan, image, label, turned[0], turned[1], k, searched)

    def found(self, value: int) -> dict[int, np.ndarray]:
        """Chunk -> the search's probabilities (Q, H, W) for class ``value``."""
        return {i: p for (v, i), p in self.searched.items() if v == value}


def _soft(predictor: Any, needs_probabilities: bool) -> bool:
    """Whether to predict probabilities (for slice presence); a predictor without them cannot."""
    if needs_probabilities and not hasattr(predictor, "probabilities"):
        raise FewshotkitError("drop_absent needs a predictor with a probabilities() method; turn it off "
                              "(--set drop_absent=null)")
    return needs_probabilities


@dataclass
class _Episode:
    """One query scan and one class: the support (S, H, W) image and class mask, the query (Z, H, W)."""

    predictor: Any
    support_image: np.ndarray
    support_mask: np.ndarray
    image: np.ndarray
    soft: bool  # predict probabilities (for slice presence), thresholded at 0.5

    def predict(self, assignment: np.ndarray, support_z: list[list[int]],
                found: dict[int, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """(prediction (Z, H, W) bool, probabilities (Z, H, W) float32 when soft) of every chunk:
        query slices with ``assignment == i`` from support slices ``support_z[i]``; ``found``: chunk ->
        probabilities the orientation search already made."""
        prediction = np.zeros(self.image.shape, dtype=bool)
        probabilities = np.zeros(self.image.shape, dtype=np.float32) if self.soft else None
        for i, support_slices in enumerate(support_z):
            query_z = np.flatnonzero(assignment == i)
            if query_z.size == 0:
                continue
            args = (self.support_image[support_slices], self.support_mask[support_slices], self.image[query_z])
            if i in found:
                out = found[i] if self.soft else found[i] > 0.5
            elif self.soft:
                out = np.asarray(cast(SoftPredictor, self.predictor).probabilities(*args))
            else:
                out = np.asarray(self.predictor(*args))
            if out.shape != (query_z.size, *self.image.shape[1:]):
                raise FewshotkitError(
                    f"predictor returned shape {out.shape} for {query_z.size} query slices, expected "
                    f"{(query_z.size, *self.image.shape[1:])}: it must return one mask per query slice, at its size"
                )
            if probabilities is not None:
                probabilities[query_z] = out
                out = out > 0.5
            prediction[query_z] = out.astype(bool)
        return prediction, probabilities


def _support_turns(predictor: Any, query: tuple[np.ndarray, np.ndarray], support: tuple[np.ndarray, np.ndarray],
                   wanted: list[tuple[int, str]], plan: tuple[dict[str, list[list[int]]], dict[str, list[int]]],
                   config: ProtocolConfig) -> tuple[int, dict[tuple[int, int], np.ndarray]]:
    """The support's quarter turn for one query scan, over the chunks of every class it holds, and
    the query's probabilities per (class value, chunk) with the support so turned.

    Under ``estimated-range`` every wanted class takes part (its range comes from the support, so
    the turn never depends on the query's label); the other protocols place the chunks on the
    query's class slices, so a class the query lacks has none."""
    (image, label), (support_image, support_label), (support_z, support_range) = query, support, plan
    chunks, keys = [], []
    for value, name in wanted:
        zs = slices_with_class(label, value)
        if not zs and config.name != "estimated-range":
            continue
        assignment, _ = plan_query(config.name, image.shape[0], zs, support_range[name], support_image.shape[0],
                                   config.chunks, config.chunk_rule)
        for i, slices in enumerate(support_z[name]):
            query_z = np.flatnonzero(assignment == i)
            if query_z.size:
                chunks.append((support_image[slices], support_label[slices] == value, image[query_z]))
                keys.append((value, i))
    k, probabilities = search_turns(predictor, chunks)
    return k, dict(zip(keys, probabilities))
