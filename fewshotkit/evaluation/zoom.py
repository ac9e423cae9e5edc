"""Segment inside the support's box: the support and the query slices cropped to one window.

A structure that fills a small part of the field of view (the heart in a cardiac short-axis
slice: ~28 % of its side in ACDC) reaches the model's 128 px input as a few dozen pixels and its
feature grid as a few cells. With ``support_zoom = MARGIN`` every prediction is made inside one
square window instead: the support mask's bounding box (over the support slices of the chunk),
grown by ``MARGIN`` x the slice's longer side on each side and clipped to the slice. The support
and the query slices are cropped to that window, resized to the model's input as usual, and the
query's probabilities are pasted back; outside the window the query is background.

It relies on the query's structure lying near the support's position in the slice (true of
aligned scans and centred acquisitions); what lies outside the window is not found. No query
label is read. The protocol's own predictions and the orientation search's round trip
(:mod:`fewshotkit.evaluation.orientation`) both go through the window.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: (top, bottom, left, right) as fractions of a slice's height and width
Window = tuple[float, float, float, float]


def zoom_window(masks: np.ndarray, margin: float) -> Window | None:
    """The window around the foreground of ``masks`` (..., H, W) as fractions of the slice
    (top, bottom, left, right), or None when the masks are empty.

    A square of side (the box's longer side + 2 x ``margin`` x max(H, W)) pixels, centred on the box
    and shifted (then clipped) to lie inside the slice. :func:`window_slices` rounds its ends to whole
    pixels (a side may gain or lose one), and a slice of another size or shape takes the same fractions.
    """
    H, W = masks.shape[-2:]
    found = np.any(np.asarray(masks).reshape(-1, H, W), axis=0)
    if not found.any():
        return None
    rows, cols = np.nonzero(found.any(axis=1))[0], np.nonzero(found.any(axis=0))[0]
    side = max(rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]) + 2 * margin * max(H, W)

    def span(low: int, high: int, length: int) -> tuple[float, float]:
        size = min(side, length)
        start = min(max((low + high) / 2 - size / 2, 0.0), length - size)
        return start / length, (start + size) / length

    return (*span(rows[0], rows[-1] + 1, H), *span(cols[0], cols[-1] + 1, W))


def window_slices(window: Window, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """The (rows, columns) of ``window`` in a slice of ``shape`` (..., H, W); at least one pixel each."""
    H, W = shape[-2:]
    top, bottom, left, right = window

    def pixels(a: float, b: float, n: int) -> slice:
        start = min(int(round(a * n)), n - 1)
        return slice(start, max(int(round(b * n)), start + 1))

    return pixels(top, bottom, H), pixels(left, right, W)


class SupportZoom:
    """Wraps a predictor (``probabilities`` / ``class_probabilities`` over (S, H, W) supports and
    (Q, H, W) queries) so that each call predicts inside the support's window only."""

    def __init__(self, predictor: Any, margin: float) -> None:
        self.predictor = predictor
        self.margin = float(margin)

    @property
    def multiway(self) -> bool:
        return bool(getattr(self.predictor, "multiway", False))  # as segment_volume reads a bare predictor

    def _inside(self, predict: Any, support_images: np.ndarray, support_masks: np.ndarray, query_images: np.ndarray,
                background: bool) -> np.ndarray:
        """``predict`` on the window's crops, pasted into slices of the query's size: (Q, [C,] H, W);
        outside the window 0, or 1 in channel 0 (the background) when ``background``."""
        window = zoom_window(support_masks, self.margin)
        if window is None:
            return np.asarray(predict(support_images, support_masks, query_images))
        rows, cols = window_slices(window, support_images.shape)
        q_rows, q_cols = window_slices(window, query_images.shape)
        inner = np.asarray(predict(support_images[:, rows, cols], support_masks[..., rows, cols],
                                   query_images[:, q_rows, q_cols]))
        out = np.zeros((*inner.shape[:-2], *query_images.shape[-2:]), dtype=np.float32)
        if background:
            out[:, 0] = 1.0
        out[..., q_rows, q_cols] = inner
        return out

    def class_probabilities(self, support_images: np.ndarray, support_masks: np.ndarray,
                            query_images: np.ndarray) -> np.ndarray:
        """N-way softmax (Q, N + 1, H, W), background first; ``support_masks`` (S, N, H, W)."""
        return self._inside(self.predictor.class_probabilities, support_images, support_masks, query_images, True)

    def probabilities(self, support_images: np.ndarray, support_masks: np.ndarray,
                      query_images: np.ndarray) -> np.ndarray:
        """Foreground probability (Q, H, W) of a 1-way episode; 0 outside the window."""
        return self._inside(self.predictor.probabilities, support_images, support_masks, query_images, False)

    def __call__(self, support_images: np.ndarray, support_masks: np.ndarray, query_images: np.ndarray) -> np.ndarray:
        return self.probabilities(support_images, support_masks, query_images) > 0.5
