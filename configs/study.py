"""Settings the experiment scripts share, and how they compose into one run's config.

`models` names the runs by config file (configs/<name>.py: the study's per-model settings, or
any other run config such as `wrn_cpu`), as a list, or on the command line as
`--config.models=ann1,cnn2,wrn_cpu`; each `train` field left at None
keeps that config's own value, and one set overrides it for every run, e.g.
`--config.train.epochs=3`; the length set in epochs or in steps (`train.total_steps`) replaces
each run's, however that run counts it. The data default is the offline synthetic set of configs/demo.py;
`data.train_on_val` left at None (`auto`) likewise keeps each run config's own (the Wide ResNet
recipes train on the training and validation crops, the study's models on the training ones),
and `--config.data.train_on_val=true|false` sets it for every run.

The shared data goes to every run, so it may hold what one run does not read (the generated
data's sizes beside a data.path, data.numbers in a digit run; `Field.applies_to` in
svhn_jax/config.py): such a field is ignored by that run (left at configs/default.py's value in
its config), not refused; one set away from this file's value that no run reads is refused.
"""

import importlib
from pathlib import Path

import ml_collections
from ml_collections import config_dict

from configs import demo
from svhn_jax import config as config_lib
from svhn_jax.errors import ConfigError

TRAIN_OVERRIDES = {"epochs": int, "total_steps": int, "batch_size": int, "learning_rate": float,
                   "eval_batch_size": int}


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0  # the first seed; --seeds=N runs seed, seed + 1, ..., seed + N - 1
  config.models = ["ann1", "ann2", "cnn1", "cnn2"]
  config.data = experiment_data(demo.get_config().data)
  config.train = ml_collections.ConfigDict(
      {name: config_dict.placeholder(kind) for name, kind in TRAIN_OVERRIDES.items()})
  return config


def experiment_data(data: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A run config's `data` made an experiment's: `train_on_val` None (each run config's own)."""
  data = ml_collections.ConfigDict(data.to_dict())
  data.train_on_val = config_dict.placeholder(bool)
  return data


def run_config_names() -> list[str]:
  """The run configs an experiment can name, sorted: each configs/<name>.py whose config has a
  `model` (not the experiments' own, such as this one), other than `default`'s bare defaults."""
  names = []
  for path in sorted(Path(__file__).parent.glob("*.py")):
    if path.stem in ("__init__", "default", "study"):
      continue
    if "model" in importlib.import_module(f"configs.{path.stem}").get_config():
      names.append(path.stem)
  return names


def model_names(config: ml_collections.ConfigDict) -> list[str]:
  """The configs the experiment runs, checked (ConfigError names the bad entry)."""
  config_lib.validate(config, config_lib.STUDY_SCHEMA)
  known = run_config_names()
  unknown = [name for name in config.models if name not in known]
  if unknown:
    raise ConfigError(f"config.models={','.join(config.models)}: no run config "
                      f"configs/{unknown[0]}.py; expected names from {', '.join(known)}")
  refuse_unread(config, list(config.models))
  return list(config.models)


def refuse_unread(config: ml_collections.ConfigDict, names: list[str]) -> None:
  """Raises ConfigError for a shared field set away from this file's value that none of the
  runs `names` reads (`config.refuse_unread`'s line, with the first run's settings)."""
  shared = config_lib.flat(config.to_dict())
  runs = [config_lib.flat(_shared_run(config, name).to_dict()) for name in names]
  baseline = config_lib.flat(get_config().to_dict())
  for dotted in config_lib.STUDY_SCHEMA:
    field = config_lib.RUN_SCHEMA.get(dotted)
    if (field is not None and not field.ignored_unread and shared[dotted] != baseline.get(dotted)
        and not any(config_lib.applies(field, run) for run in runs)):
      raise ConfigError(config_lib.unread_message(dotted, runs[0]))


def run_config(config: ml_collections.ConfigDict, name: str,
               preprocess: str | None = None) -> ml_collections.ConfigDict:
  """The run config of configs/<name>.py under the experiment's settings: its own file, then
  the shared data (its `train_on_val` where the experiment leaves that None), seed and
  training overrides, and `preprocess` if given; the shared fields the run does not read at
  configs/default.py's values."""
  run = _shared_run(config, name, preprocess)
  defaults = config_lib.default_values()
  unread = config_lib.unread(config_lib.flat(run.to_dict())) & set(config_lib.STUDY_SCHEMA)
  config_lib.apply_overrides(run, {dotted: defaults[dotted] for dotted in unread})
  return run


def _shared_run(config: ml_collections.ConfigDict, name: str,
                preprocess: str | None = None) -> ml_collections.ConfigDict:
  run = importlib.import_module(f"configs.{name}").get_config()
  config_lib.move_renamed(run)
  run.seed = config.seed
  own_train_on_val = run.data.train_on_val
  run.data = ml_collections.ConfigDict(config.data.to_dict())
  if run.data.train_on_val is None:
    run.data.train_on_val = own_train_on_val
  if preprocess is not None:
    run.data.preprocess = preprocess
  for field in TRAIN_OVERRIDES:
    if config.train[field] is not None:
      run.train[field] = config.train[field]
  # The runs' length set here, in epochs or in steps, replaces each run config's, in whichever
  # it was given (both set here is refused by the run's validation).
  if config.train.epochs is not None and config.train.total_steps is None:
    run.train.total_steps = run.train.warmup_steps = run.train.eval_every_steps = None
  if config.train.total_steps is not None and config.train.epochs is None:
    run.train.epochs = None
  return run
