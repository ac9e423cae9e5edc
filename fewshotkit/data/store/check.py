"""Consistency checks of a store: metadata, shapes, dtypes, chunking, values, class index, pseudolabels.

:func:`check_store` lists every problem (``fewshotkit store check``); :func:`require_valid_scans`
runs the cheap per-scan checks on the scans a command is about to read (``eval``, ``train``)
and refuses with the first problem named.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from typing import Any, Iterable

import h5py
import numpy as np

from fewshotkit.core.errors import DataError
from fewshotkit.data.store import format as fmt
from fewshotkit.data.store.fingerprint import add_set_volume
from fewshotkit.data.store.reader import MalformedStoreError, SliceStore
from fewshotkit.data.store.writer import class_pixel_table, pixel_checksums

DAMAGED = "damaged since ingest; re-create the store with `fewshotkit ingest`"


def check_store(path: str | os.PathLike) -> list[str]:
    """Every problem found, one line each; an empty list means the store is valid.

    The structure (:func:`metadata_problems`) is checked first; then the scans whose records are
    whole, and the pseudolabel sets where the store has its ``/pseudolabels`` group."""
    try:
        store = SliceStore(path)
    except MalformedStoreError as exc:
        with h5py.File(path, "r") as h5:
            return metadata_problems(h5) or [str(exc)]
    with store:
        h5 = store._h5()
        problems = metadata_problems(h5)
        volumes = h5[fmt.VOLUMES]
        for vol in store.volumes:
            if not _record_problems(volumes, vol, len(store.classes)):  # else named above; its datasets are needed
                problems += scan_problems(store, vol, full=True)
        sets = h5.get(fmt.PSEUDOLABELS)
        for name in sorted(sets) if isinstance(sets, h5py.Group) else []:
            problems += _set_problems(store, sets[name], name)
    return problems


def scan_problems(store: SliceStore, vol: str, *, full: bool = False) -> list[str]:
    """Problems of one volume: dtypes, label shape, finite image values, known label codes, the
    normalisation attributes, the pixels' integrity (:func:`integrity_problems`) and the class-slice
    index (one read of the volume and a sha256 over it); with ``full`` also chunking."""
    group = store._h5()[fmt.VOLUMES][vol]
    image, label = group[fmt.IMAGE], group[fmt.LABEL]
    where = f"volume '{vol}'"
    problems: list[str] = []
    if image.dtype != np.float32 or label.dtype != np.uint8:
        return [f"{where}: dtypes {image.dtype}/{label.dtype}, expected float32/uint8"]
    if label.shape != image.shape:
        return problems + [f"{where}: label shape {label.shape} != image shape {image.shape}"]
    z, h, w = image.shape
    if full and (image.chunks != (1, h, w) or label.chunks != (1, h, w)):
        problems.append(f"{where}: chunks {image.chunks}/{label.chunks}, expected one slice per chunk")
    pixels, labels = image[()], label[()]
    bad = ~np.isfinite(pixels)
    if bad.any():
        slices = np.flatnonzero(bad.any(axis=(1, 2)))
        problems.append(f"{where}: image has {int(bad.sum())} NaN or infinite values (slices "
                        f"{', '.join(map(str, slices[:5]))}{' ...' if slices.size > 5 else ''})")
    counts = np.bincount(labels.reshape(-1), minlength=256)
    unknown = sorted(set(np.flatnonzero(counts).tolist()) - {0, *store.classes})
    if unknown:
        problems.append(f"{where}: unknown label values {unknown} (classes: "
                        f"{', '.join(f'{v}={n}' for v, n in store.classes.items())})")
    problems += normalisation_problems(group.attrs, where)
    problems += integrity_problems(group.attrs, pixels, labels, where)
    if not np.array_equal(store._pixels[vol], class_pixel_table(labels, store.class_values)):
        problems.append(f"{where}: class-slice index does not match the labels")
    return problems


def normalisation_problems(attrs: Any, where: str) -> list[str]:
    """A finite ``norm_mean`` and a positive finite ``norm_std`` (the model input's z-score)."""
    problems = []
    mean, std = _number(attrs.get("norm_mean")), _number(attrs.get("norm_std"))
    if not math.isfinite(mean):
        problems.append(f"{where}: norm_mean is {_shown(attrs.get('norm_mean'))}, not a finite number")
    if not (math.isfinite(std) and std > 0):
        problems.append(f"{where}: norm_std is {_shown(attrs.get('norm_std'))}, not a positive finite number")
    return problems


def _shown(value: Any) -> str:
    """An attribute's value for a message (``nan``, ``-2.0``, ``'abc'``), or ``missing``."""
    return "missing" if value is None else repr(value.item() if isinstance(value, np.generic) else value)


def _number(value: Any) -> float:
    """``value`` as a float; NaN for anything that is not one number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def integrity_problems(attrs: Any, image: np.ndarray, label: np.ndarray, where: str) -> list[str]:
    """The image (Z, H, W) float32 and label (Z, H, W) uint8 of a volume against what ingest recorded:
    their sha256 (``image_sha256``, ``label_sha256``; absent in stores written before those) and the
    image's voxel count, sum and sum of squares (the normalisation statistics; alone they catch large
    damage only, and the class-slice index, checked separately, covers the labels)."""
    problems = []
    if "image_sha256" in attrs and "label_sha256" in attrs:
        checksums = pixel_checksums(image, label)
        problems += [f"{where}: {part} bytes do not match the sha256 recorded at ingest ({DAMAGED})"
                     for part in ("image", "label") if checksums[f"{part}_sha256"] != str(attrs[f"{part}_sha256"])]
    return problems + statistics_problems(attrs, image, where)


def statistics_problems(attrs: Any, image: np.ndarray, where: str) -> list[str]:
    """The first of the recorded ``voxel_count``, ``voxel_sum`` and ``voxel_sumsq`` (those present)
    that the image (Z, H, W) does not give."""
    if "voxel_count" in attrs and _number(attrs["voxel_count"]) != image.size:
        return [f"{where}: image has {image.size} voxels, not the {attrs['voxel_count']} recorded at ingest ({DAMAGED})"]
    names = [name for name in ("voxel_sum", "voxel_sumsq") if name in attrs]
    values = image.astype(np.float64) if names else image
    for name in names:
        actual = float(values.sum() if name == "voxel_sum" else np.square(values).sum())
        recorded = _number(attrs[name])
        if not math.isclose(actual, recorded, rel_tol=1e-9, abs_tol=1e-6) and not np.isnan(actual):
            return [f"{where}: image {name} {actual:.6g} differs from the {recorded:.6g} recorded at ingest ({DAMAGED})"]
    return []


def require_valid_scans(store: SliceStore, volumes: Iterable[str]) -> None:
    """Raise a one-line :class:`DataError` for the first of ``volumes`` with a cheap-check problem."""
    for vol in dict.fromkeys(volumes):
        if vol in store.checked_scans:
            continue
        problems = scan_problems(store, vol)
        if problems:
            raise DataError(f"store '{store.path}' is corrupt: {problems[0]}; `fewshotkit store check "
                            f"{store.path}` lists every problem; re-create the store with `fewshotkit ingest`")
        store.checked_scans.add(vol)


def metadata_problems(h5: h5py.File) -> list[str]:
    """Problems of the root attributes, the per-volume records, volume groups missing from the
    volume list and the ``/pseudolabels`` group (listed, not raised)."""
    problems, classes, order = _root_problems(h5.attrs)
    volumes = h5.get(fmt.VOLUMES)
    if not isinstance(volumes, h5py.Group):
        return problems + [f"group '/{fmt.VOLUMES}' is missing"]
    n_classes = len(classes) if isinstance(classes, dict) else None
    for vid in order or []:
        problems += _record_problems(volumes, str(vid), n_classes)
    if order is not None:
        problems += [f"volume '{vid}' is stored but not listed in '{fmt.ATTR_VOLUME_ORDER}'"
                     for vid in sorted(set(volumes) - {str(v) for v in order})]
    if not isinstance(h5.get(fmt.PSEUDOLABELS), h5py.Group):
        problems.append(f"group '/{fmt.PSEUDOLABELS}' is missing")
    return problems


def _root_problems(attrs: Any) -> tuple[list[str], Any, list | None]:
    """Problems of the root attributes, the parsed ``classes`` (None when unreadable) and the volume
    list (None when unreadable or not a list)."""
    problems: list[str] = []
    parsed: dict[str, Any] = {}
    for key in (fmt.ATTR_CLASSES, fmt.ATTR_VOLUME_ORDER, fmt.ATTR_PREPROCESSING,
                fmt.ATTR_PRESET, fmt.ATTR_MODALITY, fmt.ATTR_NORMALIZATION):
        if key not in attrs:
            problems.append(f"root attribute '{key}' is missing")
    for key in (fmt.ATTR_CLASSES, fmt.ATTR_VOLUME_ORDER, fmt.ATTR_PREPROCESSING):
        try:
            parsed[key] = json.loads(attrs[key]) if key in attrs else None
        except (TypeError, ValueError) as exc:
            problems.append(f"root attribute '{key}' is not valid JSON ({exc})")
    classes, order = parsed.get(fmt.ATTR_CLASSES), parsed.get(fmt.ATTR_VOLUME_ORDER)
    if classes is not None and not (isinstance(classes, dict) and all(
            str(k).isdigit() and 0 < int(k) < 256 and isinstance(v, str) for k, v in classes.items())):
        problems.append(f"root attribute '{fmt.ATTR_CLASSES}' must map values 1..255 to names, got {classes!r}")
    if order is not None and not isinstance(order, list):
        problems.append(f"root attribute '{fmt.ATTR_VOLUME_ORDER}' must be a list of volume ids")
        order = None
    return problems, classes, order


def _record_problems(volumes: h5py.Group, vid: str, n_classes: int | None) -> list[str]:
    """Problems of the record of listed volume ``vid``: its group, datasets, normalisation attributes,
    image rank and, given the class count, the class index's shape (Z, n_classes)."""
    group = volumes.get(vid)
    if not isinstance(group, h5py.Group):
        return [f"volume '{vid}' is listed in '{fmt.ATTR_VOLUME_ORDER}' but missing"]
    problems = [f"volume '{vid}': dataset '{name}' is missing" for name in (fmt.IMAGE, fmt.LABEL, fmt.CLASS_PIXELS)
                if not isinstance(group.get(name), h5py.Dataset)]
    problems += [f"volume '{vid}': attribute '{name}' is missing" for name in ("norm_mean", "norm_std")
                 if name not in group.attrs]
    image, table = group.get(fmt.IMAGE), group.get(fmt.CLASS_PIXELS)
    if isinstance(image, h5py.Dataset) and image.ndim != 3:
        problems.append(f"volume '{vid}': image has shape {image.shape}, not (Z, H, W)")
    elif n_classes is not None and isinstance(image, h5py.Dataset) and isinstance(table, h5py.Dataset) \
            and table.shape != (image.shape[0], n_classes):
        problems.append(f"volume '{vid}': class index has shape {table.shape}, expected {(image.shape[0], n_classes)}")
    return problems


def _set_problems(store: SliceStore, group: h5py.Group, name: str) -> list[str]:
    problems: list[str] = []
    digest = hashlib.sha256()  # of the labels as read for the checks below: each volume is read once
    for key in (fmt.SET_COMPONENT, fmt.SET_PARAMS, fmt.SET_NDIM):
        if key not in group.attrs:
            problems.append(f"pseudolabel set '{name}': attribute '{key}' missing")
    for vol in store.volumes:
        if vol not in group:
            problems.append(f"pseudolabel set '{name}': volume '{vol}' missing")
            continue
        data = group[vol]
        if data.shape != store.shape(vol) or data.dtype != np.int32:
            problems.append(f"pseudolabel set '{name}', volume '{vol}': {data.shape} {data.dtype}, "
                            f"expected {store.shape(vol)} int32")
            continue
        values = data[()]
        add_set_volume(digest, vol, values)
        if values.min() < 0:
            problems.append(f"pseudolabel set '{name}', volume '{vol}': negative ids")
        if values.max() == 0:
            problems.append(f"pseudolabel set '{name}', volume '{vol}': no segments at all")
    recorded = group.attrs.get(fmt.SET_LABELS_SHA256)
    if recorded is not None and not problems and digest.hexdigest() != recorded:
        problems.append(f"pseudolabel set '{name}': its labels differ from the sha256 recorded when it was made; "
                        f"make it again with `fewshotkit pseudolabel {store.path} --with "
                        f"{group.attrs.get(fmt.SET_COMPONENT)} --force` and the parameters `store info` lists")
    return problems
