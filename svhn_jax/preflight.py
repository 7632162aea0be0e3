"""Checks of everything a run takes from the user, made before anything is written or JAX starts.

A bad config value, data file or workdir is reported in a second or two with one line that says
what is wrong, rather than after JAX's start-up or a first epoch: the config against its schema
(`config.validate`), the workdir against the run it already holds (its config.json, the data's
fingerprint in data.json, the checkpoints' layout), then the data file, read in full.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import ml_collections

from svhn_jax import checkpoint, models, tasks
from svhn_jax import config as config_lib
from svhn_jax.datasets import sources
from svhn_jax.errors import CheckpointError, ConfigError

_START_OVER = "use another --workdir, or rerun with --restart to discard it and start over"


def check_run(config: ml_collections.ConfigDict, workdir: str | os.PathLike, *,
              restart: bool = False) -> sources.Loaded:
  """Raises an SvhnError naming the field, file or folder that a run with `config` cannot use;
  returns the data, read once, for training to take.

  With `restart`, the workdir's previous run is about to be discarded, so it is not compared.
  """
  config_lib.validate(config)
  check_optimizer_fits_model(config)
  workdir = Path(workdir)
  check_workdir(workdir)
  if not restart:
    check_resumable(config, workdir)
  # Read in full once: training takes it from here (`sources.Loaded.take`).
  loaded = sources.Loaded(*tasks.get(config).load(config))
  if not restart:
    check_same_data(workdir, loaded.fingerprint)
  return loaded


def check_optimizer_fits_model(config: ml_collections.ConfigDict) -> None:
  """Muon (`train.optimizer=muon`) orthogonalizes convolution filters: a model without any
  (`models.ModelSpec.convolutional` false: ANN1, ANN2) would train none of its weights with it.
  Raises ConfigError naming both fields."""
  if (config.train.optimizer == "muon"
      and not models.spec(config.model.name).convolutional):
    raise ConfigError(f"config.train.optimizer=muon: config.model.name={config.model.name} has "
                      "no convolution filters for Muon; expected a convolutional model "
                      "(cnn1, cnn2, wrn, airbench) or another optimizer (sgd, adam)")


def check_workdir(workdir: str | os.PathLike) -> None:
  """Raises ConfigError if `workdir` is a file: the run needs a folder for its outputs."""
  workdir = Path(workdir)
  if workdir.exists() and not workdir.is_dir():
    raise ConfigError(f"--workdir={workdir} is a file; expected a folder for the run's outputs")


def check_resumable(config: ml_collections.ConfigDict, workdir: Path) -> None:
  """Raises unless `workdir` is new or holds a run that `config` may continue: the same values
  of every field that changes what is computed (`config.Field.resumable`), and checkpoints in
  this version's layout."""
  checkpoint.refuse_legacy(workdir)
  checkpoint.refuse_other_model(workdir, config.model.name)
  saved_path = workdir / "config.json"
  if not saved_path.is_file():
    return
  try:
    saved = json.loads(saved_path.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise CheckpointError(f"{saved_path} is not the JSON config a run writes ({e}); "
                          f"{_START_OVER}") from e
  conflicts = config_lib.resume_conflicts(saved, config_lib.to_dict(config))
  if conflicts:
    raise ConfigError(f"{workdir} holds a run made with other settings ({'; '.join(conflicts)}); "
                      f"resuming it would mix two setups: {_START_OVER}")


def check_same_data(workdir: Path, fingerprint: str) -> None:
  """Raises unless the data a resumed run reads is the data it was trained on."""
  recorded = workdir / "data.json"
  if not recorded.is_file():
    return
  was = json.loads(recorded.read_text())
  if was.get("fingerprint") != fingerprint:
    raise ConfigError(f"{workdir} was trained on other data ({was.get('path')}, fingerprint "
                      f"{was.get('fingerprint')}; this config's data has {fingerprint}); "
                      f"{_START_OVER}")
