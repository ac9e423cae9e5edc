#!/usr/bin/env bash
# The zoo's Dice-vs-time curves on one GPU (step 1 of benchmarks/studies/chaos_zoo_gpu.toml):
# CHAOS-T2 into a store with its superpixels, then every method's CPU preset trained on fold 0 at once, one job
# each, scored on the fold's 2 validation scans as they train. Training stops at --minutes whatever
# step it reached (the script ends in about 9 minutes); the curves show how far each method got. Writes to OUT:
#   dice_vs_time_zoo_gpu.png   the curves (Dice against wall minutes and steps; T of the threshold methods)
#   curves.txt                 each run's last and best point
#   runs/METHOD/               each run's curve.jsonl, metrics.jsonl, run.json
#   results.md                 the study's table, when every training finished
#   bench.log                  the study's log
#
#   bash benchmarks/gpu_zoo_curves.sh [--out DIR] [--work DIR] [--data CHAOS_NIFTI_DIR] [--steps N] [--eval-every N] [--minutes M]
#   bash benchmarks/gpu_zoo_curves.sh --dry-run     # the same steps on the CPU: synthetic scans, a narrow encoder, 4 steps
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
OUT=gpu_zoo_out
WORK=""
DATA="${FEWSHOTKIT_DATA:-$REPO/../shared/data}/CHAOST2/chaos_MR_T2_normalized"
STEPS=4000
EVAL_EVERY=500
MINUTES=7
DRY=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY=1; shift ;;
    --out) OUT="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    --data) DATA="$2"; shift 2 ;;
    --steps) STEPS="$2"; shift 2 ;;
    --eval-every) EVAL_EVERY="$2"; shift 2 ;;
    --minutes) MINUTES="$2"; shift 2 ;;
    *) echo "gpu_zoo_curves.sh: unknown argument '$1' (use --dry-run, --out, --work, --data, --steps, --eval-every, --minutes)" >&2
       exit 2 ;;
  esac
done
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="${WORK:-$OUT/work}"
mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
# GPU images often have python3 only; PYTHON picks another interpreter
PY="${PYTHON:-$(command -v python3 || command -v python)}"
FSK=("$PY" -m fewshotkit)
if ! (cd / && "$PY" -c "import importlib.metadata as m; m.version('fewshotkit')" 2> /dev/null); then
  echo "gpu_zoo_curves.sh: fewshotkit is not installed for $PY: run '$PY -m pip install -e .' in the repository first" >&2
  exit 2
fi

if [[ $DRY == 1 ]]; then
  # CPU, tiny encoder and images: checks the script end to end without a GPU or the scans
  [[ -f "$WORK/chaos.h5" ]] || "${FSK[@]}" ingest synthetic -o "$WORK/chaos.h5" --volumes 10 --slices 12 --size 64
  "${FSK[@]}" pseudolabel "$WORK/chaos.h5" --with felzenszwalb --set min_size=100 --jobs 2
  STEPS=4 EVAL_EVERY=2
  EXTRA=(--device cpu --jobs 2 --set backbone.width=8 --set backbone.out_channels=32
         --set training.batch_size=2)
else
  if [[ ! -d "$DATA" ]]; then
    echo "gpu_zoo_curves.sh: CHAOS-T2 not found at '$DATA': pass --data DIR (the folder of image_N.nii.gz)" >&2
    exit 2
  fi
  [[ -f "$WORK/chaos.h5" ]] || "${FSK[@]}" ingest chaos-t2 "$DATA" -o "$WORK/chaos.h5"
  "${FSK[@]}" pseudolabel "$WORK/chaos.h5" --with felzenszwalb --set min_size=400
  EXTRA=(--jobs 5)
fi
BENCH=(--config "$REPO/benchmarks/studies/chaos_zoo_gpu.toml" --fold 0 --split validation --protocol roy
       --steps "$STEPS" --set "training.eval_every=$EVAL_EVERY" "${EXTRA[@]}")

cd "$WORK"
# timeout sends SIGTERM to its whole process group: the study and every job it started (SIGINT would be
# ignored where the script runs in the background)
set +e
timeout --kill-after=30 "${MINUTES}m" "${FSK[@]}" bench "${BENCH[@]}" > "$OUT/bench.log" 2>&1
status=$?
set -e
if [[ $status == 124 ]]; then
  echo "gpu_zoo_curves.sh: training stopped at the $MINUTES-minute deadline; the curves end where each run got" >&2
elif [[ $status != 0 ]]; then
  echo "gpu_zoo_curves.sh: the study failed (exit $status); see $OUT/bench.log" >&2
fi

runs=()
for run in bench/chaos_zoo_gpu/runs/chaos/*/fold0-*/all; do
  [[ -f "$run/curve.jsonl" ]] || continue
  runs+=("$run")
  keep="$OUT/runs/$(basename "$(dirname "$(dirname "$run")")")"
  mkdir -p "$keep"
  cp "$run"/curve.jsonl "$run"/metrics.jsonl "$keep"/
  [[ -f "$run/run.json" ]] && cp "$run/run.json" "$keep"/
done
[[ -f bench/chaos_zoo_gpu/results.md ]] && cp bench/chaos_zoo_gpu/results.md "$OUT"/
if [[ ${#runs[@]} == 0 ]]; then
  echo "gpu_zoo_curves.sh: no run reached its first evaluation; see $OUT/bench.log" >&2
  exit 1
fi
"${FSK[@]}" curves "${runs[@]}" --protocol roy --title "CHAOS-T2 fold 0, validation scans, CPU presets on one GPU" \
  -o "$OUT/dice_vs_time_zoo_gpu.png" | tee "$OUT/curves.txt"
# the deadline is part of the plan, not a failure
[[ $status == 124 ]] && exit 0
exit "$status"
