#!/usr/bin/env bash
# The benchmark on an accelerator: JAX only, study-sized data, the whole study's wall time, then
# the same with epochs as a Python loop of steps, to show which path is faster there.
# Needs jax with CUDA (pip install -e ".[gpu]") or TPU support; prints the tables, writes JSON.
# Usage: bash benchmarks/gpu.sh [OUT_DIR]   (default: results/)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-results}"
mkdir -p "$out"
python=${PYTHON:-python}
"$python" -c "import jax; print(jax.devices()); assert jax.default_backend() != 'cpu', 'no accelerator'"
"$python" benchmarks/benchmark.py --frameworks=jax --study --json="$out/gpu_study_scan.json"
"$python" benchmarks/benchmark.py --frameworks=jax --epochs=3 --scan=0 --json="$out/gpu_steps.json"
# The Wide ResNet recipes on the offline proxy at study size: seeds with intervals, and the time
# to the study CNN2's accuracy and to 3 points more (benchmarks/gpu_wrn.sh).
PYTHON="$python" bash benchmarks/gpu_wrn.sh "$out/wrn"
