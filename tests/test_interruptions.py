"""Real training processes killed with SIGKILL, or stopped with Ctrl-C, end like uninterrupted ones.

Every run here is `python -m svhn_jax.main` (or tests/pausing_main.py, the same with a pause
point) on a small file that labels the digit zero 10, as SVHN does.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from svhn_jax import checkpoint, data, models, train

from conftest import digits_dataset

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 3


@pytest.fixture(scope="module", autouse=True)
def shared_xla_cache(tmp_path_factory):
  """One XLA compilation cache for every run here: it halves each run's time after the first,
  and it loads the very programs that the first run compiled."""
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path_factory.mktemp("xla_cache")))
    patch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    patch.setenv("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    yield


@pytest.fixture(scope="module")
def svhn_labelled_h5(tmp_path_factory) -> Path:
  full = digits_dataset()
  splits = [data.Split(s.images[:n], np.where(s.labels[:n] == 0, 10, s.labels[:n]))
            for s, n in zip(full, (192, 64, 64))]
  return data.save_h5(tmp_path_factory.mktemp("svhn10") / "svhn10.h5", data.Dataset(*splits))


def command(module: str, h5: Path, workdir: Path) -> list[str]:
  return [sys.executable, "-m", module, "--config=configs/ann2.py", f"--workdir={workdir}",
          f"--config.data.path={h5}", f"--config.train.epochs={EPOCHS}",
          "--config.train.batch_size=32", "--config.train.eval_batch_size=64",
          # Step by step, so that a kill can land between two steps of an epoch.
          "--config.train.scan_epoch=false"]


def run_to_end(h5: Path, workdir: Path) -> str:
  result = subprocess.run(command("svhn_jax.main", h5, workdir), cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stderr


def start_paused(h5: Path, workdir: Path, pause_at: str, log: Path) -> subprocess.Popen:
  """A run started and now waiting at `pause_at` (see tests/pausing_main.py)."""
  with open(log, "w") as stderr:
    proc = subprocess.Popen(command("tests.pausing_main", h5, workdir), cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=stderr,
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
  pytest.fail(f"the run never reached {pause_at}:\n{log.read_text()[-3000:]}")


def kill_at(h5: Path, workdir: Path, pause_at: str) -> None:
  proc = start_paused(h5, workdir, pause_at, workdir.parent / f"{workdir.name}.log")
  proc.send_signal(signal.SIGKILL)
  assert proc.wait(timeout=60) == -signal.SIGKILL
  proc.stdout.close()


def outcome(workdir: Path) -> dict:
  """Everything a finished run leaves that must not depend on interruptions (times aside)."""
  like = train.init_state(models.create_model("ann2", seed=0), train.make_optimizer(1e-3, 1e-7))[1]
  ckpts = checkpoint.Checkpoints(workdir)
  (latest, latest_meta), (best, _) = ckpts.restore_latest(like), ckpts.restore_best(like)
  ckpts.close()
  for row in latest_meta["history"]:
    row.pop("seconds")
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  for row in rows:
    row.pop("seconds")
  return {"metrics": rows, "test": json.loads((workdir / "test_metrics.json").read_text()),
          "meta": latest_meta, "latest": jax.tree.map(np.asarray, latest),
          "best": jax.tree.map(np.asarray, best)}


def assert_same_outcome(a: dict, b: dict) -> None:
  for key in ("metrics", "test", "meta"):
    assert a[key] == b[key], key
  for key in ("latest", "best"):
    jax.tree.map(np.testing.assert_array_equal, a[key], b[key])


@pytest.fixture(scope="module")
def uninterrupted(svhn_labelled_h5, tmp_path_factory) -> dict:
  workdir = tmp_path_factory.mktemp("uninterrupted") / "run"
  run_to_end(svhn_labelled_h5, workdir)
  return outcome(workdir)


def test_svhn_labels_1_to_10_train_with_10_read_as_zero(svhn_labelled_h5, uninterrupted):
  with data.h5py.File(svhn_labelled_h5) as f:
    stored = f["y_test"][()]
  assert stored.min() == 1 and stored.max() == 10
  confusion = np.asarray(uninterrupted["test"]["confusion_matrix"])
  assert confusion.shape == (10, 10)
  assert confusion.sum(axis=1)[0] == np.count_nonzero(stored == 10)


def new_best_epoch(result: dict) -> int:
  """An epoch after the first whose validation accuracy beat every earlier one: it saves both."""
  accuracies = [row["val_accuracy"] for row in result["metrics"]]
  epochs = [e for e in range(2, EPOCHS + 1) if accuracies[e - 1] > max(accuracies[:e - 1])]
  assert epochs, f"no later epoch improved on the first: {accuracies}"
  return epochs[0]


def test_sigkill_mid_epoch_and_mid_checkpoint_then_resume_ends_as_uninterrupted(
    svhn_labelled_h5, uninterrupted, tmp_path):
  workdir = tmp_path / "run"
  epoch = new_best_epoch(uninterrupted)
  ckpt_dir = workdir / "checkpoints"

  kill_at(svhn_labelled_h5, workdir, f"step:{epoch}:3")
  assert checkpoint.Checkpoints(workdir).latest_epoch() == epoch - 1

  # The best checkpoint is written first: killed while writing it, neither is complete.
  kill_at(svhn_labelled_h5, workdir, f"save:best:{epoch}")
  assert list(ckpt_dir.glob(f"best/{epoch}.orbax-checkpoint-tmp*"))
  assert checkpoint.Checkpoints(workdir).latest_epoch() == epoch - 1

  # The best is complete but the latest is not: the epoch is trained again and saved again.
  kill_at(svhn_labelled_h5, workdir, f"save:latest:{epoch}")
  assert list(ckpt_dir.glob(f"latest/{epoch}.orbax-checkpoint-tmp*"))
  assert (ckpt_dir / "best" / str(epoch)).is_dir()
  assert checkpoint.Checkpoints(workdir).latest_epoch() == epoch - 1

  log = run_to_end(svhn_labelled_h5, workdir)
  assert f"Resuming from {ckpt_dir / 'latest'} after epoch {epoch - 1}" in log
  assert not list(ckpt_dir.glob("*/*.orbax-checkpoint-tmp*"))
  assert_same_outcome(outcome(workdir), uninterrupted)


def test_ctrl_c_saves_the_epoch_and_exits_cleanly_then_resume_ends_as_uninterrupted(
    svhn_labelled_h5, uninterrupted, tmp_path):
  workdir = tmp_path / "run"
  log = tmp_path / "run.log"
  proc = start_paused(svhn_labelled_h5, workdir, "step:2:3", log)
  proc.send_signal(signal.SIGINT)
  # Finishing the epoch includes compiles: generous, as run_to_end, for a loaded machine.
  assert proc.wait(timeout=300) == 128 + signal.SIGINT
  proc.stdout.close()
  stderr = log.read_text()
  assert "Traceback" not in stderr
  assert stderr.strip().splitlines()[-1] == (
      f"stopped: SIGINT stopped the run. Its checkpoint after epoch 2 of {EPOCHS} is saved: run "
      "the same command to resume.")
  assert checkpoint.Checkpoints(workdir).latest_epoch() == 2
  assert not (workdir / "test_metrics.json").exists()

  run_to_end(svhn_labelled_h5, workdir)
  assert_same_outcome(outcome(workdir), uninterrupted)
