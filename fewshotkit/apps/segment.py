"""Segment structures in a new scan from one labelled scan: the engine of ``fewshotkit segment``.

Scans are NIfTI, NRRD or MetaImage files or DICOM series folders (:mod:`fewshotkit.data.io`); label
maps hold any codes 0..65535, and the prediction carries the support's codes, in the query's format
unless ``-o`` names another (a DICOM query's as NIfTI, or as a DICOM SEG with ``-o NAME.dcm``).

Support slices are chosen exactly as in the evaluation protocol (C chunks, slices at
1/6, 1/2, 5/6 of the support's class slices). The query has no label, so its z-range of each
structure is estimated by relative position, the same function the ``estimated-range``
protocol uses (:func:`fewshotkit.evaluation.query_range.estimate_range`; ``--query-range``
overrides it). Only that range is segmented unless ``all_slices`` is set, in which case every
slice is (slices outside use the nearest chunk's support, as in the full-volume protocol).
Several classes go into one label map, from one forward pass per query chunk where the method
allows, else from one pass per class and chunk, a voxel two classes claim going to the more
probable (:mod:`fewshotkit.evaluation.scan`). In-plane, scans of any size are resampled to the
model's image size and back; the prediction is written on the query's grid (a NIfTI query's header kept).
Support and query are first brought to one frame (:mod:`fewshotkit.evaluation.frame`): the
orientation of the scans the model was trained on when known, else the support's, the support's
in-plane pixel size and one canvas holding both; the prediction goes back to
the query's own voxel grid, and slice numbers (printed, ``--query-range``) are each scan's own
where its slices stay slices.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from fewshotkit.core.errors import DataError, FewshotkitError
from fewshotkit.evaluation.metrics import confusion
from fewshotkit.evaluation.scan import ClassSegment

if TYPE_CHECKING:
    from fewshotkit.evaluation.frame import ScanFrame
    from fewshotkit.evaluation.scan import VolumeSegmentation


@dataclass
class SegmentResult:
    """``prediction`` (Z, H, W) label map on the query's own grid, one code per class (uint8, or uint16
    for codes above 255)."""

    output: Path
    prediction: np.ndarray
    classes: list[ClassSegment]
    joint: bool = False  # one forward pass per query chunk for all classes
    orientation: tuple[str, str, str] = ("", "", "")  # axis codes of the support, the query, and segmented in
    support_slice_numbers: bool = True  # False: support slices count slices of the reoriented support
    query_slice_numbers: bool = True  # False: query ranges count slices of the reoriented query
    frame: str = ""  # the in-plane changes that gave support and query one pixel size and canvas, if any
    overlay: Path | None = None
    support_turns: int = 0  # quarter turns counter-clockwise given to the support (orientation search)
    support_zoom: float | None = None  # margin of the support's window the model segmented inside, if any
    test_mirror: bool = False  # each prediction averaged with the left-right mirrored episode's
    fg_threshold: float = 0.5  # the 1-way softmax a foreground voxel exceeded
    drop_absent: float | None = None  # slices below this fraction of the largest slice mass were cleared


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
                f"--class is needed: support label '{label_path}' holds several classes ({listing}; "
                "or --class all)" if present else f"support label '{label_path}' is empty; give a label with the structure"
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


def resolve_classes(specs: Sequence[str | int] | str | int | None, support_label: np.ndarray,
                    names: dict[int, str], label_path: Any) -> list[int]:
    """Class values for ``--class`` (repeatable; ``all`` = every class of the support label), in order."""
    if specs is None or isinstance(specs, (str, int)):
        specs = [] if specs is None else [specs]
    if any(str(s).strip().lower() == "all" for s in specs):
        present = [int(v) for v in np.unique(support_label) if v != 0]
        if not present:
            raise DataError(f"support label '{label_path}' is empty; give a label with the structures")
        return present
    if not specs:
        return [resolve_class(None, support_label, names, label_path)]
    return list(dict.fromkeys(resolve_class(s, support_label, names, label_path) for s in specs))


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


def segment_in_common_frame(predictor: Any, support_image: np.ndarray, support_label: np.ndarray,
                            support_affine: np.ndarray, support_spacing: Sequence[float], query_image: np.ndarray,
                            query_affine: np.ndarray, query_spacing: Sequence[float], values: Sequence[int],
                            target: str | None, *, query_range: tuple[int, int] | None = None,
                            **options: Any) -> tuple["VolumeSegmentation", "ScanFrame", "ScanFrame"]:
    """:func:`~fewshotkit.evaluation.scan.segment_volume` with support and query first brought to one
    frame (:mod:`fewshotkit.evaluation.frame`: the axis codes ``target``, None for the support's; the
    support's pixel size; one canvas), the labels and slice numbers then back on the query's grid.

    ``query_range`` is in the query's own slice numbers; ``options`` go to ``segment_volume``.
    Returns the segmentation (query grid) and the support's and the query's frames.
    """
    from fewshotkit.evaluation.frame import common_frame
    from fewshotkit.evaluation.scan import check_query_range, segment_volume
    from fewshotkit.data.store.axes import axis_codes

    support, query = common_frame(support_image.shape, support_affine, support_spacing, query_image.shape,
                                  query_affine, query_spacing, target or axis_codes(support_affine))
    to_support, to_query = support.reorientation, query.reorientation
    depth = query_image.shape[0]
    if query_range is not None and not to_query.identity:
        check_query_range(query_range, depth)  # in the user's numbers, before they are mapped
        if not to_query.keeps_slice_axis:
            raise FewshotkitError(
                f"a query range (--query-range) needs the query's slices, but the query ({to_query.source}) is "
                f"segmented in {to_query.target}, where its slices run along another axis; leave the range out "
                "(it is estimated) or give the query in a matching orientation")
        ends = sorted(to_query.slice_index(z, depth) for z in query_range)
        query_range = (ends[0], ends[1])
    label = support.apply(support_label, is_label=True)
    seg = segment_volume(predictor, support.apply(support_image), label, query.apply(query_image), values,
                         query_range=query_range, spacing=query.spacing, **options)
    seg.labels = query.undo(seg.labels)
    support_depth = label.shape[0]
    for item in seg.classes:  # slice numbers of the scans as the user has them
        if to_query.keeps_slice_axis:
            ends = sorted(to_query.slice_index(z, depth) for z in item.query_range)
            item.query_range = (ends[0], ends[1])
        if to_support.keeps_slice_axis:
            item.support_slices = [[to_support.slice_index(z, support_depth) for z in chunk]
                                   for chunk in item.support_slices]
    return seg, support, query


def check_modalities(raw_support: np.ndarray, raw_query: np.ndarray, support: Any, query: Any,
                     meta: dict[str, Any], checkpoint: Any) -> None:
    """Support and query must look like the same modality; warn if the checkpoint was trained on another."""
    modalities = guess_modality(raw_support), guess_modality(raw_query)
    if modalities[0] != modalities[1]:
        raise DataError(
            f"support '{support}' looks like {modalities[0]} but query '{query}' looks like {modalities[1]}; "
            "support and query must be the same modality"
        )
    trained = (meta.get("run") or {}).get("modality")
    if trained and str(trained).upper() != modalities[1]:
        import warnings

        warnings.warn(f"checkpoint '{checkpoint}' was trained on {trained}, the query looks like {modalities[1]}",
                      RuntimeWarning, stacklevel=3)


def segment_scan(
    checkpoint: str | os.PathLike,
    support: str | os.PathLike,
    support_label: str | os.PathLike,
    query: str | os.PathLike,
    output: str | os.PathLike | None = None,
    *,
    classes: Sequence[str | int] | str | int | None = None,
    query_label: str | os.PathLike | None = None,
    query_range: tuple[int, int] | None = None,
    all_slices: bool = False,
    chunks: int = 3,
    shots: int = 1,
    device: str = "auto",
    batch_size: int = 16,
    overlay: str | os.PathLike | None = None,
    seed: int = 0,
    postprocess: Sequence[Any] | str | None = None,
    drop_absent: float | None = None,
    joint: bool = True,
    overrides: Sequence[str] = (),
    frame: int | None = None,
    series: Sequence[str] = (),
    force: bool = False,
) -> SegmentResult:
    """Segment ``classes`` in ``query`` from (``support``, ``support_label``); write ``output``.

    ``output`` None: beside the query in its format (:func:`fewshotkit.data.io.formats.default_output`).
    ``output`` and ``overlay`` may not be any file the command reads, nor an existing scan or label
    image unless ``force`` (:mod:`fewshotkit.core.outputs`).
    ``postprocess=None`` applies the checkpoint spec's ``[postprocess]`` list; a list replaces it.
    ``overrides``: inference options of the trained method, as ``fewshotkit eval --set``. ``frame``:
    the frame of 4D scans; ``series``: UIDs choosing among several DICOM series of a folder.
    """
    from fewshotkit.core.device import resolve_device
    from fewshotkit.core.outputs import SCAN, Output, check_outputs
    from fewshotkit.evaluation.frame import describe as describe_frame
    from fewshotkit.evaluation.inference import predictor_for
    from fewshotkit.evaluation.postprocess import spec_postprocess
    from fewshotkit.data.ingest.volume import load_volume
    from fewshotkit.data.io.formats import default_output
    from fewshotkit.data.io.writer import check_output
    from fewshotkit.core.seeding import seed_everything
    from fewshotkit.method.checkpoint import checkpoint_inputs, load_method

    inputs = {"--checkpoint": checkpoint_inputs(checkpoint), "--support": support, "--support-label": support_label,
              "--query": query, "--query-label": query_label}
    if output is not None:
        check_output(output)
        check_outputs([Output(output, "-o", SCAN), Output(overlay, "--overlay", "PNG") if overlay else None], inputs,
                      force=force)
    torch_device = resolve_device(device)
    seed_everything(seed)
    loaded = load_method(checkpoint, torch_device, overrides)
    cleanup = spec_postprocess(loaded.spec, postprocess, drop_absent)

    sup = load_volume(support, support_label, target_size=None, frame=frame, series=series)
    qry = load_volume(query, query_label, target_size=None, frame=frame, series=series)
    if output is None:  # the default beside the query: guarded like a given one
        output = default_output(query, qry.scan.format)
        check_outputs([Output(output, "-o", SCAN), Output(overlay, "--overlay", "PNG") if overlay else None], inputs,
                      force=force)
    output = Path(output)
    check_output(output, qry.scan)
    # modality check on raw intensities, before any normalisation
    check_modalities(sup.scan.array, qry.scan.array, support, query, loaded.meta, checkpoint)
    assert sup.label is not None
    names = training_class_names(loaded.meta)
    values = resolve_classes(classes, sup.label, names, support_label)
    predictor = predictor_for(loaded.method, loaded.spec, torch_device, batch_size)
    seg, support_frame, query_frame = segment_in_common_frame(
        predictor, sup.image, sup.label, sup.affine, sup.spacing, qry.image, qry.affine, qry.spacing, values,
        model_orientation(loaded.meta), names=names, chunks=chunks, shots=shots, query_range=query_range,
        all_slices=all_slices, postprocess=cleanup, joint=joint, support_name=f"support label '{support_label}'",
        support_orientation=loaded.spec.support_orientation)
    to_support, to_query = support_frame.reorientation, query_frame.reorientation
    result = SegmentResult(output, seg.labels, seg.classes, seg.joint,
                           orientation=(to_support.source, to_query.source, to_query.target),
                           support_slice_numbers=to_support.keeps_slice_axis,
                           query_slice_numbers=to_query.keeps_slice_axis,
                           frame=describe_frame(support_frame, query_frame),
                           support_turns=seg.support_turns,
                           support_zoom=loaded.spec.support_zoom, test_mirror=loaded.spec.test_mirror,
                           fg_threshold=loaded.spec.fg_threshold, drop_absent=cleanup.drop_absent)
    if qry.label is not None:
        for item in result.classes:
            item.dice = 100.0 * confusion(seg.labels == item.value, qry.label == item.value).dice
    # the overlay first: a failure there (a bad --overlay path) leaves a previous prediction as it was
    if overlay is not None:
        result.overlay = _write_overlay(result, qry.image, qry.label, overlay)
    qry.write_labels(output, seg.labels, {c.value: c.name for c in result.classes if c.name})
    return result


def _write_overlay(result: SegmentResult, image: np.ndarray, truth: np.ndarray | None, path: str | os.PathLike) -> Path:
    """A PNG montage of the query ``image`` (Z, H, W) with the prediction (and the query's label map, if known)."""
    from fewshotkit.evaluation.figures import montage

    title = ", ".join(f"{c.value} {c.name}".strip() + (f" (Dice {c.dice:.1f})" if c.dice is not None else "")
                      for c in result.classes)
    outline = None if truth is None else np.isin(truth, [c.value for c in result.classes])
    return montage(image, result.prediction, path, truth=outline, title=title,
                   class_names={c.value: c.name or str(c.value) for c in result.classes})
