"""The models behind a bench cell: train one (or resume it, or find it finished) and score it on the
cell's fold with the cell's protocol and inference options."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from fewshotkit.apps.bench.cells import CellSite
from fewshotkit.apps.bench.config import BenchConfig
from fewshotkit.evaluation.protocol import FoldScores


def model_finished(run_dir: Path, steps: int) -> bool:
    """Whether the model in ``run_dir`` has a checkpoint of ``steps`` steps or more."""
    from fewshotkit.method.checkpoint import LAST, read_checkpoint

    last = run_dir / "checkpoints" / LAST
    return last.is_file() and int(read_checkpoint(last)["step"]) >= steps


def trained_model(cfg: BenchConfig, site: CellSite, run_dir: Path, exclude: list[str],
                  log: Callable[[str], None]) -> Path:
    """The checkpoint of the model in ``run_dir``: trained for ``site`` without the ``exclude`` classes,
    an interrupted run resumed, a finished one as it is."""
    from fewshotkit.method.checkpoint import LAST, read_checkpoint
    from fewshotkit.training.loop import train

    steps, last = site.steps, run_dir / "checkpoints" / LAST
    if model_finished(run_dir, steps):
        return last
    if last.is_file():
        log(f"resuming {run_dir} at step {int(read_checkpoint(last)['step'])}/{steps}")
        return train(None, None, run_dir, resume=True, steps=steps, device=cfg.device)
    log(f"training {run_dir.relative_to(Path(cfg.out))} ({steps} steps)")
    setting = site.ref.setting if exclude else 1
    regime = site.spec.training.get("regime", "ssl") if steps else "supervised"  # untrained: no pseudolabels
    return train(site.spec, site.ref.store, run_dir, fold=site.ref.fold, setting=setting, exclude=",".join(exclude),
                 exclusion=cfg.exclusion if setting == 2 else "any", val_scans=cfg.val_scans, val_from=cfg.val_from,
                 regime=regime,
                 steps=steps, device=cfg.device, seed=cfg.seed,
                 pseudolabels=site.pseudolabels if regime == "ssl" else None, n_folds=cfg.n_folds)


def score_model(cfg: BenchConfig, site: CellSite, checkpoint: Path, store: Any, classes: list[str],
                figure_prefix: str) -> FoldScores:
    """Scores of the model in ``checkpoint`` on ``classes`` of the cell's fold (its test scans, or the
    validation scans held out of its training side) with the cell's protocol and inference options."""
    from fewshotkit.core.device import resolve_device
    from fewshotkit.core.seeding import seed_everything
    from fewshotkit.evaluation.evaluate import EvalRun, evaluate_predictor
    from fewshotkit.evaluation.inference import predictor_for
    from fewshotkit.method.checkpoint import load_method

    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    options = site.options
    loaded = load_method(checkpoint, device, options.method_overrides())
    predictor = predictor_for(loaded.method, loaded.spec, device, options.batch_size)
    scored: Any = site.ref.fold
    if cfg.val_scans:  # the training side the models saw: their normalisation (CT stores)
        from fewshotkit.data.episodes.folds import get_fold, validation_fold

        scored = get_fold(store, site.ref.fold, cfg.n_folds, cfg.val_scans, cfg.val_from)
        if cfg.split == "validation":
            scored = validation_fold(scored)
    run = EvalRun(figures=Path(cfg.out) / "figures" if cfg.figures else None, figure_prefix=figure_prefix)
    return evaluate_predictor(store, predictor, [scored], n_folds=cfg.n_folds, protocol=site.ref.protocol,
                              options=options.for_spec(loaded.spec), classes=classes, run=run).folds[0]
