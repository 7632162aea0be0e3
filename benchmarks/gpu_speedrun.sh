#!/usr/bin/env bash
# Issue 32's measurement on one GPU: configs/speedrun.py (airbench94_muon's recipe) on the offline
# proxy at the study's sizes (42,000 / 60,000 / 18,000 crops of synthetic version 5, the default;
# the training and validation crops not pooled; the study CNN2 scores 92.97% there), as airbench
# measures: fixed-length runs over SEEDS seeds, the mean final test accuracy against 92.22% (the
# study CNN2 on SVHN), 92.97% (on the proxy), 95% and 96%, training seconds with compilation and
# the whitening statistics apart (benchmarks/time_to_accuracy.py --fixed_length). The goal: 92.97%
# in under 1 s and 96% in under 3 s of training on one H100-class GPU, mean over 5 seeds.
#   1. device: the GPU and the versions of jax, jaxlib, flax and optax;
#   2. data: generates (or reads the cached) proxy, prints its fingerprint;
#   3. curve: one seed of configs/speedrun.py scored after every epoch (to choose lengths; not
#      the measure);
#   4. fixed: SEEDS seeds of configs/speedrun.py at its own length (EPOCHS, if set, instead);
#   5. long: SEEDS seeds at LONG_EPOCHS epochs (default 16), for the 96% target.
# Each stage has its own time limit in seconds (CURVE_LIMIT 120, FIXED_LIMIT 180, LONG_LIMIT 200;
# 0 skips it); the defaults fit about 10 minutes. JAX's compilation cache goes to OUT_DIR/jax_cache,
# so that seeds after the first load their programs rather than compile them. Exits 1 if a stage
# failed or was cut, 2 (before anything runs) for a setting that is not a whole number.
# Needs jax with CUDA (pip install -e ".[gpu]"). On a machine whose image has jax but not this
# project's other pins, carry the pure-Python wheels (optax 0.2.8: its contrib.scale_by_muon
# takes the conv kernels' dimension numbers; flax 0.12.8; ml-collections 1.1.0; orbax-checkpoint
# 0.12.8) and install them first, e.g. `pip install --no-deps --target /tmp/site .whl/*.whl`
# with PYTHONPATH=/tmp/site:$PWD.
# Usage: bash benchmarks/gpu_speedrun.sh [OUT_DIR]   (default: results/gpu_speedrun)
# ARGS: more flags for every time_to_accuracy run (split on spaces). Smaller, to try it on a CPU:
#   TRAIN=2000 VAL=600 TEST=500 SEEDS=2 EPOCHS=2 LONG_LIMIT=0 ARGS="--config.train.tta=0 \
#   --config.model.airbench.block2=32 --config.model.airbench.block3=32" \
#   bash benchmarks/gpu_speedrun.sh /tmp/gpu_speedrun
set -uo pipefail
for knob in TRAIN VAL TEST VERSION SEEDS EPOCHS LONG_EPOCHS CURVE_LIMIT FIXED_LIMIT LONG_LIMIT; do
  if [ -n "${!knob:-}" ] && ! [[ "${!knob}" =~ ^[0-9]+$ ]]; then
    echo "error: $knob=${!knob}: expected a whole number (see the header of $0)" >&2
    exit 2
  fi
done
cd "$(dirname "$0")/.."
out="${1:-results/gpu_speedrun}"
python=${PYTHON:-python}
mkdir -p "$out"
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-$out/jax_cache}"
export PYTHONUNBUFFERED=1
sizes=(--config.data.source=synthetic --config.data.synthetic.train="${TRAIN:-42000}"
       --config.data.synthetic.val="${VAL:-60000}" --config.data.synthetic.test="${TEST:-18000}"
       --config.data.synthetic.version="${VERSION:-5}")
targets=--targets=0.9222,0.9297,0.95,0.96
read -r -a extra <<< "${ARGS:-}"
seeds=${SEEDS:-5}
status=0
stage() {  # stage NAME SECONDS COMMAND...: runs it under a time limit (0: skips it), says how
  local name=$1 limit=$2 began=$SECONDS
  shift 2
  if [ "$limit" -le 0 ]; then
    echo "=== $name: skipped"
    return 0
  fi
  echo "=== $name (limit ${limit} s) $(date -u +%H:%M:%S)"
  timeout -k 15 "$limit" "$@"
  local rc=$?
  echo "=== $name: exit $rc after $((SECONDS - began)) s"
  [ "$rc" -eq 0 ] || status=1
  return "$rc"
}
stage "device" 60 "$python" -c "
import jax, jaxlib, flax, optax
print('jax', jax.__version__, 'jaxlib', jaxlib.__version__, 'flax', flax.__version__, 'optax',
      optax.__version__, jax.devices())
from optax.contrib import MuonDimensionNumbers, scale_by_muon  # recipes.muon_sgd needs both
"
stage "data" 150 "$python" -c "
import sys, time
from configs import default
from svhn_jax import data
from svhn_jax.datasets import sources
cfg = default.get_config().data
cfg.source = 'synthetic'
cfg.synthetic.train, cfg.synthetic.val, cfg.synthetic.test, cfg.synthetic.version = map(
    int, sys.argv[1:])
began = time.perf_counter()
dataset, path = sources.load(cfg)
print(f'{path}: fingerprint {data.fingerprint(dataset)}, {time.perf_counter() - began:.1f} s')
" "${TRAIN:-42000}" "${VAL:-60000}" "${TEST:-18000}" "${VERSION:-5}"
epochs=()
[ -n "${EPOCHS:-}" ] && epochs=(--config.train.epochs="$EPOCHS")
tta() {  # tta NAME LIMIT FILE ARGS...: time_to_accuracy on configs/speedrun.py, tee'd to FILE
  local name=$1 limit=$2 file=$3
  shift 3
  stage "$name" "$limit" "$python" benchmarks/time_to_accuracy.py --config=configs/speedrun.py \
    "${sizes[@]}" "$targets" "$@" "${extra[@]}" > >(tee "$out/$file")
  wait $!  # for tee, so that its lines come before the next stage's
}
tta "curve: one seed scored every epoch" "${CURVE_LIMIT:-120}" curve.txt --seeds=1 \
  "${epochs[@]}"
tta "fixed length, $seeds seeds" "${FIXED_LIMIT:-180}" fixed.txt --seeds="$seeds" \
  --fixed_length "${epochs[@]}"
tta "fixed length, ${LONG_EPOCHS:-16} epochs, $seeds seeds" "${LONG_LIMIT:-200}" long.txt \
  --seeds="$seeds" --fixed_length --config.train.epochs="${LONG_EPOCHS:-16}"
exit "$status"
