"""The ``synthetic`` preset: small abdomen-like 3D phantoms, deterministic by seed.

Each volume is a body (an ellipse tapering in z) on a near-zero background with a bright
unlabelled spine, and four labelled organs placed like an abdomen on an axial slice (image
left = patient right, anterior at the top): liver (large, dark, patient right), spleen
(bright, patient left, posterior), right and left kidneys (posterior, with a darker core).
Organs are ellipsoids with random radii, rotation, position and a wavy outline; each has its
own mean intensity and smooth texture, plus pixel noise. Intensities are on a raw T2-like
scale (0..~900), so superpixel pseudolabelers and the body mask behave as on real MR.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import numpy as np
from scipy import ndimage

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.data.ingest.common import write_store
from fewshotkit.data.store.writer import StoreHeader, VolumeRecord

CLASSES = {1: "liver", 2: "right kidney", 3: "left kidney", 4: "spleen"}
SPACING = (5.0, 2.5, 2.5)
# value: (centre y, centre x, centre z, radius y, radius x, radius z, mean intensity) in [-1, 1] units
ORGANS = {
    1: (-0.10, -0.38, 0.30, 0.42, 0.34, 0.75, 170.0),
    4: (0.12, 0.48, 0.25, 0.20, 0.15, 0.50, 560.0),
    2: (0.38, -0.30, -0.35, 0.14, 0.10, 0.45, 430.0),
    3: (0.38, 0.30, -0.30, 0.14, 0.10, 0.45, 430.0),
}
BODY = 300.0
SPINE = 720.0


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int, int], sigma: tuple[float, float, float]) -> np.ndarray:
    """Zero-mean, unit-std smooth random field (Z, H, W)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return field / (field.std() or 1.0)


def _wavy_ellipsoid(rng: np.random.Generator, zz: np.ndarray, yy: np.ndarray, xx: np.ndarray,
                    cy: float, cx: float, cz: float, ry: float, rx: float, rz: float) -> np.ndarray:
    """Boolean (Z, H, W) mask of a rotated ellipsoid whose outline wobbles with the angle."""
    angle = rng.uniform(-0.4, 0.4)
    dy, dx = yy - cy, xx - cx
    u = (np.cos(angle) * dy + np.sin(angle) * dx) / ry
    v = (-np.sin(angle) * dy + np.cos(angle) * dx) / rx
    theta = np.arctan2(u, v)
    k1, k2 = rng.integers(2, 5), rng.integers(3, 7)
    wobble = 1 + rng.uniform(0.05, 0.15) * np.sin(k1 * theta + rng.uniform(0, 2 * np.pi)) \
        + rng.uniform(0.0, 0.08) * np.sin(k2 * theta + rng.uniform(0, 2 * np.pi))
    return u**2 + v**2 + ((zz - cz) / rz) ** 2 <= wobble**2


def phantom(seed: int, index: int, n_slices: int = 24, size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """One phantom: image float32 (Z, H, W) in ~0..900 and label uint8 (Z, H, W) with CLASSES."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
    z = np.linspace(-1, 1, n_slices)[:, None, None]
    y = np.linspace(-1, 1, size)[None, :, None]
    x = np.linspace(-1, 1, size)[None, None, :]
    shape = (n_slices, size, size)
    jitter = lambda s: rng.uniform(-s, s)  # noqa: E731

    taper = 1 - 0.12 * z**2
    body = ((y - 0.05) / (0.62 * taper * rng.uniform(0.92, 1.05))) ** 2 + (x / (0.86 * taper * rng.uniform(0.92, 1.05))) ** 2 <= 1
    body = np.broadcast_to(body, shape)
    image = np.where(body, BODY * (1 + 0.08 * _smooth_noise(rng, shape, (1, 6, 6))), 0.0)
    spine = np.broadcast_to((y - 0.48) ** 2 + x**2 <= 0.09**2, shape)
    image[spine] = SPINE

    label = np.zeros(shape, dtype=np.uint8)
    gain = rng.uniform(0.85, 1.15)
    for value, (cy, cx, cz, ry, rx, rz, mean) in ORGANS.items():
        mask = _wavy_ellipsoid(rng, z, y, x, cy + jitter(0.06), cx + jitter(0.06), cz + jitter(0.2),
                               ry * rng.uniform(0.8, 1.2), rx * rng.uniform(0.8, 1.2), rz * rng.uniform(0.8, 1.2))
        mask &= body & (label == 0)
        organ = mean * rng.uniform(0.9, 1.1) * (1 + 0.07 * _smooth_noise(rng, shape, (1, 3, 3)))
        if value in (2, 3):  # kidneys: darker medulla
            core = ndimage.binary_erosion(mask, iterations=3)
            organ = np.where(core, organ * 0.75, organ)
        image[mask] = organ[mask]
        label[mask] = value
    image = image * gain + rng.normal(0.0, 12.0, shape)
    image = np.clip(image, 0.0, 950.0).astype(np.float32)
    return image, label


def ingest_synthetic(out: str | os.PathLike, *, volumes: int = 10, seed: int = 0, slices: int = 24,
                     size: int = 128, quiet: bool = False, overwrite: bool = False) -> Path:
    if volumes < 1 or slices < 4 or size < 32:
        raise FewshotkitError("synthetic: need --volumes >= 1, --slices >= 4 and --size >= 32")

    def records() -> Iterator[VolumeRecord]:
        for i in range(volumes):
            image, label = phantom(seed, i, slices, size)
            vid = str(i + 1)
            yield VolumeRecord(
                vid=vid, image=image, label=label, patient=vid,
                source_image=f"synthetic:seed={seed}:volume={i}", source_label=f"synthetic:seed={seed}:volume={i}",
                spacing=SPACING, original_shape=image.shape,  # type: ignore[arg-type]
                preprocessing={"seed": seed, "index": i},
            )

    params = {"seed": seed, "volumes": volumes, "slices": slices, "size": size,
              "normalization": "per-volume z-score"}
    return write_store(out, records(), StoreHeader("synthetic", "MR", CLASSES, params), total=volumes,
                       quiet=quiet, overwrite=overwrite)
