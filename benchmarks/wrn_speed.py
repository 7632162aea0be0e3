"""WRN train-step speed: python benchmarks/wrn_speed.py [--depths 16,28 --widths 1,2 --batch 128].

For each WRN-depth-width (svhn_jax.models.wrn, grey 32x32 inputs) it jits one plain SGD step
(value_and_grad of the mean cross-entropy through `steps.loss_and_logits`, BatchNorm in training
mode, the product's XLA:CPU options from `svhn_jax.xla_flags`), runs --warmup steps, then times
--steps steps one by one and prints: parameters, the median and the fastest seconds per step,
training images/s and the seconds one epoch of --epoch-images (the study's 42,000 training
crops) would take at each, the step's FLOPs by XLA's cost analysis and the GFLOP/s of the
fastest step. Random data, so the numbers are speed only. Other work on the machine slows the
median more than the fastest step, which is the better estimate of an idle machine (the load
average is printed before and after).
"""

from __future__ import annotations

import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from svhn_jax import cli, models, steps, tasks, xla_flags
from svhn_jax.models import study


def parse_ints(text: str) -> list[int]:
  return [int(v) for v in text.split(",") if v]


def make_step(graphdef, tx):
  """One SGD step: (params, batch_stats, opt_state, images, labels, key) -> the same + loss."""
  def step(params, batch_stats, opt_state, images, labels, key):
    grad_fn = jax.value_and_grad(
        lambda p: steps.loss_and_logits(graphdef, p, batch_stats, images, labels, train=True,
                                        key=key, task=tasks.get("digit")), has_aux=True)
    (loss, (_, new_stats)), grads = grad_fn(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), new_stats, opt_state, loss

  return jax.jit(step, donate_argnums=(0, 1, 2), compiler_options=xla_flags.model_options())


def measure(depth: int, width: int, batch: int, warmup: int, timed: int, dtype) -> dict:
  """Params, step FLOPs and the per-step seconds of WRN-depth-width."""
  model = models.create_model("wrn", seed=0, depth=depth, width=width, dtype=dtype)
  total, trainable, _ = study.param_counts(model)
  graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  tx = optax.sgd(0.01)
  opt_state = tx.init(params)
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.uniform(0, 1, (batch, 32, 32, 1)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 10, batch), jnp.int32)
  step = make_step(graphdef, tx)
  key = jax.random.key(0)
  t0 = time.perf_counter()
  compiled = step.lower(params, batch_stats, opt_state, images, labels, key).compile()
  compile_s = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
  times = []
  for i in range(warmup + timed):
    t0 = time.perf_counter()
    params, batch_stats, opt_state, loss = compiled(params, batch_stats, opt_state, images, labels,
                                                    jax.random.fold_in(key, i))
    loss.block_until_ready()
    if i >= warmup:
      times.append(time.perf_counter() - t0)
  if not np.isfinite(float(loss)):
    raise RuntimeError(f"WRN-{depth}-{width}: non-finite loss {float(loss)}")
  return {"params": trainable, "total": total, "compile_s": compile_s, "flops": flops,
          "step_s": statistics.median(times), "min_s": min(times)}


def cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def main() -> None:
  parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", default="10-1,10-2,16-1,16-2,16-4,28-2",
                      help="comma-separated depth-width pairs (ignored if --depths is given)")
  parser.add_argument("--depths", type=parse_ints, default=None, help="e.g. 10,16,28")
  parser.add_argument("--widths", type=parse_ints, default=None,
                      help="with --depths: e.g. 1,2,4 (default 1,2)")
  parser.add_argument("--batch", type=cli.whole_number(1), default=128)
  parser.add_argument("--warmup", type=cli.whole_number(0), default=2,
                      help="untimed steps after compiling")
  parser.add_argument("--steps", type=cli.whole_number(1), default=6,
                      help="timed steps (median reported)")
  parser.add_argument("--epoch-images", type=cli.whole_number(1), default=42_000,
                      help="images in one epoch (the study's training split: 42,000)")
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
  args = parser.parse_args()
  if args.widths and not args.depths:
    parser.error(f"--widths={','.join(map(str, args.widths))}: only read with --depths; give "
                 "--depths, or depth-width pairs as --models")
  if args.depths:
    pairs = [(d, w) for d in args.depths for w in args.widths or [1, 2]]
  else:
    try:
      pairs = [tuple(int(v) for v in item.split("-")) for item in args.models.split(",")]
    except ValueError:
      pairs = []
    if not pairs or any(len(pair) != 2 for pair in pairs):
      parser.error(f"--models={args.models}: expected depth-width pairs, e.g. 16-4,28-2")
  # Checked before the first network compiles.
  bad = [f"{d}-{w}" for d, w in pairs if d < 10 or (d - 4) % 6 or w < 1]
  if bad:
    parser.error(f"WRN {', '.join(bad)}: a Wide ResNet's depth is 6n+4 (10, 16, 22, 28, ...) "
                 "and its width at least 1")

  print(f"# {cpu_model()}, {os.cpu_count()} CPUs, jax {jax.__version__} "
        f"({jax.default_backend()}), batch {args.batch}, {args.dtype}, "
        f"load average {os.getloadavg()[0]:.2f} at start")
  header = ("model", "params", "compile s", "s/step median", "s/step best", "images/s median",
            "images/s best", "s/epoch median", "s/epoch best", "GFLOP/step", "GFLOP/s best")
  print("| " + " | ".join(header) + " |")
  print("|" + "|".join("---" for _ in header) + "|")
  for depth, width in pairs:
    r = measure(depth, width, args.batch, args.warmup, args.steps, jnp.dtype(args.dtype))
    rate, best = args.batch / r["step_s"], args.batch / r["min_s"]
    cells = (f"WRN-{depth}-{width}", f"{r['params']:,}", f"{r['compile_s']:.1f}",
             f"{r['step_s']:.3f}", f"{r['min_s']:.3f}", f"{rate:,.0f}", f"{best:,.0f}",
             f"{args.epoch_images / rate:,.0f}", f"{args.epoch_images / best:,.0f}",
             f"{r['flops'] / 1e9:.1f}", f"{r['flops'] / 1e9 / r['min_s']:.0f}")
    print("| " + " | ".join(cells) + " |", flush=True)
  print(f"# load average {os.getloadavg()[0]:.2f} at end")


if __name__ == "__main__":
  main()
