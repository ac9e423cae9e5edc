"""A store's fingerprint: a cheap hash that changes whenever the data a run trained on changes.

It covers the data's schema version (1: version 2 stores only add a code map, which is covered
where a class's code is not its value, so stores of version 1 and stores without codes keep one
fingerprint), the classes, the normalisation mode and, per volume in order, its
id, patient, shape, voxel sum / sum of squares / count (the image statistics written at ingest),
the orientation it was stored in when ingestion reoriented it, the sha256 of its image and label
bytes recorded at ingest (stores written before those were recorded keep their fingerprint
without them), and its class-slice index (pixels of each class per slice); with a pseudolabel set, also that set's pseudolabeler, parameters and
creation time (a separate ``/`` part: ``eval`` compares only the data part). Nothing is read but
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
    """``v1:<sha256 hex>`` of ``store``'s data; with ``pseudolabel_set``, ``/<sha256 hex>`` of that
    set's identity is appended (see :func:`data_part`)."""
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
        # the pixels' sha256 recorded at ingest, in stores that have them (older stores keep their value)
        sums = [str(attrs[k]) for k in ("image_sha256", "label_sha256") if k in attrs]
        _add(digest, [vid, str(attrs.get("patient", "")), list(store.shape(vid)), stats, *([turned] if turned else []),
                      *([sums] if sums else [])])
        digest.update(np.ascontiguousarray(store._pixels[vid], dtype=np.int64).tobytes())
    out = PREFIX + digest.hexdigest()
    if pseudolabel_set is not None:
        sets = store._h5()[fmt.PSEUDOLABELS]
        identity: list[Any] = [pseudolabel_set, "missing"]
        if pseudolabel_set in sets:
            attrs = sets[pseudolabel_set].attrs
            identity = [pseudolabel_set, *(str(attrs.get(k, "")) for k in (fmt.SET_COMPONENT, fmt.SET_PARAMS, "created"))]
        set_digest = hashlib.sha256()
        _add(set_digest, identity)
        out += "/" + set_digest.hexdigest()
    return out


def data_part(fingerprint: str) -> str:
    """The part of a fingerprint that covers the volumes and labels (without the pseudolabel set)."""
    return fingerprint.split("/", 1)[0]


def _add(digest: Any, value: Any) -> None:
    digest.update(json.dumps(value, sort_keys=True, default=str).encode())
    digest.update(b"\0")
