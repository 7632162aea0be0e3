"""Settings the experiment scripts share, and how they compose into one run's config.

`models` names the runs (configs/<name>.py, the study's per-model settings); each `train` field
left at None keeps that model's own value, and one set overrides it for every model, e.g.
`--config.train.epochs=3`. The data default is the offline synthetic set of configs/demo.py.
"""

import ml_collections
from ml_collections import config_dict

from configs import ann1, ann2, cnn1, cnn2, demo

MODEL_CONFIGS = {"ann1": ann1, "ann2": ann2, "cnn1": cnn1, "cnn2": cnn2}
TRAIN_OVERRIDES = {"epochs": int, "batch_size": int, "learning_rate": float,
                   "eval_batch_size": int}


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0  # the first seed; --seeds=N runs seed, seed + 1, ..., seed + N - 1
  config.models = "ann1,ann2,cnn1,cnn2"
  config.data = demo.get_config().data
  config.train = ml_collections.ConfigDict(
      {name: config_dict.placeholder(kind) for name, kind in TRAIN_OVERRIDES.items()})
  return config


def model_names(config: ml_collections.ConfigDict) -> list[str]:
  names = [name.strip().lower() for name in config.models.split(",") if name.strip()]
  unknown = [name for name in names if name not in MODEL_CONFIGS]
  if unknown or not names:
    raise ValueError(f"config.models={config.models!r}: expected a comma-separated list of "
                     f"{', '.join(MODEL_CONFIGS)}")
  return names


def run_config(config: ml_collections.ConfigDict, model: str,
               preprocess: str | None = None) -> ml_collections.ConfigDict:
  """The run config of `model` under the study's settings: its own file, then the shared data,
  seed and training overrides, and `preprocess` if given."""
  run = MODEL_CONFIGS[model].get_config()
  run.seed = config.seed
  run.data = ml_collections.ConfigDict(config.data.to_dict())
  if preprocess is not None:
    run.data.preprocess = preprocess
  for name in TRAIN_OVERRIDES:
    if config.train[name] is not None:
      run.train[name] = config.train[name]
  return run
