"""The flags and settings the multi-seed experiments share: config, results, runs, seeds."""

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import ml_collections
from absl import flags

from configs import study
from svhn_jax import cli, multiseed, report, tasks, train
from svhn_jax import config as config_lib
from svhn_jax.errors import ConfigError

FLAGS = flags.FLAGS


class Settings(NamedTuple):
  config: ml_collections.ConfigDict
  results_dir: Path
  runs_dir: Path
  seeds: list[int]


def define_flags(config_file: str, results_dir: str, unit: str) -> None:
  """Defines --config, --results_dir, --runs_dir, --seeds and --multiseed; `unit` is what
  trains each group of seeds ('model' or 'arm')."""
  cli.define_config(config_file, "The study's settings.")
  flags.DEFINE_string("results_dir", results_dir, "Where report.md and figures go.")
  flags.DEFINE_string("runs_dir", None,
                      "Where the runs' workdirs go (default: <results_dir>/runs).")
  flags.DEFINE_integer("seeds", 3, f"Seeds per {unit}: config.seed, config.seed + 1, ...",
                       lower_bound=1)
  flags.DEFINE_enum("multiseed", "auto", multiseed.MODES, f"vmap: each {unit}'s seeds in one "
                    "vmapped program; loop: one after another; auto: vmap unless the CPU would "
                    "run it slower (convolutions) or it does not fit in memory.")


def settings() -> Settings:
  """The parsed flags: the config, the folders, and the seeds config.seed .. + --seeds - 1."""
  config, out = FLAGS.config, Path(FLAGS.results_dir)
  return Settings(config, out, Path(FLAGS.runs_dir or out / "runs"),
                  [config.seed + k for k in range(FLAGS.seeds)])


def trained_runs(config: ml_collections.ConfigDict, name: str, seeds: list[int], runs_dir: Path,
                 mode: str, preprocess: str | None = None) -> list[report.Run]:
  """The seeds of configs/<name>.py under the experiment's settings (`study.run_config`), each
  trained or reused in `<runs_dir>/<name>[_<preprocess>]/seed_<s>` (`multiseed.train_seeds`),
  as read back from their workdirs."""
  run = study.run_config(config, name, preprocess=preprocess)
  group = multiseed.group_dir(runs_dir, run, name)
  multiseed.train_seeds(run, seeds, group, mode=mode)
  return [report.read_run(multiseed.seed_workdir(group, s)) for s in seeds]


def check_runs(config: ml_collections.ConfigDict, arms: Sequence[tuple[str, str | None]],
               seeds: list[int], runs_dir: Path) -> None:
  """Checks every run an experiment will train before the first starts, so that a config it
  cannot run stops it at once rather than after hours: each (name, preprocess) of `arms` built
  as `trained_runs` builds it, for every seed, validated as a run config; a digit classifier
  (these experiments score digits: config.task=number is refused); and its workdir free or
  holding a run of the same settings. Raises ConfigError naming the config file."""
  for name, preprocess in arms:
    run = study.run_config(config, name, preprocess=preprocess)
    if not tasks.same(run, "digit"):
      raise ConfigError(f"config.models: configs/{name}.py is not a digit run "
                        f"(config.task={run.task}), and this experiment scores digit "
                        f"classifiers; train it alone with python -m svhn_jax.main "
                        f"--config=configs/{name}.py")
    group = multiseed.group_dir(runs_dir, run, name)
    for seed in seeds:
      one = train.seed_config(run, seed)
      try:
        config_lib.validate(one)
      except ConfigError as e:
        raise ConfigError(f"configs/{name}.py under the experiment's settings: {e}") from None
      multiseed.check_reusable(multiseed.seed_workdir(group, seed), one)
