"""The ``nifti`` preset: the user's own image/label pairs; also the engine of chaos-t2, ms-cmrseg and msd.

Pairs may be NIfTI, NRRD or MetaImage files, or folders of one DICOM series each (``--image-glob``
matching folders); the label codes of ``--labels`` (integers 1..65535) are stored as compact
indices 1..K with the code map (:mod:`fewshotkit.data.io.codes`).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from fewshotkit.core.errors import DataError
from fewshotkit.data.ingest.common import (
    apply_inplane,
    check_pair,
    clip_top,
    crop_pad_op,
    map_labels,
    pair_by_pattern,
    require_dir,
    resize_op,
    ScanPrep,
    write_store,
)
from fewshotkit.data.io.codes import check_code, compact_indices
from fewshotkit.data.io.reader import read_scan, same_grid
from fewshotkit.data.store.axes import axis_codes, check_codes, reorientation
from fewshotkit.data.store.writer import StoreHeader, VolumeRecord


def parse_label_spec(spec: str) -> dict[int, str]:
    """"1=liver,2=spleen" or "200=LV-MYO,500=LV-BP" -> {code: name}, codes integers 1..65535 (a
    one-line error for anything else).

    A value given twice, or a name given to two values (case-insensitive), is an error.
    """
    out: dict[int, str] = {}
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        value, sep, name = part.partition("=")
        if not sep or not value.strip() or not name.strip():
            raise DataError(f"--labels: '{part}' is not VALUE=NAME (e.g. --labels 1=liver,2=spleen or 500=LV-BP)")
        code, name = check_code(value, "--labels"), name.strip()
        if code in out:
            raise DataError(f"--labels: value {code} is given twice ({out[code]!r} and {name!r}); "
                            "give each value one name")
        same = [v for v, n in out.items() if n.lower() == name.lower()]
        if same:
            raise DataError(f"--labels: name {name!r} is given to values {same[0]} and {code}; "
                            "give each class its own name")
        out[code] = name
    if not out:
        raise DataError("--labels is empty; give e.g. --labels 1=liver,2=spleen")
    return out


def nifti_pair_record(vid: str, image_path: Path, label_path: Path, codes: dict[float, int], prep: ScanPrep,
                      label_hint: str = "") -> VolumeRecord:
    """Read, check and preprocess one pair (any format of :mod:`fewshotkit.data.io`; ``prep.frame`` of
    4D scans): clip, map label codes, reorient to the axis codes ``prep.orientation`` (if given),
    crop/pad or resize in-plane."""
    scan, label_scan = read_scan(image_path, frame=prep.frame), read_scan(label_path, frame=prep.frame)
    check_pair(scan.array, label_scan.array, image_path, label_path)
    same_grid(scan, label_scan)
    label_u8 = map_labels(label_scan.array, codes, label_path, label_hint)
    image, clip_info = clip_top(scan.array, prep.clip_percentile, prep.clip_mode)
    affine, spacing = scan.affine, scan.spacing
    ops: list[dict[str, Any]] = []
    shape = image.shape
    if prep.orientation is not None and axis_codes(affine) != prep.orientation:
        move = reorientation(affine, prep.orientation)
        ops.append({"op": "reorient", "from": move.source, "to": move.target})
        shape, spacing = move.shape(shape), move.spacing(spacing)
    size = prep.target_size
    if size is not None and shape[1:] != (size, size):
        op = crop_pad_op(shape[1:], size) if prep.inplane_mode == "crop_pad" else resize_op(shape[1:], size)
        ops.append(op)
    if ops and ops[-1]["op"] == "resize":
        (h0, w0), (h1, w1) = ops[-1]["from"], ops[-1]["to"]
        spacing = (spacing[0], spacing[1] * h0 / h1, spacing[2] * w0 / w1)
    return VolumeRecord(
        vid=vid,
        image=apply_inplane(image.astype(np.float32), ops, is_label=False),
        label=apply_inplane(label_u8, ops, is_label=True),
        patient=vid,
        source_image=str(image_path.resolve()),
        source_label=str(label_path.resolve()),
        spacing=spacing,
        original_shape=tuple(int(s) for s in image.shape),  # type: ignore[arg-type]
        affine=affine,
        inplane=ops,
        preprocessing=clip_info,
        nifti_header=scan.header,
        real_affine=True,
    )


def ingest_nifti_pairs(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    preset: str,
    image_glob: str,
    label_glob: str,
    classes: dict[int, str],
    codes: dict[float, int],
    prep: ScanPrep = ScanPrep(),
    modality: str = "MR",
    label_hint: str = "",
    limit: int | None = None,
    quiet: bool = False,
    overwrite: bool = False,
    label_codes: dict[int, int] | None = None,
) -> Path:
    """The pairs of ``src`` matching the globs as a store, each preprocessed by ``prep``; ``codes`` maps
    the label files' codes to the store's class values, ``label_codes`` (class value -> code) is
    recorded as the store's code map."""
    folder = require_dir(src)
    pairs = pair_by_pattern(folder, image_glob, label_glob)
    if limit is not None:
        pairs = pairs[:limit]

    seen: set[int] = set()  # class values found in the label maps

    def records() -> Iterator[VolumeRecord]:
        for key, image_path, label_path in pairs:
            record = nifti_pair_record(key, image_path, label_path, codes, prep, label_hint)
            warn_constant(record.image, image_path)
            seen.update(int(v) for v in np.unique(record.label))
            yield record

    params = {"image_glob": image_glob, "label_glob": label_glob, **prep.params()}
    written = write_store(out, records(), StoreHeader(preset, modality, classes, params, label_codes=label_codes),
                          total=len(pairs), quiet=quiet, overwrite=overwrite)
    warn_absent_classes(classes, seen, label_codes, folder)
    return written


def warn_constant(image: np.ndarray, path: Path) -> None:
    """Warn when a scan ``image`` (Z, H, W) is constant (e.g. all zero): it shows nothing to learn or segment."""
    if image.size and float(image.min()) == float(image.max()):
        warnings.warn(f"scan '{path}' is constant (every voxel is {float(image.flat[0]):g}): it shows no structure; "
                      "check the file or leave it out", RuntimeWarning, stacklevel=3)


def warn_absent_classes(classes: dict[int, str], seen: set[int], label_codes: dict[int, int] | None,
                        folder: Path) -> None:
    """Warn for each declared class (value -> name) that no label map holds: no fold can evaluate it."""
    for value, name in sorted(classes.items()):
        if value not in seen:
            code = (label_codes or {}).get(value, value)
            warnings.warn(f"class {code}={name} is in no label map of '{folder}': no support scan can show it, so "
                          "no fold can evaluate it; leave it out of --labels", RuntimeWarning, stacklevel=3)


def ingest_nifti(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    labels: dict[int, str],
    image_glob: str = "image_*.nii.gz",
    label_glob: str = "label_*.nii.gz",
    modality: str = "MR",
    target_size: int | None = None,
    resize: bool = False,
    clip_percentile: float | None = 99.5,
    clip_mode: str = "auto",
    limit: int | None = None,
    quiet: bool = False,
    overwrite: bool = False,
    orientation: str | None = None,
    frame: int | None = None,
) -> Path:
    """Any image/label pairs (NIfTI, NRRD, MetaImage files or DICOM series folders); label values other
    than 0 and the codes of ``labels`` (code -> name, codes 1..65535) are an error.

    The store holds compact class values 1..K in code order and the code map. ``orientation`` (axis
    codes, e.g. ``"RAS"``) stores every scan in that orientation; each keeps its own affine, so
    predictions are written back on its source grid. ``frame`` picks the frame of 4D scans.
    """
    code_of = compact_indices(list(labels))
    return ingest_nifti_pairs(
        src, out, preset="nifti", image_glob=image_glob, label_glob=label_glob,
        classes={index: labels[code] for index, code in code_of.items()},
        codes={float(code): index for index, code in code_of.items()}, label_codes=code_of, modality=modality,
        prep=ScanPrep(clip_percentile, clip_mode, target_size, "resize" if resize else "crop_pad",
                      None if orientation is None else check_codes(orientation), frame),
        label_hint="; list every value in --labels", limit=limit, quiet=quiet, overwrite=overwrite,
    )
