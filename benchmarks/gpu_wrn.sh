#!/usr/bin/env bash
# The Wide ResNet recipes on an accelerator, on the offline proxy at the study's sizes (42,000 /
# 60,000 / 18,000 crops of synthetic version 5, the default; the study CNN2 scores 92.97% there,
# README.md's calibration):
#   1. compare_models over seeds: configs/wrn_gpu.py (WRN-16-4, dropout 0.4, 25 epochs on the
#      training and validation crops, 6,000 held out), each seed's test accuracy and the 95%
#      interval;
#   2. time to the study CNN2's SVHN and proxy accuracies (92.22%, 92.97%) and to 95% and 95.97%
#      (the proxy CNN2 plus 3 points): configs/wrn_fast.py over seeds;
#   3. compare_models over seeds for the study's CNN2, trained as the study trains it.
# Each stage has its own time limit in seconds, so a slow one cannot cost the next: WRN_LIMIT
# (default 240), TTA_LIMIT (140) and CNN2_LIMIT (90); 0 skips the stage. The defaults fit about
# 10 minutes on one H200. A comparison cut short reports the seeds that finished. SEEDS (3) seeds
# per comparison, TTA_SEEDS (2) for time to accuracy; EPOCHS, if set, for every stage (at least
# 3: the recipes warm up over 1 and 2 epochs). VERSION (5) the generator version: the README's
# earlier GPU results are version 3's (VERSION=3; its CNN2 scores 92.48%, but the time-to-accuracy
# targets stay version 5's). Exits 1 if any stage failed or was cut, 2 (before
# anything runs) for a setting that is not a whole number or a VERSION the generator lacks.
# Needs jax with CUDA (pip install -e ".[gpu]") or TPU support.
# Usage: bash benchmarks/gpu_wrn.sh [OUT_DIR]   (default: results/gpu_wrn, under the repository)
# Smaller, e.g. to try it on a CPU (where WRN-16-4 in bfloat16 takes minutes an epoch even on
# 2,000 crops): TRAIN=2000 VAL=600 TEST=500 EPOCHS=3 SEEDS=2 WRN_LIMIT=900 TTA_LIMIT=400 \
#   bash benchmarks/gpu_wrn.sh /tmp/gpu_wrn
set -uo pipefail
for knob in TRAIN VAL TEST VERSION SEEDS TTA_SEEDS EPOCHS WRN_LIMIT TTA_LIMIT CNN2_LIMIT; do
  if [ -n "${!knob:-}" ] && ! [[ "${!knob}" =~ ^[0-9]+$ ]]; then
    echo "error: $knob=${!knob}: expected a whole number (see the header of $0)" >&2
    exit 2
  fi
done
cd "$(dirname "$0")/.."
out="${1:-results/gpu_wrn}"
python=${PYTHON:-python}
# The generator versions are svhn_jax.datasets.synthetic's to say: refuse another before anything runs.
"$python" -c "import sys; from svhn_jax.datasets import synthetic
v, ok = int(sys.argv[1]), ', '.join(map(str, synthetic.STYLES))
v in synthetic.STYLES or sys.exit(f'error: VERSION={v}: expected one of {ok} (see {sys.argv[2]})')
" "${VERSION:-5}" "$0" || exit 2
mkdir -p "$out"
sizes=(--config.data.source=synthetic --config.data.synthetic.train="${TRAIN:-42000}"
       --config.data.synthetic.val="${VAL:-60000}" --config.data.synthetic.test="${TEST:-18000}"
       --config.data.synthetic.version="${VERSION:-5}")
seeds=${SEEDS:-3}
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
compare() {  # compare NAME LIMIT ARGS...: the seeds, or those that finished in time
  local name=$1 limit=$2
  shift 2
  local args=(--config.models="$name" "${sizes[@]}" --multiseed=loop --runs_dir="$out/runs"
              --results_dir="$out/$name" "$@")
  rm -f "$out/$name/report.md"
  stage "compare $name" "$limit" "$python" -m experiments.compare_models --seeds="$seeds" \
    "${args[@]}" && return
  local finished=0
  while [ "$finished" -lt "$seeds" ] &&
        [ -f "$out/runs/$name/seed_$finished/test_metrics.json" ]; do
    finished=$((finished + 1))
  done
  if [ "$finished" -gt 0 ]; then
    stage "compare $name, seeds 0-$((finished - 1)) (those that finished)" 60 "$python" -m \
      experiments.compare_models --seeds="$finished" "${args[@]}"
  fi
}
stage "device" 60 "$python" -c "import jax; print(jax.__version__, jax.devices())"
# Generates (or reads the cached) proxy and prints its fingerprint: the same on two machines
# means the same pixels (numpy, Pillow and matplotlib's fonts render the glyphs).
stage "data" 120 "$python" -c "
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
compare wrn_gpu "${WRN_LIMIT:-240}" "${epochs[@]}"
stage "time to accuracy" "${TTA_LIMIT:-140}" "$python" benchmarks/time_to_accuracy.py \
  --config=configs/wrn_fast.py "${sizes[@]}" "${epochs[@]}" --seeds="${TTA_SEEDS:-2}" \
  --targets=0.9222,0.9297,0.95,0.9597 > >(tee "$out/time_to_accuracy.txt")
wait $!  # for tee, so that its lines come before the next stage's
compare cnn2 "${CNN2_LIMIT:-90}" "${epochs[@]}"
exit "$status"
