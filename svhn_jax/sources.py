"""Where `config.data` points: the data file a run reads, downloaded or generated once.

This module names the sources and dispatches to their modules (`data` for the study's file,
`synthetic` for the offline generator); neither of those imports the other.
"""

from __future__ import annotations

import logging
from pathlib import Path

import ml_collections

from svhn_jax import data, synthetic
from svhn_jax.config import DATA_SOURCES
from svhn_jax.errors import ConfigError, DataError


def dataset_path(data_cfg: ml_collections.ConfigDict) -> Path:
  """The HDF5 file that `config.data` asks for: `path` if set (it must exist); else the study's
  file, downloaded once into the cache (source 'svhn'), or the generated file of the configured
  sizes and seed, made once into the cache (source 'synthetic'). Raises ConfigError for an
  unknown source and DataError for a missing file or a failed download."""
  if data_cfg.source not in DATA_SOURCES:
    raise ConfigError(f"config.data.source={data_cfg.source!r}: expected one of "
                      f"{', '.join(DATA_SOURCES)}")
  if data_cfg.path:
    path = Path(data_cfg.path).expanduser()
    if not path.is_file():
      raise DataError(f"config.data.path={data_cfg.path!r}: no such file")
    return path
  if data_cfg.source == "svhn":
    return data.fetch(data_cfg.cache_dir)
  return synthetic_path(data_cfg)


def synthetic_path(data_cfg: ml_collections.ConfigDict) -> Path:
  """The cached synthetic file of `config.data.synthetic`'s sizes and seed, generated if absent;
  named by the generator's version, so a changed generator never reuses stale data."""
  sizes = data_cfg.synthetic
  path = data.default_cache_dir(data_cfg.cache_dir) / (
      f"synthetic_v{synthetic.VERSION}_{sizes.train}_{sizes.val}_{sizes.test}_seed{sizes.seed}.h5")
  if not path.exists():
    logging.info("Generating synthetic SVHN-like data into %s", path)
    synthetic.write(path, train=sizes.train, val=sizes.val, test=sizes.test, seed=sizes.seed)
  return path


def load(data_cfg: ml_collections.ConfigDict) -> tuple[data.Dataset, Path]:
  """The validated splits `config.data` asks for, and the file they came from."""
  path = dataset_path(data_cfg)
  return data.load(path), path
