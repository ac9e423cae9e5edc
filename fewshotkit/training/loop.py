"""Training runs: self-supervised (superpixel) or annotated episodes, on CPU, GPU or DDP.

:func:`train` resolves a :class:`~fewshotkit.training.setup.Run` (``setup.py``), builds the method,
optimiser and :class:`~fewshotkit.training.trainer.Trainer` with its hooks, continues a resumed run
from its checkpoint (:meth:`Trainer.load_state_dict`, the inverse of what every checkpoint saves),
trains, and records the outcome in run.json. The files of a run directory are listed in
``rundir.py``; the loop itself is ``trainer.py`` and its behaviours are hooks (``hooks.py``,
``ema.py``, ``eval_curve.py``).
"""

from __future__ import annotations

import contextlib
import traceback
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from fewshotkit.core.atomic import write_text
from fewshotkit.core.device import cpu_bf16_supported
from fewshotkit.core.errors import FewshotkitError
from fewshotkit.core.stop import StopRequest
from fewshotkit.method.checkpoint import spec_to_toml
from fewshotkit.training import distributed as ddp
from fewshotkit.training.config import TrainingConfig
from fewshotkit.training.hooks import Checkpointer, EpisodeLogger, MetricsLogger, PeriodicCheckpoint, StepCallback, now
from fewshotkit.training.run_fields import run_fields
from fewshotkit.training.rundir import EPISODES, LOSS_PNG, METRICS, RUN_JSON, SPEC_TOML, RunRecord, run_lock
from fewshotkit.training.setup import Run, RunChoices, prepare_run
from fewshotkit.training.trainer import HookBase, Trainer

if TYPE_CHECKING:
    from fewshotkit.method.spec import MethodSpec


def train(
    spec: "MethodSpec | None",
    store_path: Path | str | None,
    out_dir: Path | str,
    *,
    fold: int = 0,
    setting: int = 1,
    exclude: Sequence[str] | str = (),
    exclusion: str = "any",
    regime: str | None = None,
    steps: int | None = None,
    device: str = "auto",
    seed: int = 0,
    pseudolabels: str | None = None,
    resume: bool = False,
    amp: bool | None = None,
    log_episodes: bool | None = None,
    show_progress: bool = True,
    on_step: Callable[[int], None] | None = None,
    n_folds: int = 5,
    val_scans: int = 0,
    val_from: str = "next-fold",
    hooks: Sequence[HookBase] = (),
) -> Path:
    """Train ``spec`` on the store's fold ``fold`` training scans; returns the final checkpoint path.

    The keyword arguments are ``fewshotkit train``'s options, kept flat because this is the Python
    API scripts call; inside, they become one :class:`~fewshotkit.training.setup.RunChoices`.
    ``regime`` ("ssl" / "supervised"), ``steps``, ``amp`` and ``log_episodes`` override
    ``spec.training``. Setting 2 drops the training slices showing the ``exclude`` classes, by
    the ``exclusion`` rule (``any``: slices showing any of them; ``all``: slices showing all of
    them, as Q-Net's, RPT's and GMRD's code does); the supervised regime never trains on ``exclude`` classes. With
    ``resume=True`` ``out_dir`` is an existing run: spec, store and settings come from it
    (``spec``/``store_path`` may be None), ``steps`` may raise its target (a cosine schedule
    then stretches over the new target, so the run differs from one planned for it from the
    start), and training continues exactly where its last checkpoint left off, every hook's state
    included. ``hooks`` (:class:`HookBase`) run after the built-in ones (the weight average,
    metrics, the episode log, the Dice curve) and before the periodic checkpoint, so a checkpoint
    at step N holds their state after step N. ``on_step(step)`` is called after every completed
    step. Ctrl-C writes a checkpoint and then raises KeyboardInterrupt (a second Ctrl-C stops at
    once, without one; run.json says "interrupted" either way). ``val_scans`` holds at least that many of the
    fold's training scans out (whole patients): the run never trains on them, and its Dice-vs-time
    curve scores them instead of the test scans, so budgets and options are chosen without the test fold;
    ``val_from`` says which patients (:data:`~fewshotkit.data.episodes.folds.VAL_FROM`).
    """
    out_dir = Path(out_dir)
    choices = RunChoices(fold=fold, setting=setting, exclude=exclude, exclusion=exclusion, regime=regime, steps=steps,
                         seed=seed, pseudolabels=pseudolabels, amp=amp, log_episodes=log_episodes, n_folds=n_folds,
                         val_scans=val_scans, val_from=val_from)
    with run_lock(out_dir):  # one training per run directory
        run = prepare_run(spec, store_path, out_dir, choices, resume=resume, device=device)
        try:
            return _train(run, [*_step_callback(on_step), *hooks], show_progress)
        except BaseException as exc:
            if run.info.enabled:  # the traceback's frames hold the DDP wrapper: free it before its process group ends
                traceback.clear_frames(exc.__traceback__)
            raise
        finally:
            ddp.teardown(run.info)


def _step_callback(on_step: Callable[[int], None] | None) -> list[HookBase]:
    return [StepCallback(on_step)] if on_step is not None else []


def _train(run: Run, extra_hooks: Sequence[HookBase], show_progress: bool) -> Path:
    """Build the trainer and its hooks, continue from the run's checkpoint, train, record the outcome."""
    from fewshotkit.training.eval_curve import CURVE_JSONL
    from fewshotkit.training.logs import trim_log

    trainer, groups = _build_trainer(run)
    record = RunRecord(run.paths / RUN_JSON, run_fields(run, trainer, groups), write=run.info.is_main)
    spec_text = spec_to_toml(run.spec)
    checkpointer = Checkpointer(run.paths.checkpoints, run.info, run.config.keep_checkpoints, lambda step: {
        "spec_toml": spec_text, "plugin_versions": record.fields["plugin_versions"],
        "plugin_providers": record.fields["plugin_providers"], "run": {**record.fields, "final_step": step}})
    logger = MetricsLogger(run.paths / METRICS if run.info.is_main else None, run.config.log_every, run.info,
                           show_progress)
    periodic = PeriodicCheckpoint(checkpointer, run.config.checkpoint_every)
    trainer.register([*_built_in_hooks(run, logger), *extra_hooks, periodic])  # last: it saves every hook's state
    if run.checkpoint is not None:
        _resume(trainer, run)
    start = trainer.step
    if start > run.config.steps:
        raise FewshotkitError(f"--steps {run.config.steps} is below the {start} steps the run already has; give more steps")
    if run.info.is_main:
        run.paths.root.mkdir(parents=True, exist_ok=True)
        write_text(run.paths / SPEC_TOML, spec_text)
        for log in (METRICS, EPISODES, CURVE_JSONL):
            trim_log(run.paths / log, start)
    record.write()
    try:
        with StopRequest() as stop:
            trainer.run(lambda: ddp.any_rank(stop.requested, run.info, run.device))
        last = checkpointer.save(trainer, numbered=not trainer.interrupted and trainer.step > start)
    except BaseException as exc:  # a NaN loss, a full disk, a second Ctrl-C ...: run.json must not say "running"
        _record_stop(record, trainer.step, exc)
        raise
    _finish(run, trainer, record, last, logger.last_loss)
    return last


def _record_stop(record: RunRecord, step: int, exc: BaseException) -> None:
    """run.json of a training that stopped on ``exc``: "interrupted" for Ctrl-C, else "failed" with its first line."""
    text = str(exc).strip()
    with contextlib.suppress(Exception):  # the disk may be full
        if isinstance(exc, KeyboardInterrupt):
            record.write(status="interrupted", final_step=step, updated=now())
        else:
            error = text.splitlines()[0] if text and isinstance(exc, Exception) else type(exc).__name__
            record.write(status="failed", error=error, final_step=step, updated=now())


def _build_trainer(run: Run) -> tuple[Trainer, list[dict[str, Any]]]:
    """The method (identical initial weights on every rank), its optimiser, schedule, loss scaler,
    random streams and episode batcher, in a :class:`Trainer` at step 0; and the optimiser's
    parameter groups as run.json records them."""
    from fewshotkit.core.seeding import seed_everything
    from fewshotkit.method.build import build_method
    from fewshotkit.training.augment import Augmenter
    from fewshotkit.training.batches import EpisodeBatcher
    from fewshotkit.training.optim import build_optimizer, build_scheduler, describe_groups, optimizer_groups
    from fewshotkit.training.streams import RandomStreams, stream_seed

    config, dev = run.config, run.device
    assert run.spec.image_size is not None  # prepare_run refuses a spec without one
    seed_everything(run.seed)  # identical initial weights on every rank
    method = build_method(run.spec).to(dev)
    torch.manual_seed(stream_seed(run.seed, run.info.rank, 2))
    streams = RandomStreams(run.seed, run.info, dev)
    # a run recorded before parameter groups existed resumes with the one group it was trained with
    groups = optimizer_groups(method, config, single=run.checkpoint is not None and "optimizer_groups" not in run.previous)
    optimizer = build_optimizer(groups, config)
    scheduler = build_scheduler(optimizer, config)
    use_amp, amp_dtype = _mixed_precision(config, dev)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    model: torch.nn.Module = method
    if run.info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(method, device_ids=[dev.index] if dev.type == "cuda" else None)
    batcher = EpisodeBatcher(run.sampler, config.regime, run.spec.image_size, Augmenter(config.aug, streams.augment),
                             dev, config.batch_size)
    trainer = Trainer(model, method, run.spec.method, optimizer, scheduler, batcher, streams.sampler, dev,
                      config.steps, loss_weights=config.loss_weights, use_amp=use_amp, amp_dtype=amp_dtype,
                      scaler=scaler, random=streams)
    return trainer, describe_groups(groups)


def _mixed_precision(config: TrainingConfig, dev: torch.device) -> tuple[bool, torch.dtype]:
    """(whether to autocast, to which dtype): on by default on CUDA (bfloat16 where supported)."""
    use_amp = bool(config.amp if config.amp is not None else dev.type == "cuda")
    if dev.type == "cuda":
        return use_amp, torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # CPUs autocast to bfloat16 only; without native bf16 that is slower than float32
    if use_amp and not cpu_bf16_supported():
        warnings.warn("mixed precision (amp) needs a CPU with bfloat16 instructions (AVX512-BF16 or AMX); "
                      "training in float32 (for the float32 recipe's budget, use the ssl-alpnet-cpu preset)", stacklevel=4)
        use_amp = False
    return use_amp, torch.bfloat16


def _built_in_hooks(run: Run, logger: MetricsLogger) -> list[HookBase]:
    """The weight average first (evaluation and checkpoints after a step see the updated average),
    the metrics log, the episode log and the Dice-vs-time curve. The periodic checkpoint is not
    among them: it runs after every other hook (so also once its step's curve point is written)."""
    from fewshotkit.training.ema import WeightAverage
    from fewshotkit.training.eval_curve import EvalCurve

    config, main = run.config, run.info.is_main
    hooks: list[HookBase] = [*([WeightAverage(config.ema)] if config.ema > 0 else []), logger]
    if config.log_episodes:
        hooks.append(EpisodeLogger(run.paths / EPISODES if main else None, run.info))
    if config.eval_every > 0:
        from fewshotkit.data.episodes.folds import validation_fold

        scored = validation_fold(run.fold) if run.fold.validation else run.fold
        hooks.append(EvalCurve(run, scored, config.eval_every))
    return hooks


def _resume(trainer: Trainer, run: Any) -> None:
    """Continue ``trainer`` from the run's checkpoint; weights that do not fit the method the run's
    spec.toml builds (a spec.toml edited or swapped since) are one line naming both files."""
    try:
        trainer.load_state_dict(run.checkpoint)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()] or [type(exc).__name__]
        first = lines[1] if lines[0].endswith(":") and len(lines) > 1 else lines[0]  # torch's list starts on line 2
        raise FewshotkitError(f"--resume: the weights of '{run.checkpoint.get('path', run.paths.last_checkpoint)}' do "
                              f"not fit the method '{run.paths / SPEC_TOML}' builds ({first}); the spec was changed "
                              "since the run was saved: restore it, or start a new run") from None


def _finish(run: Run, trainer: Trainer, record: RunRecord, last: Path, last_loss: float) -> None:
    """Record how training ended; an interruption raises KeyboardInterrupt after saying how to continue."""
    from fewshotkit.core.console import console
    from fewshotkit.training.curves import plot_loss_curve
    from fewshotkit.training.summary import print_summary

    step, main = trainer.step, run.info.is_main
    if trainer.interrupted:
        record.write(status="interrupted", final_step=step, updated=now())
        if main:
            console.print(f"[yellow]Interrupted at step {step}/{run.config.steps}[/yellow]; checkpoint: {last}\n"
                          f"Continue with: fewshotkit train --resume {run.paths.root}")
        raise KeyboardInterrupt
    digests = ddp.all_gather(ddp.parameter_digest(trainer.method), run.info)
    record.write(status="completed", final_step=step, finished=now(), train_seconds=round(trainer.train_seconds, 2),
                 train_cpu_seconds=round(trainer.train_cpu_seconds, 2), rank_weight_sha256=digests)
    if main:
        curve = plot_loss_curve(run.paths / METRICS, run.paths / LOSS_PNG,
                                title=f"{run.spec.method} ({run.config.regime})")
        print_summary(console, record.fields, last, curve, last_loss)
