"""Training runs: self-supervised (superpixel) or annotated episodes, on CPU, GPU or DDP.

Run directory layout (only rank 0 writes)::

    RUN_DIR/spec.toml               the resolved spec (training values as used)
    RUN_DIR/run.json                store, fold, setting, exclude, regime, seed, device, versions ...
    RUN_DIR/checkpoints/last.pt     newest checkpoint; step_NNNNNN.pt every checkpoint_every steps
    RUN_DIR/metrics.jsonl           one line per log_every steps: loss terms, lr, timings
    RUN_DIR/episodes.jsonl          with training.log_episodes: every episode's (volume, z, ...)
    RUN_DIR/loss.png                the loss curve, drawn at the end
    RUN_DIR/curve.jsonl, curve.png  with training.eval_every: Dice on the held-out fold vs training time

Setting up a run (resume checks, store and fold, RNG streams, optimiser state, the run record) is
one sequence that must happen in this order, so it is kept in one module; the loop itself is
``trainer.py`` and its behaviours are hooks (``hooks.py``, ``eval_curve.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import traceback
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch

from fewshotkit.core.atomic import write_text
from fewshotkit.core.device import cpu_bf16_supported
from fewshotkit.core.errors import FewshotkitError
from fewshotkit.training import distributed as ddp
from fewshotkit.method.checkpoint import EMA_KEY, LAST, read_checkpoint, spec_to_toml
from fewshotkit.training.checkpoint import check_resume_store, restore_rng
from fewshotkit.training.config import TrainingConfig
from fewshotkit.training.batches import build_sampler
from fewshotkit.training.rundir import (
    EPISODES,
    LOSS_PNG,
    METRICS,
    RUN_JSON,
    SPEC_TOML,
    StopRequest,
    git_commit,
    print_summary,
    trim_log,
)
from fewshotkit.training.hooks import (
    Checkpointer,
    EpisodeLogger,
    MetricsLogger,
    PeriodicCheckpoint,
    StepCallback,
    now,
)
from fewshotkit.training.trainer import HookBase, Trainer

if TYPE_CHECKING:
    from fewshotkit.data.episodes.folds import Fold
    from fewshotkit.method.spec import MethodSpec
    from fewshotkit.data.store.reader import SliceStore

def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


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
    hooks: Sequence[HookBase] = (),
) -> Path:
    """Train ``spec`` on the store's fold ``fold`` training scans; returns the final checkpoint path.

    ``regime`` ("ssl" / "supervised"), ``steps``, ``amp`` and ``log_episodes`` override
    ``spec.training``. Setting 2 drops the training slices showing the ``exclude`` classes, by
    the ``exclusion`` rule (``any``: slices showing any of them; ``all``: slices showing all of
    them, as the ADNet lineage's code does); the supervised regime never trains on ``exclude`` classes. With
    ``resume=True`` ``out_dir`` is an existing run: spec, store and settings come from it
    (``spec``/``store_path`` may be None), ``steps`` may raise its target (a cosine schedule
    then stretches over the new target, so the run differs from one planned for it from the
    start), and training continues
    exactly where its last checkpoint left off. ``hooks`` (:class:`HookBase`) run after the built-in
    ones (metrics, checkpoints, the Dice curve). ``on_step(step)`` is called after every
    completed step. Ctrl-C writes a checkpoint and then raises KeyboardInterrupt.
    """
    from fewshotkit.method.spec import load_spec

    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    payload: dict[str, Any] | None = None
    previous: dict[str, Any] = {}
    if resume:
        run_json = out_dir / RUN_JSON
        if not run_json.is_file() or not (out_dir / SPEC_TOML).is_file():
            raise FewshotkitError(f"--resume: '{out_dir}' is not a run directory (no {RUN_JSON} / {SPEC_TOML})")
        previous = json.loads(run_json.read_text(encoding="utf-8"))
        try:
            spec = load_spec(out_dir / SPEC_TOML)
        except FewshotkitError as exc:
            from fewshotkit.host.plugin_host import missing_component_error

            raise missing_component_error(exc, previous, f"run '{out_dir}'") from None
        payload = read_checkpoint(out_dir)
        store_path = previous["store"]
        fold, setting, seed = previous["fold"], previous["setting"], previous["seed"]
        exclude, regime = previous["exclude"], previous["regime"]
        exclusion = previous.get("exclusion", "any")
        pseudolabels = previous.get("pseudolabel_set")
        n_folds = int(previous.get("n_folds", 5))
        steps = steps if steps is not None else previous["steps"]
    else:
        if spec is None or store_path is None:
            raise FewshotkitError("train needs a spec and a store (or resume=True with a run directory)")
        if (ckpt_dir / LAST).exists():
            raise FewshotkitError(
                f"'{out_dir}' already holds a trained run; continue it with --resume {out_dir} or choose another --out"
            )
    if setting not in (1, 2):
        raise FewshotkitError(f"--setting must be 1 or 2, got {setting}")
    from fewshotkit.data.episodes.filters import check_rule

    check_rule(exclusion)
    if setting == 1 and exclusion != "any":
        raise FewshotkitError(f"--exclusion {exclusion} applies to setting 2 only (setting 1 drops no slice); "
                              "add --setting 2 --exclude CLASSES or leave out --exclusion")
    if spec.image_size is None:
        raise FewshotkitError("the spec has no image_size: training resizes every slice to it; set one (--set image_size=256)")

    overrides = {k: v for k, v in (("regime", regime), ("steps", steps), ("amp", amp),
                                   ("log_episodes", log_episodes)) if v is not None}
    config = TrainingConfig.from_dict({**dict(spec.training or {}), **overrides})
    spec = dataclasses.replace(spec, training=config.to_dict())

    from fewshotkit.data.store.check import require_valid_scans
    from fewshotkit.data.store.reader import SliceStore
    from fewshotkit.data.episodes.filters import resolve_classes
    from fewshotkit.data.episodes.folds import get_fold

    store = SliceStore(store_path)
    if resume:
        check_resume_store(previous, store)  # the same volumes, labels and pseudolabel set as recorded
    the_fold = get_fold(store, fold, n_folds=n_folds)
    exclude_text = exclude if isinstance(exclude, str) else ",".join(str(e) for e in exclude)
    excluded = resolve_classes(store, exclude_text) if exclude_text.strip() else []
    if setting == 2 and not excluded:
        raise FewshotkitError("--setting 2 removes the slices of the test classes: name them with --exclude (e.g. liver,spleen or upper)")
    store.normalize_with(the_fold.train)
    require_valid_scans(store, the_fold.train)  # NaN images, unknown label codes, shapes: name the data
    sampler, sampler_info = build_sampler(store, the_fold, setting, excluded, config, pseudolabels, exclusion)

    info, dev = ddp.setup(device)
    created = not resume and not out_dir.exists()
    try:
        return _run(
            spec, config, store, the_fold, setting, excluded, sampler, sampler_info, out_dir, seed, payload,
            previous, info, dev, show_progress, on_step, n_folds, hooks,
        )
    except BaseException as exc:
        if isinstance(exc, Exception) and created and info.is_main and not (ckpt_dir / LAST).exists():
            shutil.rmtree(out_dir, ignore_errors=True)  # no half-made run folder when nothing was trained
        if info.enabled:  # the traceback's frames hold the DDP wrapper: free it before its process group ends
            traceback.clear_frames(exc.__traceback__)
        raise
    finally:
        ddp.teardown(info)


def _run(spec: "MethodSpec", config: TrainingConfig, store: "SliceStore", the_fold: "Fold", setting: int, excluded: list[int],
         sampler: Any, sampler_info: dict[str, Any], out_dir: Path, seed: int, payload: dict[str, Any] | None,
         previous: dict[str, Any], info: ddp.DistInfo, dev: torch.device, show_progress: bool,
         on_step: Callable[[int], None] | None, n_folds: int, extra_hooks: Sequence[HookBase]) -> Path:
    """Build the method, optimiser, trainer and hooks, then train (see :func:`train`)."""
    from fewshotkit.core.console import console
    from fewshotkit.core.device import describe_device
    from fewshotkit.host.plugin_host import plugin_versions
    from fewshotkit.method.provenance import plugin_providers
    from fewshotkit.core.seeding import seed_everything
    from fewshotkit.method.spec import build_method
    from fewshotkit.data.store.axes import scans_orientation
    from fewshotkit.data.store.fingerprint import store_fingerprint
    from fewshotkit.training.augment import Augmenter
    from fewshotkit.training.batches import EpisodeBatcher
    from fewshotkit.training.curves import plot_loss_curve
    from fewshotkit.training.ema import WeightAverage
    from fewshotkit.training.eval_curve import CURVE_JSONL, EvalCurve
    from fewshotkit.training.optim import build_optimizer, build_scheduler, describe_groups, optimizer_groups

    assert spec.image_size is not None  # train() refuses a spec without one
    ckpt_dir = out_dir / "checkpoints"
    main = info.is_main
    seed_everything(seed)  # identical initial weights on every rank
    method = build_method(spec).to(dev)
    torch.manual_seed(_seed(seed, info.rank, 2))
    sampler_rng = np.random.default_rng(np.random.SeedSequence([seed, info.rank]))
    aug_gen = torch.Generator(device=dev)
    aug_gen.manual_seed(_seed(seed, info.rank, 1))

    # a run recorded before parameter groups existed resumes with the one group it was trained with
    groups = optimizer_groups(method, config, single=payload is not None and "optimizer_groups" not in previous)
    optimizer = build_optimizer(groups, config)
    scheduler = build_scheduler(optimizer, config)
    use_amp = bool(config.amp if config.amp is not None else dev.type == "cuda")
    if dev.type == "cuda":
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:  # CPUs autocast to bfloat16 only; without native bf16 that is slower than float32
        amp_dtype = torch.bfloat16
        if use_amp and not cpu_bf16_supported():
            warnings.warn("mixed precision (amp) needs a CPU with bfloat16 instructions (AVX512-BF16 or AMX); "
                          "training in float32 (for the float32 recipe's budget, use the ssl-alpnet-cpu preset)", stacklevel=2)
            use_amp = False
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    start, train_seconds, train_cpu_seconds = 0, 0.0, 0.0
    if payload is not None:
        method.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        if payload.get("scaler"):
            scaler.load_state_dict(payload["scaler"])
        start, train_seconds = int(payload["step"]), float(payload.get("train_seconds", 0.0))
        train_cpu_seconds = float(payload.get("train_cpu_seconds", 0.0))
        states = payload["rng"]
        if len(states) == info.world_size:
            if not restore_rng(states[info.rank], sampler_rng, aug_gen):
                warnings.warn(f"resuming on {dev.type} a run whose last checkpoint was written on another device "
                              f"type ({previous.get('device', '?')}): the augmentation stream is re-seeded, so the "
                              "run is not an exact continuation", stacklevel=2)
                aug_gen.manual_seed(_seed(seed, info.rank, start, 1))
        else:  # another number of processes: new streams, continued deterministically from the step
            warnings.warn(f"resuming a {len(states)}-process run with {info.world_size} processes: "
                          "episode streams are re-seeded, so the run is not an exact continuation", stacklevel=2)
            sampler_rng = np.random.default_rng(np.random.SeedSequence([seed, info.rank, start]))
            aug_gen.manual_seed(_seed(seed, info.rank, start, 1))
    if start > config.steps:
        raise FewshotkitError(f"--steps {config.steps} is below the {start} steps the run already has; give more steps")

    model: torch.nn.Module = method
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(method, device_ids=[dev.index] if dev.type == "cuda" else None)

    batcher = EpisodeBatcher(sampler, config.regime, spec.image_size, Augmenter(config.aug, aug_gen), dev,
                             config.batch_size)
    versions = plugin_versions()
    run: dict[str, Any] = {
        **previous,
        "store": str(Path(store.path).resolve()),
        "store_fingerprint": store_fingerprint(store, sampler_info.get("pseudolabel_set")),
        "fold": the_fold.index,
        "n_folds": n_folds,
        "setting": setting,
        "exclude": [store.classes[c] for c in excluded],
        "regime": config.regime,
        "seed": seed,
        "steps": config.steps,
        "batch_size": config.batch_size,
        "world_size": info.world_size,
        "process_group": torch.distributed.get_backend() if info.enabled else None,
        "effective_batch_size": config.batch_size * info.world_size,
        "optimizer_groups": describe_groups(groups),
        "device": str(dev),
        "device_name": describe_device() if dev.type == "cuda" else "cpu",
        "amp": str(amp_dtype).removeprefix("torch.") if use_amp else False,
        "orientation": scans_orientation(store, the_fold.train),  # what segment brings new scans to
        "fold_queries": list(the_fold.queries),
        "fold_support": the_fold.support,
        "fold_train": list(the_fold.train),
        **sampler_info,
        "plugin_versions": versions,
        "plugin_providers": plugin_providers(spec),
        "git_commit": git_commit(),
        "torch_version": str(torch.__version__),
        "status": "running",
        "started": previous.get("started", now()),
    }

    def write_run(**updates: Any) -> None:
        run.update(updates)
        if main:
            write_text(out_dir / RUN_JSON, json.dumps(run, indent=2) + "\n")

    spec_text = spec_to_toml(spec)
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text(out_dir / SPEC_TOML, spec_text)
        for log in (METRICS, EPISODES, CURVE_JSONL):
            trim_log(out_dir / log, start)
    write_run()

    trainer = Trainer(model, method, spec.method, optimizer, scheduler, batcher, sampler_rng, dev, config.steps,
                      start_step=start, train_seconds=train_seconds,
                      train_cpu_seconds=train_cpu_seconds, loss_weights=config.loss_weights,
                      use_amp=use_amp, amp_dtype=amp_dtype, scaler=scaler)
    # first among the hooks: evaluation and checkpoints after a step see the updated average
    ema = WeightAverage(config.ema, (payload or {}).get(EMA_KEY)) if config.ema > 0 else None
    checkpointer = Checkpointer(ckpt_dir, info, aug_gen, config.keep_checkpoints, lambda step: {
        "spec_toml": spec_text, "plugin_versions": versions, "plugin_providers": run["plugin_providers"],
        "run": {**run, "final_step": step}, **({EMA_KEY: ema.state_dict()} if ema else {})})
    logger = MetricsLogger(out_dir / METRICS if main else None, config.log_every, info, show_progress)
    hooks: list[HookBase] = [*([ema] if ema else []), logger]
    if config.log_episodes:
        hooks.append(EpisodeLogger(out_dir / EPISODES if main else None, info))
    hooks.append(PeriodicCheckpoint(checkpointer, config.checkpoint_every))
    if config.eval_every > 0:
        hooks.append(EvalCurve(store, the_fold, config.eval_every, out_dir, spec, info, n_folds=n_folds,
                               label=spec.preset or spec.method))
    if on_step is not None:
        hooks.append(StepCallback(on_step))
    trainer.register([*hooks, *extra_hooks])
    try:
        with StopRequest() as stop:
            trainer.run(lambda: ddp.any_rank(stop.requested, info, dev))
        step = trainer.step
        last = checkpointer.save(numbered=not trainer.interrupted and step > start)
    except Exception as exc:  # a NaN loss, a full disk, ...: run.json must not say "running"
        error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        with contextlib.suppress(Exception):  # the disk may be full
            write_run(status="failed", error=error, final_step=trainer.step, updated=now())
        raise
    if trainer.interrupted:
        write_run(status="interrupted", final_step=step, updated=now())
        if main:
            console.print(f"[yellow]Interrupted at step {step}/{config.steps}[/yellow]; checkpoint: {last}\n"
                          f"Continue with: fewshotkit train --resume {out_dir}")
        raise KeyboardInterrupt
    digests = ddp.all_gather(ddp.parameter_digest(method), info)
    write_run(status="completed", final_step=step, finished=now(), train_seconds=round(trainer.train_seconds, 2),
              train_cpu_seconds=round(trainer.train_cpu_seconds, 2),
              rank_weight_sha256=digests)
    if main:
        curve = plot_loss_curve(out_dir / METRICS, out_dir / LOSS_PNG, title=f"{spec.method} ({config.regime})")
        print_summary(console, run, last, curve, logger.last_loss)
    return last
