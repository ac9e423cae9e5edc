"""A training run resolved before its first step: :func:`prepare_run` turns what the user asked
for (or, on resume, what the run directory recorded) into one :class:`Run`.

The order is fixed: a resumed run's record and checkpoint, the spec with its training values, the
store and the fold (a resumed run must find the same data), the episode sampler, and the devices
(the DDP process group) last, so every check that can fail does so before a process group exists.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch

from fewshotkit.core.errors import FewshotkitError
from fewshotkit.method.checkpoint import read_checkpoint
from fewshotkit.training import distributed as ddp
from fewshotkit.training.config import TrainingConfig
from fewshotkit.training.rundir import RUN_JSON, SPEC_TOML, RunDir

if TYPE_CHECKING:
    from fewshotkit.data.episodes.folds import Fold
    from fewshotkit.data.store.reader import SliceStore
    from fewshotkit.method.spec import MethodSpec


@dataclass(frozen=True)
class RunChoices:
    """What to train on and how, as :func:`fewshotkit.training.train` was asked; ``None`` keeps
    the spec's value. A resumed run takes every choice but ``steps``, ``amp`` and ``log_episodes``
    from its run.json (:meth:`resumed`)."""

    fold: int = 0
    setting: int = 1
    exclude: Sequence[str] | str = ()
    exclusion: str = "any"
    regime: str | None = None
    steps: int | None = None
    seed: int = 0
    pseudolabels: str | None = None
    amp: bool | None = None
    log_episodes: bool | None = None
    n_folds: int = 5
    val_scans: int = 0
    val_from: str = "next-fold"

    def resumed(self, previous: dict[str, Any]) -> "RunChoices":
        """These choices for continuing the run recorded in ``previous`` (its run.json)."""
        return dataclasses.replace(
            self, fold=previous["fold"], setting=previous["setting"], seed=previous["seed"],
            exclude=previous["exclude"], exclusion=previous.get("exclusion", "any"), regime=previous["regime"],
            pseudolabels=previous.get("pseudolabel_set"),
            n_folds=int(previous.get("n_folds", 5)), val_scans=int(previous.get("val_scans", 0)),
            val_from=previous.get("val_from", "end"), steps=self.steps if self.steps is not None else previous["steps"],
        )

    def training_overrides(self) -> dict[str, Any]:
        """The ``spec.training`` values these choices replace."""
        given = (("regime", self.regime), ("steps", self.steps), ("amp", self.amp), ("log_episodes", self.log_episodes))
        return {key: value for key, value in given if value is not None}


@dataclass
class Run:
    """One training run: the spec (its ``training`` table as used) and its ``config``, the store,
    the fold, the excluded class values, the episode sampler and what run.json records about it,
    the run directory, the seed, the process's place in a DDP group and its device. A resumed run
    also carries its run.json (``previous``) and its last checkpoint (``checkpoint``)."""

    spec: "MethodSpec"
    config: TrainingConfig
    store: "SliceStore"
    fold: "Fold"
    setting: int
    excluded: list[int]
    n_folds: int
    val_scans: int
    val_from: str
    seed: int
    sampler: Any
    sampler_info: dict[str, Any]
    paths: RunDir
    info: ddp.DistInfo
    device: torch.device
    previous: dict[str, Any] = field(default_factory=dict)
    checkpoint: dict[str, Any] | None = None


def prepare_run(spec: "MethodSpec | None", store_path: Path | str | None, out_dir: Path, choices: RunChoices, *,
                resume: bool, device: str) -> Run:
    """Check and resolve everything a run needs, in order (see the module's docstring)."""
    from fewshotkit.data.store.reader import SliceStore
    from fewshotkit.training.batches import build_sampler
    from fewshotkit.training.checkpoint import check_resume_store

    paths = RunDir(out_dir)
    previous: dict[str, Any] = {}
    checkpoint = None
    if resume:
        spec, previous = _read_run(paths)
        checkpoint = read_checkpoint(out_dir)
        _check_against_checkpoint(paths, spec, previous, checkpoint)
        store_path, choices = previous["store"], choices.resumed(previous)
    elif spec is None or store_path is None:
        raise FewshotkitError("train needs a spec and a store (or resume=True with a run directory)")
    elif paths.last_checkpoint.exists():
        raise FewshotkitError(
            f"'{out_dir}' already holds a trained run; continue it with --resume {out_dir} or choose another --out"
        )
    spec, config = _resolve_spec(spec, choices)
    store = SliceStore(store_path)
    if resume:
        check_resume_store(previous, store)  # the same volumes, labels and pseudolabel set as recorded
    fold, excluded = _training_data(store, choices)
    sampler, sampler_info = build_sampler(store, fold, choices.setting, excluded, config, choices.pseudolabels,
                                          choices.exclusion)
    info, dev = ddp.setup(device)
    return Run(spec, config, store, fold, choices.setting, excluded, choices.n_folds, choices.val_scans, choices.val_from,
               choices.seed, sampler,
               sampler_info, paths, info, dev, previous, checkpoint)


def _read_run(paths: RunDir) -> tuple["MethodSpec", dict[str, Any]]:
    """(the spec, the run.json) of the run directory to resume."""
    from fewshotkit.method.build import load_spec

    if not (paths / RUN_JSON).is_file() or not (paths / SPEC_TOML).is_file():
        raise FewshotkitError(f"--resume: '{paths.root}' is not a run directory (no {RUN_JSON} / {SPEC_TOML})")
    try:
        previous = json.loads((paths / RUN_JSON).read_text(encoding="utf-8"))
    except ValueError as exc:  # a truncated or edited record
        raise FewshotkitError(f"--resume: '{paths / RUN_JSON}' is not valid JSON ({exc}); the run record is "
                              "damaged: restore it, or start a new run") from None
    try:
        return load_spec(paths / SPEC_TOML), previous
    except FewshotkitError as exc:
        from fewshotkit.host.plugin_host import missing_component_error

        raise missing_component_error(exc, previous, f"run '{paths.root}'") from None


#: run.json keys a resume takes its choices from; the checkpoint's digest covers its own copy (the
#: store's path may change: a moved store is recognised by its fingerprint, check_resume_store)
RESUMED_KEYS = ("fold", "n_folds", "setting", "exclude", "exclusion", "regime", "seed", "val_scans",
                "val_from", "pseudolabel_set")


#: the spec.toml ``[training]`` keys ``train --resume`` may change (--steps, --amp, --log-episodes)
RESUME_MAY_CHANGE = ("steps", "amp", "log_episodes")


def _check_against_checkpoint(paths: RunDir, spec: "MethodSpec", previous: dict[str, Any],
                              checkpoint: dict[str, Any]) -> None:
    """Refuse to resume from a run.json or spec.toml that no longer says what the last checkpoint
    recorded (the checkpoint's copies are covered by its digest; the files are not). What a resume
    may change (:data:`RESUME_MAY_CHANGE`) may differ: such a resume rewrites both files before its
    next checkpoint, and may be stopped before it."""
    from fewshotkit.method.checkpoint import spec_from_toml

    recorded = checkpoint.get("run") or {}
    changed = [key for key in RESUMED_KEYS if key in recorded and recorded[key] != previous.get(key)]
    if changed:
        raise FewshotkitError(f"--resume: '{paths / RUN_JSON}' no longer matches its last checkpoint ({', '.join(changed)} "
                              "differ); restore the file or start a new run with --out")
    if checkpoint.get("spec_toml"):
        def comparable(table: dict[str, Any]) -> dict[str, Any]:
            training = table.get("training", {})
            return {**table, "training": {k: v for k, v in training.items() if k not in RESUME_MAY_CHANGE}}

        saved = spec_from_toml(checkpoint["spec_toml"], Path(checkpoint["path"]))
        if comparable(saved.to_dict()) != comparable(spec.to_dict()):
            raise FewshotkitError(f"--resume: '{paths / SPEC_TOML}' no longer matches the spec its last checkpoint "
                                  "recorded; restore the file or start a new run with --out")


def _resolve_spec(spec: "MethodSpec", choices: RunChoices) -> tuple["MethodSpec", TrainingConfig]:
    """The spec with its ``training`` table as this run uses it, and that table as a config."""
    from fewshotkit.data.episodes.filters import check_rule

    if choices.setting not in (1, 2):
        raise FewshotkitError(f"--setting must be 1 or 2, got {choices.setting}")
    if choices.seed < 0:
        raise FewshotkitError(f"--seed must be >= 0, got {choices.seed}")
    check_rule(choices.exclusion)
    if choices.setting == 1 and choices.exclusion != "any":
        raise FewshotkitError(f"--exclusion {choices.exclusion} applies to setting 2 only (setting 1 drops no slice); "
                              "add --setting 2 --exclude CLASSES or leave out --exclusion")
    if spec.image_size is None:
        raise FewshotkitError("the spec has no image_size: training resizes every slice to it; set one (--set image_size=256)")
    config = TrainingConfig.from_dict({**dict(spec.training or {}), **choices.training_overrides()})
    return dataclasses.replace(spec, training=config.to_dict()), config


def _training_data(store: "SliceStore", choices: RunChoices) -> tuple["Fold", list[int]]:
    """The fold and the excluded class values; the store normalised with the fold's training scans,
    which are checked (NaN images, unknown label codes, shapes: an error names the scan)."""
    from fewshotkit.data.episodes.filters import resolve_classes
    from fewshotkit.data.episodes.folds import get_fold
    from fewshotkit.data.store.check import require_valid_scans

    fold = get_fold(store, choices.fold, n_folds=choices.n_folds, val_scans=choices.val_scans, val_from=choices.val_from)
    exclude = choices.exclude
    exclude_text = exclude if isinstance(exclude, str) else ",".join(str(e) for e in exclude)
    excluded = resolve_classes(store, exclude_text) if exclude_text.strip() else []
    if choices.setting == 2 and not excluded:
        raise FewshotkitError("--setting 2 removes the slices of the test classes: name them with --exclude (e.g. liver,spleen or upper)")
    store.normalize_with(fold.train)
    require_valid_scans(store, fold.train)
    return fold, excluded
