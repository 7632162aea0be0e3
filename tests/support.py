"""Helpers the tests share: small datasets, tiny run configs, reading a workdir, running a CLI.

Fixtures live in conftest.py; this module holds plain functions, so that no test module imports
another.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import h5py
import ml_collections
import numpy as np
from PIL import Image

from svhn_jax import data

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data" / "svhn_samples"
# Split sizes of `good_arrays`.
SIZES = {"train": 6, "val": 4, "test": 5}
# Split sizes of the tiny file: 192 training samples are 6 batches of 32.
TINY_SIZES = (192, 64, 64)


def digits_dataset(train: int = 1200, val: int = 300, seed: int = 0) -> data.Dataset:
  """scikit-learn's 1,797 real handwritten digits, resized 8x8 -> 32x32 to 0..255, split 3 ways.

  Bilinear resizing leaves fractional grey levels, so `study_h5.load` keeps them float32: the
  split the study's Keras CNN1 reached 98.7% on."""
  from sklearn.datasets import load_digits

  digits = load_digits()
  images = np.stack([
      np.asarray(Image.fromarray((img * (255 / 16)).astype(np.float32))
                 .resize((32, 32), Image.BILINEAR))
      for img in digits.images
  ]).clip(0, 255)
  order = np.random.default_rng(seed).permutation(len(images))
  images, labels = images[order], digits.target[order].astype(np.int32)
  cut = (slice(0, train), slice(train, train + val), slice(train + val, None))
  return data.Dataset(*(data.Split(images[c], labels[c]) for c in cut))


def tiny_dataset() -> data.Dataset:
  """The first `TINY_SIZES` digits of each split: a model moves in two epochs of seconds."""
  return data.Dataset(*(data.Split(s.images[:n], s.labels[:n])
                        for s, n in zip(digits_dataset(), TINY_SIZES)))


def tiny_config(name: str, path: str | os.PathLike, **train_overrides) -> ml_collections.ConfigDict:
  """configs/<name>.py on the file at `path`: 2 epochs in batches of 32, and `train_overrides`
  (e.g. epochs=3) set on config.train."""
  config = importlib.import_module(f"configs.{name}").get_config()
  config.data.path = str(path)
  config.train.epochs = 2
  config.train.batch_size = 32
  config.train.eval_batch_size = 50
  for key, value in train_overrides.items():
    setattr(config.train, key, value)
  return config


def metrics_rows(workdir: str | os.PathLike) -> list[dict]:
  """A workdir's metrics.jsonl without the seconds each epoch took."""
  rows = [json.loads(line) for line in (Path(workdir) / "metrics.jsonl").read_text().splitlines()]
  for row in rows:
    row.pop("seconds")
  return rows


def read_json(path: str | os.PathLike):
  return json.loads(Path(path).read_text())


def snapshot(folder: str | os.PathLike) -> dict[str, bytes]:
  """Every file under `folder` by relative path, with its bytes."""
  folder = Path(folder)
  return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
          if p.is_file()}


def good_arrays(seed: int = 0) -> dict[str, np.ndarray]:
  """The six datasets of a valid file of `SIZES` samples, with fractional (float32) pixels."""
  rng = np.random.default_rng(seed)
  arrays = {}
  for split, n in SIZES.items():
    arrays[f"X_{split}"] = rng.uniform(0, 255, (n, 32, 32)).astype(np.float32)
    arrays[f"y_{split}"] = (np.arange(n) % 10).astype(np.uint8)
  return arrays


def write_h5(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
  with h5py.File(path, "w") as f:
    for key, value in arrays.items():
      f.create_dataset(key, data=value)
  return Path(path)


def with_changes(**changes) -> dict[str, np.ndarray]:
  """Returns the good arrays with `changes` applied; a change of None drops that key."""
  arrays = good_arrays()
  arrays.update(changes)
  return {key: value for key, value in arrays.items() if value is not None}


def run_cli(module: str, *args: str, env: dict | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
  """`python -m module args` from the repository root; output captured as text."""
  return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                        text=True, timeout=timeout, env=env)


def run_clis(commands: list[list[str]], timeout: float = 300, env: dict | None = None,
             in_order: bool = False) -> list[subprocess.CompletedProcess]:
  """Each [module, arg, ...] in `commands` run as `python -m module args` from the repository
  root, forked from one process that imported the shared libraries once (tests/cli_batch.py),
  in `env` (default: this process's); output captured as text. `in_order`: one at a time, each
  after the one before it ended (a run, then its resume), instead of side by side."""
  given = {"commands": commands, "at_once": 1} if in_order else commands
  done = subprocess.run([sys.executable, "-m", "tests.cli_batch"], cwd=ROOT, capture_output=True,
                        text=True, timeout=timeout, input=json.dumps(given), env=env)
  assert done.returncode == 0, done.stderr[-3000:]
  # What the shared imports printed (a warning, a log line) a real process prints first too.
  return [subprocess.CompletedProcess(["python", "-m", *command], result["returncode"],
                                      result["stdout"], done.stderr + result["stderr"])
          for command, result in zip(commands, json.loads(done.stdout))]


def without_jax_backend() -> dict:
  """The environment, with JAX given a platform that does not exist: a process that starts a JAX
  backend fails, so one that ends with its own error line never started JAX."""
  return {**os.environ, "JAX_PLATFORMS": "no_such_platform"}


def start_paused(command: list[str], pause_at: str, log: Path) -> subprocess.Popen:
  """`command` (a tests.pausing_main run, from the repository root) started and now waiting at
  `pause_at` (see tests/pausing_main.py), its stderr in `log`. Raises AssertionError, with the
  log's tail, if it ends without pausing; the caller kills it when done (it may be running)."""
  with open(log, "w") as stderr:
    proc = subprocess.Popen(command, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=stderr,
                            env={**os.environ, "SVHN_JAX_PAUSE_AT": pause_at})
  deadline = time.monotonic() + 300
  while time.monotonic() < deadline:
    if select.select([proc.stdout], [], [], 1.0)[0]:
      line = proc.stdout.readline()
      if line.strip() == "PAUSED":
        return proc
      if not line:
        break
  proc.kill()
  proc.wait()
  proc.stdout.close()
  raise AssertionError(f"the run never reached {pause_at}:\n{log.read_text()[-3000:]}")


def table_rows(markdown: str, first_header: str) -> list[list[str]]:
  """The body rows, as lists of cell texts, of the first markdown table whose header row starts
  with `first_header`."""
  lines = markdown.splitlines()
  start = next(k for k, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
  rows = []
  for line in lines[start + 2:]:
    if not line.startswith("|"):
      break
    rows.append([cell.strip() for cell in line.strip("|").split("|")])
  return rows
