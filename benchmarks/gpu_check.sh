#!/usr/bin/env bash
# The one-GPU check (<= 8 minutes on one H100): the CUDA tests, the paper recipe's training
# throughput with AMP, a short SSL-ALPNet training on CHAOS-T2 fold 0 with its Dice, inference
# speed. Writes OUT/gpu_check.json with every figure.
#
#   bash benchmarks/gpu_check.sh [--out DIR] [--work DIR] [--data CHAOS_NIFTI_DIR] [--train-steps N] [--recipe-steps N]
#   bash benchmarks/gpu_check.sh --dry-run      # the same steps on the CPU, tiny sizes (CI runs this)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=gpu_check_out
ARGS=()
DRY=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY=1; ARGS+=("$1"); shift ;;
    --out) OUT="$2"; shift 2 ;;
    --work|--data|--train-steps|--recipe-steps) ARGS+=("$1" "$2"); shift 2 ;;
    *) echo "gpu_check.sh: unknown argument '$1' (use --dry-run, --out, --work, --data, --train-steps, --recipe-steps)" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
# GPU images often have python3 only; PYTHON picks another interpreter
PY="${PYTHON:-$(command -v python3 || command -v python)}"
if [[ $DRY == 1 ]]; then
  # the CUDA tests skip on a CPU-only machine; collecting them checks they import
  "$PY" -m pytest -q tests/test_cuda.py --collect-only -q > "$OUT/cuda_tests.log" 2>&1
  echo '{"ran": false, "why": "dry run: CUDA tests only collected"}' > "$OUT/cuda_tests.json"
else
  set +e
  "$PY" -m pytest -q tests/test_cuda.py -p no:cacheprovider > "$OUT/cuda_tests.log" 2>&1
  status=$?
  set -e
  "$PY" - "$OUT" "$status" <<'PY'
import json, re, sys
out, status = sys.argv[1], int(sys.argv[2])
tail = open(f"{out}/cuda_tests.log").read().strip().splitlines()[-1]
counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error)", tail)}
json.dump({"ran": True, "exit_status": status, "summary": tail, **counts}, open(f"{out}/cuda_tests.json", "w"))
PY
fi
"$PY" benchmarks/gpu_check.py --out "$OUT" --tests "$OUT/cuda_tests.json" "${ARGS[@]}"
