#!/usr/bin/env bash
# One prepared GPU run (for the lent device machine): CUDA tests, then the benchmark suite.
# Results go to benchmarks/results/<gpu name>/ and, when $OUT is set, are copied there too.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total --format=csv || true
$PY -m pytest -q -p no:cacheprovider tests/test_cuda.py
cd benchmarks
$PY nonlocal_attention.py --sides 15 30 41 60 90 --compile
$PY nonlocal_attention.py --impls core-matmul core-sdpa --sides 41 60 90 --name nonlocal_core
$PY model_step.py --sizes 321 473
if [ -n "${OUT:-}" ]; then cp -r results "$OUT/"; fi
