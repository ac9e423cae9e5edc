"""A store's fingerprint: a cheap hash that changes whenever the data a run trained on changes.

It covers the data's schema version (1: version 2 stores only add a code map, which is covered
where a class's code is not its value, so stores of version 1 and stores without codes keep one
fingerprint), the classes, the normalisation mode and, per volume in order, its
id, patient, shape, voxel sum / sum of squares / count (the image statistics written at ingest),
the orientation it was stored in when ingestion reoriented it, and its class-slice index (pixels
of each class per slice). Stores that recorded the sha256 of every volume's image and label bytes
at ingest get a ``+<pixels>`` part hashing those (the same data part as before, so a run recorded
before the sha256 existed still matches the same data re-ingested now: :func:`same_data` compares
the pixels part where both fingerprints have one). With a pseudolabel set, also that set's
pseudolabeler, parameters and the sha256 of its labels recorded when it was made (sets made before
that was recorded: its creation time) in a separate ``/`` part (``eval`` compares only the data part). Nothing is read but
metadata and the small per-volume index, so it takes milliseconds even for large stores; that the
pixels still match what was recorded is checked where they are read
(:func:`fewshotkit.data.store.check.require_valid_scans`). Runs record it in run.json; ``train --resume`` and ``eval``
compare it (see :mod:`fewshotkit.training.checkpoint`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from fewshotkit.data.store import format as fmt
from fewshotkit.data.store.reader import SliceStore

PREFIX = "v1:"
#: the schema version the fingerprint names: the data of a version 2 store without codes is a version 1 store's
DATA_VERSION = 1


def store_fingerprint(store: SliceStore, pseudolabel_set: str | None = None) -> str:
    """``v1:<sha256 hex>[+<sha256 hex>]`` of ``store``'s data (statistics, then pixels); with
    ``pseudolabel_set``, ``/<sha256 hex>`` of that set's identity is appended (see :func:`data_part`)."""
    digest = hashlib.sha256()
    coded = {str(k): c for k, c in store.label_codes.items() if k != c}
    _add(digest, [DATA_VERSION, {str(k): v for k, v in store.classes.items()}, store.normalization,
                  *([coded] if coded else [])])
    volumes = store._h5()[fmt.VOLUMES]
    for vid in store.volumes:
        attrs = volumes[vid].attrs
        stats = [float(attrs[k]).hex() if k in attrs else None for k in ("voxel_sum", "voxel_sumsq", "voxel_count")]
        # an in-plane flip changes none of the statistics: a reorientation at ingest is named (only
        # where there is one, so the fingerprints of stores without keep their value)
        turned = [op for op in json.loads(attrs.get("inplane", "[]")) if op.get("op") == "reorient"]
        _add(digest, [vid, str(attrs.get("patient", "")), list(store.shape(vid)), stats, *([turned] if turned else [])])
        digest.update(np.ascontiguousarray(store._pixels[vid], dtype=np.int64).tobytes())
    out = PREFIX + digest.hexdigest()
    pixels = _pixels_part(store)
    if pixels is not None:
        out += "+" + pixels
    if pseudolabel_set is not None:
        sets = store._h5()[fmt.PSEUDOLABELS]
        identity: list[Any] = [pseudolabel_set, "missing"]
        if pseudolabel_set in sets:
            attrs = sets[pseudolabel_set].attrs
            # a set that recorded its labels' sha256 is named by its content, so a set made again with
            # the same labels keeps the fingerprint; older sets by their creation time
            content = f"sha256:{attrs[fmt.SET_LABELS_SHA256]}" if fmt.SET_LABELS_SHA256 in attrs else str(
                attrs.get(fmt.ATTR_CREATED, ""))
            identity = [pseudolabel_set, *(str(attrs.get(k, "")) for k in (fmt.SET_COMPONENT, fmt.SET_PARAMS)), content]
        set_digest = hashlib.sha256()
        _add(set_digest, identity)
        out += "/" + set_digest.hexdigest()
    return out


def set_labels_sha256(group: Any, volumes: list[str]) -> str:
    """sha256 hex of a pseudolabel set's labels: per volume of ``volumes`` (store order), its id, shape
    and int32 little-endian label bytes (Z, H, W), read from the set's ``group``."""
    digest = hashlib.sha256()
    for vid in volumes:
        add_set_volume(digest, vid, group[vid][()])
    return digest.hexdigest()


def add_set_volume(digest: Any, vid: str, labels: np.ndarray) -> None:
    """Feed one volume's pseudolabels (Z, H, W) to a :func:`set_labels_sha256` digest (a ``hashlib.sha256()``),
    for readers that hold the labels already."""
    labels = np.ascontiguousarray(labels, dtype="<i4")
    _add(digest, [vid, list(labels.shape)])
    digest.update(labels.tobytes())


def _pixels_part(store: SliceStore) -> str | None:
    """sha256 hex of every volume's recorded image and label sha256, in order; None when a volume
    has none (a store written before they were recorded)."""
    volumes = store._h5()[fmt.VOLUMES]
    sums = [[str(volumes[vid].attrs.get(k, "")) for k in ("image_sha256", "label_sha256")] for vid in store.volumes]
    if not all(all(pair) for pair in sums):
        return None
    digest = hashlib.sha256()
    _add(digest, sums)
    return digest.hexdigest()


def data_part(fingerprint: str) -> str:
    """The part of a fingerprint that covers the volumes and labels (without the pseudolabel set)."""
    return fingerprint.split("/", 1)[0]


def same_data(current: str, recorded: str) -> bool:
    """Whether two fingerprints describe the same volumes and labels: equal statistics parts and,
    where both carry one, equal pixels parts (pseudolabel set parts are ignored)."""
    stats, _, pixels = data_part(current).partition("+")
    old_stats, _, old_pixels = data_part(recorded).partition("+")
    return stats == old_stats and (not pixels or not old_pixels or pixels == old_pixels)


def same_fingerprint(current: str, recorded: str) -> bool:
    """:func:`same_data` and the same pseudolabel set part (or none in both)."""
    return same_data(current, recorded) and current.partition("/")[2] == recorded.partition("/")[2]


def _add(digest: Any, value: Any) -> None:
    digest.update(json.dumps(value, sort_keys=True, default=str).encode())
    digest.update(b"\0")
