"""Errors a user can act on: the CLI prints `label: message` alone, without a traceback, and
exits with `exit_code`."""

import signal


def one_line(error: BaseException, *, first: bool = False) -> str:
  """`error`'s message on one line (its whitespace runs, newlines included, made one space), or
  its class name when it has none: how an error reaches a one-line message. With `first`, only
  its first line is kept (for errors whose later lines are a long listing: orbax's tree
  mismatches)."""
  text = str(error).strip()
  if first:
    text = text.split("\n", 1)[0]
  return " ".join(text.split()) or type(error).__name__


class SvhnError(Exception):
  """Base class: bad input from the user (file, key, config field) or a run that must stop; never
  a bug."""

  label = "error"
  exit_code = 1


class DataError(SvhnError):
  """A data file is missing, unreadable, or not in the study's HDF5 layout."""


class ConfigError(SvhnError):
  """A config field has a value the code cannot use."""


class CheckpointError(SvhnError):
  """A workdir's checkpoints cannot be used for this run."""


class RunLocked(SvhnError):
  """Another process is running in the same workdir."""


class TrainingDiverged(SvhnError):
  """The loss became NaN or infinite; the checkpoints hold the last good epoch."""


class Interrupted(SvhnError):
  """Ctrl-C or SIGTERM stopped the run after it saved its last finished epoch."""

  label = "stopped"

  def __init__(self, message: str, signum: int = signal.SIGINT):
    super().__init__(message)
    # The shell's convention for a process ended by a signal, so scripts can tell it from a failure.
    self.exit_code = 128 + signum
