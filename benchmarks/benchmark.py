"""Training and inference speed of the four study models, in JAX and (if installed) in Keras.

  python benchmarks/benchmark.py                          # study-sized data, 3 epochs per model
  python benchmarks/benchmark.py --study                  # + the whole study's wall time
  python benchmarks/benchmark.py --train=4200 --val=6000 --test=18000 --epochs=3 --models=cnn2
  python benchmarks/benchmark.py --keras-python=/path/to/venv-with-tensorflow/bin/python

Each (framework, model) runs in its own process, so peak RSS is that run's own and JAX and
TensorFlow never share a process; frameworks alternate model by model so that both see the same
machine load. Both get the same random data of the study's shapes (written once to a temporary
folder), the study's batch sizes, and validation on the whole validation split after every epoch,
in batches of --eval-batch. Per run it reports: training images/s (median over the epochs after
the first), compile seconds (first epoch minus that median), the per-epoch cycle (train +
validation), inference images/s on the test split, peak RSS, and the fraction of the FLOP peak.
With --study each model runs its study epochs (20, 30, 20, 30) and the sum of the four runs'
wall times is the study's. Prints a table and, with --json, writes every number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from svhn_jax import cli

MODELS = ("ann1", "ann2", "cnn1", "cnn2")
STUDY = {"ann1": (128, 20), "ann2": (128, 30), "cnn1": (32, 20), "cnn2": (128, 30)}  # (batch, epochs)
STUDY_LR = {"ann1": 1e-3, "ann2": 5e-4, "cnn1": 1e-3, "cnn2": 1e-3}
# Multiply-accumulates of one forward pass; training costs 3 forward passes' worth of FLOPs.
FORWARD_MACS = {
    "ann1": 1024 * 64 + 64 * 32 + 32 * 10,
    "ann2": 1024 * 256 + 256 * 128 + 128 * 64 + 64 * 64 + 64 * 32 + 32 * 10,
    "cnn1": 32 * 32 * 9 * (1 * 16 + 16 * 32) + 16 * 16 * 32 * 32 + 32 * 10,
    "cnn2": (32 * 32 * 9 * (1 * 16 + 16 * 32) + 16 * 16 * 9 * (32 * 32 + 32 * 64)
             + 8 * 8 * 64 * 32 + 32 * 10),
}
ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("jax", "keras", "jax_flax")


def training_flops(model: str) -> int:
  return 3 * 2 * FORWARD_MACS[model]


def write_data(folder: Path, sizes: dict, seed: int = 0) -> None:
  """Random images in [0, 1] and labels of the study's shapes, shared by every run."""
  rng = np.random.default_rng(seed)
  for split, n in sizes.items():
    np.save(folder / f"x_{split}.npy", rng.uniform(0, 1, (n, 32, 32, 1)).astype(np.float32))
    np.save(folder / f"y_{split}.npy", rng.integers(0, 10, n).astype(np.int32))


def load_data(folder: Path) -> dict:
  return {split: (np.load(folder / f"x_{split}.npy"), np.load(folder / f"y_{split}.npy"))
          for split in ("train", "val", "test")}


def peak_rss_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def jax_run(model_name: str, data: dict, epochs: int, eval_batch: int, impl: str,
            scan: str) -> dict:
  import jax

  from svhn_jax import config as config_lib
  from svhn_jax import data as data_lib
  from svhn_jax import inference, models, parallel, recipes, steps, tasks, train, trainer, xla_flags

  start = time.perf_counter()
  splits = {k: data_lib.Split(*jax.device_put(v)) for k, v in data.items()}
  batch = STUDY[model_name][0]
  model = models.create_model(model_name, seed=0, impl=impl)
  tx = recipes.adam(STUDY_LR[model_name], 1e-7)
  graphdef, state = steps.init_state(model, tx)
  scan_setting = config_lib.parse_override(config_lib.RUN_SCHEMA["train.scan_epoch"],
                                           "train.scan_epoch", scan)
  runner = trainer.Trainer(graphdef, tx, batch_size=batch,
                           eval_batch_size=inference.inference_chunk(eval_batch, model_name),
                           mesh=parallel.make_mesh(1),
                           scan=train.use_scan(scan_setting, model_name),
                           task=tasks.get("digit"))
  key = jax.random.key(0)
  train_s, val_s = [], []
  for epoch in range(epochs):
    t = time.perf_counter()
    state, _ = runner.train_epoch(state, splits["train"], key, epoch)
    jax.block_until_ready(state)
    train_s.append(time.perf_counter() - t)
    t = time.perf_counter()
    runner.evaluate(state, splits["val"])
    val_s.append(time.perf_counter() - t)
  wall = time.perf_counter() - start
  infer_s = []
  for _ in range(2):
    t = time.perf_counter()
    np.asarray(runner.logits(state, splits["test"].images))
    infer_s.append(time.perf_counter() - t)
  return {"train_s": train_s, "val_s": val_s, "infer_s": infer_s[-1], "wall_s": wall,
          "device": str(jax.devices()[0].platform),
          "xla_flags": os.environ.get("XLA_FLAGS", ""),
          "compiler_options": xla_flags.model_options(),
          "scan": train.use_scan(scan_setting, model_name), "versions": f"jax {jax.__version__}"}


def keras_model(name: str):
  import keras
  from keras import layers

  def conv(features):
    return [layers.Conv2D(features, 3, padding="same"), layers.LeakyReLU(negative_slope=0.1)]

  body = {
      "ann1": [layers.Flatten(), layers.Dense(64, activation="relu"),
               layers.Dense(32, activation="relu")],
      "ann2": [layers.Flatten(), layers.Dense(256, activation="relu"),
               layers.Dense(128, activation="relu"), layers.Dropout(0.2),
               layers.Dense(64, activation="relu"), layers.Dense(64, activation="relu"),
               layers.Dense(32, activation="relu"), layers.BatchNormalization()],
      "cnn1": [*conv(16), *conv(32), layers.MaxPooling2D(), layers.Flatten(),
               layers.Dense(32), layers.LeakyReLU(negative_slope=0.1)],
      "cnn2": [*conv(16), *conv(32), layers.MaxPooling2D(), layers.BatchNormalization(),
               *conv(32), *conv(64), layers.MaxPooling2D(), layers.BatchNormalization(),
               layers.Flatten(), layers.Dense(32), layers.LeakyReLU(negative_slope=0.1),
               layers.Dropout(0.5)],
  }[name]
  model = keras.Sequential([keras.Input((32, 32, 1)), *body,
                            layers.Dense(10, activation="softmax")])
  model.compile(optimizer=keras.optimizers.Adam(STUDY_LR[name], epsilon=1e-7),
                loss=keras.losses.SparseCategoricalCrossentropy(),
                metrics=[keras.metrics.SparseCategoricalAccuracy()])
  return model


def keras_run(model_name: str, data: dict, epochs: int, eval_batch: int) -> dict:
  import keras
  import tensorflow as tf

  class Timer(keras.callbacks.Callback):
    def __init__(self):
      super().__init__()
      self.train_s, self.val_s, self._t = [], [], 0.0

    def on_epoch_begin(self, epoch, logs=None):
      self._t = time.perf_counter()

    def on_test_begin(self, logs=None):
      self.train_s.append(time.perf_counter() - self._t)
      self._t = time.perf_counter()

    def on_test_end(self, logs=None):
      self.val_s.append(time.perf_counter() - self._t)

  start = time.perf_counter()
  model = keras_model(model_name)
  timer = Timer()
  (x, y), (xv, yv), (xt, _) = data["train"], data["val"], data["test"]
  model.fit(x, y, batch_size=STUDY[model_name][0], epochs=epochs, validation_data=(xv, yv),
            validation_batch_size=eval_batch, callbacks=[timer], verbose=0)
  wall = time.perf_counter() - start
  infer_s = []
  for _ in range(2):
    t = time.perf_counter()
    model.predict(xt, batch_size=eval_batch, verbose=0)
    infer_s.append(time.perf_counter() - t)
  return {"train_s": timer.train_s, "val_s": timer.val_s, "infer_s": infer_s[-1], "wall_s": wall,
          "device": "cpu", "versions": f"tensorflow {tf.__version__}, keras {keras.__version__}"}


def worker(args) -> None:
  data = load_data(Path(args.data))
  if args.worker != "keras":
    impl = "flax" if args.worker == "jax_flax" else args.impl
    scan = {"auto": "auto", "1": True, "0": False}[args.scan]
    result = jax_run(args.model, data, args.epochs, args.eval_batch, impl, scan)
  else:
    result = keras_run(args.model, data, args.epochs, args.eval_batch)
  result["peak_rss_mib"] = peak_rss_mib()
  print("RESULT " + json.dumps(result), flush=True)


def summarize(model: str, framework: str, raw: dict, sizes: dict, peak_gflops: float) -> dict:
  train_s, val_s = np.array(raw["train_s"]), np.array(raw["val_s"])
  steady = np.median(train_s[1:]) if len(train_s) > 1 else train_s[0]
  img_s = sizes["train"] / steady
  return {
      "model": model, "framework": framework, "epochs": len(train_s),
      "train_img_s": img_s,
      "compile_s": float(train_s[0] - steady),
      "epoch_cycle_s": float(np.median((train_s + val_s)[1:]) if len(train_s) > 1
                             else train_s[0] + val_s[0]),
      "val_img_s": sizes["val"] / float(np.median(val_s[1:] if len(val_s) > 1 else val_s)),
      "infer_img_s": sizes["test"] / raw["infer_s"],
      "peak_rss_mib": raw["peak_rss_mib"],
      "flop_fraction": img_s * training_flops(model) / (peak_gflops * 1e9),
      "wall_s": raw["wall_s"],
      "raw": raw,
  }


def run_worker(python: str, framework: str, model: str, folder: Path, args) -> dict:
  command = [python, str(Path(__file__).resolve()), f"--worker={framework}", f"--model={model}",
             f"--data={folder}", f"--epochs={STUDY[model][1] if args.study else args.epochs}",
             f"--eval-batch={args.eval_batch}", f"--impl={args.impl}", f"--scan={args.scan}"]
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
             TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run(command, env=env, capture_output=True, text=True)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
  if proc.returncode or not lines:
    raise RuntimeError(f"{framework} {model} failed:\n{proc.stderr[-3000:]}")
  return json.loads(lines[-1][len("RESULT "):])


def has_tensorflow(python: str) -> bool:
  probe = subprocess.run([python, "-c", "import tensorflow, keras"], capture_output=True)
  return probe.returncode == 0


def table(rows: list[dict]) -> str:
  header = (f"{'model':6} {'framework':9} {'train img/s':>11} {'compile s':>9} "
            f"{'cycle s':>8} {'val img/s':>9} {'infer img/s':>11} {'peak MiB':>8} "
            f"{'of peak':>7} {'wall s':>8}")
  lines = [header, "-" * len(header)]
  for r in rows:
    lines.append(
        f"{r['model']:6} {r['framework']:9} {r['train_img_s']:11,.0f} {r['compile_s']:9.1f} "
        f"{r['epoch_cycle_s']:8.1f} {r['val_img_s']:9,.0f} {r['infer_img_s']:11,.0f} "
        f"{r['peak_rss_mib']:8.0f} {r['flop_fraction']:7.1%} {r['wall_s']:8.1f}")
  return "\n".join(lines)


def ratios(rows: list[dict]) -> dict:
  """JAX / Keras for each model: training, per-epoch cycle and inference speed."""
  by = {(r["model"], r["framework"]): r for r in rows}
  out = {}
  for model in {r["model"] for r in rows}:
    j, k = by.get((model, "jax")), by.get((model, "keras"))
    if j and k:
      out[model] = {"train": j["train_img_s"] / k["train_img_s"],
                    "epoch_cycle": k["epoch_cycle_s"] / j["epoch_cycle_s"],
                    "infer": j["infer_img_s"] / k["infer_img_s"],
                    "wall": k["wall_s"] / j["wall_s"]}
  return out


def parse_args(argv=None):
  parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--models", default=",".join(MODELS))
  parser.add_argument("--train", type=cli.whole_number(1), default=42_000, help="training images")
  parser.add_argument("--val", type=cli.whole_number(1), default=60_000, help="validation images")
  parser.add_argument("--test", type=cli.whole_number(1), default=18_000, help="inference images")
  parser.add_argument("--epochs", type=cli.whole_number(1), default=3,
                      help="epochs per run (without --study)")
  parser.add_argument("--study", action="store_true", help="each model's study epochs")
  parser.add_argument("--eval-batch", type=cli.whole_number(1), default=2048)
  parser.add_argument("--impl", default="auto", choices=("auto", "fast", "flax"),
                      help="models.create_model impl")
  parser.add_argument("--scan", default="auto", choices=("auto", "1", "0"),
                      help="whole epochs under lax.scan: auto (train.use_scan), 1 or 0")
  parser.add_argument("--frameworks", default="jax,keras",
                      help="any of jax, keras, jax_flax (JAX with the plain Flax layers)")
  parser.add_argument("--keras-python", default=sys.executable,
                      help="a Python with tensorflow installed (default: this one)")
  parser.add_argument("--peak-gflops", type=cli.positive_number, default=235.0,
                      help="FP32 peak of the machine (2 Zen 4 cores with AVX-512: ~235)")
  parser.add_argument("--json", help="write every number here")
  parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
  parser.add_argument("--model", help=argparse.SUPPRESS)
  parser.add_argument("--data", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  # Checked before the data is written and the first model trains.
  for flag, names, known in (("--models", args.models, MODELS),
                             ("--frameworks", args.frameworks, FRAMEWORKS)):
    unknown = [n for n in names.split(",") if n not in known]
    if unknown:
      parser.error(f"{flag}={names}: unknown {unknown}; expected names from {', '.join(known)}")
  return args


def main(argv=None) -> None:
  args = parse_args(argv)
  if args.worker:
    return worker(args)
  frameworks = args.frameworks.split(",")
  if "keras" in frameworks and not has_tensorflow(args.keras_python):
    print(f"TensorFlow is not importable from {args.keras_python}: JAX only "
          "(install the bench extra, or pass --keras-python).")
    frameworks.remove("keras")
  sizes = {"train": args.train, "val": args.val, "test": args.test}
  print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; data {sizes}; "
        f"{'study epochs' if args.study else f'{args.epochs} epochs'}; "
        f"load average at start {os.getloadavg()}", flush=True)
  rows = []
  with tempfile.TemporaryDirectory() as folder:
    write_data(Path(folder), sizes)
    for model in args.models.split(","):
      for framework in frameworks:
        python = args.keras_python if framework == "keras" else sys.executable
        load = os.getloadavg()
        row = summarize(model, framework, run_worker(python, framework, model, Path(folder), args),
                        sizes, args.peak_gflops)
        row["load_before"] = load
        rows.append(row)
        print(f"  {model} {framework}: {row['train_img_s']:,.0f} train img/s, "
              f"load average before {load[0]:.2f}", flush=True)
  print(f"load average at end {os.getloadavg()}\n")
  print(table(rows))
  result = {"sizes": sizes, "study": args.study, "rows": rows, "ratios": ratios(rows)}
  if result["ratios"]:
    print("\nJAX vs Keras (>1: JAX faster):")
    for model, r in sorted(result["ratios"].items()):
      print(f"  {model}: train {r['train']:.2f}x  epoch cycle {r['epoch_cycle']:.2f}x  "
            f"inference {r['infer']:.2f}x  run wall {r['wall']:.2f}x")
  for framework in frameworks:
    walls = [r["wall_s"] for r in rows if r["framework"] == framework]
    result[f"{framework}_total_wall_s"] = sum(walls)
    print(f"{framework}: all runs {sum(walls):.1f} s wall"
          f"{' (the whole study)' if args.study else ''}")
  if args.json:
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
  main()
