"""Shared fixtures: small datasets in the study's HDF5 layout, finished tiny runs, and one XLA
compilation cache for the session.

Helper functions are in tests/support.py.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import jax
import pytest

from support import digits_dataset, tiny_config, tiny_dataset
from svhn_jax import data, train

_cache_key = pytest.StashKey[str]()
_XLA_CACHE_VARS = {"JAX_COMPILATION_CACHE_DIR": None,
                   "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                   "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def pytest_configure(config):
  """One persistent XLA compilation cache for this session, here and in every process the tests
  start: the many tiny runs compile the same few programs, and loading one is much faster than
  compiling it. A cached program is the compiled one, so no result changes. The data cache
  ($SVHN_JAX_CACHE, with the digest memo of svhn_jax.content_cache) goes there too, never into
  the user's ~/.cache."""
  cache = tempfile.mkdtemp(prefix="svhn_jax_tests_xla_")
  config.stash[_cache_key] = cache
  os.environ["SVHN_JAX_CACHE"] = os.path.join(cache, "data")
  for name, value in _XLA_CACHE_VARS.items():
    os.environ[name] = value or cache
  jax.config.update("jax_compilation_cache_dir", cache)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_unconfigure(config):
  shutil.rmtree(config.stash.get(_cache_key, ""), ignore_errors=True)


@pytest.fixture(scope="session")
def digits_h5(tmp_path_factory) -> Path:
  """All 1,797 digits, 1200/300/297."""
  return data.save_h5(tmp_path_factory.mktemp("digits") / "digits.h5", digits_dataset())


@pytest.fixture(scope="session")
def tiny_h5(tmp_path_factory) -> Path:
  """192/64/64 digits: enough for a model to move, small enough for a seconds-long run."""
  return data.save_h5(tmp_path_factory.mktemp("tiny") / "tiny.h5", tiny_dataset())


@pytest.fixture(scope="session")
def finished_run(tiny_h5, tmp_path_factory) -> Callable[..., Path]:
  """`finished_run(name, preprocess='raw')`: the workdir of `support.tiny_config(name)` trained
  to the end, once per session. Tests that change a workdir copy it first (`copied_run`)."""
  runs: dict[tuple[str, str], Path] = {}

  def get(name: str, preprocess: str = "raw") -> Path:
    if (name, preprocess) not in runs:
      config = tiny_config(name, tiny_h5)
      config.data.preprocess = preprocess
      workdir = tmp_path_factory.mktemp(f"finished_{name}_{preprocess}") / "run"
      train.train_and_evaluate(config, workdir)
      runs[name, preprocess] = workdir
    return runs[name, preprocess]

  return get


@pytest.fixture
def copied_run(finished_run, tmp_path) -> Callable[..., Path]:
  """`copied_run(name, preprocess='raw')`: a copy of `finished_run`'s workdir in tmp_path."""
  def copy(name: str, preprocess: str = "raw") -> Path:
    return Path(shutil.copytree(finished_run(name, preprocess), tmp_path / f"{name}_{preprocess}"))

  return copy
