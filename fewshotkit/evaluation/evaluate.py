"""Evaluating a trained checkpoint on a store with the protocol: the engine behind ``fewshotkit eval``."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Sequence

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.evaluation.figures import overlay_figure
from fewshotkit.evaluation.options import InferenceOptions
from fewshotkit.evaluation.protocol import FoldScores, ProtocolConfig, evaluate_fold
from fewshotkit.evaluation.results import results_document
from fewshotkit.evaluation.sinks import NiftiWriter, OverlayCollector, fan_out

#: which scans an evaluation scores (:class:`EvalRun`'s ``split``)
SPLITS = ("test", "validation")


@dataclass
class EvalOutputs:
    """What an evaluation produced: per-fold scores, written predictions and figures."""

    folds: list[FoldScores]
    predictions: list[Path]
    figures: list[Path]


@dataclass(frozen=True)
class EvalRun:
    """How an evaluation runs beside its inference options: the ``device`` and ``seed`` a checkpoint
    is loaded with, where predictions (NIfTI) and overlay figures (names prefixed with
    ``figure_prefix``) are written, whether a progress bar shows, and which scans are scored
    (``split``: the fold's test scans, or ``"validation"``: those the run held out of its training
    scans, ``train --val-scans``)."""

    device: str = "auto"
    seed: int = 0
    save_predictions: str | os.PathLike | None = None
    figures: str | os.PathLike | None = None
    figure_prefix: str = ""
    show_progress: bool = False
    split: str = "test"

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise FewshotkitError(f"split (--split) must be one of {', '.join(SPLITS)}, got {self.split!r}")


def evaluate_predictor(
    store: Any,
    predictor: Any,
    fold_indices: Iterable[Any],
    *,
    n_folds: int = 5,
    protocol: str = "roy",
    options: InferenceOptions = InferenceOptions(),
    classes: Iterable[Any] | None = None,
    run: EvalRun = EvalRun(),
) -> EvalOutputs:
    """Run ``protocol`` on the given folds of ``store`` (indices, or :class:`~fewshotkit.data.episodes.folds.Fold`
    objects such as a validation fold) with any predictor callable and ``options`` (see
    :func:`~fewshotkit.evaluation.protocol.evaluate_fold`); ``run`` says what is written.

    ``classes`` named twice (``liver``, ``1``) count once. Before a fold is scored, its support
    and query scans pass the store's cheap checks (finite images, known label codes, shapes).
    """
    from fewshotkit.data.episodes.folds import get_fold
    from fewshotkit.data.store.check import require_valid_scans
    from fewshotkit.data.store.reader import SliceStore

    if classes is not None:
        first: dict[int, Any] = {}
        for item in classes:
            first.setdefault(store.class_value(item), item)
        classes = list(first.values())
    outputs = EvalOutputs([], [], [])
    writer = NiftiWriter(store, run.save_predictions) if run.save_predictions is not None else None
    for index in fold_indices:
        fold = get_fold(store, index, n_folds=n_folds) if isinstance(index, int) else index
        if isinstance(store, SliceStore):
            require_valid_scans(store, [fold.support, *fold.queries])
        train = getattr(fold, "train", ())
        if train and hasattr(store, "normalize_with"):
            store.normalize_with(train)  # CT stores: z-score with the training fold's statistics
        collector = OverlayCollector(store) if run.figures is not None else None
        sinks = [s for s in (writer, collector) if s is not None]
        scores = evaluate_fold(store, fold, predictor, classes=classes, protocol=protocol, options=options,
                               sink=fan_out(sinks), show_progress=run.show_progress)
        outputs.folds.append(scores)
        if collector is not None and collector.rows and run.figures is not None:
            path = Path(run.figures) / f"{run.figure_prefix}fold{fold.index}_overlay.png"
            per = scores.per_class()
            rows = []
            for name in scores.classes:
                if name in collector.rows:
                    collector.rows[name].title += f" (Dice {per[name]:.1f})"
                    rows.append(collector.rows[name])
            outputs.figures.append(overlay_figure(rows, path, title=f"fold {fold.index}, {protocol} protocol"))
    if writer is not None:
        outputs.predictions = writer.written
    return outputs


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    store_path: str | os.PathLike,
    *,
    folds: Sequence[int] | None = None,
    n_folds: int = 5,
    protocol: str = "roy",
    classes: Iterable[Any] | None = None,
    options: InferenceOptions = InferenceOptions(),
    run: EvalRun = EvalRun(),
) -> tuple[dict[str, Any], EvalOutputs]:
    """Load a run directory or ``.pt`` checkpoint and evaluate it; returns (results document, outputs).

    ``options``: the :class:`~fewshotkit.evaluation.options.InferenceOptions` (shots, chunks, batch
    size, post-processing (None: the spec's ``[postprocess]`` list), ``drop_absent``, overrides of the
    trained method such as ``pooler.test_window=1``); the document's spec shows them applied.
    ``folds=None`` evaluates the fold the checkpoint was trained for (from its metadata, else 0).
    """
    from fewshotkit.core.device import resolve_device
    from fewshotkit.core.seeding import seed_everything
    from fewshotkit.data.store.reader import SliceStore
    from fewshotkit.evaluation.inference import predictor_for
    from fewshotkit.method.checkpoint import load_method

    config = ProtocolConfig(protocol, options.chunks, options.shots, options.chunk_rule)
    torch_device = resolve_device(run.device)
    seed_everything(run.seed)
    loaded = load_method(checkpoint, torch_device, options.method_overrides())
    meta = dict(loaded.meta or {})
    run_record = meta.get("run") or {}
    if folds is None:
        folds = [int(run_record.get("fold", 0))]
    _check_finished(meta, checkpoint)
    store = SliceStore(store_path)
    _check_modality(store, meta, checkpoint)
    scored = _scored_folds(store, folds, n_folds, run_record, checkpoint, run.split)
    resolved = options.for_spec(loaded.spec)
    predictor = predictor_for(loaded.method, loaded.spec, torch_device, options.batch_size)
    outputs = evaluate_predictor(store, predictor, scored, n_folds=n_folds, protocol=protocol, options=resolved,
                                 classes=classes, run=run)
    document = _document(outputs.folds, loaded, resolved.cleanup(), protocol=config, n_folds=n_folds,
                         checkpoint=checkpoint, store_path=store_path, run=run, device=torch_device)
    return document, outputs


def _document(folds: list[FoldScores], loaded: Any, cleanup: Any, *, protocol: ProtocolConfig, n_folds: int,
              checkpoint: Any, store_path: Any, run: EvalRun, device: Any) -> dict[str, Any]:
    """The results document of an evaluated checkpoint: the protocol and clean-up it ran with, the
    spec with the clean-up applied, the plugins, seed and device, and the checkpoint's metadata."""
    from fewshotkit.core.device import describe_device
    from fewshotkit.host.plugin_host import plugin_versions

    return results_document(
        folds,
        protocol={**protocol.to_json(), "n_folds": n_folds, **cleanup.to_json(),
                  **({"split": run.split} if run.split != "test" else {})},
        checkpoint=str(checkpoint),
        store=str(store_path),
        method=loaded.spec.preset or loaded.spec.method,
        spec=replace(loaded.spec, postprocess=cleanup.tables, drop_absent=cleanup.drop_absent).to_dict(),
        plugin_versions=plugin_versions(),
        seed=run.seed,
        device=describe_device() if device.type == "cuda" else str(device),
        training=dict(loaded.meta or {}),
    )


def _check_leakage(store: Any, folds: Sequence[int], n_folds: int, run: dict[str, Any], checkpoint: Any) -> None:
    """Warn when evaluated scans were among the checkpoint's training scans (same store only).

    The store is the training store when its fingerprint equals the one run.json recorded (a
    copy elsewhere counts), or, for runs without one, when it has the same path. A store at the
    training path whose fingerprint changed is refused: the recorded fold split no longer applies.
    """
    from fewshotkit.data.episodes.folds import get_fold
    from fewshotkit.data.store.fingerprint import same_data, store_fingerprint

    trained_store, recorded = run.get("store"), run.get("store_fingerprint")
    same_path = isinstance(trained_store, str) and Path(trained_store).resolve() == store.path.resolve()
    if recorded:
        if not same_data(store_fingerprint(store), recorded):
            if same_path:
                raise FewshotkitError(
                    f"store '{store.path}' changed since checkpoint '{checkpoint}' was trained on it (its volumes or "
                    "labels differ from the fingerprint in run.json), so its fold split no longer applies; "
                    "evaluate on the original store or re-train"
                )
            return
    elif not same_path:
        return
    seen = set(run.get("fold_train", ()))
    evaluated: set[str] = set()
    for index in folds:
        fold = get_fold(store, index, n_folds=n_folds)
        evaluated.update((*fold.queries, fold.support))
    overlap = sorted(seen & evaluated)
    if overlap:
        warnings.warn(
            f"checkpoint '{checkpoint}' was trained (fold {run.get('fold')}) on {len(overlap)} of the scans "
            f"evaluated here ({', '.join(overlap[:5])}{' ...' if len(overlap) > 5 else ''}); evaluate its own fold",
            RuntimeWarning,
            stacklevel=3,
        )


def _scored_folds(store: Any, folds: Sequence[int], n_folds: int, run: dict[str, Any], checkpoint: Any,
                  split: str) -> list[Any]:
    """The folds to score: ``folds`` (checked for leakage from the run's training scans), or, for
    ``split="validation"``, the validation scans the run held out of its training scans."""
    if split == "validation":
        from fewshotkit.data.episodes.folds import recorded_validation_fold

        return [recorded_validation_fold(run, checkpoint)]
    _check_leakage(store, folds, n_folds, run, checkpoint)
    from fewshotkit.data.episodes.folds import get_fold

    held = int(run.get("val_scans", 0))  # the run's own fold without its validation scans: its normalisation
    rule = run.get("val_from", "end")  # runs that predate the rule held out the end of the training list
    return [get_fold(store, i, n_folds, held, rule) if held and i == run.get("fold") else i for i in folds]


def _check_finished(meta: dict[str, Any], checkpoint: Any) -> None:
    """Warn when the checkpoint is not its run's last: saved before the run's steps were done, or its
    run directory's run.json says the run is still running, was interrupted or failed."""
    import json

    run = meta.get("run") or {}
    step, steps = meta.get("step"), run.get("steps")
    path = Path(meta.get("path") or checkpoint)
    record = path.parent.parent / "run.json" if path.parent.name == "checkpoints" else None
    status = None
    if record is not None and record.is_file():
        try:
            status = json.loads(record.read_text(encoding="utf-8")).get("status")
        except (OSError, ValueError, AttributeError):
            status = None  # an unreadable record says nothing here
    short = isinstance(step, int) and isinstance(steps, int) and step < steps
    if short or status in ("running", "interrupted", "failed"):
        done = f"step {step} of {steps}" if short else f"step {step}"
        said = f"; run.json says '{status}'" if status in ("running", "interrupted", "failed") else ""
        warnings.warn(f"checkpoint '{checkpoint}' is from {done}: its run did not finish{said}; these are the scores "
                      "of a partly trained model", RuntimeWarning, stacklevel=3)


def _check_modality(store: Any, meta: dict[str, Any], checkpoint: Any) -> None:
    """Warn when the checkpoint's training store (if still at hand) holds another modality."""
    from fewshotkit.data.store.reader import SliceStore

    trained_path = (meta.get("run") or {}).get("store")
    if not trained_path or not Path(trained_path).is_file() or Path(trained_path).resolve() == store.path.resolve():
        return
    try:
        with SliceStore(trained_path) as trained:
            trained_on = trained.modality
    except FewshotkitError:
        return
    if trained_on != store.modality:
        warnings.warn(
            f"checkpoint '{checkpoint}' was trained on {trained_on} scans, the store holds {store.modality}",
            RuntimeWarning,
            stacklevel=3,
        )
