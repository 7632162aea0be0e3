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
# Time to the study CNN2's 92.22% and to 95% on the offline proxy at study size (issue: under
# 3 s and 10 s of training on one H100-class GPU), then the same for the study's CNN2 itself.
"$python" benchmarks/time_to_accuracy.py --config=configs/wrn_fast.py --config.data.source=synthetic --seeds=5 | tee "$out/gpu_time_to_accuracy_wrn_fast.txt"
"$python" benchmarks/time_to_accuracy.py --config=configs/cnn2.py --config.data.source=synthetic --seeds=3 | tee "$out/gpu_time_to_accuracy_cnn2.txt"
