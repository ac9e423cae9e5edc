"""The Python API for notebooks: load a trained model once, segment numpy volumes or scan files.

::

    import fewshotkit as fsk

    model = fsk.load("runs/chaos")        # a run directory or a .pt checkpoint
    labels = model.segment(query, support_image, support_mask, classes=["liver", "spleen"])

Volumes are numpy arrays (Z, H, W) of raw intensities, or paths of NIfTI, NRRD or MetaImage files or
DICOM series folders (read as (Z, H, W) from their voxel axes (z, y, x); ``frame`` picks the frame
of 4D scans); they are preprocessed like ``fewshotkit segment`` does (top intensities clipped unless
already clipped, per-volume z-score). Masks hold any label codes 0..65535. The result is a label map
(Z, H, W) on the query's grid holding the support mask's codes, uint8 (uint16 for codes above 255).
Two scan files are first brought to one frame (orientation, pixel size, canvas), as by
``fewshotkit segment``; arrays are taken as
given (support and query in the same voxel order, field of view and pixel size). Nothing heavy is
imported until :func:`load` is called.
"""

from __future__ import annotations

import os
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Sequence, Union, cast

import numpy as np

from fewshotkit.core.errors import DataError, FewshotkitError
from fewshotkit.evaluation.options import InferenceOptions

#: a volume (Z, H, W) or the path of a scan (NIfTI, NRRD, MetaImage file, DICOM series folder)
VolumeLike = Union[np.ndarray, str, os.PathLike]


@dataclass
class _Volume:
    image: np.ndarray  # float32 (Z, H, W), z-scored
    raw: np.ndarray  # the raw intensities (for the modality check)
    label: np.ndarray | None
    spacing: tuple[float, float, float] | None
    affine: np.ndarray | None = None  # a scan file's (its orientation); None for an array


def _is_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike))


def _real_array(value: Any, what: str, kind: str) -> np.ndarray:
    """``value`` as a 3D array of real numbers with at least one voxel, or a one-line :class:`DataError`."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise DataError(f"{what}: the {kind} must hold real numbers (a bool, integer or float array), "
                        f"got dtype {array.dtype}")
    if array.ndim != 3:
        raise DataError(f"{what}: expected a 3D {kind} (Z, H, W), got shape {array.shape}")
    if 0 in array.shape:
        raise DataError(f"{what}: the {kind} has shape {array.shape}, with no voxel; give a volume with slices")
    return array


def _spacing(spacing: Sequence[float], what: str) -> tuple[float, float, float]:
    """``spacing`` as three positive voxel sizes (z, y, x) in mm, or a one-line error."""
    values = np.asarray(spacing, dtype=np.float64).ravel()
    if values.size != 3 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise FewshotkitError(f"{what}: spacing must be three positive voxel sizes (z, y, x) in mm, got {spacing!r}")
    return float(values[0]), float(values[1]), float(values[2])


def _volume(image: VolumeLike, label: VolumeLike | None, what: str, spacing: Sequence[float] | None,
            frame: int | None = None) -> _Volume:
    """Read (a path) or check (an array) a volume and its optional label map; preprocess the image."""
    from fewshotkit.data.ingest.common import clip_top
    from fewshotkit.data.ingest.volume import load_volume, z_score
    from fewshotkit.data.io.codes import as_codes

    if label is not None and _is_path(image) != _is_path(label):
        raise FewshotkitError(f"{what}: give the image and its mask both as paths or both as arrays")
    if isinstance(image, (str, os.PathLike)):
        assert label is None or isinstance(label, (str, os.PathLike))  # both paths, checked above
        prepared = load_volume(image, label, frame=frame, frame_option="frame")
        return _Volume(prepared.image, prepared.scan.array, prepared.label,
                       prepared.spacing if spacing is None else _spacing(spacing, what), prepared.affine)
    raw = _real_array(image, what, "volume").astype(np.float64)
    if not np.isfinite(raw).all():
        raise DataError(f"{what}: the volume holds NaN or infinite values")
    clipped, _ = clip_top(raw, 99.5, "auto")
    z_scored = z_score(clipped.astype(np.float32))
    mask = None
    if label is not None:
        mask = _real_array(label, what, "mask")
        if mask.shape != raw.shape:
            raise DataError(f"{what}: the mask has shape {mask.shape}, the image {raw.shape}; they must match")
        mask = as_codes(mask, f"{what} mask")
    return _Volume(z_scored, raw, mask, None if spacing is None else _spacing(spacing, what))


class Model:
    """A trained few-shot segmenter, loaded once (see :func:`load`)."""

    def __init__(self, loaded: Any, device: Any, options: InferenceOptions) -> None:
        from fewshotkit.apps.segment_inputs import model_orientation, training_class_names

        self.spec = loaded.spec
        self.meta = loaded.meta
        self.method = loaded.method
        self.device = device
        #: the inference options every :meth:`segment` starts from (given to :func:`load`)
        self.options = options
        #: class value -> name of the store the model was trained on (when that store is at hand)
        self.classes: dict[int, str] = training_class_names(loaded.meta)
        #: axis codes of the scans the model was trained on, when known (scan files are brought to them)
        self.orientation: str | None = model_orientation(loaded.meta)
        self.predictor = self._predictor(options)

    def __repr__(self) -> str:
        return f"fewshotkit.Model({self.spec.preset or self.spec.method}, step {self.meta.get('step')}, {self.device})"

    def _predictor(self, options: InferenceOptions) -> Any:
        """The predictor for ``options``: the loaded one unless the batch size or an option inside the
        model (orientation, zoom, mirror, threshold) differs from those the model was loaded with."""
        from fewshotkit.evaluation.inference import predictor_for
        from fewshotkit.method.overrides import apply_inference_overrides

        if options.overrides != self.options.overrides:
            raise FewshotkitError("overrides change the trained method and are given when it loads: "
                                  "fsk.load(path, overrides=[...])")
        if hasattr(self, "predictor") and options.method_overrides() == self.options.method_overrides() \
                and options.batch_size == self.options.batch_size:
            return self.predictor
        spec = apply_inference_overrides(self.spec, options.method_overrides()[len(options.overrides):])
        return predictor_for(self.method, spec, self.device, options.batch_size)

    def segment(
        self,
        query: VolumeLike,
        support_image: VolumeLike,
        support_mask: VolumeLike,
        *,
        classes: Sequence[str | int] | str | int | None = None,
        spacing: Sequence[float] | None = None,
        frame: int | None = None,
        options: InferenceOptions | None = None,
        **values: Any,
    ) -> np.ndarray:
        """Segment ``classes`` of ``support_mask`` in ``query``; returns a label map (Z, H, W) of the
        mask's codes (uint8, or uint16 for codes above 255).

        ``support_mask``: a label map (its codes 0..65535 are the classes) or a boolean mask (class 1).
        ``classes``: values or names (see :attr:`classes`), ``"all"``, or None for the mask's only
        class. ``spacing`` (z, y, x) mm of the query for physical post-processing (read from the
        header for scan paths; given there, it replaces the header's, also for matching the
        support's pixel size). ``frame``: the frame of 4D scan files. Several classes with a method
        that scores one class per episode run once per class; a voxel two classes claim goes to the
        more probable. How to segment: ``options`` (an :class:`InferenceOptions`), or its
        fields as keywords (``shots=2``, ``query_range=(10, 30)``, ``all_slices=True``,
        ``postprocess="largest-component"``, ``drop_absent=0.3``, ``joint=False``, ...), each
        replacing the options given to :func:`load`; checked as ``fewshotkit segment`` checks them.
        """
        from fewshotkit.apps.segment import ScanVolume, segment_in_common_frame
        from fewshotkit.apps.segment_inputs import check_contents, check_modalities, resolve_classes
        from fewshotkit.evaluation.scan import segment_volume

        if options is not None and values:
            raise FewshotkitError("give the inference options as options= or as keywords, not both")
        chosen = options if options is not None else self.options.replace(**values)
        predictor = self._predictor(chosen)
        sup = _volume(support_image, support_mask, "support", None, frame)
        qry = _volume(query, None, "query", spacing, frame)
        assert sup.label is not None
        names = (support_image if _is_path(support_image) else "support_image (array)",
                 query if _is_path(query) else "query (array)")
        check_modalities(sup.raw, qry.raw, *names, self.meta, self.meta.get("path"))
        check_contents(sup.raw, qry.raw, *names)
        values_found = resolve_classes(classes, sup.label, self.classes, "support_mask", option="classes")
        named = {v: self.classes.get(v, "") for v in values_found}
        resolved = chosen.for_spec(self.spec)
        if (sup.affine is None) != (qry.affine is None):
            import warnings

            warnings.warn("one of support and query is a file and the other an array: they are not brought to one "
                          "orientation and pixel size; the array is taken as lying like the file's voxels (Z, H, W) "
                          "as stored; give both as files (or both as arrays) to be sure", RuntimeWarning, stacklevel=2)
        if sup.affine is not None and qry.affine is not None:  # two scan files: one frame, as segment
            assert sup.spacing is not None and qry.spacing is not None  # read from the files
            framed, _, _ = segment_in_common_frame(predictor, cast(ScanVolume, sup), cast(ScanVolume, qry), named, self.orientation,
                                                   options=resolved, support_name="support_mask")
            return framed.labels
        return segment_volume(predictor, sup.image, sup.label, qry.image, named, options=resolved,
                              spacing=qry.spacing, support_name="support_mask").labels


def load(run_or_checkpoint: str | os.PathLike, device: str = "auto", batch_size: int = 16, seed: int = 0,
         overrides: Sequence[str] = (), options: InferenceOptions | None = None) -> Model:
    """Load a run directory (its ``checkpoints/last.pt``) or a ``.pt`` checkpoint for inference.

    ``overrides`` change inference options of the method (``["pooler.test_window=1"]``), as
    ``fewshotkit eval --set``; ``options`` (an :class:`InferenceOptions`) replaces ``batch_size``
    and ``overrides`` and is where every :meth:`Model.segment` starts from.
    """
    from fewshotkit.core.device import resolve_device
    from fewshotkit.core.seeding import seed_everything
    from fewshotkit.method.checkpoint import load_method

    if options is None:
        options = InferenceOptions.from_values(batch_size=batch_size, overrides=overrides)
    torch_device = resolve_device(device)
    seed_everything(seed)
    return Model(load_method(run_or_checkpoint, torch_device, options.method_overrides()), torch_device, options)


def save_labels(labels: np.ndarray, path: str | os.PathLike, like: str | os.PathLike, frame: int | None = None) -> Path:
    """Write ``labels`` (Z, H, W), a label map :meth:`Model.segment` returned for the query file
    ``like`` (its ``frame`` of a 4D file), to ``path`` on that query's grid, atomically: the format
    ``path``'s suffix names (NIfTI, NRRD, MetaImage; ``.dcm``: a DICOM SEG of a DICOM query), the
    codes in the smallest unsigned type. Returns the path written."""
    from fewshotkit.data.io.reader import read_scan
    from fewshotkit.data.io.writer import write_labels

    scan = read_scan(like, frame=frame, option="frame")
    return write_labels(path, np.asarray(labels), scan, option="path")
