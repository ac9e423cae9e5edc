"""Dice against training time: a hook that scores the held-out fold during training.

Every ``every`` steps (and before the first step of a fresh run, and after the last) the current
weights segment the fold's query scans with each protocol, with the spec's inference options
(``support_zoom``, ``support_orientation``, ``[postprocess]``) as ``fewshotkit eval`` of the run
would apply them; one JSON line per evaluation goes to ``curve.jsonl`` (options that are set under
``"inference"``) and ``curve.png`` is redrawn. Evaluation time is not training time: the trainer's
``train_seconds`` counts only its steps, and that is the curve's time axis.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from fewshotkit.method.spec import INFERENCE_KEYS, INFERENCE_OPTIONS
from fewshotkit.training import distributed as ddp
from fewshotkit.training.optim import monitored_scalars
from fewshotkit.training.trainer import HookBase

if TYPE_CHECKING:
    from fewshotkit.data.episodes.folds import Fold
    from fewshotkit.training.setup import Run

CURVE_JSONL = "curve.jsonl"
CURVE_PNG = "curve.png"


class EvalCurve(HookBase):
    """Evaluates ``fold`` of ``run``'s store with ``protocols`` every ``every`` steps (rank 0 only),
    writing the curve to the run directory."""

    def __init__(self, run: Run, fold: Fold, every: int, protocols: Sequence[str] = ("roy", "full-volume")) -> None:
        from fewshotkit.evaluation.options import InferenceOptions

        spec = run.spec
        self.store, self.fold, self.every, self.protocols = run.store, fold, every, tuple(protocols)
        self.out_dir: Path = run.paths.root
        self.spec = spec  # image size and inference options
        self.options = InferenceOptions().for_spec(spec)  # its post-processing and support orientation
        #: the spec's inference options that change a prediction (those that are set), for the curve's records
        written = spec.to_dict()  # leaves out the options that are off
        self.inference: dict[str, Any] = {key: written[key] for key in INFERENCE_KEYS if key in written}
        self.inference.update({key: spec.options[key] for key in INFERENCE_OPTIONS if spec.options.get(key)})
        if spec.postprocess:
            self.inference["postprocess"] = [table["type"] for table in spec.postprocess]
        self.info: ddp.DistInfo = run.info
        self.n_folds = run.n_folds
        self.label = spec.preset or spec.method
        self.title = ("Dice on the validation scans (held out of the training scans) during training"
                      if fold.validation else "Dice on the held-out fold during training")

    def before_train(self) -> None:
        if self.trainer.step == 0:
            self.evaluate()

    def after_step(self) -> None:
        t = self.trainer
        if t.step % self.every == 0 or t.step == t.steps:
            self.evaluate()

    def evaluate(self) -> dict[str, Any] | None:
        """Score the fold now; returns the curve record (None on ranks other than 0)."""
        if not self.info.is_main:
            return None
        from fewshotkit.evaluation.evaluate import evaluate_predictor
        from fewshotkit.evaluation.inference import predictor_for
        from fewshotkit.training.curves import plot_dice_curves, read_metrics

        t = self.trainer
        t.synchronize()
        start = time.perf_counter()
        module = t.inference_module  # the method, or its weight average
        was_training = module.training
        module.eval()
        try:
            predictor = predictor_for(module, self.spec, t.device)
            record: dict[str, Any] = {"step": t.step, "train_s": round(t.train_seconds, 2),
                                      "train_min": round(t.train_seconds / 60, 3),
                                      "train_cpu_min": round(t.train_cpu_seconds / 60, 3)}
            if self.inference:
                record["inference"] = self.inference
            if self.fold.validation:
                record["split"] = "validation"
            monitored = monitored_scalars(t.method)
            if monitored:
                record["monitored"] = monitored
            for name in self.protocols:
                scores = evaluate_predictor(self.store, predictor, [self.fold], n_folds=self.n_folds,
                                            protocol=name, options=self.options).folds[0]
                record[name] = {"dice": round(scores.mean(), 3),
                                "precision": round(scores.mean("precision"), 3),
                                "recall": round(scores.mean("recall"), 3),
                                "per_class": {k: round(v, 3) for k, v in scores.per_class().items()}}
        finally:
            module.train(was_training)
        record["eval_s"] = round(time.perf_counter() - start, 2)
        path = self.out_dir / CURVE_JSONL
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        plot_dice_curves([(self.label, read_metrics(path))], self.out_dir / CURVE_PNG, protocols=self.protocols,
                         title=self.title)
        return record
