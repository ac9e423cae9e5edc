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
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence

import numpy as np

from fewshotkit.core.errors import DataError, FewshotkitError
from fewshotkit.evaluation.metrics import confusion
from fewshotkit.evaluation.options import InferenceOptions
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


class ScanVolume(Protocol):
    """One scan as segmentation reads it (a :class:`~fewshotkit.data.ingest.volume.PreparedVolume`):
    ``image`` float (Z, H, W), ``label`` int (Z, H, W) or None, ``affine`` 4 x 4, ``spacing`` (z, y, x) mm."""

    @property
    def image(self) -> np.ndarray: ...

    @property
    def label(self) -> np.ndarray | None: ...

    @property
    def affine(self) -> np.ndarray: ...

    @property
    def spacing(self) -> Sequence[float]: ...


def segment_in_common_frame(predictor: Any, support: ScanVolume, query: ScanVolume, classes: Sequence[int] | Mapping[int, str],
                            target: str | None, *, options: "InferenceOptions",
                            support_name: str = "the support label") -> tuple["VolumeSegmentation", "ScanFrame", "ScanFrame"]:
    """:func:`~fewshotkit.evaluation.scan.segment_volume` with support and query first brought to one
    frame (:mod:`fewshotkit.evaluation.frame`: the axis codes ``target``, None for the support's; the
    support's pixel size; one canvas), the labels and slice numbers then back on the query's grid.

    ``options.query_range`` is in the query's own slice numbers. Returns the segmentation (query
    grid) and the support's and the query's frames.
    """
    from fewshotkit.data.store.axes import axis_codes
    from fewshotkit.evaluation.frame import common_frame
    from fewshotkit.evaluation.scan import check_query_range, segment_volume

    assert support.label is not None
    framed_support, framed_query = common_frame(support.image.shape, support.affine, support.spacing,
                                                query.image.shape, query.affine, query.spacing,
                                                target or axis_codes(support.affine))
    to_support, to_query = framed_support.reorientation, framed_query.reorientation
    depth = query.image.shape[0]
    query_range = options.query_range
    if query_range is not None and not to_query.identity:
        check_query_range(query_range, depth)  # in the user's numbers, before they are mapped
        if not to_query.keeps_slice_axis:
            raise FewshotkitError(
                f"a query range (--query-range) needs the query's slices, but the query ({to_query.source}) is "
                f"segmented in {to_query.target}, where its slices run along another axis; leave the range out "
                "(it is estimated) or give the query in a matching orientation")
        ends = sorted(to_query.slice_index(z, depth) for z in query_range)
        options = options.replace(query_range=(ends[0], ends[1]))
    label = framed_support.apply(support.label, is_label=True)
    seg = segment_volume(predictor, framed_support.apply(support.image), label, framed_query.apply(query.image),
                         classes, options=options, spacing=framed_query.spacing, support_name=support_name)
    seg.labels = framed_query.undo(seg.labels)
    support_depth = label.shape[0]
    for item in seg.classes:  # slice numbers of the scans as the user has them
        if to_query.keeps_slice_axis:
            ends = sorted(to_query.slice_index(z, depth) for z in item.query_range)
            item.query_range = (ends[0], ends[1])
        if to_support.keeps_slice_axis:
            item.support_slices = [[to_support.slice_index(z, support_depth) for z in chunk]
                                   for chunk in item.support_slices]
    return seg, framed_support, framed_query


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


@dataclass(frozen=True)
class ScanFiles:
    """The scans of one segmentation and how to read them: the labelled support scan, the query
    scan and, to report Dice, the query's label map (NIfTI, NRRD or MetaImage files, or folders of
    one DICOM series); ``frame``: the frame of 4D scans; ``series``: UIDs choosing among several
    DICOM series of a folder."""

    support: str | os.PathLike
    support_label: str | os.PathLike
    query: str | os.PathLike
    query_label: str | os.PathLike | None = None
    frame: int | None = None
    series: Sequence[str] = ()


def segment_files(
    checkpoint: str | os.PathLike,
    files: ScanFiles,
    output: str | os.PathLike | None = None,
    *,
    classes: Sequence[str | int] | str | int | None = None,
    options: InferenceOptions = InferenceOptions(),
    device: str = "auto",
    overlay: str | os.PathLike | None = None,
    force: bool = False,
) -> SegmentResult:
    """Segment ``classes`` in ``files.query`` from (``files.support``, ``files.support_label``);
    write the label map to ``output`` (and a PNG montage to ``overlay``).

    ``output`` None: beside the query in its format (:func:`fewshotkit.data.io.formats.default_output`).
    ``output`` and ``overlay`` may not be any file the command reads, nor an existing scan or label
    image unless ``force`` (:mod:`fewshotkit.core.outputs`). ``options``:
    :class:`~fewshotkit.evaluation.options.InferenceOptions` (post-processing None: the checkpoint
    spec's ``[postprocess]`` list). Inference is seeded with 0, as ``eval``'s default.
    """
    from fewshotkit.core.device import resolve_device
    from fewshotkit.core.seeding import seed_everything
    from fewshotkit.data.ingest.volume import load_volume
    from fewshotkit.data.io.formats import default_output
    from fewshotkit.data.io.writer import check_output
    from fewshotkit.method.checkpoint import load_method

    if output is not None:
        check_output(output)
        _guard(files, checkpoint, output, overlay, force)
    torch_device = resolve_device(device)
    seed_everything(0)
    loaded = load_method(checkpoint, torch_device, options.method_overrides())
    sup = load_volume(files.support, files.support_label, target_size=None, frame=files.frame, series=files.series)
    qry = load_volume(files.query, files.query_label, target_size=None, frame=files.frame, series=files.series)
    _check_series_used(files.series, sup.series_uids + qry.series_uids)
    if output is None:  # the default beside the query: guarded like a given one
        output = default_output(files.query, qry.scan.format)
        _guard(files, checkpoint, output, overlay, force)
    output = Path(output)
    check_output(output, qry.scan)
    # modality check on raw intensities, before any normalisation
    check_modalities(sup.scan.array, qry.scan.array, files.support, files.query, loaded.meta, checkpoint)
    check_contents(sup.scan.array, qry.scan.array, files.support, files.query)
    result = _segment(loaded, (sup, qry), files, classes, options, torch_device, output)
    if qry.label is not None:
        for item in result.classes:
            item.dice = 100.0 * confusion(result.prediction == item.value, qry.label == item.value).dice
    # the overlay first: a failure there (a bad --overlay path) leaves a previous prediction as it was
    if overlay is not None:
        result.overlay = _write_overlay(result, qry.image, qry.label, overlay)
    qry.write_labels(output, result.prediction, {c.value: c.name for c in result.classes if c.name})
    return result


def _check_series_used(series: Sequence[str], read: Sequence[str]) -> None:
    """Refuse a ``--series`` UID that no folder read holds: a mistyped UID is otherwise silently
    ignored by a folder of one series."""
    unused = [uid for uid in series if uid not in read]
    if unused:
        held = ", ".join(dict.fromkeys(read)) or "none: no scan was read from a DICOM folder"
        raise DataError(f"--series {unused[0]}: no DICOM folder given holds this series (the series read: {held}); "
                        "check the UID")


def _guard(files: ScanFiles, checkpoint: Any, output: Any, overlay: Any, force: bool) -> None:
    """Refuse an ``output`` or ``overlay`` that is an input, or an existing scan unless ``force``."""
    from fewshotkit.core.outputs import SCAN, Output, check_outputs
    from fewshotkit.method.checkpoint import checkpoint_inputs

    inputs = {"--checkpoint": checkpoint_inputs(checkpoint), "--support": files.support,
              "--support-label": files.support_label, "--query": files.query, "--query-label": files.query_label}
    check_outputs([Output(output, "-o", SCAN), Output(overlay, "--overlay", "PNG") if overlay else None], inputs,
                  force=force)


def _segment(loaded: Any, scans: tuple[Any, Any], files: ScanFiles, classes: Any, options: InferenceOptions,
             device: Any, output: Path) -> SegmentResult:
    """The loaded model's segmentation of the query of ``scans`` (support, query), in one frame."""
    from fewshotkit.evaluation.inference import predictor_for

    sup, qry = scans
    assert sup.label is not None
    names = training_class_names(loaded.meta)
    values = resolve_classes(classes, sup.label, names, files.support_label)
    resolved = options.for_spec(loaded.spec)
    predictor = predictor_for(loaded.method, loaded.spec, device, options.batch_size)
    seg, support_frame, query_frame = segment_in_common_frame(
        predictor, sup, qry, {v: names.get(v, "") for v in values}, model_orientation(loaded.meta),
        options=resolved, support_name=f"support label '{files.support_label}'")
    return _result(output, seg, (support_frame, query_frame), loaded.spec, resolved)


def _result(output: Path, seg: "VolumeSegmentation", frames: tuple["ScanFrame", "ScanFrame"], spec: Any,
            options: InferenceOptions) -> SegmentResult:
    """What ``segment`` reports: the segmentation, the frame it was made in and the options that acted."""
    from fewshotkit.evaluation.frame import describe as describe_frame

    to_support, to_query = frames[0].reorientation, frames[1].reorientation
    return SegmentResult(output, seg.labels, seg.classes, seg.joint,
                         orientation=(to_support.source, to_query.source, to_query.target),
                         support_slice_numbers=to_support.keeps_slice_axis,
                         query_slice_numbers=to_query.keeps_slice_axis,
                         frame=describe_frame(*frames), support_turns=seg.support_turns,
                         support_zoom=spec.support_zoom, test_mirror=spec.test_mirror,
                         fg_threshold=spec.fg_threshold, drop_absent=options.drop_absent)


def _write_overlay(result: SegmentResult, image: np.ndarray, truth: np.ndarray | None, path: str | os.PathLike) -> Path:
    """A PNG montage of the query ``image`` (Z, H, W) with the prediction (and the query's label map, if known)."""
    from fewshotkit.evaluation.figures import montage

    title = ", ".join(f"{c.value} {c.name}".strip() + (f" (Dice {c.dice:.1f})" if c.dice is not None else "")
                      for c in result.classes)
    outline = None if truth is None else np.isin(truth, [c.value for c in result.classes])
    return montage(image, result.prediction, path, truth=outline, title=title,
                   class_names={c.value: c.name or str(c.value) for c in result.classes})
