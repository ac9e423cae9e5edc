"""One frame for a support scan and a query scan: the same orientation, pixel size and canvas.

The model resizes every slice to its input size and compares support and query features cell by
cell, so both scans must show the anatomy at the same scale and in the same voxel order. Scans
from different sources do not: a query stored LPS against an LAS support, or with twice the
support's field of view, reaches the model mirrored or at half the size (on CHAOS-T2 fold 0,
liver: 69.10 Dice as distributed, 0.00 re-saved in RPI order, 23.38 padded to twice the field of
view; docs/postprocessing.md). :func:`common_frame` gives each scan the geometry ops of
:mod:`fewshotkit.data.store.geometry` that bring it to the target axis codes, the support's in-plane
pixel size, and one square canvas that holds both scans whole (each centre-padded to the largest
extent: nothing is cropped, nothing stretched); predictions go back to the query's own grid through
the inverse ops.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from fewshotkit.data.store.axes import Reorientation, reorientation
from fewshotkit.data.store.geometry import apply_inplane, invert_inplane

#: in-plane pixel sizes closer than this (relative) count as equal: no resampling
PIXEL_TOLERANCE = 0.02
#: pixel sizes further apart than this factor are taken for a header error: no resampling
MAX_RATIO = 8.0


@dataclass(frozen=True)
class ScanFrame:
    """How one scan's (Z, H, W) arrays go into the common frame and back."""

    reorientation: Reorientation
    ops: list[dict[str, Any]]  # geometry ops, scan -> frame (reorient, resize, crop_pad)
    spacing: tuple[float, float, float]  # (z, y, x) mm in the frame
    source_pixel: tuple[float, float]  # (y, x) mm of the scan, in the frame's orientation
    canvas: tuple[int, int] | None = None  # (H, W) the scan was padded to, if it was

    def apply(self, zhw: np.ndarray, *, is_label: bool = False) -> np.ndarray:
        return apply_inplane(zhw, self.ops, is_label=is_label) if self.ops else zhw

    def undo(self, zhw: np.ndarray) -> np.ndarray:
        """A label-like array of the frame back on the scan's grid (nearest)."""
        return invert_inplane(zhw, self.ops) if self.ops else zhw

    @property
    def resampled(self) -> bool:
        return any(op["op"] == "resize" for op in self.ops)



def _padded(move: Reorientation, ops: list[dict[str, Any]], shape_hw: Sequence[int], canvas: tuple[int, int],
            spacing: tuple[float, float, float], source_pixel: tuple[float, float]) -> ScanFrame:
    """The frame of a scan of in-plane ``shape_hw`` (after ``ops``), centre-padded to ``canvas``."""
    if tuple(shape_hw) == canvas:
        return ScanFrame(move, ops, spacing, source_pixel)
    pads = [[(c - n) // 2, c - n - (c - n) // 2] for n, c in zip(shape_hw, canvas)]
    return ScanFrame(move, [*ops, {"op": "crop_pad", "pads": pads}], spacing, source_pixel, canvas)


def _oriented(shape: Sequence[int], affine: np.ndarray, spacing: Sequence[float],
              target: str) -> tuple[Reorientation, list[dict[str, Any]], tuple[int, int, int], tuple[float, float, float]]:
    move = reorientation(affine, target)
    ops: list[dict[str, Any]] = [] if move.identity else [{"op": "reorient", "from": move.source, "to": move.target}]
    z, y, x = (float(v) for v in spacing)
    return move, ops, move.shape(tuple(shape)), move.spacing((z, y, x))


def common_frame(support_shape: Sequence[int], support_affine: np.ndarray, support_spacing: Sequence[float],
                 query_shape: Sequence[int], query_affine: np.ndarray, query_spacing: Sequence[float],
                 target: str) -> tuple[ScanFrame, ScanFrame]:
    """The (support, query) frames for scans of (Z, H, W) shapes, affines and (z, y, x) mm spacings."""
    s_move, s_ops, s_shape, s_spacing = _oriented(support_shape, support_affine, support_spacing, target)
    q_move, q_ops, q_shape, q_spacing = _oriented(query_shape, query_affine, query_spacing, target)
    (h, w), (py, px) = q_shape[1:], q_spacing[1:]
    ratios = (py / s_spacing[1], px / s_spacing[2]) if min(py, px, *s_spacing[1:]) > 0 else (0.0, 0.0)
    if any(abs(r - 1) > PIXEL_TOLERANCE for r in ratios):  # the query at the support's pixel size
        if not all(1 / MAX_RATIO <= r <= MAX_RATIO for r in ratios):
            warnings.warn(f"pixel sizes {py:g} x {px:g} mm (query) and {s_spacing[1]:g} x {s_spacing[2]:g} mm "
                          "(support) are too far apart to be right (check the headers' units): the query is not "
                          "resampled to the support's", RuntimeWarning, stacklevel=3)
        else:
            h, w = max(1, round(q_shape[1] * ratios[0])), max(1, round(q_shape[2] * ratios[1]))
            q_ops.append({"op": "resize", "from": [q_shape[1], q_shape[2]], "to": [h, w]})
            py, px = py * q_shape[1] / h, px * q_shape[2] / w
    side = max(s_shape[1], s_shape[2], h, w)  # square, as the training slices: the model's resize does not stretch
    canvas = (side, side)
    support = _padded(s_move, s_ops, s_shape[1:], canvas, s_spacing, (s_spacing[1], s_spacing[2]))
    query = _padded(q_move, q_ops, (h, w), canvas, (q_spacing[0], py, px), (q_spacing[1], q_spacing[2]))
    return support, query


def describe(support: ScanFrame, query: ScanFrame) -> str:
    """One line on the in-plane changes ('' when there were none)."""
    parts = []
    if query.resampled:
        parts.append(f"query resampled from {query.source_pixel[0]:.3g} x {query.source_pixel[1]:.3g} mm pixels to "
                     f"the support's {support.spacing[1]:.3g} x {support.spacing[2]:.3g} mm")
    padded = [name for name, frame in (("support", support), ("query", query)) if frame.canvas]
    if padded:
        canvas = (support.canvas or query.canvas)
        assert canvas is not None
        parts.append(f"{' and '.join(padded)} padded to {canvas[0]} x {canvas[1]} pixels (one field of view)")
    return "; ".join(parts)
