"""Several seeds of one run config: trained together through the trainer's seed axis (vmap), or
one after another, each into its own workdir, reusing finished ones.

Vmapped, the seeds go through `train.train_seeds`, the same `fit` as a single run with a
leading seed axis on the state (see `trainer.Trainer`). The loop is `train.train_and_evaluate`
per seed. The loop is used where the seeds do not fit in memory together, for a seed with a
half-finished workdir (the loop resumes it exactly), and by 'auto' for convolutional models on
the CPU: XLA:CPU turns a vmapped convolution into a grouped one that it runs as a dense
convolution over all groups, about 3x slower than the loop for 3 seeds (measured, CNN2, batch
128); on GPUs grouped convolutions are native.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import ml_collections

from svhn_jax import config as config_lib
from svhn_jax import fileio, models, train
from svhn_jax.errors import ConfigError

MODES = ("auto", "vmap", "loop")
TIMING_FILE = "multiseed.json"
# Share of free memory the vmapped step may plan to use: XLA's estimate leaves out the dataset
# and the copies of the best and latest states.
MEMORY_SHARE = 0.7


class NoRoom(Exception):
  """The seeds' vmapped step needs more memory than is free."""


def seed_workdir(group_dir: str | os.PathLike, seed: int) -> Path:
  return Path(group_dir) / f"seed_{seed}"


def group_dir(runs_dir: str | os.PathLike, config: ml_collections.ConfigDict,
              name: str | None = None) -> Path:
  """Where the seeds of `config` live: named by `name` (its config file's; default the model's)
  and preprocessing, so that experiments sharing a runs folder share runs (a settings mismatch
  is caught by `check_reusable`)."""
  suffix = "" if config.data.preprocess == "raw" else f"_{config.data.preprocess}"
  return Path(runs_dir) / f"{name or config.model.name}{suffix}"


def read_timing(group: str | os.PathLike) -> dict | None:
  """What `train_seeds` recorded about the last training in `group`: mode, seeds, seconds."""
  path = Path(group) / TIMING_FILE
  return json.loads(path.read_text()) if path.exists() else None


def train_seeds(config: ml_collections.ConfigDict, seeds: Sequence[int],
                group_dir: str | os.PathLike, *, mode: str = "auto") -> list[dict]:
  """Trains `config` once per seed into `group_dir/seed_<s>`, reusing finished workdirs.

  Returns the seeds' test metrics in order. When any seed was trained, `group_dir/multiseed.json`
  records how (vmap or loop), which seeds and the seconds it took. Raises ConfigError for a bad
  mode or seed list, or a workdir made with other settings.
  """
  if mode not in MODES:
    raise ConfigError(f"--multiseed={mode!r}: expected one of {', '.join(MODES)}")
  seeds = [int(s) for s in seeds]
  if not seeds or len(set(seeds)) != len(seeds):
    raise ConfigError(f"seeds {seeds}: expected distinct seeds, at least one")
  config_lib.validate(config)
  workdirs = {s: seed_workdir(group_dir, s) for s in seeds}
  for s in seeds:
    check_reusable(workdirs[s], train.seed_config(config, s))
  pending = [s for s in seeds if not (workdirs[s] / "test_metrics.json").exists()]
  started = [s for s in pending if _has_checkpoint(workdirs[s])]
  fresh = [s for s in pending if s not in started]
  if pending:
    start = time.perf_counter()

    def record(used: str, done: list[int]) -> None:
      fileio.write_json(Path(group_dir) / TIMING_FILE,
                        {"mode": used, "seeds": done, "seconds": time.perf_counter() - start})

    record(_train(config, fresh, started, workdirs, mode, record), pending)
  return [json.loads((workdirs[s] / "test_metrics.json").read_text()) for s in seeds]


def _train(config, fresh: list[int], started: list[int], workdirs: dict[int, Path],
           mode: str, record: Callable[[str, list[int]], None]) -> str:
  """Trains the pending seeds; returns the mode that trained the fresh ones. Seeds trained one
  at a time are `record`ed as each ends, so a run stopped between them still says how long the
  finished ones took."""
  used = chosen_mode(mode, config, len(fresh)) if fresh else "loop"
  if used == "vmap":
    try:
      train.train_seeds(config, fresh, [workdirs[s] for s in fresh], check_memory=_check_room)
    except (NoRoom, jax.errors.JaxRuntimeError) as e:
      if not isinstance(e, NoRoom) and "RESOURCE_EXHAUSTED" not in str(e):
        raise
      logging.warning("Training seeds %s one at a time: %s", fresh, e)
      used = "loop"
  loop = started + (fresh if used == "loop" else [])
  done = [s for s in fresh if s not in loop]
  for s in sorted(loop):
    train.train_and_evaluate(train.seed_config(config, s), workdirs[s])
    done.append(s)
    record(used, sorted(done))
  return used


def chosen_mode(mode: str, config: ml_collections.ConfigDict, num_seeds: int) -> str:
  """'vmap' or 'loop' for `num_seeds` fresh seeds of `config`."""
  if mode != "auto":
    return mode
  if num_seeds < 2:
    return "loop"
  if jax.default_backend() == "cpu" and models.spec(config.model.name).convolutional:
    return "loop"
  return "vmap"


def check_reusable(workdir: Path, config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError if `workdir` holds a run made with settings other than `config`."""
  saved = workdir / "config.json"
  if not saved.exists():
    return
  have = config_lib.flat(config_lib.normalize(json.loads(saved.read_text())))
  want = config_lib.flat(config_lib.to_dict(config))
  # As on resume: a field neither run reads changes nothing (config.resume_conflicts).
  neither = config_lib.unread(have) & config_lib.unread(want)
  # auto keeps the dtype the saved run resolved (train.resolved_dtype).
  auto = {"train.compute_dtype"} if want.get("train.compute_dtype") == "auto" else set()
  fields = sorted(k for k in set(want) | set(have)
                  if want.get(k) != have.get(k) and k not in neither | auto)
  if fields:
    raise ConfigError(f"{workdir} holds a run made with other settings ({', '.join(fields)}). "
                      "Use another --runs_dir (or --results_dir, where the runs go under it), "
                      "or delete that workdir to train it again.")


def _has_checkpoint(workdir: Path) -> bool:
  latest = workdir / "checkpoints" / "latest"
  return latest.is_dir() and any(p.name.isdigit() for p in latest.iterdir())


def _check_room(needed: int) -> None:
  free = free_memory()
  if free is not None and needed > MEMORY_SHARE * free:
    raise NoRoom(f"the vmapped step needs {needed / 2**30:.2f} GiB, and only "
                 f"{free / 2**30:.2f} GiB of device memory is free")


def free_memory() -> int | None:
  """Bytes free on the default device: the accelerator's own memory, or the host's for the CPU."""
  stats = jax.devices()[0].memory_stats()
  if stats and "bytes_limit" in stats:
    return stats["bytes_limit"] - stats.get("bytes_in_use", 0)
  try:
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  except (ValueError, OSError, AttributeError):
    return None
