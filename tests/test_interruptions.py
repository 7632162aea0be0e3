"""Ctrl-C, SIGTERM and SIGKILL: in-process, a first signal is deferred to the end of the epoch and
the shell's handlers are restored; real training processes killed with SIGKILL, or stopped with
Ctrl-C, then resumed, end like uninterrupted ones.

Every process run here is `python -m svhn_jax.main` (or tests/pausing_main.py, the same with a
pause point) on a small file that labels the digit zero 10, as SVHN does. The tests pass when
pytest itself runs with SIGINT ignored (`nohup pytest &` in a script): the test that sends Ctrl-C
in-process installs Python's handler for itself, and tests/pausing_main.py does in its process.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import h5py
import jax
import numpy as np
import pytest

from support import ROOT, metrics_rows, read_json, start_paused, tiny_config, tiny_dataset
from svhn_jax import checkpoint, data, interrupts, models, recipes, steps, train
from svhn_jax.datasets import study_h5
from svhn_jax.errors import Interrupted

EPOCHS = 3


@pytest.fixture
def ctrl_c_raises():
  """Python's own SIGINT handler for the test, whatever pytest was started with."""
  previous = signal.signal(signal.SIGINT, signal.default_int_handler)
  yield
  signal.signal(signal.SIGINT, previous)


def deliver(signum: int) -> None:
  # raise_signal runs the Python handler before it returns, however loaded the machine is;
  # os.kill plus a short sleep missed it under load.
  signal.raise_signal(signum)


def test_first_signal_is_a_request_second_stops_at_once(ctrl_c_raises):
  before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
  with interrupts.deferred():
    assert interrupts.requested() is None
    deliver(signal.SIGTERM)
    assert interrupts.requested() == signal.SIGTERM
    with pytest.raises(KeyboardInterrupt):
      deliver(signal.SIGINT)
  assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
  assert interrupts.requested() is None


def test_an_ignored_signal_stays_ignored():
  previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
  try:
    with interrupts.deferred():
      assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
      deliver(signal.SIGTERM)
      assert interrupts.requested() is None
  finally:
    signal.signal(signal.SIGTERM, previous)


def test_sigterm_before_the_first_epoch_stops_with_its_exit_status(tiny_h5, tmp_path):
  with interrupts.deferred(), pytest.raises(Interrupted) as e:
    deliver(signal.SIGTERM)
    train.train_and_evaluate(tiny_config("ann1", tiny_h5), tmp_path)
  assert str(e.value) == ("SIGTERM stopped the run. No epoch had finished, so there was nothing "
                          "to save.")
  assert e.value.exit_code == 128 + signal.SIGTERM
  assert (tmp_path / "metrics.jsonl").read_text() == ""
  assert latest_epoch(tmp_path) is None


@pytest.fixture(scope="module")
def svhn_labelled_h5(tmp_path_factory) -> Path:
  splits = [data.Split(s.images, np.where(s.labels == 0, 10, s.labels)) for s in tiny_dataset()]
  return study_h5.save_h5(tmp_path_factory.mktemp("svhn10") / "svhn10.h5", data.Dataset(*splits))


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


@pytest.fixture
def paused_runs():
  """`start(h5, workdir, pause_at, log)`: a run started and now waiting at `pause_at` (see
  tests/pausing_main.py). Every run started is killed, if still running, when the test ends."""
  procs = []

  def start(h5: Path, workdir: Path, pause_at: str, log: Path) -> subprocess.Popen:
    proc = start_paused(command("tests.pausing_main", h5, workdir), pause_at, log)
    procs.append(proc)
    return proc

  yield start
  for proc in procs:
    proc.kill()
    proc.wait()
    proc.stdout.close()


def kill_at(start, h5: Path, workdir: Path, pause_at: str) -> None:
  proc = start(h5, workdir, pause_at, workdir.parent / f"{workdir.name}.log")
  proc.send_signal(signal.SIGKILL)
  assert proc.wait(timeout=60) == -signal.SIGKILL


def latest_epoch(workdir: Path) -> int | None:
  ckpts = checkpoint.Checkpoints(workdir)
  try:
    return ckpts.latest_epoch()
  finally:
    ckpts.close()


def outcome(workdir: Path) -> dict:
  """Everything a finished run leaves that must not depend on interruptions (times aside)."""
  like = steps.init_state(models.create_model("ann2", seed=0), recipes.adam(1e-3, 1e-7))[1]
  ckpts = checkpoint.Checkpoints(workdir)
  latest, progress = ckpts.restore_latest(like, "ann2")
  best = ckpts.restore_weights(checkpoint.weights_of(like))
  ckpts.close()
  for row in progress.history:
    row.pop("seconds")
  return {"metrics": metrics_rows(workdir), "test": read_json(workdir / "test_metrics.json"),
          "progress": progress, "latest": jax.tree.map(np.asarray, latest),
          "best": jax.tree.map(np.asarray, best)}


def assert_same_outcome(a: dict, b: dict) -> None:
  for key in ("metrics", "test", "progress"):
    assert a[key] == b[key], key
  for key in ("latest", "best"):
    jax.tree.map(np.testing.assert_array_equal, a[key], b[key])


@pytest.fixture(scope="module")
def uninterrupted(svhn_labelled_h5, tmp_path_factory) -> dict:
  workdir = tmp_path_factory.mktemp("uninterrupted") / "run"
  run_to_end(svhn_labelled_h5, workdir)
  return outcome(workdir)


def test_svhn_labels_1_to_10_train_with_10_read_as_zero(svhn_labelled_h5, uninterrupted):
  with h5py.File(svhn_labelled_h5) as f:
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


# Slow (about 30 s; the Ctrl-C test and the step-counted run killed between validations cover
# resuming bit for bit): `pytest -m slow` runs it.
@pytest.mark.slow
def test_sigkill_mid_epoch_and_mid_checkpoint_then_resume_ends_as_uninterrupted(
    svhn_labelled_h5, uninterrupted, paused_runs, tmp_path):
  workdir = tmp_path / "run"
  epoch = new_best_epoch(uninterrupted)
  ckpt_dir = workdir / "checkpoints"

  kill_at(paused_runs, svhn_labelled_h5, workdir, f"step:{epoch}:3")
  assert latest_epoch(workdir) == epoch - 1

  # The best checkpoint is written first: killed while writing it, neither is complete.
  kill_at(paused_runs, svhn_labelled_h5, workdir, f"save:best:{epoch}")
  assert list(ckpt_dir.glob(f"best/{epoch}.orbax-checkpoint-tmp*"))
  assert latest_epoch(workdir) == epoch - 1

  # The best is complete but the latest is not: the epoch is trained again and saved again.
  kill_at(paused_runs, svhn_labelled_h5, workdir, f"save:latest:{epoch}")
  assert list(ckpt_dir.glob(f"latest/{epoch}.orbax-checkpoint-tmp*"))
  assert (ckpt_dir / "best" / str(epoch)).is_dir()
  assert latest_epoch(workdir) == epoch - 1

  log = run_to_end(svhn_labelled_h5, workdir)
  assert f"Resuming {workdir} after epoch {epoch - 1}" in log
  assert not list(ckpt_dir.glob("*/*.orbax-checkpoint-tmp*"))
  assert_same_outcome(outcome(workdir), uninterrupted)


def test_ctrl_c_saves_the_epoch_and_exits_cleanly_then_resume_ends_as_uninterrupted(
    svhn_labelled_h5, uninterrupted, paused_runs, tmp_path):
  workdir = tmp_path / "run"
  log = tmp_path / "run.log"
  proc = paused_runs(svhn_labelled_h5, workdir, "step:2:3", log)
  proc.send_signal(signal.SIGINT)
  # Finishing the epoch includes compiles: generous, as run_to_end, for a loaded machine.
  assert proc.wait(timeout=300) == 128 + signal.SIGINT
  stderr = log.read_text()
  assert "Traceback" not in stderr
  assert stderr.strip().splitlines()[-1] == (
      f"stopped: SIGINT stopped the run. Its checkpoint after epoch 2 of {EPOCHS} is saved: run "
      "the same command to resume.")
  assert latest_epoch(workdir) == 2
  assert not (workdir / "test_metrics.json").exists()

  run_to_end(svhn_labelled_h5, workdir)
  assert_same_outcome(outcome(workdir), uninterrupted)


# A step-counted run: 192 crops are 4 full batches of 40 an epoch (32 dropped); 14 steps
# validated at steps 5, 10 and 14, the second period across an epoch's end.
STEP_SETTINGS = {"epochs": None, "total_steps": 14, "eval_every_steps": 5, "batch_size": 40,
                 "eval_batch_size": 64, "scan_epoch": False}


def step_command(h5: Path, workdir: Path) -> list[str]:
  flags = [f"--config.train.{k}={'none' if v is None else str(v).lower()}"
           for k, v in STEP_SETTINGS.items()]
  return [sys.executable, "-m", "tests.pausing_main", "--config=configs/ann2.py",
          f"--workdir={workdir}", f"--config.data.path={h5}", *flags]


def test_a_step_counted_run_stopped_by_ctrl_c_and_killed_between_validations_resumes_exactly(
    svhn_labelled_h5, tmp_path):
  """Ctrl-C at step 7 finishes, validates and saves the period (steps 6-10) and exits; killed at
  step 12, between two validations, the workdir keeps step 10's checkpoint; resumed, the run
  ends as the uninterrupted one, bit for bit."""
  config = tiny_config("ann2", svhn_labelled_h5, **STEP_SETTINGS)
  train.train_and_evaluate(config, tmp_path / "whole")
  uninterrupted = outcome(tmp_path / "whole")
  assert [r["step"] for r in uninterrupted["metrics"]] == [5, 10, 14]

  workdir = tmp_path / "run"
  for pause_at, signum in (("global_step:7", signal.SIGINT), ("global_step:12", signal.SIGKILL)):
    log = tmp_path / f"{signum}.log"
    proc = start_paused(step_command(svhn_labelled_h5, workdir), pause_at, log)
    try:
      proc.send_signal(signum)
      assert proc.wait(timeout=300) == (128 + signum if signum == signal.SIGINT else -signum)
    finally:
      proc.kill()
      proc.wait()
      proc.stdout.close()
    if signum == signal.SIGINT:
      assert log.read_text().strip().splitlines()[-1] == (
          "stopped: SIGINT stopped the run. Its checkpoint after step 10 of 14 is saved: run the "
          "same command to resume.")
    # Checkpoints are keyed by validations: the second, at step 10.
    assert latest_epoch(workdir) == 2
    assert [r["step"] for r in metrics_rows(workdir)] == [5, 10]

  train.train_and_evaluate(config, workdir)
  assert_same_outcome(outcome(workdir), uninterrupted)
