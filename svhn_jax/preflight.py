"""Checks of everything a run takes from the user, made before training begins.

A bad config value, data file or workdir is reported in a second or two with one line that says
what is wrong, rather than after JAX's start-up or a first epoch. The config's numbers and the
data file are checked first, without JAX; the models and checkpoints, both of which pull JAX in,
are imported only by the checks that need them.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import ml_collections

from svhn_jax import data
from svhn_jax.errors import CheckpointError, ConfigError

# Fields that must be positive numbers: any other value fails deep inside training.
_POSITIVE_INTS = ("train.epochs", "train.batch_size", "train.eval_batch_size")
_POSITIVE_FLOATS = ("train.learning_rate", "train.adam_eps")


def check_run(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> None:
  """Raises an SvhnError naming the field, file or folder that a run with `config` cannot use."""
  check_numbers(config)
  # The cheap checks first: a wrong name or workdir must not wait for a download or generation.
  check_model_name(config.model.name)
  check_workdir(workdir, config.model.name)
  # Read in full and dropped: training reads it again, from the page cache, and main need not
  # hold hundreds of megabytes through the run.
  data.load(data.dataset_path(config.data))


def check_numbers(config: ml_collections.ConfigDict) -> None:
  """Raises a ConfigError for a size, count or rate that is not a positive number."""
  for field in _POSITIVE_INTS:
    value = _field(config, field)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ConfigError(f"config.{field}={value!r}: expected a whole number of at least 1")
  for field in _POSITIVE_FLOATS:
    value = _field(config, field)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
        math.isfinite(value) and value > 0):
      raise ConfigError(f"config.{field}={value!r}: expected a positive number")


def _field(config: ml_collections.ConfigDict, dotted: str):
  for name in dotted.split("."):
    if name not in config:
      raise ConfigError(f"the config has no field {dotted}: configs/default.py lists them all")
    config = config[name]
  return config


def check_model_name(name: str) -> None:
  from svhn_jax import models

  if not isinstance(name, str) or name.lower() not in models.MODELS:
    raise ConfigError(f"config.model.name={name!r}: expected one of {', '.join(models.MODELS)}")


def check_workdir(workdir: str | os.PathLike, model_name: str) -> None:
  """Raises unless `workdir` is absent or a folder whose checkpoints, if any, are of
  `model_name`: resuming another model's weights cannot work."""
  workdir = Path(workdir)
  if workdir.exists() and not workdir.is_dir():
    raise ConfigError(f"--workdir={workdir} is a file; expected a folder for the run's outputs")
  from svhn_jax import checkpoint

  saved = checkpoint.saved_model_name(workdir)
  if saved is not None and saved.lower() != model_name.lower():
    raise CheckpointError(
        f"{workdir / 'checkpoints'} holds checkpoints of model {saved!r}, but "
        f"config.model.name is {model_name!r}: resuming them cannot work. Use another --workdir "
        f"for {model_name!r}, or rerun with --config.model.name={saved} to resume that run.")
