"""One run per workdir: a second process is refused at once, naming the holder; a holder killed
with SIGKILL leaves no lock behind."""

import os
import signal
import subprocess
import sys

import pytest

from support import ROOT, run_cli, snapshot
from svhn_jax import runlock
from svhn_jax.errors import RunLocked

HOLDER = """
import sys
from svhn_jax import runlock
with runlock.hold(sys.argv[1]):
  print("HELD", flush=True)
  sys.stdin.read()
"""


@pytest.fixture
def holder(tmp_path):
  """`holder(workdir)`: another process that holds `workdir`'s lock until the test ends."""
  procs = []

  def start(workdir):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(workdir)], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    procs.append(proc)
    assert proc.stdout.readline() == "HELD\n"
    return proc

  yield start
  for proc in procs:
    proc.kill()
    proc.wait()
    proc.stdin.close()
    proc.stdout.close()


def test_a_second_process_is_refused_naming_the_holder(holder, tmp_path):
  proc = holder(tmp_path / "run")
  with pytest.raises(RunLocked) as e:
    with runlock.hold(tmp_path / "run"):
      pass
  message = str(e.value)
  assert message.startswith(f"{tmp_path / 'run'} is in use by another run (pid {proc.pid} on ")
  assert message.endswith("); wait for it to end, or stop it, then run the same command to "
                          "resume")


def test_a_holder_killed_with_sigkill_blocks_nothing(holder, tmp_path):
  proc = holder(tmp_path / "run")
  proc.send_signal(signal.SIGKILL)
  assert proc.wait(timeout=60) == -signal.SIGKILL
  with runlock.hold(tmp_path / "run"):
    owner = (tmp_path / "run" / runlock.OWNER_FILE).read_text()
  assert f'"pid": {os.getpid()}' in owner


def test_the_lock_is_reentrant_in_one_process_and_released_after(holder, tmp_path):
  with runlock.hold(tmp_path):
    with runlock.hold(tmp_path):
      pass
    # Still held once the inner block ends: another process is refused.
    other = subprocess.run([sys.executable, "-c", HOLDER, str(tmp_path)], cwd=ROOT, text=True,
                           input="", capture_output=True, timeout=60)
    assert other.returncode == 1 and "RunLocked" in other.stderr
  holder(tmp_path)


def test_a_workdir_made_for_a_refused_run_is_removed(tmp_path):
  with pytest.raises(ValueError):
    with runlock.hold(tmp_path / "new"):
      raise ValueError("bad input")
  assert not (tmp_path / "new").exists()
  (tmp_path / "kept").mkdir()
  with pytest.raises(ValueError):
    with runlock.hold(tmp_path / "kept"):
      raise ValueError("bad input")
  assert (tmp_path / "kept").is_dir()


def test_main_on_a_workdir_in_use_stops_at_once_in_one_line(holder, tmp_path, tiny_h5):
  workdir = tmp_path / "run"
  proc = holder(workdir)
  before = snapshot(workdir)
  result = run_cli("svhn_jax.main", "--config=configs/ann1.py", f"--workdir={workdir}",
                   f"--config.data.path={tiny_h5}")
  assert result.returncode == 1
  (line,) = result.stderr.strip().splitlines()
  assert line.startswith(f"error: {workdir} is in use by another run (pid {proc.pid} on ")
  assert snapshot(workdir) == before
