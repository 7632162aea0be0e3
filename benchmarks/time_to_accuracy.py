"""Wall time to reach a test accuracy: train a config, score the whole test split after every
epoch, and print when each target was first reached, compile time apart, over several seeds.
With --fixed_length, as airbench measures (KellerJordan/cifar10-airbench): every seed trains all
of config.train.epochs, the test split is scored once at the end, and a target counts as met when
the mean final accuracy over the seeds reaches it (stopping at the first epoch that crosses a
target selects on test noise); the training seconds are the whole run's.

  python benchmarks/time_to_accuracy.py --config=configs/wrn_fast.py --seeds=3
  python benchmarks/time_to_accuracy.py --config=configs/cnn2.py --targets=0.9222,0.95 \\
      --config.train.epochs=10
  python benchmarks/time_to_accuracy.py --config=configs/speedrun.py --seeds=5 --fixed_length \\
      --config.data.source=synthetic
  python benchmarks/time_to_accuracy.py --config=configs/speedrun.py --seeds=3 --fixed_length \\
      --config.data.source=synthetic --baseline=cnn2   # and the ratio to CNN2's seconds

The clock counts training only: each epoch's steps, synchronized with `block_until_ready`.
Compilation (a throwaway first epoch on a copy of the state compiles every program), the model's
construction (a data-initialized first layer's statistics included: printed apart) and the
test-set scoring between epochs are timed apart and left out, as the fast small-image recipes
(e.g. Keller Jordan's CIFAR-10 airbench) report. The test split is always scored whole, with the
run's evaluation weights (the EMA where the recipe keeps one) and its test-time augmentation.
Nothing is written: no checkpoint, no workdir. The defaults (92.22% and 95%) are the study
CNN2's SVHN accuracy and a stronger target.
"""

from __future__ import annotations

import math
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from absl import app, flags
from flax import nnx

# Run as a script from anywhere: the configs import `configs.default` from the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from svhn_jax import (checkpoint, cli, config as config_lib, data, inference, input_pipeline,
                      parallel, recipes, steps, tasks, train, trainer)
from svhn_jax.datasets import sources
from svhn_jax.errors import ConfigError

FLAGS = flags.FLAGS
cli.define_config(str(Path(__file__).resolve().parents[1] / "configs" / "cnn2.py"),
                  "The run config to time.")
flags.DEFINE_integer("seeds", 3, "Seeds to time: config.seed, config.seed + 1, ...",
                     lower_bound=1)
flags.DEFINE_list("targets", ["0.9222", "0.95"], "Test accuracies to time: fractions in (0, 1] "
                  "or percents in (1, 100] (0.95 and 95 are the same target).")
flags.DEFINE_string("baseline", None, "Also time this config of configs/ (a module name, e.g. "
                    "cnn2) on the same data, each seed until it first reaches each target, and "
                    "print the ratio of the two configs' training seconds per target: a speed-up "
                    "measured in one run.")
flags.DEFINE_integer("baseline_epochs", None, "The baseline's epochs at most (default: its "
                     "config's).", lower_bound=1)
flags.DEFINE_bool("fixed_length", False, "Train every seed for all of config.train.epochs, score "
                  "the test split once at the end, and report the mean final accuracy against "
                  "each target (airbench's measure) rather than each seed's first crossing.")


def parse_targets(texts: list[str]) -> list[float]:
  """The --targets as sorted distinct fractions: a value in (0, 1] is one already, a value in
  (1, 100] a percent. Raises ConfigError naming any other text, or for none."""
  if not texts:
    raise ConfigError("--targets=: no target; expected fractions in (0, 1] or percents in "
                      "(1, 100], e.g. --targets=0.9222,95")
  targets = set()
  for text in texts:
    try:
      value = float(text)
    except ValueError:
      value = math.nan
    if not 0 < value <= 100:
      raise ConfigError(f"--targets={','.join(texts)}: {text!r} is no accuracy; expected "
                        "fractions in (0, 1] or percents in (1, 100]")
    # Rounded, so that 95 and 0.95 are one target.
    targets.add(value if value <= 1 else round(value / 100, 10))
  return sorted(targets)


def time_seed(config, seed: int, dataset, targets: list[float], fixed_length: bool = False
              ) -> dict:
  """One seed's training: compile seconds, the model's build seconds, and per target the
  training seconds (and epochs) until the test accuracy first reached it (None if it never
  did); with `fixed_length`, every epoch trained and the test split scored after the last only
  (`reached` then says whether that final accuracy reached each target)."""
  mesh = parallel.make_mesh(config.mesh.devices)
  train_split, val, test = (input_pipeline.to_device(s, mesh) for s in dataset)
  channels = 1 if train_split.images.ndim == 3 else train_split.images.shape[-1]
  task = tasks.get(config)
  began = time.perf_counter()
  # As train.py builds it: a data-initialized layer sees the first training images' model input.
  sample = steps.model_input(task.eval_images(train_split.images[:train.MODEL_SAMPLE]))
  model = task.build_model(config.model, seed=seed, channels=channels,
                           dtype=jnp.dtype(recipes.compute_dtype(config.train)), sample=sample)
  jax.block_until_ready(jax.tree.leaves(nnx.state(model)))
  build_s = time.perf_counter() - began
  steps_per_epoch = math.ceil(train_split.labels.shape[0] / config.train.batch_size)
  tx = recipes.optimizer(config.train, steps_per_epoch)
  graphdef, state = steps.init_state(model, tx, ema=config.train.ema_decay > 0)
  state = parallel.replicate(state, mesh)
  name = config.model.name
  runner = trainer.Trainer(
      graphdef, tx, batch_size=config.train.batch_size,
      eval_batch_size=inference.inference_chunk(config.train.eval_batch_size, name), mesh=mesh,
      scan=train.use_scan(config.train.scan_epoch, name),
      options=steps.StepOptions.from_config(config.train), task=task)
  key = jax.random.fold_in(jax.random.key(seed), 1)
  # A throwaway epoch on a copy of the state compiles every program the epochs run (the step or
  # scanned epoch, the last partial batch, the test scoring); its time less the first timed
  # epoch's is the compile time.
  began = time.perf_counter()
  warm, _ = runner.train_epoch(jax.tree.map(jnp.copy, state), train_split, key, 0)
  jax.block_until_ready(warm)
  score(runner, graphdef, warm, test, mesh, config.train.tta, task)
  warmup_s = time.perf_counter() - began
  del warm
  reached = {t: None for t in targets}
  clock, accuracy = 0.0, 0.0
  for epoch in range(config.train.epochs):
    began = time.perf_counter()
    state, _ = runner.train_epoch(state, train_split, key, epoch)
    jax.block_until_ready(state)
    seconds = time.perf_counter() - began
    clock += seconds
    if epoch == 0:
      first_epoch_s = seconds
    if fixed_length and epoch + 1 < config.train.epochs:
      print(f"  seed {seed} epoch {epoch + 1}: {clock:.2f} s of training", flush=True)
      continue
    accuracy = score(runner, graphdef, state, test, mesh, config.train.tta, task)
    print(f"  seed {seed} epoch {epoch + 1}: test accuracy {accuracy:.4f} after {clock:.2f} s "
          "of training", flush=True)
    for target in targets:
      if reached[target] is None and accuracy >= target:
        reached[target] = (clock, epoch + 1)
    if not fixed_length and all(r is not None for r in reached.values()):
      break
  return {"compile_s": max(0.0, warmup_s - first_epoch_s), "reached": reached,
          "final_accuracy": accuracy, "train_s": clock, "build_s": build_s}


def fixed_length_table(results: list[dict], targets: list[float]) -> list[str]:
  """The lines of the fixed-length report: the mean final test accuracy over the seeds (with
  its sample standard deviation) against each target, and the runs' training seconds."""
  accuracies = [r["final_accuracy"] for r in results]
  mean = sum(accuracies) / len(accuracies)
  std = (math.sqrt(sum((a - mean) ** 2 for a in accuracies) / (len(accuracies) - 1))
         if len(accuracies) > 1 else 0.0)
  seconds = [r["train_s"] for r in results]
  lines = [f"mean final test accuracy {mean:.4f} (std {std:.4f}, {len(accuracies)} seeds: "
           + ", ".join(f"{a:.4f}" for a in accuracies) + ")",
           f"training seconds {sum(seconds) / len(seconds):.2f} mean ("
           + ", ".join(f"{s:.2f}" for s in seconds) + ")",
           f"{'target':>8}  {'mean final reaches it':>21}  seeds reaching it"]
  for target in targets:
    lines.append(f"{target:8.2%}  {'yes' if mean >= target else 'no':>21}  "
                 f"{sum(a >= target for a in accuracies)}/{len(accuracies)}")
  return lines


def score(runner, graphdef, state, test, mesh, tta: int, task) -> float:
  """Test accuracy of the weights the run evaluates (the EMA where kept), the split whole, as
  the run's task measures it (`Task.metrics`: for digits the share of argmax predictions right,
  for numbers sequence accuracy)."""
  weights = checkpoint.evaluated(checkpoint.weights_of(state))
  logits = inference.predict_logits(graphdef, weights["params"], weights["batch_stats"],
                                    test.images, batch_size=runner.eval_batch_size, mesh=mesh,
                                    tta=tta)
  return float(task.metrics(logits, jnp.asarray(test.labels))["accuracy"])


def cpu_name() -> str:
  """The CPU's model name as lscpu prints it (from /proc/cpuinfo), else the platform's."""
  try:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  config = FLAGS.config
  config_lib.validate(config)
  # The targets are digit accuracies (the study CNN2's 92.22% on SVHN).
  if not tasks.same(config, "digit"):
    raise ConfigError(f"config.task={config.task!r}: this benchmark times digit classifiers to a "
                      "digit accuracy; expected a digit run config (config.task=digit)")
  targets = parse_targets(FLAGS.targets)
  baseline = baseline_config(FLAGS.baseline, config, FLAGS.baseline_epochs)
  task = tasks.get(config)
  loaded = sources.Loaded(*task.load(config))
  dataset, _, _ = loaded.take()
  (train_split, val, test), _ = input_pipeline.prepare(dataset, config.data.preprocess)
  val, test = (data.Split(task.eval_images(s.images), s.labels) for s in (val, test))
  length = "every one of" if FLAGS.fixed_length else "at most"
  print(f"{config.model.name} on {train_split.labels.shape[0]:,} training and "
        f"{test.labels.shape[0]:,} test images; {length} {config.train.epochs} epochs; "
        f"{jax.devices()[0].device_kind} ({jax.default_backend()}), host CPU {cpu_name()}; "
        f"compute {recipes.compute_dtype(config.train)}; jax {jax.__version__}", flush=True)
  results = [time_seed(config, config.seed + k, (train_split, val, test), targets,
                       FLAGS.fixed_length)
             for k in range(FLAGS.seeds)]
  print("model build seconds (data statistics included): "
        + ", ".join(f"{r['build_s']:.2f}" for r in results))
  report(results, targets, FLAGS.fixed_length)
  if baseline is None:
    return
  print(f"\nbaseline configs/{FLAGS.baseline}.py ({baseline.model.name}), same data, "
        f"at most {baseline.train.epochs} epochs:", flush=True)
  base = [time_seed(baseline, baseline.seed + k, (train_split, val, test), targets)
          for k in range(FLAGS.seeds)]
  report(base, targets, False)
  print("\n" + "\n".join(speedup_lines(results, base, targets, FLAGS.fixed_length)))


def baseline_config(name: str | None, config, epochs: int | None):
  """configs/`name`.py's config on `config`'s data (config.data copied), with at most `epochs`
  epochs if given; None for no name. Raises ConfigError naming --baseline for no such config or
  one that is no digit classifier."""
  if name is None:
    return None
  import importlib
  module_name = Path(name).name.removesuffix(".py")
  if not module_name.isidentifier():
    raise ConfigError(f"--baseline={name}: expected the name of a config file in configs/, "
                      "e.g. cnn2 (or configs/cnn2.py)")
  try:
    module = importlib.import_module(f"configs.{module_name}")
  except ModuleNotFoundError:
    raise ConfigError(f"--baseline={name}: no configs/{module_name}.py; expected the name of a "
                      "config file in configs/, e.g. cnn2") from None
  baseline = module.get_config()
  if not tasks.same(baseline, "digit"):
    raise ConfigError(f"--baseline={name}: config.task={baseline.task!r}; expected a digit run "
                      "config")
  baseline.data = config.data
  if epochs is not None:
    baseline.train.epochs = epochs
  config_lib.validate(baseline)
  return baseline


def speedup_lines(results: list[dict], base: list[dict], targets: list[float],
                  fixed_length: bool) -> list[str]:
  """Per target, the config's training seconds (the mean over seeds of the whole fixed-length
  run when its mean final accuracy reaches the target; else of each seed's first crossing, when
  every seed reached it), the baseline's (the mean of each seed's first crossing, when every
  seed reached it) and their ratio, baseline over config (above 1: the config is faster)."""
  mean = lambda xs: sum(xs) / len(xs)
  lines = [f"{'target':>8}  {'config s':>10}  {'baseline s':>10}  {'baseline / config':>17}"]
  for target in targets:
    if fixed_length:
      ours = (mean([r["train_s"] for r in results])
              if mean([r["final_accuracy"] for r in results]) >= target else None)
    else:
      hits = [r["reached"][target] for r in results]
      ours = mean([h[0] for h in hits]) if all(h is not None for h in hits) else None
    theirs = [r["reached"][target] for r in base]
    theirs = mean([h[0] for h in theirs]) if all(h is not None for h in theirs) else None
    show = lambda x: "-" if x is None else f"{x:.2f}"
    ratio = "-" if ours is None or theirs is None else f"{theirs / ours:.2f}"
    lines.append(f"{target:8.2%}  {show(ours):>10}  {show(theirs):>10}  {ratio:>17}")
  return lines


def report(results: list[dict], targets: list[float], fixed_length: bool) -> None:
  """Prints the seeds' table: fixed_length_table, or per target the seeds that first reached it,
  their seconds and epochs; then the compile seconds and final accuracies."""
  if fixed_length:
    print("\n" + "\n".join(fixed_length_table(results, targets)))
    print("compile seconds: " + ", ".join(f"{r['compile_s']:.2f}" for r in results))
    return
  print(f"\n{'target':>8}  {'seeds reaching it':>17}  {'seconds (each seed)':<40} epochs")
  for target in targets:
    hits = [r["reached"][target] for r in results]
    times = ", ".join("-" if h is None else f"{h[0]:.2f}" for h in hits)
    epochs = ", ".join("-" if h is None else str(h[1]) for h in hits)
    print(f"{target:8.2%}  {sum(h is not None for h in hits):>8}/{len(hits):<8}  {times:<40} "
          f"{epochs}")
  print("compile seconds: " + ", ".join(f"{r['compile_s']:.2f}" for r in results))
  print("final test accuracy: " + ", ".join(f"{r['final_accuracy']:.4f}" for r in results))


if __name__ == "__main__":
  cli.run(main)
