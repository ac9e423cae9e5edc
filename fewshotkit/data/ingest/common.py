"""Shared ingestion steps: checks, NIfTI reading, clipping, in-plane crop/pad/resize and the store write."""

from __future__ import annotations

import gzip
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from fewshotkit.core.errors import DataError

# In-plane geometry (crop/pad/resize ops and their inverse) lives below both ingestion and reading,
# in fewshotkit.data.store.geometry; the ingesters use it through these names.
from fewshotkit.data.store.geometry import apply_inplane as apply_inplane
from fewshotkit.data.store.geometry import border_crop_op as border_crop_op
from fewshotkit.data.store.geometry import crop_pad_op as crop_pad_op
from fewshotkit.data.store.geometry import resize_op as resize_op
from fewshotkit.data.store.writer import StoreHeader

# -- reading and checking -----------------------------------------------------------------------


def load_nifti(path: Path):
    """(nibabel image, data as float64 (Z, H, W)) with a one-line DataError on any read problem.

    NIfTI voxel axes (x, y, z) become (z, y, x): the order SimpleITK and the reference code use.
    """
    import nibabel as nib

    if path.is_dir():
        raise DataError(f"'{path}' is a folder, not a NIfTI file; give the scan's .nii or .nii.gz file")
    if not path.is_file():
        raise DataError(f"'{path}' does not exist")
    try:
        img: Any = nib.load(str(path))
        data = np.asarray(img.dataobj, dtype=np.float64)
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, ValueError, nib.filebasedimages.ImageFileError) as exc:
        raise DataError(f"'{path}' cannot be read as NIfTI ({type(exc).__name__}: {exc}); is the file corrupt or truncated?") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError(f"'{path}' has shape {data.shape}; a 3D volume is expected")
    return img, np.ascontiguousarray(data.transpose(2, 1, 0))


def nifti_to_zhw_affine(img) -> tuple[np.ndarray, tuple[float, float, float], bytes]:
    """(affine, spacing (z, y, x), header bytes) of a nibabel image."""
    zooms = img.header.get_zooms()[:3]
    return (np.asarray(img.affine, dtype=np.float64), (float(zooms[2]), float(zooms[1]), float(zooms[0])),
            img.header.binaryblock)


def check_pair(image: np.ndarray, label: np.ndarray | None, image_path: Path, label_path: Path | None) -> None:
    """Finite values and matching shapes, or a one-line DataError naming the file."""
    if not np.isfinite(image).all():
        bad = int(np.count_nonzero(~np.isfinite(image)))
        raise DataError(f"'{image_path}' contains {bad} NaN or infinite voxels; fix or drop this scan")
    if label is None:
        return
    if not np.isfinite(label).all():
        raise DataError(f"'{label_path}' contains NaN or infinite voxels; fix or drop this label")
    if image.shape != label.shape:
        raise DataError(
            f"'{label_path}' has shape {label.shape} (Z, H, W) but its image '{image_path}' has "
            f"{image.shape}; image and label must match"
        )


def map_labels(label: np.ndarray, mapping: dict[float, int], label_path: Path, hint: str = "") -> np.ndarray:
    """Map source label codes to store class values; unknown codes raise a DataError."""
    values = np.unique(label)
    unknown = [v for v in values.tolist() if v != 0 and v not in mapping]
    if unknown:
        known = ", ".join(str(int(k)) if float(k).is_integer() else str(k) for k in sorted(mapping))
        shown = ", ".join(f"{u:g}" for u in unknown[:8])
        raise DataError(f"'{label_path}' has unknown label values {shown} (known: 0, {known}){hint}")
    out = np.zeros(label.shape, dtype=np.uint8)
    for code, value in mapping.items():
        out[label == code] = value
    return out


def looks_clipped(image: np.ndarray, fraction: float = 1e-3) -> bool:
    """True when at least ``fraction`` of the voxels sit exactly at the maximum (already clipped)."""
    return bool(np.count_nonzero(image == image.max()) >= fraction * image.size)


def clip_top(image: np.ndarray, percentile: float | None, mode: str = "auto") -> tuple[np.ndarray, dict[str, Any]]:
    """Clip above the ``percentile`` (mode "always"), never, or unless already clipped ("auto")."""
    if percentile is None or mode == "never":
        return image, {"clip": "none"}
    if mode == "auto" and looks_clipped(image):
        return image, {"clip": "skipped: already clipped", "clip_value": float(image.max())}
    value = float(np.percentile(image, percentile))
    return np.minimum(image, value), {"clip": f"{percentile} percentile", "clip_value": value}


@dataclass(frozen=True)
class ScanPrep:
    """How each scan of an ingest is preprocessed before it is stored.

    ``clip_percentile`` / ``clip_mode``: :func:`clip_top`; ``target_size``: the in-plane size (None:
    as read), reached by centre crop/pad (``inplane_mode`` "crop_pad") or resampling ("resize");
    ``orientation``: axis codes every scan is stored in (None: as read); ``frame``: the frame of 4D scans.
    """

    clip_percentile: float | None = 99.5
    clip_mode: str = "auto"
    target_size: int | None = None
    inplane_mode: str = "crop_pad"
    orientation: str | None = None
    frame: int | None = None

    def params(self) -> dict[str, Any]:
        """The store's record of these choices (its ``preprocessing`` attribute)."""
        return {"clip_percentile": self.clip_percentile, "clip_mode": self.clip_mode, "target_size": self.target_size,
                "inplane": self.inplane_mode, **({"orientation": self.orientation} if self.orientation else {}),
                **({"frame": self.frame} if self.frame is not None else {}),
                "normalization": "per-volume z-score of the clipped image"}


def require_dir(src: str | os.PathLike) -> Path:
    path = Path(src)
    if not path.exists():
        raise DataError(f"'{path}' does not exist")
    if not path.is_dir():
        raise DataError(f"'{path}' is not a folder")
    return path


def pair_by_pattern(folder: Path, image_glob: str, label_glob: str) -> list[tuple[str, Path, Path]]:
    """[(key, image, label)] pairing files whose ``*`` parts agree, sorted numerically by key."""

    def keyed(pattern: str) -> dict[str, Path]:
        if pattern.count("*") != 1:
            raise DataError(f"pattern '{pattern}' must contain exactly one '*' (the scan id)")
        regex = re.compile(re.escape(pattern).replace(r"\*", "(.+)") + "$")
        out = {}
        for path in folder.glob(pattern):
            m = regex.search(path.relative_to(folder).as_posix())
            if m:
                out[m.group(1)] = path
        return out

    images, labels = keyed(image_glob), keyed(label_glob)
    if not images and not labels:
        raise DataError(f"'{folder}' has no files matching '{image_glob}' or '{label_glob}'")
    lonely = sorted(set(images) ^ set(labels), key=scan_order)
    if lonely:
        key = lonely[0]
        path = images.get(key) or labels.get(key)
        other = label_glob if key in images else image_glob
        raise DataError(f"'{path}' has no partner matching '{other}' in '{folder}' ({len(lonely)} unpaired file(s))")
    return [(k, images[k], labels[k]) for k in sorted(images, key=scan_order)]


def natural_key(text: str) -> tuple:
    """Sort "2" before "10": digits compare as numbers."""
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def scan_order(text: str) -> tuple:
    """:func:`natural_key`, then the text itself: ids it ranks equal ("1" and "01") keep one order
    whatever order the folder lists them in."""
    return natural_key(text), text


def write_store(out: str | os.PathLike, records: Iterable[Any], header: StoreHeader, *, total: int,
                quiet: bool = False, overwrite: bool = False) -> Path:
    """Write ``records`` (``total`` VolumeRecords) under ``header`` atomically with a progress bar,
    then print a summary table. An existing ``out`` is replaced only with ``overwrite`` (``--force``)."""
    from fewshotkit.core.console import make_progress
    from fewshotkit.data.store.writer import StoreWriter

    rows = []
    with StoreWriter(out, header, overwrite=overwrite) as writer:
        with make_progress() as progress:
            task = progress.add_task(f"ingest {header.preset}", total=total)
            for rec in records:
                writer.add(rec)
                present = [name for v, name in header.classes.items() if np.any(rec.label == v)]
                rows.append((rec.vid, rec.image.shape, rec.spacing, float(rec.image.min()),
                             float(rec.image.max()), present))
                progress.advance(task)
    if not quiet:
        print_summary(out, rows)
    return Path(out)


def print_summary(out: str | os.PathLike, rows: list[tuple]) -> None:
    from rich.table import Table

    from fewshotkit.core.console import console

    table = Table(title=f"{out}: {len(rows)} volumes, {sum(r[1][0] for r in rows)} slices")
    for col in ("volume", "Z x H x W", "spacing z,y,x (mm)", "intensity min..max", "classes"):
        table.add_column(col, overflow="fold")
    for vid, shape, spacing, lo, hi, present in rows:
        table.add_row(vid, " x ".join(map(str, shape)), ", ".join(f"{s:.3g}" for s in spacing),
                      f"{lo:.4g}..{hi:.4g}", ", ".join(present) or "-")
    console.print(table)
