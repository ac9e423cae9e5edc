"""Is a method held back by its encoder or by its head? One run's encoder under another run's head.

Writes a checkpoint that is HEAD_RUN's (its spec, its head's weights such as a learned threshold,
its run record: fold and held-out validation scans) with the backbone weights of ENCODER_RUN, for
``fewshotkit eval`` to score like any trained run:

    python benchmarks/studies/swap_encoder.py ENCODER_RUN HEAD_RUN -o swapped.pt
    fewshotkit eval swapped.pt --store chaos.h5 --split validation --protocol roy

Both runs need the same ``[backbone]`` table, image size, fold and held-out scans. With the runs
of one method the checkpoint reproduces that method's scores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

BACKBONE = "backbone."
#: what both runs must share for the encoder to fit the head and the scans to be the same
SHARED_RUN_KEYS = ("fold", "n_folds", "val_scans", "fold_validation", "setting")


def backbone_table(payload: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The ``[backbone]`` table and image size of a checkpoint's spec."""
    from fewshotkit.method.checkpoint import spec_from_toml

    spec = spec_from_toml(payload["spec_toml"], Path(payload["path"]))
    return spec.to_dict().get("backbone", {}), spec.image_size


def check_compatible(encoder: dict[str, Any], head: dict[str, Any]) -> None:
    """Raise ValueError naming what differs between the two checkpoints."""
    if backbone_table(encoder) != backbone_table(head):
        raise ValueError(f"the backbones differ: {backbone_table(encoder)} in '{encoder['path']}', "
                         f"{backbone_table(head)} in '{head['path']}'")
    for key in SHARED_RUN_KEYS:
        ours, theirs = encoder.get("run", {}).get(key), head.get("run", {}).get(key)
        if ours != theirs:
            raise ValueError(f"run key '{key}' differs: {ours} in '{encoder['path']}', {theirs} in '{head['path']}'")


def swapped(encoder: dict[str, Any], head: dict[str, Any]) -> dict[str, Any]:
    """``head``'s checkpoint payload with ``encoder``'s backbone weights (in its weight average too)."""
    from fewshotkit.method.checkpoint import EMA_KEY, HOOKS, averaged_weights

    average = encoder[HOOKS].get(EMA_KEY)
    source = averaged_weights(average) if average else encoder["model"]
    weights = {k: v for k, v in source.items() if k.startswith(BACKBONE)}
    model = {**head["model"], **weights}
    hooks = dict(head[HOOKS])
    if hooks.get(EMA_KEY):
        hooks[EMA_KEY] = {**hooks[EMA_KEY], **{f"module.{k}": v for k, v in weights.items()}}
    kept = {k: v for k, v in head.items() if k not in ("path", "optimizer", "scheduler", "scaler")}
    return {**kept, "model": model, HOOKS: hooks, "optimizer": None, "scheduler": None, "scaler": None}


def main(argv: list[str] | None = None) -> int:
    from fewshotkit.core.errors import FewshotkitError
    from fewshotkit.method.checkpoint import read_checkpoint, save_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("encoder_run", help="the run (or checkpoint) whose backbone weights are used")
    parser.add_argument("head_run", help="the run (or checkpoint) whose spec and head weights are used")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the checkpoint to write (.pt)")
    args = parser.parse_args(argv)
    try:
        encoder, head = read_checkpoint(args.encoder_run), read_checkpoint(args.head_run)
        check_compatible(encoder, head)
    except (FewshotkitError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    save_checkpoint(args.output, swapped(encoder, head))
    print(f"{args.output}: the head of '{head['path']}' on the encoder of '{encoder['path']}'")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
