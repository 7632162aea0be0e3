"""Many `python -m MODULE ARG...` command lines for the price of one Python start.

The libraries the entry points share (JAX, Flax, orbax, scikit-learn and svhn_jax's own modules,
some 4 s of imports) are imported once; each command then runs in a child forked from this
process as `python -m` runs it: the module as __main__ with its own absl flags, its exit status
and its stdout and stderr (what the shared imports printed is added in front by
`support.run_clis`). Unlike a real process, a child ends with `os._exit` after its atexit
handlers: threads are not joined and the interpreter's teardown messages are not printed, so
the bad-input commands checked this way must end before any background work starts. Nothing
here starts a JAX backend (checked before forking), so the children fork clean.
Run it from the repository root:

  python -m tests.cli_batch < commands.json > results.json

stdin: a JSON list of [module, arg, ...]; stdout: a JSON list of {"returncode", "stdout",
"stderr"}, in the same order. At most two children run at once.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import runpy
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import NoReturn

SHARED = ("jax", "flax.nnx", "orbax.checkpoint", "sklearn.metrics", "sklearn.model_selection",
          "svhn_jax.cli", "svhn_jax.inference", "svhn_jax.preflight", "svhn_jax.train")
AT_ONCE = 2


def exit_status(e: SystemExit) -> int:
  """The status the interpreter exits with for `e`, printing a message as it does."""
  if e.code is None or isinstance(e.code, int):
    return e.code or 0
  print(e.code, file=sys.stderr)
  return 1


def run_as_main(command: list[str], out: Path, err: Path) -> NoReturn:
  """`python -m command[0] command[1:]` in this (forked) process, which it ends."""
  with open(out, "w") as stdout, open(err, "w") as stderr:
    os.dup2(stdout.fileno(), 1)
    os.dup2(stderr.fileno(), 2)
  module, *args = command
  sys.argv = [module, *args]
  # runpy's warning that a module run as __main__ was imported before, here by this process: in
  # a fresh `python -m` it is imported after, as a second copy, with the same effect.
  warnings.filterwarnings("ignore", r".* found in sys\.modules after import of package",
                          RuntimeWarning)
  try:
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    code = 0
  except SystemExit as e:
    code = exit_status(e)
  except BaseException:
    sys.excepthook(*sys.exc_info())
    code = 1
  atexit._run_exitfuncs()
  sys.stdout.flush()
  sys.stderr.flush()
  os._exit(code)


def run_all(commands: list[list[str]], folder: Path, at_once: int = AT_ONCE) -> list[dict]:
  running: dict[int, int] = {}
  codes: dict[int, int] = {}

  def reap() -> None:
    pid, status = os.wait()
    codes[running.pop(pid)] = os.waitstatus_to_exitcode(status)

  for k, command in enumerate(commands):
    if len(running) == at_once:
      reap()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
      run_as_main(command, folder / f"{k}.out", folder / f"{k}.err")
    running[pid] = k
  while running:
    reap()
  return [{"returncode": codes[k], "stdout": (folder / f"{k}.out").read_text(),
           "stderr": (folder / f"{k}.err").read_text()} for k in range(len(commands))]


if __name__ == "__main__":
  for name in SHARED:
    importlib.import_module(name)
  # A backend's threads do not survive a fork: the children would hang, not fail.
  from jax._src import xla_bridge
  if xla_bridge.backends_are_initialized():
    sys.exit("tests.cli_batch: importing the shared libraries started a JAX backend; the "
             "children cannot be forked from it")
  # A list of commands, or {"commands": [...], "at_once": k} to run at most k at a time (1: in
  # order, each seeing what the one before it left).
  given = json.load(sys.stdin)
  commands, at_once = (given, AT_ONCE) if isinstance(given, list) else (given["commands"],
                                                                        given["at_once"])
  # Not a TemporaryDirectory, whose clean-up at exit each child would run.
  folder = Path(tempfile.mkdtemp(prefix="cli_batch_"))
  try:
    results = run_all(commands, folder, at_once)
  finally:
    shutil.rmtree(folder)
  json.dump(results, sys.stdout)
