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

from fewshotkit.apps.segment_inputs import (check_contents, check_modalities, model_orientation, resolve_classes,
                                            training_class_names)
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
    sup = load_volume(files.support, files.support_label, frame=files.frame, series=files.series)
    qry = load_volume(files.query, files.query_label, frame=files.frame, series=files.series)
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
