"""SimpleITK geometry and the NIfTI affine.

SimpleITK (as ITK, DICOM, NRRD and MetaImage) places voxels in LPS world coordinates: the centre of
voxel index (i, j, k) = (x, y, z) is ``origin + direction @ diag(spacing) @ (i, j, k)``. NIfTI
affines (nibabel, and the orientation code of :mod:`fewshotkit.data.store.axes`) map the same index to
RAS: x and y of the world negated. So the affine is ``diag(-1, -1, 1) @ [direction @ diag(spacing) | origin]``.
Negation is exact in floating point; the scaling by the spacing is not, so writers take the source
scan's own origin, spacing and direction (:class:`Geometry`) rather than recomputing them from the affine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

#: LPS <-> RAS: x and y of the world negated
FLIP = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Geometry:
    """A 3D scan's grid as SimpleITK holds it: ``origin`` (3,) mm, ``spacing`` (3,) mm of voxel axes
    (x, y, z), ``direction`` (9,) row-major 3 x 3, column j the LPS direction of voxel axis j."""

    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, image: Any) -> "Geometry":
        """The geometry of a 3D SimpleITK image."""
        return cls(tuple(image.GetOrigin()), tuple(image.GetSpacing()), tuple(image.GetDirection()))

    @classmethod
    def from_affine(cls, affine: np.ndarray) -> "Geometry":
        """The geometry of a (4, 4) RAS voxel-to-world affine (voxel axes x, y, z)."""
        lps = FLIP @ np.asarray(affine, dtype=np.float64)[:3]
        spacing = np.linalg.norm(lps[:, :3], axis=0)
        direction = lps[:, :3] / np.where(spacing > 0, spacing, 1.0)
        return cls(tuple(float(v) for v in lps[:, 3]), tuple(float(s) for s in spacing),  # type: ignore[arg-type]
                   tuple(float(v) for v in direction.reshape(-1)))

    @property
    def affine(self) -> np.ndarray:
        """(4, 4) RAS voxel-to-world affine of voxel axes (x, y, z), NIfTI-style."""
        out = np.eye(4)
        out[:3, :3] = FLIP @ (np.asarray(self.direction).reshape(3, 3) * np.asarray(self.spacing))
        out[:3, 3] = FLIP @ np.asarray(self.origin)
        return out

    @property
    def spacing_zyx(self) -> tuple[float, float, float]:
        x, y, z = self.spacing
        return float(z), float(y), float(x)

    def apply(self, image: Any) -> Any:
        """``image`` (a 3D SimpleITK image) placed on this grid; returned for chaining."""
        image.SetOrigin(self.origin)
        image.SetSpacing(self.spacing)
        image.SetDirection(self.direction)
        return image
