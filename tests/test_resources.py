"""Resource failures end in one line with no loss: a disk that fills inside orbax's own save."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from support import metrics_rows
from svhn_jax import cli

ROOT = Path(__file__).resolve().parents[1]


def _mount_tmpfs(where: Path, size: str) -> bool:
  where.mkdir(parents=True, exist_ok=True)
  return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                        capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
  """A 2 MB tmpfs: room for one epoch's ANN1 checkpoints (best and latest, ~0.8 MB each), not
  for the next epoch's, which orbax writes before it drops the old ones."""
  where = tmp_path / "disk"
  if not _mount_tmpfs(where, "2m"):
    pytest.skip("cannot mount a tmpfs here (needs root, as on the project's machines and CI)")
  yield where
  subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _train(workdir: Path, data: Path) -> subprocess.CompletedProcess:
  return subprocess.run(
      [sys.executable, "-m", "svhn_jax.main", "--config=configs/ann1.py",
       f"--workdir={workdir}", f"--config.data.path={data}", "--config.train.epochs=4",
       "--config.train.batch_size=32", "--config.train.eval_batch_size=64"],
      cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_a_full_disk_during_a_checkpoint_save_is_one_line_and_the_rerun_resumes(small_disk,
                                                                                 tiny_h5):
  workdir = small_disk / "run"
  failed = _train(workdir, tiny_h5)
  assert failed.returncode == 1
  errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1
  assert "could not save the checkpoint of epoch" in errors[0]
  assert "the disk is full" in errors[0]
  assert "Traceback" not in failed.stderr
  saved = [row["epoch"] for row in metrics_rows(workdir)]
  assert saved and saved[0] == 1
  # More room: the same command resumes after the last complete epoch and finishes.
  subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
  resumed = _train(workdir, tiny_h5)
  assert resumed.returncode == 0, resumed.stderr[-2000:]
  assert "Resuming" in resumed.stderr
  assert [row["epoch"] for row in metrics_rows(workdir)] == [1, 2, 3, 4]
  assert (workdir / "test_metrics.json").is_file()


class JaxRuntimeError(Exception):
  """Stands in for jax.errors.JaxRuntimeError, which the user_errors check knows by name."""


@pytest.mark.parametrize("error, expected", [
    (MemoryError(), "error: out of memory. Use a smaller config.train.batch_size"),
    (JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 8.00GiB."),
     "error: out of memory (RESOURCE_EXHAUSTED: Out of memory while trying to allocate"),
    (PermissionError(13, "Permission denied", "/runs/cnn2/config.json"),
     "error: [Errno 13] Permission denied: '/runs/cnn2/config.json'"),
])
def test_memory_and_os_failures_are_one_line_with_exit_status_1(error, expected, capsys):
  with pytest.raises(SystemExit) as stopped:
    with cli.user_errors():
      raise error
  assert stopped.value.code == 1
  lines = capsys.readouterr().err.splitlines()
  assert len(lines) == 1 and lines[0].startswith(expected), lines


def test_other_runtime_errors_keep_their_traceback():
  with pytest.raises(JaxRuntimeError):
    with cli.user_errors():
      raise JaxRuntimeError("INTERNAL: a bug")
