"""One process at a time per workdir: a file lock that a killed run never leaves behind.

`filelock` takes an OS lock (flock) on `<workdir>/.lock`: the kernel drops it when its process
ends, however it ends, so a run killed by SIGKILL or a crash never blocks its own resume. Who
holds it (host, pid, start time) is written to `<workdir>/.lock.owner` for the error message.
On a network filesystem the lock is as good as the server's flock support: NFSv4 and Lustre
honour it across hosts; NFSv3 without a lock daemon, and some FUSE filesystems, lock per host
only, so two hosts could then both take it (README, "Running twice").
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import filelock

from svhn_jax import fileio
from svhn_jax.errors import RunLocked

LOCK_FILE = ".lock"
OWNER_FILE = ".lock.owner"

_held: dict[Path, int] = {}


@contextlib.contextmanager
def hold(workdir: str | os.PathLike) -> Iterator[None]:
  """Holds `workdir`'s lock for the block (re-entrant within this process).

  Raises RunLocked, at once, naming the workdir and the holder when another process holds it.
  A workdir that this call created is removed again if the block fails before writing into it,
  so a run refused for bad input leaves nothing behind.
  """
  workdir = Path(workdir).absolute()
  if workdir in _held:
    _held[workdir] += 1
    try:
      yield
    finally:
      _held[workdir] -= 1
    return
  created = not workdir.exists()
  workdir.mkdir(parents=True, exist_ok=True)
  lock = filelock.FileLock(workdir / LOCK_FILE)
  try:
    lock.acquire(timeout=0)
  except filelock.Timeout:
    raise RunLocked(f"{workdir} is in use by another run ({_owner(workdir)}); wait for it to "
                    "end, or stop it, then run the same command to resume") from None
  _held[workdir] = 1
  try:
    fileio.write_json(workdir / OWNER_FILE, {
        "host": socket.gethostname(), "pid": os.getpid(),
        "started": datetime.datetime.now().isoformat(timespec="seconds")})
    yield
  except BaseException:
    if created:
      _remove_if_untouched(workdir)
    raise
  finally:
    del _held[workdir]
    lock.release()


def _remove_if_untouched(workdir: Path) -> None:
  if {p.name for p in workdir.iterdir()} <= {LOCK_FILE, OWNER_FILE}:
    for name in (OWNER_FILE, LOCK_FILE):
      (workdir / name).unlink(missing_ok=True)
    workdir.rmdir()


def _owner(workdir: Path) -> str:
  try:
    owner = json.loads((workdir / OWNER_FILE).read_text())
    return f"pid {owner['pid']} on {owner['host']}, since {owner['started']}"
  except (OSError, ValueError, KeyError):
    return "holder unknown"
