"""``fewshotkit train``: self-supervised or annotated episodic training (CPU, CUDA, torchrun DDP).

No torch import at module level: the training code is imported when the command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from fewshotkit.cli.options import VAL_FROM_CHOICES, VAL_FROM_HELP
from fewshotkit.core.errors import FewshotkitError


#: what a run directory fixes, as (parameter, as the user writes it): ``train --resume`` refuses them
FIXED_BY_THE_RUN = (("spec_path", "SPEC"), ("preset", "--preset"), ("store_path", "--store"), ("assignments", "--set"),
                    ("regime", "--regime"), ("pseudolabels", "--pseudolabels"), ("n_folds", "--n-folds"),
                    ("exclusion", "--exclusion"), ("eval_every", "--eval-every"), ("seed", "--seed"),
                    ("fold", "--fold"), ("setting", "--setting"), ("exclude", "--exclude"),
                    ("val_scans", "--val-scans"), ("val_from", "--val-from"))


def _fixed_by_the_run(ctx: click.Context) -> list[str]:
    """The options of :data:`FIXED_BY_THE_RUN` given on the command line (or from the environment),
    whatever their values: a default given explicitly is refused too."""
    from click.core import ParameterSource

    given = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    return [shown for name, shown in FIXED_BY_THE_RUN if ctx.get_parameter_source(name) in given]


@click.command()
@click.argument("spec_path", metavar="SPEC", required=False, type=click.Path(dir_okay=False))
@click.option("--preset", metavar="NAME", help="Start from a built-in preset instead of a SPEC file (e.g. ssl-alpnet-cpu).")
@click.option("--store", "store_path", type=click.Path(dir_okay=False), help="The slice store (.h5) to train on.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Run directory to create (checkpoints, logs).")
@click.option("--regime", type=click.Choice(["ssl", "supervised"]), help="Override spec.training.regime.")
@click.option("--setting", type=click.IntRange(1, 2), default=1, show_default=True,
              help="1: test classes may appear unlabelled in training; 2: drop every slice showing one.")
@click.option("--exclude", default="", metavar="GROUP_OR_CLASSES",
              help="Test classes: 'upper', 'lower' or names/values, e.g. liver,spleen.")
@click.option("--val-scans", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Hold at least N of the fold's training scans out (whole patients): never trained on; the "
                   "Dice-vs-time curve (--eval-every) scores them instead of the test scans.")
@click.option("--val-from", type=click.Choice(VAL_FROM_CHOICES), default="next-fold", show_default=True,
              help=VAL_FROM_HELP)
@click.option("--exclusion", type=click.Choice(["any", "all"]), default=None,
              help="Setting 2's rule: 'any' (default, SSL-ALPNet's) drops every slice showing any excluded class; "
                   "'all' (Q-Net's, RPT's and GMRD's code) only slices showing all of them.")
@click.option("--fold", type=int, default=0, show_default=True, help="Cross-validation fold (its test scans are never trained on).")
@click.option("--n-folds", type=click.IntRange(min=2), default=None,
              help="Folds over the store's scans (default 5); the store needs at least this many patients.")
@click.option("--steps", type=click.IntRange(min=0), help="Training steps (override spec.training.steps).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of every random generator.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override a spec value, e.g. training.lr=0.01 or training.aug.rotate=10 (repeatable; every training key: docs/training.md).")
@click.option("--pseudolabels", metavar="NAME", help="Pseudolabel set for --regime ssl (default: the store's only set).")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False), metavar="RUN_DIR",
              help="Continue a run exactly from its last checkpoint (spec and settings come from RUN_DIR).")
@click.option("--amp/--no-amp", default=None, help="Mixed precision: float16/bfloat16 on CUDA, bfloat16 on CPUs with AVX512-BF16 or AMX (default: on for CUDA, off on the CPU unless the spec says amp = true).")
@click.option("--log-episodes", is_flag=True, default=None, help="Record every episode's (volume, z) in episodes.jsonl.")
@click.option("--eval-every", type=click.IntRange(min=1), metavar="N",
              help="Score the held-out fold every N steps: curve.jsonl + curve.png (Dice vs training time), "
                   "with the spec's inference options (support_zoom, support_orientation, postprocess) as eval applies them.")
def train(spec_path: str | None, preset: str | None, store_path: str | None, out_dir: str | None, regime: str | None,
          setting: int, exclude: str, val_scans: int, val_from: str, exclusion: str | None, fold: int, n_folds: int | None, steps: int | None, device: str, seed: int,
          assignments: tuple[str, ...], pseudolabels: str | None, resume_dir: str | None, amp: bool | None,
          log_episodes: bool | None, eval_every: int | None) -> None:
    """Train a few-shot segmenter on a slice store.

    \b
    fewshotkit train --preset ssl-alpnet-cpu --store chaos.h5 --out runs/f0 --fold 0
    fewshotkit train spec.toml --store chaos.h5 --out runs/s2 --setting 2 --exclude upper
    fewshotkit train --resume runs/f0              # after Ctrl-C or a crash
    torchrun --nproc_per_node 4 -m fewshotkit train --preset ssl-alpnet --store ... --out ...
    """
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.method.build import load_spec
    from fewshotkit.method.build import validate_spec
    from fewshotkit.core.outputs import FOLDER, Output, check_outputs
    from fewshotkit.training.loop import train as run_training

    if resume_dir is not None:
        given = _fixed_by_the_run(click.get_current_context())
        if given:
            raise FewshotkitError(
                f"--resume takes the spec and settings from {resume_dir}; do not combine it with {', '.join(given)} "
                "(only --steps, --device, --amp and --log-episodes may change)"
            )
        if out_dir is not None and Path(out_dir).resolve() != Path(resume_dir).resolve():
            raise FewshotkitError("--resume continues the run in RUN_DIR itself; leave out --out")
        check_outputs([Output(resume_dir, "--resume", FOLDER)])
        run_training(None, None, Path(resume_dir), resume=True, steps=steps, device=device, amp=amp,
                     log_episodes=log_episodes)
        return

    if exclusion is not None and setting != 2:
        raise FewshotkitError(f"--exclusion {exclusion} applies to setting 2 only (setting 1 drops no slice); "
                              "add --setting 2 --exclude CLASSES or leave out --exclusion")
    if (spec_path is None) == (preset is None):
        raise FewshotkitError("give either a SPEC file or --preset NAME (e.g. --preset ssl-alpnet-cpu)")
    if store_path is None or out_dir is None:
        raise FewshotkitError("train needs --store STORE.h5 and --out RUN_DIR")
    check_outputs([Output(out_dir, "--out", FOLDER)], {"--store": store_path, "SPEC": spec_path})
    spec = load_spec(spec_path) if spec_path is not None else preset_spec(preset)  # type: ignore[arg-type]
    if eval_every is not None:
        assignments = (*assignments, f"training.eval_every={eval_every}")
    if assignments:
        spec = apply_overrides(spec, list(assignments))
    validate_spec(spec)
    run_training(spec, Path(store_path), Path(out_dir), fold=fold, n_folds=n_folds or 5, setting=setting, exclude=exclude,
                 exclusion=exclusion or "any", val_scans=val_scans, val_from=val_from, regime=regime,
                 steps=steps, device=device, seed=seed, pseudolabels=pseudolabels, amp=amp, log_episodes=log_episodes)

