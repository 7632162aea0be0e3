"""Shared fixtures: small datasets in the study's HDF5 layout, finished tiny runs, and one XLA
compilation cache for the session.

Helper functions are in tests/support.py.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import jax
import pytest

from support import digits_dataset, tiny_config, tiny_dataset
from svhn_jax import train
from svhn_jax.datasets import study_h5

_cache_key = pytest.StashKey[str]()
_compiles_key = pytest.StashKey[dict]()
_owned_key = pytest.StashKey[bool]()
_SHARED_CACHE_VAR = "SVHN_JAX_TESTS_CACHE"
_XLA_CACHE_VARS = {"JAX_COMPILATION_CACHE_DIR": None,
                   "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
                   "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def pytest_configure(config):
  """One persistent XLA compilation cache for this session, here and in every process the tests
  start: the many tiny runs compile the same few programs, and loading one is much faster than
  compiling it. A cached program is the compiled one, so no result changes. The data cache
  ($SVHN_JAX_CACHE, with the digest memo of svhn_jax.datasets.content_cache) goes there too, never into
  the user's ~/.cache."""
  # pytest-xdist's workers inherit the controller's environment: they share its cache, and the
  # controller, which made it, removes it.
  cache = os.environ.get(_SHARED_CACHE_VAR)
  if cache is None:
    cache = os.environ[_SHARED_CACHE_VAR] = tempfile.mkdtemp(prefix="svhn_jax_tests_xla_")
    config.stash[_owned_key] = True
  config.stash[_cache_key] = cache
  os.environ["SVHN_JAX_CACHE"] = os.path.join(cache, "data")
  for name, value in _XLA_CACHE_VARS.items():
    os.environ[name] = value or cache
  jax.config.update("jax_compilation_cache_dir", cache)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  if os.environ.get("SVHN_JAX_TEST_COMPILES"):
    config.stash[_compiles_key] = {}
    jax.monitoring.register_event_listener(lambda event, **_: _events.update([event]))


def pytest_unconfigure(config):
  if config.stash.get(_owned_key, False):
    shutil.rmtree(config.stash[_cache_key], ignore_errors=True)
    os.environ.pop(_SHARED_CACHE_VAR, None)


# SVHN_JAX_TEST_COMPILES=N with `-n 0` (one process: xdist workers keep their counts): the N
# tests (setup, call and teardown together) that compiled the most XLA programs, after the run.
# Every compile is written to the session's cache, so the cache's growth counts those of the
# processes a test starts too.
_events: Counter = Counter()


def _cache_entries(config) -> int:
  return sum(1 for name in os.listdir(config.stash[_cache_key]) if name.endswith("-cache"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
  counts = item.config.stash.get(_compiles_key, None)
  if counts is None:
    return (yield)
  before, entries, start = _events.copy(), _cache_entries(item.config), time.monotonic()
  try:
    return (yield)
  finally:
    here = _events - before
    counts[item.nodeid] = (_cache_entries(item.config) - entries,
                           here["/jax/compilation_cache/cache_misses"],
                           here["/jax/compilation_cache/cache_hits"], time.monotonic() - start)


def pytest_terminal_summary(terminalreporter, config):
  counts = config.stash.get(_compiles_key, None)
  if not counts:
    return
  top = int(os.environ["SVHN_JAX_TEST_COMPILES"])
  terminalreporter.section(f"XLA compilations, the {top} tests that compiled most")
  terminalreporter.write_line("all processes | this process | cache hits | seconds | test")
  for nodeid, (entries, misses, hits, seconds) in sorted(
      counts.items(), key=lambda kv: -kv[1][0])[:top]:
    terminalreporter.write_line(f"{entries:13d} | {misses:12d} | {hits:10d} | {seconds:7.1f} | "
                                f"{nodeid}")
  totals = [sum(c[k] for c in counts.values()) for k in range(3)]
  terminalreporter.write_line(f"{totals[0]:13d} | {totals[1]:12d} | {totals[2]:10d} | total")


@pytest.fixture(scope="session")
def digits_h5(tmp_path_factory) -> Path:
  """All 1,797 digits, 1200/300/297."""
  return study_h5.save_h5(tmp_path_factory.mktemp("digits") / "digits.h5", digits_dataset())


@pytest.fixture(scope="session")
def tiny_h5(tmp_path_factory) -> Path:
  """192/64/64 digits: enough for a model to move, small enough for a seconds-long run."""
  return study_h5.save_h5(tmp_path_factory.mktemp("tiny") / "tiny.h5", tiny_dataset())


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
