#!/usr/bin/env bash
# One prepared GPU run for a lent device machine: CUDA tests, then the benchmarks, within a budget.
#
#   BUDGET_S=330 bash benchmarks/run_gpu_suite.sh      # default budget: 5.5 minutes
#
# Every step gets a time limit from what is left of the budget and is skipped when less than its
# minimum is left, so the whole script ends within BUDGET_S seconds (plus start-up) on one
# H100/H200. Results go to benchmarks/results/<gpu name>/ and, when $OUT is set, to $OUT too.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
BUDGET_S=${BUDGET_S:-330}
START=$(date +%s)

step() {  # step NAME MIN_SECONDS MAX_SECONDS COMMAND...
  local name=$1 min=$2 max=$3; shift 3
  local left=$(( BUDGET_S - ($(date +%s) - START) ))
  if (( left < min )); then echo "== skip $name: ${left}s left, needs ${min}s"; return; fi
  local limit=$(( left < max ? left : max ))
  echo "== $name (limit ${limit}s)"
  timeout --signal=INT "$limit" "$@" || echo "== $name ended with status $? (time limit ${limit}s?)"
}

nvidia-smi --query-gpu=name,memory.total --format=csv || true
step "CUDA tests" 30 90 $PY -m pytest -q -p no:cacheprovider tests/test_cuda.py
cd benchmarks
step "model step, bf16 eager + stages" 60 110 $PY model_step.py --models sm_vcenet_resnet50 deeplab_resnet50 \
  --sizes 473 --batch 8 --amp bf16 --channels-last --stages --min-time 0.3
step "non-local sweep" 40 80 $PY nonlocal_attention.py --sides 30 60 90 --impls naive sdpa channel \
  --dtypes float32 bfloat16 --min-time 0.2
step "non-local attention core" 15 40 $PY nonlocal_attention.py --impls core-sdpa --sides 60 90 \
  --dtypes bfloat16 --min-time 0.2 --name nonlocal_core
step "model step, bf16 compiled" 90 150 $PY model_step.py --models sm_vcenet_resnet50 --sizes 473 \
  --batch 8 --amp bf16 --channels-last --compile --min-time 0.3 --name model_step_compiled
if [ -n "${OUT:-}" ]; then cp -r results "$OUT/"; fi
echo "== done in $(( $(date +%s) - START ))s"
