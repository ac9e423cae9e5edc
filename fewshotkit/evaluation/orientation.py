"""Label-free choice of the support's in-plane orientation for one query scan (cycle consistency).

A support scan lying in another in-plane orientation than the query (cardiac short-axis cine is
planned per patient, so the heart may sit turned by 90 degrees from one scan to the next) fails
however good the model is (ACDC fold 3's support, see docs/results.md). With
``support_orientation = "search"`` each query scan gets the quarter turn of the support that the
model itself finds most consistent, without any query label (the Roy and full-volume protocols
place the chunks on the query's class slices, as they do for the prediction; ``estimated-range``
and ``segment`` take them from the support alone):

1. for each turn k in 0, 90, 180, 270 degrees (counter-clockwise, ``np.rot90`` over (H, W)), the
   model segments the query's slices from the turned support slices, chunk by chunk as usual;
2. those query slices and their predicted masks then serve as a k-shot support to segment the
   turned support slice back; the Dice of that back-prediction with the support's own mask
   scores the turn;
3. the turn with the highest score summed over the scan's classes and chunks wins (ties: the
   smaller turn, so an unturned support stays unturned).

It costs about eight forward passes per chunk instead of one (the protocol and a class-by-class
``segment`` reuse the winning turn's; a joint N-way ``segment`` predicts once more, its softmax
being over all classes) and can turn a support wrongly where orientations agree (see docs/results.md),
so it is off by default
(``"as-is"``); the choice is recorded per query scan (``support_turns`` in the results).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.evaluation.metrics import confusion

SEARCH = "search"

#: (support images (S, H, W), support masks (S, H, W) bool, query images (Q, H', W')) of one chunk
Chunk = tuple[np.ndarray, np.ndarray, np.ndarray]


def turn(array: np.ndarray, quarter_turns: int) -> np.ndarray:
    """``array`` (..., H, W) turned by ``quarter_turns`` x 90 degrees counter-clockwise (a copy)."""
    return np.ascontiguousarray(np.rot90(array, quarter_turns, axes=(-2, -1)))


def _round_trip(predictor: Any, support_images: np.ndarray, support_masks: np.ndarray,
                query_images: np.ndarray) -> tuple[float, np.ndarray]:
    """(the cycle score, the query's foreground probabilities (Q, H', W') from this support)."""
    probabilities = np.asarray(predictor.probabilities(support_images, support_masks, query_images))
    found = probabilities > 0.5
    back = _back_prediction(predictor, query_images, found, support_images)
    if back is None:
        return 0.0, probabilities
    truth = np.asarray(support_masks, dtype=bool)
    score = confusion(back, truth).dice if truth.any() else 0.0  # an empty support mask backs no turn
    return score, probabilities


def _back_prediction(predictor: Any, query_images: np.ndarray, found: np.ndarray,
                     support_images: np.ndarray) -> np.ndarray | None:
    """The support slices (S, H, W) segmented back from the query slices where the model found the
    structure (``found``: (Q, H', W') bool), or None where it found it nowhere.

    A method may refuse a support mask that is too small for it (RPT with more regions than
    foreground pixels); a predicted mask can be that small, so a refused back-prediction is tried
    again without its smallest predicted slice, and is None when it refuses them all (the same
    method took the real support, so the refusal is about the predicted masks, not its settings).
    """
    sizes = found.sum(axis=(1, 2))
    order = [int(q) for q in np.argsort(-sizes, kind="stable") if sizes[q] > 0]  # largest first
    if not order:
        return None
    while True:
        keep = np.zeros(len(found), dtype=bool)
        keep[order] = True
        try:
            return np.asarray(predictor.probabilities(query_images[keep], found[keep], support_images)) > 0.5
        except FewshotkitError:
            if len(order) == 1:
                return None
            order.pop()


def require_probabilities(predictor: Any) -> None:
    """A one-line error unless ``predictor`` gives foreground probabilities, as the search needs."""
    if not hasattr(predictor, "probabilities"):
        raise FewshotkitError("support_orientation='search' needs a predictor with a probabilities() method; "
                              "give one, or keep the support as it is (--set support_orientation=as-is)")


def search_turns(predictor: Any, chunks: Sequence[Chunk]) -> tuple[int, list[np.ndarray]]:
    """(the quarter turn (0-3) of the support that scores best over ``chunks``, the query's foreground
    probabilities of each chunk with the support so turned), so the caller need not predict again."""
    require_probabilities(predictor)
    trips = [[_round_trip(predictor, turn(images, k), turn(masks, k), queries) for images, masks, queries in chunks]
             for k in range(4)]
    best = int(np.argmax([sum(score for score, _ in trip) for trip in trips]))
    return best, [probabilities for _, probabilities in trips[best]]
