"""The inputs of a ``segment`` call checked and resolved: the classes asked for against the support
label and the names the model was trained with, the orientation it was trained in, and scans that
would make a segmentation meaningless (constant, a label map, mixed modalities)."""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fewshotkit.core.errors import DataError, FewshotkitError
from fewshotkit.data.io.codes import check_code


def guess_modality(raw: np.ndarray) -> str:
    """'CT' when the scan holds Hounsfield-like negative values (air about -1000), else 'MR'."""
    return "CT" if float(np.percentile(raw, 1)) < -200.0 else "MR"


def resolve_class(spec: str | int | None, support_label: np.ndarray, names: dict[int, str], label_path: Any,
                  option: str = "--class") -> int:
    """The class value asked for (a code or a class name), checked against the support label;
    errors name ``option`` (``--class``, or the API's ``classes``)."""
    present = [int(v) for v in np.unique(support_label) if v != 0]
    if spec is None:
        if len(present) != 1:
            listing = ", ".join(f"{v}" + (f"={names[v]}" if v in names else "") for v in present) or "none"
            raise FewshotkitError(
                f"{option} is needed: support label '{label_path}' holds several classes ({listing}; "
                f"or {option} all)" if present else f"support label '{label_path}' is empty; give a label with the structure"
            )
        return present[0]
    text = str(spec).strip()
    if text.isdigit():
        value = check_code(text, option)
    else:
        by_name = {n.lower(): v for v, n in names.items()}
        if text.lower() not in by_name:
            known = ", ".join(f"{v}={n}" for v, n in sorted(names.items())) or "none known: give a value"
            raise FewshotkitError(f"{option} '{spec}': unknown class name (classes: {known})")
        value = by_name[text.lower()]
    if value not in present:
        shown = ", ".join(str(v) for v in present) or "none"
        raise DataError(
            f"support label '{label_path}' has no voxel of class {spec} (values present: {shown}); "
            "give a support scan that contains the structure"
        )
    return value


def resolve_classes(specs: Sequence[str | int] | str | int | None, support_label: np.ndarray,
                    names: dict[int, str], label_path: Any, option: str = "--class") -> list[int]:
    """Class values for ``--class`` (repeatable; ``all`` = every class of the support label), in order."""
    if specs is None:
        listed: list[Any] = []
    elif isinstance(specs, (str, int, numbers.Integral)):  # one class (numpy integers too)
        listed = [specs]
    else:
        listed = list(specs)
    if any(str(s).strip().lower() == "all" for s in listed):
        present = [int(v) for v in np.unique(support_label) if v != 0]
        if not present:
            raise DataError(f"support label '{label_path}' is empty; give a label with the structures")
        return present
    if not listed:
        return [resolve_class(None, support_label, names, label_path, option)]
    return list(dict.fromkeys(resolve_class(s, support_label, names, label_path, option) for s in listed))


def training_class_names(meta: dict[str, Any]) -> dict[int, str]:
    """Label code -> class name of the store the checkpoint was trained on, when that store is at hand."""
    from fewshotkit.data.store.reader import SliceStore

    store_path = (meta.get("run") or {}).get("store")
    if not store_path or not Path(store_path).is_file():
        return {}
    try:
        with SliceStore(store_path) as store:
            return {store.label_codes[v]: name for v, name in store.classes.items()}
    except FewshotkitError:
        return {}


def model_orientation(meta: dict[str, Any]) -> str | None:
    """Axis codes of the scans the model was trained on: as recorded in its run (None there: not
    known), else, for runs older than that record, read from its store when that is at hand."""
    from fewshotkit.data.store.axes import scans_orientation
    from fewshotkit.data.store.reader import SliceStore

    run = meta.get("run") or {}
    if "orientation" in run:
        return run["orientation"]
    store_path = run.get("store")
    if not store_path or not Path(store_path).is_file():
        return None
    try:
        with SliceStore(store_path) as store:
            return scans_orientation(store, run.get("fold_train") or [])
    except (FewshotkitError, KeyError):
        return None


#: a query whose voxels take at most this many distinct whole values looks like a label map
LABEL_LIKE_VALUES = 32


def looks_like_labels(raw: np.ndarray) -> list[int] | None:
    """The distinct values of ``raw`` (Z, H, W) when they are few non-negative whole numbers (a
    label map, not a scan), else None; judged on at most about a million voxels."""
    sample = raw.ravel()[:: max(1, raw.size // 1_000_000)]
    values = np.unique(sample)
    if values.size > LABEL_LIKE_VALUES or values.size < 2 or values[0] < 0 or np.any(values != np.round(values)):
        return None
    return [int(v) for v in values]


def check_contents(raw_support: np.ndarray, raw_query: np.ndarray, support: Any, query: Any) -> None:
    """Warn where a segmentation would mean little: a constant (e.g. all-zero) support or query
    scan, or a query that looks like a label map rather than an image (raw intensities (Z, H, W))."""
    import warnings

    for raw, name, role in ((raw_support, support, "support"), (raw_query, query, "query")):
        if raw.size and float(raw.min()) == float(raw.max()):
            warnings.warn(f"{role} '{name}' is constant (every voxel is {float(raw.flat[0]):g}): it shows no "
                          "structure, so the segmentation means nothing; check the file", RuntimeWarning, stacklevel=3)
    values = looks_like_labels(raw_query)
    if values is not None:
        shown = ", ".join(map(str, values[:8])) + (" ..." if len(values) > 8 else "")
        warnings.warn(f"query '{query}' looks like a label map ({len(values)} whole values: {shown}), not a scan; "
                      "give the image to segment as the query", RuntimeWarning, stacklevel=3)


def check_modalities(raw_support: np.ndarray, raw_query: np.ndarray, support: Any, query: Any,
                     meta: dict[str, Any], checkpoint: Any) -> None:
    """Warn when support and query look like different modalities, or the checkpoint was trained on another."""
    import warnings

    modalities = guess_modality(raw_support), guess_modality(raw_query)
    if modalities[0] != modalities[1]:  # a guess from intensities (a cropped CT can look like MR): warn
        warnings.warn(f"support '{support}' looks like {modalities[0]} but query '{query}' looks like "
                      f"{modalities[1]}; support and query must be the same modality", RuntimeWarning, stacklevel=3)
    trained = (meta.get("run") or {}).get("modality")
    if trained and str(trained).upper() != modalities[1]:
        warnings.warn(f"checkpoint '{checkpoint}' was trained on {trained}, the query looks like {modalities[1]}",
                      RuntimeWarning, stacklevel=3)
