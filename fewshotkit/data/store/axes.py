"""Scan orientation: bring a (Z, H, W) volume to given axis codes and back.

Two NIfTI scans of one body can store their voxels in different orders (a DICOM conversion writes
LPS, another tool RAS; one scan runs head to feet, the next feet to head). A few-shot model
compares the support's slices with the query's, and picks the query's slices by their relative
position along z, so ``fewshotkit segment`` brings both scans to one orientation first and the
prediction back to the query's own voxel grid. Axis codes are nibabel's: the world direction each
voxel axis (x, y, z) points to, e.g. ``"LAS"``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from fewshotkit.core.errors import FewshotkitError


def axis_codes(affine: np.ndarray) -> str:
    """The axis codes of a (4, 4) voxel-to-world affine, e.g. ``"RAS"``."""
    from nibabel.orientations import aff2axcodes

    return "".join(str(c) for c in aff2axcodes(np.asarray(affine, dtype=np.float64)))


def mixed_orientations(codes: dict[str, str]) -> str | None:
    """A one-line note when scans (volume id -> axis codes) are stored in more than one orientation."""
    counts = Counter(codes.values())
    if len(counts) < 2:
        return None
    usual = counts.most_common(1)[0][0]
    others = [vid for vid, c in codes.items() if c != usual]
    shown = ", ".join(f"'{v}' ({codes[v]})" for v in others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
    return (f"scans in {len(counts)} orientations ({', '.join(f'{c}: {n}' for c, n in counts.most_common())}; "
            f"not {usual}: {shown}); episodes compare slices across scans: store them in one (`ingest nifti "
            f"--orientation {usual}`, or re-save the odd files in {usual} and ingest again)")


def check_codes(codes: str) -> str:
    """``codes`` upper-cased if they name one direction per axis (e.g. ``RAS``), else a one-line error."""
    from nibabel.orientations import axcodes2ornt

    text = str(codes).strip().upper()
    try:
        ornt = axcodes2ornt(tuple(text))
        if len(text) != 3 or np.isnan(ornt).any() or len(set(ornt[:, 0])) != 3:
            raise ValueError
    except ValueError:
        raise FewshotkitError(f"--orientation '{codes}': give three axis codes, one of L/R, A/P and S/I each "
                              "(e.g. RAS or LPS)") from None
    return text


def stored_codes(attrs: dict[str, Any]) -> str | None:
    """The axis codes a stored scan (its ``volume_attrs``) is stored in: its source file's, or those
    it was reoriented to at ingestion; None when its preset made the affine up (ACDC's preprocessed
    files, synthetic phantoms).

    Stores record them (``axis_codes``) for every scan read from a file with real geometry (NIfTI,
    NRRD, MetaImage, DICOM); in stores written before that, only a scan with a NIfTI header is known
    to have one.
    """
    if "axis_codes" in attrs:
        codes = attrs["axis_codes"]
        return str(codes) if isinstance(codes, str) and codes else None
    if attrs.get("nifti_header") is None:
        return None
    return placed_codes(np.asarray(attrs["affine"]), attrs.get("inplane") or [])


def placed_codes(affine: np.ndarray, inplane: list[dict[str, Any]]) -> str:
    """The axis codes of a scan of ``affine`` (4, 4) after the geometry ops ``inplane``: those of its
    last ``reorient``, else the affine's own."""
    turned = [op["to"] for op in inplane if op.get("op") == "reorient"]
    return str(turned[-1]) if turned else axis_codes(affine)


def scans_orientation(store: Any, volumes: Iterable[str]) -> str | None:
    """The axis codes most of ``volumes`` of ``store`` have; None unless every one's is known."""
    codes = [stored_codes(store.volume_attrs(v)) for v in volumes]
    if not codes or any(c is None for c in codes):
        return None
    return Counter(codes).most_common(1)[0][0]


@dataclass(frozen=True)
class Reorientation:
    """From a scan's axis codes (``source``) to ``target``; arrays are (Z, H, W) = voxel (z, y, x)."""

    source: str
    target: str
    ornt: np.ndarray  # nibabel's transform: row i = (output axis, flip) of voxel axis i (x, y, z)

    @property
    def identity(self) -> bool:
        return self.source == self.target

    @property
    def keeps_slice_axis(self) -> bool:
        """True when the slices stay the slices (z -> z, possibly reversed)."""
        return int(self.ornt[2, 0]) == 2

    def apply(self, zhw: np.ndarray) -> np.ndarray:
        """A (Z, H, W) array of the source scan in the target orientation."""
        from nibabel.orientations import apply_orientation

        if self.identity:
            return zhw
        return np.ascontiguousarray(apply_orientation(zhw.transpose(2, 1, 0), self.ornt).transpose(2, 1, 0))

    def undo(self, zhw: np.ndarray) -> np.ndarray:
        """A (Z, H, W) array in the target orientation back on the source scan's grid."""
        from nibabel.orientations import apply_orientation, ornt_transform

        if self.identity:
            return zhw
        back = ornt_transform(_ornt(self.target), _ornt(self.source))
        return np.ascontiguousarray(apply_orientation(zhw.transpose(2, 1, 0), back).transpose(2, 1, 0))

    def spacing(self, spacing_zyx: tuple[float, float, float]) -> tuple[float, float, float]:
        """Voxel spacing (z, y, x) in the target orientation."""
        z, y, x = self._permute(spacing_zyx)
        return float(z), float(y), float(x)

    def shape(self, shape_zhw: tuple[int, ...]) -> tuple[int, int, int]:
        """The (Z, H, W) shape of a source array in the target orientation."""
        z, h, w = self._permute(shape_zhw)
        return int(z), int(h), int(w)

    def _permute(self, values_zyx: Any) -> list[Any]:
        xyz, out = list(values_zyx)[::-1], [0, 0, 0]
        for axis, (target_axis, _) in enumerate(self.ornt):
            out[int(target_axis)] = xyz[axis]
        return out[::-1]

    def slice_index(self, z: int, depth: int) -> int:
        """Slice ``z`` of the source scan (of ``depth`` slices) as a slice of the target (slice axis kept)."""
        return depth - 1 - z if self.ornt[2, 1] < 0 else z


def _ornt(codes: str) -> np.ndarray:
    from nibabel.orientations import axcodes2ornt

    return axcodes2ornt(tuple(codes))


def reorientation(affine: np.ndarray, target: str) -> Reorientation:
    """How to bring the scan of ``affine`` to the axis codes ``target``."""
    return reorientation_between(axis_codes(affine), target)


def reorientation_between(source: str, target: str) -> Reorientation:
    """How to bring a scan stored in the axis codes ``source`` to ``target``."""
    from nibabel.orientations import ornt_transform

    return Reorientation(source, target, ornt_transform(_ornt(source), _ornt(target)))
