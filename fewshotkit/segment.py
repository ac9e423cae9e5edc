"""Segment a structure in a new NIfTI scan from one labelled scan: the engine of ``fewshotkit segment``.

Support slices are chosen exactly as in the evaluation protocol (C chunks, slices at
1/6, 1/2, 5/6 of the support's class slices). The query has no label, so its z-range of the
structure is estimated by relative position: the support range [z0, z1] of a scan of depth Zs
maps to [round(z0 * (Zq-1) / (Zs-1)), round(z1 * (Zq-1) / (Zs-1))] in a query of depth Zq
(``--query-range`` overrides it). Only that range is segmented unless ``all_slices`` is set, in
which case every slice is (slices outside use the nearest chunk's support, as in the
full-volume protocol). In-plane, scans of any size are resampled to the model's image size and
back; the prediction is written with the query's affine and header.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fewshotkit.errors import DataError, FewshotkitError
from fewshotkit.evaluation.metrics import confusion
from fewshotkit.evaluation.protocol import assign_chunks, select_support


@dataclass
class SegmentResult:
    """``prediction`` (Z, H, W) uint8 on the query's (preprocessed) grid, holding ``class_value``."""

    output: Path
    class_value: int
    support_slices: list[list[int]]
    query_range: tuple[int, int]
    prediction: np.ndarray
    class_name: str = ""
    dice: float | None = None  # percent, against --query-label
    overlay: Path | None = None


def guess_modality(raw: np.ndarray) -> str:
    """'CT' when the scan holds Hounsfield-like negative values (air about -1000), else 'MR'."""
    return "CT" if float(np.percentile(raw, 1)) < -200.0 else "MR"


def resolve_class(spec: str | int | None, support_label: np.ndarray, names: dict[int, str], label_path: Any) -> int:
    """The class value asked for (a value or a class name), checked against the support label."""
    present = [int(v) for v in np.unique(support_label) if v != 0]
    if spec is None:
        if len(present) != 1:
            listing = ", ".join(f"{v}" + (f"={names[v]}" if v in names else "") for v in present) or "none"
            raise FewshotkitError(
                f"--class is needed: support label '{label_path}' holds several classes ({listing})"
                if present else f"support label '{label_path}' is empty; give a label with the structure"
            )
        return present[0]
    text = str(spec).strip()
    if text.isdigit():
        value = int(text)
    else:
        by_name = {n.lower(): v for v, n in names.items()}
        if text.lower() not in by_name:
            known = ", ".join(f"{v}={n}" for v, n in sorted(names.items())) or "none known: give a value"
            raise FewshotkitError(f"--class '{spec}': unknown class name (classes: {known})")
        value = by_name[text.lower()]
    if value not in present:
        shown = ", ".join(str(v) for v in present) or "none"
        raise DataError(
            f"support label '{label_path}' has no voxel of class {spec} (values present: {shown}); "
            "give a support scan that contains the structure"
        )
    return value


def estimate_range(support_range: tuple[int, int], support_depth: int, query_depth: int) -> tuple[int, int]:
    """Map a z-range of the support scan to the same relative position in the query scan."""
    scale = (query_depth - 1) / max(support_depth - 1, 1)
    lo = int(round(support_range[0] * scale))
    hi = int(round(support_range[1] * scale))
    return max(0, min(lo, query_depth - 1)), max(0, min(hi, query_depth - 1))


def _class_names(meta: dict[str, Any]) -> dict[int, str]:
    """Class value -> name of the store the checkpoint was trained on, when that store is at hand."""
    from fewshotkit.store.reader import SliceStore

    store_path = (meta.get("run") or {}).get("store")
    if not store_path or not Path(store_path).is_file():
        return {}
    try:
        with SliceStore(store_path) as store:
            return dict(store.classes)
    except FewshotkitError:
        return {}


def segment_scan(
    checkpoint: str | os.PathLike,
    support: str | os.PathLike,
    support_label: str | os.PathLike,
    query: str | os.PathLike,
    output: str | os.PathLike,
    *,
    class_spec: str | int | None = None,
    query_label: str | os.PathLike | None = None,
    query_range: tuple[int, int] | None = None,
    all_slices: bool = False,
    chunks: int = 3,
    shots: int = 1,
    device: str = "auto",
    batch_size: int = 16,
    overlay: str | os.PathLike | None = None,
    seed: int = 0,
) -> SegmentResult:
    """Segment ``class_spec`` in ``query`` from (``support``, ``support_label``); write ``output``."""
    from fewshotkit.device import resolve_device
    from fewshotkit.evaluation.inference import MethodPredictor
    from fewshotkit.evaluation.results import save_nifti_atomic
    from fewshotkit.ingest.common import load_nifti
    from fewshotkit.ingest.volume import load_nifti_volume
    from fewshotkit.seeding import seed_everything
    from fewshotkit.training.checkpoint import load_method

    if not str(output).endswith((".nii", ".nii.gz")):
        raise FewshotkitError(f"-o '{output}': the output must be a .nii or .nii.gz file")
    torch_device = resolve_device(device)
    seed_everything(seed)
    loaded = load_method(checkpoint, torch_device)

    # modality check on raw intensities, before any normalisation
    _, raw_support = load_nifti(Path(support))
    _, raw_query = load_nifti(Path(query))
    modalities = guess_modality(raw_support), guess_modality(raw_query)
    if modalities[0] != modalities[1]:
        raise DataError(
            f"support '{support}' looks like {modalities[0]} but query '{query}' looks like {modalities[1]}; "
            "support and query must be the same modality"
        )
    trained = (loaded.meta.get("run") or {}).get("modality")
    if trained and str(trained).upper() != modalities[1]:
        import warnings

        warnings.warn(f"checkpoint '{checkpoint}' was trained on {trained}, the query looks like {modalities[1]}",
                      RuntimeWarning, stacklevel=2)

    sup = load_nifti_volume(support, support_label, target_size=None)
    qry = load_nifti_volume(query, query_label, target_size=None)
    assert sup.label is not None
    names = _class_names(loaded.meta)
    value = resolve_class(class_spec, sup.label, names, support_label)
    sup_mask = sup.label == value
    sup_z = [int(z) for z in np.flatnonzero(sup_mask.any(axis=(1, 2)))]
    if len(sup_z) < shots:
        raise DataError(f"support label '{support_label}' has {len(sup_z)} slice(s) of class {value}; "
                        f"--shots {shots} needs at least {shots}")
    support_slices = select_support(sup_z, chunks, shots)

    depth = qry.image.shape[0]
    if query_range is None:
        query_range = estimate_range((sup_z[0], sup_z[-1]), sup.image.shape[0], depth)
    lo, hi = query_range
    if not 0 <= lo <= hi < depth:
        raise FewshotkitError(f"--query-range {lo}:{hi} is outside the query's slices 0..{depth - 1}")
    assignment = assign_chunks(depth, [lo, hi], chunks, "full-volume" if all_slices else "roy")

    predictor = MethodPredictor(loaded.method, loaded.spec.image_size, torch_device, batch_size)
    prediction = np.zeros(qry.image.shape, dtype=np.uint8)
    for i, zs in enumerate(support_slices):
        query_z = np.flatnonzero(assignment == i)
        if query_z.size:
            fg = predictor(sup.image[zs], sup_mask[zs], qry.image[query_z])
            prediction[query_z] = np.where(fg, value, 0).astype(np.uint8)

    out = save_nifti_atomic(qry.to_nifti(prediction), output)
    result = SegmentResult(out, value, support_slices, (lo, hi), prediction, names.get(value, ""))
    truth = None
    if qry.label is not None:
        truth = qry.label == value
        result.dice = 100.0 * confusion(prediction > 0, truth).dice
    if overlay is not None:
        from fewshotkit.evaluation.figures import montage

        title = f"class {value} {result.class_name}".strip() + (f", Dice {result.dice:.1f}" if result.dice is not None else "")
        result.overlay = montage(qry.image, prediction > 0, overlay, truth=truth, title=title)
    return result
