"""Ctrl-C and SIGTERM during training: finish the epoch, save its checkpoint, then stop.

A step cannot be cut short anyway, and a run stopped at an epoch's end resumes exactly where it
was, so the first signal only asks the train loop to stop once the epoch is saved. In a
step-counted run, read "validation period" for epoch (`config.train.eval_every_steps` steps, by
default an epoch's): the period's steps are finished, validated and saved first. A second one
stops at once with KeyboardInterrupt: the workdir keeps its last saved epoch.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_requested: list[int] = []


def requested() -> int | None:
  """The signal that asked the run to stop, or None."""
  return _requested[0] if _requested else None


def _handle(signum: int, frame) -> None:
  if _requested:
    raise KeyboardInterrupt
  _requested.append(signum)
  logging.warning("%s: stopping once this epoch (validation period) is finished and saved "
                  "(Ctrl-C again stops at once, losing its steps).", signal.Signals(signum).name)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
  """Within the block, SIGINT and SIGTERM set `requested()` instead of stopping the process."""
  _requested.clear()
  # Python runs signal handlers in the main thread only; elsewhere the defaults stay.
  if threading.current_thread() is not threading.main_thread():
    yield
    return
  # A signal the parent chose to ignore (nohup, `cmd &` in a script) stays ignored.
  previous = {s: signal.getsignal(s) for s in SIGNALS}
  for s, handler in previous.items():
    if handler is not signal.SIG_IGN:
      signal.signal(s, _handle)
  try:
    yield
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
    _requested.clear()
