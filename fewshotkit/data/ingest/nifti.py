"""The ``nifti`` preset: the user's own image/label NIfTI pairs; also the engine of chaos-t2 and ms-cmrseg."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from fewshotkit.core.errors import DataError
from fewshotkit.data.ingest.common import (
    apply_inplane,
    check_pair,
    clip_top,
    crop_pad_op,
    load_nifti,
    map_labels,
    nifti_to_zhw_affine,
    pair_by_pattern,
    require_dir,
    resize_op,
    write_store,
)
from fewshotkit.data.store.axes import axis_codes, check_codes, reorientation
from fewshotkit.data.store.writer import VolumeRecord


def parse_label_spec(spec: str) -> dict[int, str]:
    """"1=liver,2=spleen" -> {1: "liver", 2: "spleen"} (a one-line error for anything else).

    A value given twice, or a name given to two values (case-insensitive), is an error.
    """
    out: dict[int, str] = {}
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        value, sep, name = part.partition("=")
        if not sep or not value.strip().isdigit() or not name.strip() or not 0 < int(value) < 256:
            raise DataError(f"--labels: '{part}' is not VALUE=NAME with VALUE in 1..255 (e.g. --labels 1=liver,2=spleen)")
        code, name = int(value), name.strip()
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


def nifti_pair_record(
    vid: str,
    image_path: Path,
    label_path: Path,
    codes: dict[float, int],
    *,
    clip_percentile: float | None,
    clip_mode: str,
    target_size: int | None,
    inplane_mode: str = "crop_pad",
    label_hint: str = "",
    orientation: str | None = None,
) -> VolumeRecord:
    """Read, check and preprocess one pair: clip, map label codes, reorient to the axis codes
    ``orientation`` (if given), crop/pad or resize in-plane."""
    img, image = load_nifti(image_path)
    _, label = load_nifti(label_path)
    check_pair(image, label, image_path, label_path)
    label_u8 = map_labels(label, codes, label_path, label_hint)
    image, clip_info = clip_top(image, clip_percentile, clip_mode)
    affine, spacing, header = nifti_to_zhw_affine(img)
    ops: list[dict[str, Any]] = []
    shape = image.shape
    if orientation is not None and axis_codes(affine) != orientation:
        move = reorientation(affine, orientation)
        ops.append({"op": "reorient", "from": move.source, "to": move.target})
        shape, spacing = move.shape(shape), move.spacing(spacing)
    if target_size is not None and shape[1:] != (target_size, target_size):
        op = crop_pad_op(shape[1:], target_size) if inplane_mode == "crop_pad" else resize_op(shape[1:], target_size)
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
        nifti_header=header,
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
    modality: str = "MR",
    clip_percentile: float | None = 99.5,
    clip_mode: str = "auto",
    target_size: int | None = None,
    inplane_mode: str = "crop_pad",
    label_hint: str = "",
    limit: int | None = None,
    quiet: bool = False,
    overwrite: bool = False,
    orientation: str | None = None,
) -> Path:
    folder = require_dir(src)
    pairs = pair_by_pattern(folder, image_glob, label_glob)
    if limit is not None:
        pairs = pairs[:limit]

    def records() -> Iterator[VolumeRecord]:
        for key, image_path, label_path in pairs:
            yield nifti_pair_record(key, image_path, label_path, codes, clip_percentile=clip_percentile,
                                    clip_mode=clip_mode, target_size=target_size,
                                    inplane_mode=inplane_mode, label_hint=label_hint, orientation=orientation)

    params = {"image_glob": image_glob, "label_glob": label_glob, "clip_percentile": clip_percentile,
              "clip_mode": clip_mode, "target_size": target_size, "inplane": inplane_mode,
              **({"orientation": orientation} if orientation else {}),
              "normalization": "per-volume z-score of the clipped image"}
    return write_store(out, records(), total=len(pairs), preset=preset, modality=modality, classes=classes,
                       preprocessing=params, quiet=quiet, overwrite=overwrite)


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
) -> Path:
    """Any image/label NIfTI pairs; label values other than 0 and ``labels`` are an error.

    ``orientation`` (axis codes, e.g. ``"RAS"``) stores every scan in that orientation; each keeps
    its own affine, so predictions are written back on its source grid.
    """
    return ingest_nifti_pairs(
        src, out, preset="nifti", image_glob=image_glob, label_glob=label_glob, classes=labels,
        codes={float(v): v for v in labels}, modality=modality, clip_percentile=clip_percentile,
        clip_mode=clip_mode, target_size=target_size, inplane_mode="resize" if resize else "crop_pad",
        label_hint="; list every value in --labels", limit=limit, quiet=quiet, overwrite=overwrite,
        orientation=None if orientation is None else check_codes(orientation),
    )
