"""What the command-line tools share: a user's error as one line on stderr, and a readable log."""

from __future__ import annotations

import contextlib
import logging as std_logging
import os
import sys
from collections.abc import Iterator

from absl import logging

from svhn_jax.errors import SvhnError


@contextlib.contextmanager
def user_errors(on_interrupt: str = "stopped by Ctrl-C") -> Iterator[None]:
  """Turns a user's error into one line on stderr and its exit status; --verbosity=1 (or more)
  lets the traceback through instead. OSError counts as the user's: a folder that cannot be
  written, a full disk, and its message names the path."""
  try:
    yield
  except (SvhnError, OSError, KeyboardInterrupt) as e:
    if logging.get_verbosity() > logging.INFO:
      raise
    if isinstance(e, KeyboardInterrupt):
      print(f"stopped: {on_interrupt}", file=sys.stderr)
      sys.exit(130)
    print(f"{getattr(e, 'label', 'error')}: {e}", file=sys.stderr)
    sys.exit(getattr(e, "exit_code", 1))


def hide_library_info() -> None:
  """Drops the INFO lines of orbax (some twenty per checkpoint) and JAX (its search for a TPU),
  which bury the run's own lines and errors, unless --verbosity asks for more."""
  if logging.get_verbosity() > logging.INFO:
    return
  libraries = tuple(f"{os.sep}{name}{os.sep}" for name in ("orbax", "jax"))
  logging.get_absl_handler().addFilter(
      lambda record: record.levelno > std_logging.INFO
      or not any(library in record.pathname for library in libraries))
