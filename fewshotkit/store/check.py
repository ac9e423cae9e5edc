"""Consistency checks of a store: shapes, dtypes, chunking, class index vs labels, pseudolabels."""

from __future__ import annotations

import os

import numpy as np

from fewshotkit.store import format as fmt
from fewshotkit.store.reader import SliceStore
from fewshotkit.store.writer import class_pixel_table


def check_store(path: str | os.PathLike) -> list[str]:
    """Every problem found, one line each; an empty list means the store is valid."""
    problems: list[str] = []
    with SliceStore(path) as store:
        h5 = store._h5()
        for vol in store.volumes:
            group = h5[fmt.VOLUMES][vol]
            image, label = group[fmt.IMAGE], group[fmt.LABEL]
            z, h, w = image.shape
            where = f"volume '{vol}'"
            if image.dtype != np.float32 or label.dtype != np.uint8:
                problems.append(f"{where}: dtypes {image.dtype}/{label.dtype}, expected float32/uint8")
            if label.shape != image.shape:
                problems.append(f"{where}: label shape {label.shape} != image shape {image.shape}")
                continue
            if image.chunks != (1, h, w) or label.chunks != (1, h, w):
                problems.append(f"{where}: chunks {image.chunks}/{label.chunks}, expected one slice per chunk")
            pixels = image[()]
            if not np.isfinite(pixels).all():
                problems.append(f"{where}: image has NaN or infinite values")
            labels = label[()]
            unknown = sorted(set(np.unique(labels).tolist()) - {0, *store.classes})
            if unknown:
                problems.append(f"{where}: unknown label values {unknown}")
            table = group[fmt.CLASS_PIXELS][()]
            if not np.array_equal(table, class_pixel_table(labels, store.class_values)):
                problems.append(f"{where}: class-slice index does not match the labels")
            if not float(group.attrs["norm_std"]) > 0:
                problems.append(f"{where}: norm_std is not positive")
        for name in store.pseudolabel_sets:
            group = h5[fmt.PSEUDOLABELS][name]
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
                if values.min() < 0:
                    problems.append(f"pseudolabel set '{name}', volume '{vol}': negative ids")
                if values.max() == 0:
                    problems.append(f"pseudolabel set '{name}', volume '{vol}': no segments at all")
    return problems
