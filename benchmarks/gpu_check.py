"""The one-GPU check: paper-recipe throughput with AMP, a short SSL-ALPNet training on CHAOS-T2
fold 0 with its Dice, inference speed, and the shipped CPU recipe trained on the GPU; every figure
goes into one JSON file, rewritten after each part so that a run cut short keeps what it measured.

Run through ``benchmarks/gpu_check.sh`` (which also runs the CUDA tests). ``--dry-run`` runs the
same steps on the CPU with tiny sizes on a synthetic store, so CI can check the script works.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

# The real scans: $FEWSHOTKIT_DATA, else ../shared/data beside the repository (as the tests find them).
DATA_SETTING = "FEWSHOTKIT_DATA"
CHAOS_SUBDIR = Path("CHAOST2") / "chaos_MR_T2_normalized"


def default_chaos_dir() -> Path:
    """CHAOS-T2's NIfTI folder under ``$FEWSHOTKIT_DATA`` (or ``../shared/data`` beside the repository)."""
    value = os.environ.get(DATA_SETTING)
    root = Path(value).expanduser() if value else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return root / CHAOS_SUBDIR


def _metrics_speed(run_dir: Path) -> float:
    """Mean steps/s over the logged windows after the first (the first holds the warm-up)."""
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    speeds = [r["steps_per_s"] for r in lines[1:]] or [r["steps_per_s"] for r in lines]
    return sum(speeds) / len(speeds)


def throughput(store: Path, work: Path, device: str, dry: bool) -> dict[str, Any]:
    """Training steps/s of the paper recipe (ResNet-101 at 256 px; batch 1 like the reference) with AMP."""
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.training.loop import train

    sets = ["training.log_every=10", "training.checkpoint_every=100000"]
    if dry:
        sets = ["backbone.type=light", "backbone.width=8", "backbone.out_channels=32", "backbone.output_stride=8",
                "image_size=64", "training.log_every=2", "training.checkpoint_every=100000"]
    spec = apply_overrides(preset_spec("ssl-alpnet"), sets)
    steps = 6 if dry else 60
    out = work / "throughput"
    train(spec, store, out, steps=steps, device=device, amp=device != "cpu", show_progress=False)
    per_s = _metrics_speed(out)
    return {"preset": "ssl-alpnet" + (" (dry run: light encoder, 64 px)" if dry else ""), "batch_size": 1,
            "amp": device != "cpu", "steps": steps, "steps_per_s": round(per_s, 3),
            "s_per_step": round(1 / per_s, 4), "reference_s_per_step_cpu": 5.90}


def short_training(store: Path, work: Path, device: str, dry: bool, steps: int) -> dict[str, Any]:
    """SSL-ALPNet (paper backbone, from scratch: no COCO weights offline) on fold 0, then Dice."""
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.training.loop import train

    sets = ["training.batch_size=4", "training.lr=3e-3", "training.lr_step=500", "training.lr_gamma=0.8",
            "training.log_every=50", "training.checkpoint_every=500"]
    if dry:
        sets = ["backbone.type=light", "backbone.width=8", "backbone.out_channels=32", "backbone.output_stride=8",
                "image_size=64", "training.log_every=2", "training.checkpoint_every=100"]
    spec = apply_overrides(preset_spec("ssl-alpnet"), sets)
    out = work / "ssl-alpnet-fold0"
    train(spec, store, out, fold=0, steps=steps, device=device, amp=device != "cpu", show_progress=not dry)
    form = " (dry run: light encoder, 64 px)" if dry else " (from scratch: no COCO weights offline)"
    return {"preset": "ssl-alpnet" + form, "batch_size": 1 if dry else 4, "lr": None if dry else 3e-3,
            **_fold0_dice(out, store, device)}


def cpu_recipe(store: Path, work: Path, device: str, dry: bool, steps: int) -> dict[str, Any]:
    """The shipped CPU preset (``ssl-alpnet-cpu-bf16``) trained on the GPU: its time and fold-0 Dice."""
    from fewshotkit.method.overrides import apply_overrides
    from fewshotkit.method.spec import preset_spec
    from fewshotkit.training.loop import train

    sets = ["training.checkpoint_every=100000"]
    if dry:
        sets += ["backbone.width=8", "backbone.out_channels=32", "image_size=64", "training.log_every=2"]
    spec = apply_overrides(preset_spec("ssl-alpnet-cpu-bf16"), sets)
    out = work / "ssl-alpnet-cpu-bf16-fold0"
    train(spec, store, out, fold=0, steps=steps, device=device, show_progress=not dry)
    return {"preset": "ssl-alpnet-cpu-bf16", **_fold0_dice(out, store, device)}


def _fold0_dice(run_dir: Path, store: Path, device: str) -> dict[str, Any]:
    """Steps, training seconds, steps/s and fold-0 Dice (Roy and full-volume, as is) of a finished run."""
    from fewshotkit.evaluation.evaluate import EvalRun, evaluate_checkpoint

    run = json.loads((run_dir / "run.json").read_text())
    result: dict[str, Any] = {"steps": run["steps"], "amp": run["amp"], "train_s": round(run["train_seconds"], 2),
                              "steps_per_s": round(run["steps"] / run["train_seconds"], 2)}
    for protocol in ("roy", "full-volume"):
        document, _ = evaluate_checkpoint(run_dir, store, folds=[0], protocol=protocol, run=EvalRun(device=device))
        fold = document["folds"][0]
        result[protocol] = {"dice": round(fold["mean"]["dice"], 2), "per_class": fold["per_class"]["dice"]}
    result["run"] = run_dir.name  # relative to the work folder: the JSON holds no local path
    return result


def inference(store: Path, run_dir: Path, device: str, repeats: int) -> dict[str, Any]:
    """Seconds per query slice (1-slice batches) and per query volume (batched) of the trained model."""
    import numpy as np
    import torch

    from fewshotkit.evaluation.inference import MethodPredictor
    from fewshotkit.data.store.reader import SliceStore
    from fewshotkit.method.checkpoint import load_method

    loaded = load_method(run_dir, device)
    slab = SliceStore(store)
    volume = slab.volumes[0]
    image = np.asarray(slab.image(volume), dtype=np.float32)
    label = np.asarray(slab.label(volume)) > 0
    z = int(np.flatnonzero(label.any(axis=(1, 2)))[0])
    predictor = MethodPredictor(loaded.method, loaded.spec.image_size, device, batch_size=16)
    sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)
    predictor(image[z:z + 1], label[z:z + 1], image[z:z + 1])  # warm-up
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        predictor(image[z:z + 1], label[z:z + 1], image[z:z + 1])
    sync()
    per_slice = (time.perf_counter() - start) / repeats
    start = time.perf_counter()
    predictor(image[z:z + 1], label[z:z + 1], image)
    sync()
    per_volume = time.perf_counter() - start
    return {"s_per_query_slice": round(per_slice, 5), "s_per_query_volume": round(per_volume, 4),
            "volume_slices": int(image.shape[0]), "reference_s_per_slice_cpu": 1.81}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes, synthetic store")
    parser.add_argument("--out", type=Path, default=Path("gpu_check_out"))
    parser.add_argument("--work", type=Path, help="scratch folder for stores and runs (default OUT/work)")
    parser.add_argument("--data", type=Path, default=None,
                        help=f"CHAOS-T2 NIfTI folder (default: ${DATA_SETTING}/{CHAOS_SUBDIR.as_posix()})")
    parser.add_argument("--train-steps", type=int, default=1500, help="steps of the short paper-backbone training")
    parser.add_argument("--recipe-steps", type=int, default=3000,
                        help="steps of the CPU preset trained on the GPU (its own 3000; 0 skips the part)")
    parser.add_argument("--tests", type=Path, help="JSON summary of the CUDA tests to include")
    args = parser.parse_args()
    args.data = args.data or default_chaos_dir()

    import torch

    from fewshotkit.core.device import describe_device
    from fewshotkit.data.ingest.synthetic import ingest_synthetic
    from fewshotkit.data.pseudolabel import run_pseudolabeler

    device = "cpu" if args.dry_run else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device here; use --dry-run to check the script on the CPU")
    work = args.work or args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    path = args.out / "gpu_check.json"
    report: dict[str, Any] = {"device": describe_device() if device == "cuda" else "cpu", "dry_run": args.dry_run,
                              "torch": torch.__version__, "cuda": torch.version.cuda, "platform": platform.platform()}
    timer = time.perf_counter()

    def record(part: str, value: Any) -> None:
        report[part] = value
        report["wall_s"] = round(time.perf_counter() - timer, 1)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(report, indent=2) + "\n")
        tmp.replace(path)
        print(f"gpu_check: {part} done at {report['wall_s']} s: {json.dumps(value)}", flush=True)

    if args.tests is not None and args.tests.is_file():
        record("cuda_tests", json.loads(args.tests.read_text()))
    synthetic = work / "synthetic.h5"
    if not synthetic.exists():
        ingest_synthetic(synthetic, volumes=6, slices=12 if args.dry_run else 24, size=64 if args.dry_run else 256,
                         quiet=True)
        run_pseudolabeler(synthetic, "felzenszwalb", {}, jobs=2)
    record("throughput", throughput(synthetic, work, device, args.dry_run))

    if args.dry_run or not args.data.is_dir():
        store, data = synthetic, "synthetic (CHAOS-T2 not found)"
        if not args.dry_run:
            print(f"gpu_check: CHAOS-T2 not found at {args.data}: pass --data or set {DATA_SETTING} to the "
                  f"folder holding {CHAOS_SUBDIR.as_posix()}; training on the synthetic store", flush=True)
    else:
        from fewshotkit.data.ingest.chaos import ingest_chaos_t2

        store, data = work / "chaos.h5", "CHAOS-T2"
        if not store.exists():
            ingest_chaos_t2(args.data, store, quiet=True)
            run_pseudolabeler(store, "felzenszwalb", {"min_size": 400}, jobs=8)
    record("training_data", data)
    training = short_training(store, work, device, args.dry_run, 4 if args.dry_run else args.train_steps)
    record("training", training)
    record("inference", inference(store, work / training["run"], device, 3 if args.dry_run else 20))
    if args.recipe_steps > 0:
        record("cpu_recipe", cpu_recipe(store, work, device, args.dry_run, 4 if args.dry_run else args.recipe_steps))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
