"""Geometry of stored volumes: the reorientation and crop/pad/resize ops applied at ingestion, and their inverse.

A volume's history (its ``inplane`` attribute) is a list of JSON-able ops applied in order to
(Z, H, W) arrays::

    {"op": "reorient", "from": "LPS", "to": "RAS"}               axis codes (first, if any)
    {"op": "crop_pad", "pads": [[top, bottom], [left, right]]}   negative = crop
    {"op": "resize", "from": [h, w], "to": [h, w]}

Ingestion applies them (:func:`apply_inplane`); reading maps predictions back to the scan's own grid
(:func:`invert_inplane`, :func:`zhw_to_nifti`). Both layers import this module, which imports neither.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.data.store.axes import reorientation_between


def crop_pad_op(shape_hw: Sequence[int], target: int) -> dict[str, Any]:
    """The centred crop/pad op taking (H, W) to (target, target)."""
    pads = []
    for size in shape_hw:
        diff = target - int(size)
        before = diff // 2
        pads.append([before, diff - before])
    return {"op": "crop_pad", "pads": pads}


def border_crop_op(shape_hw: Sequence[int], border: int) -> dict[str, Any]:
    return {"op": "crop_pad", "pads": [[-border, -border], [-border, -border]]}


def resize_op(shape_hw: Sequence[int], target: int) -> dict[str, Any]:
    return {"op": "resize", "from": [int(shape_hw[0]), int(shape_hw[1])], "to": [target, target]}


def _crop_pad(array: np.ndarray, pads: Sequence[Sequence[int]], fill: float) -> np.ndarray:
    out = array
    for axis, (before, after) in zip((1, 2), pads):
        n = out.shape[axis]
        lo, hi = max(-before, 0), n - max(-after, 0)
        out = out[:, lo:hi] if axis == 1 else out[:, :, lo:hi]
        width = [(0, 0)] * 3
        width[axis] = (max(before, 0), max(after, 0))
        if any(width[axis]):
            out = np.pad(out, width, mode="constant", constant_values=fill)
    return out


def _resize(array: np.ndarray, size_hw: Sequence[int], order: int) -> np.ndarray:
    from skimage.transform import resize

    if tuple(array.shape[1:]) == tuple(size_hw):
        return array
    out = resize(
        array,
        (array.shape[0], *size_hw),
        order=order,
        preserve_range=True,
        anti_aliasing=False,
        mode="edge",
    )
    return out.astype(array.dtype)


def apply_inplane(array: np.ndarray, ops: Sequence[dict[str, Any]], *, is_label: bool) -> np.ndarray:
    """Apply ``ops`` to ``array`` (Z, H, W): images linear and padded with their minimum, labels nearest and 0."""
    fill = 0 if is_label else float(array.min()) if array.size else 0.0
    for op in ops:
        if op["op"] == "reorient":
            array = reorientation_between(op["from"], op["to"]).apply(array)
        elif op["op"] == "crop_pad":
            array = _crop_pad(array, op["pads"], fill)
        elif op["op"] == "resize":
            array = _resize(array, op["to"], 0 if is_label else 1)
        else:
            raise ValueError(f"unknown in-plane op {op['op']!r}")
    return array


def invert_inplane(array: np.ndarray, ops: Sequence[dict[str, Any]]) -> np.ndarray:
    """Map a label-like (Z, H, W) array back through ``ops`` (nearest, 0 outside)."""
    for op in reversed(list(ops)):
        if op["op"] == "reorient":
            array = reorientation_between(op["from"], op["to"]).undo(array)
        elif op["op"] == "crop_pad":
            array = _crop_pad(array, [[-b, -a] for b, a in op["pads"]], 0)
        elif op["op"] == "resize":
            array = _resize(array, op["from"], 0)
        else:
            raise ValueError(f"unknown in-plane op {op['op']!r}")
    return array


def zhw_to_nifti(array_zhw: np.ndarray, stored_shape: Sequence[int], inplane: list[dict[str, Any]],
                 affine: np.ndarray, header: bytes | None):
    """Undo the in-plane ops (nearest) and return a Nifti1Image with (x, y, z) voxel axes, of the
    smallest unsigned type that holds the array's values (uint8, or uint16 for codes above 255)."""
    from fewshotkit.data.io.writer import as_labels, nifti_labels

    array = np.asarray(array_zhw)
    if tuple(array.shape) != tuple(stored_shape):
        raise FewshotkitError(f"array of shape {array.shape} does not match the stored volume {tuple(stored_shape)}")
    back = invert_inplane(as_labels(array), inplane)
    return nifti_labels(np.ascontiguousarray(back.transpose(2, 1, 0)), affine, header)
