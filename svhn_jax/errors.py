"""Errors a user can act on: the CLI prints their message alone, without a traceback."""


class SvhnError(Exception):
  """Base class: bad input from the user (file, key, config field), never a bug."""


class DataError(SvhnError):
  """A data file is missing, unreadable, or not in the study's HDF5 layout."""


class ConfigError(SvhnError):
  """A config field has a value the code cannot use."""


class CheckpointError(SvhnError):
  """A workdir's checkpoints cannot be used for this run."""
