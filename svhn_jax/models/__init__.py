"""The models a config may name (config.model.name), and how to build one from its config block.

  study.py          ANN1, ANN2, CNN1, CNN2 of the Keras study; `Sequential`; Keras's `summary`
                    and `param_counts`
  wrn.py            Wide ResNets (Zagoruyko & Komodakis 2016), options in config.model.wrn
  airbench.py       airbench's small all-convolutional net (Keller Jordan's CIFAR-10 speedruns),
                    its first layer patch-whitened from `sample`; options in config.model.airbench
  number_reader.py  the multi-digit reader of whole house numbers (Goodfellow et al. 2013),
                    options in config.model.reader
  reader_sizes.py   the reader's sizes, without JAX (the config schema's list)

`REGISTRY` maps each name to the `ModelSpec` that a module defines, imported on first use:
importing this package imports no Flax, so config.py takes `MODEL_NAMES` from it. A config may
also name a spec outside the package, `--config.model.name=my_project.toy:MODEL`.

To add a model: write a module with a builder

  def build(options, *, rngs, channels, outputs, dtype, sample) -> nnx.Module

returning a model whose `__call__(x, *, train=False, rngs=None)` maps float32 images
(N, H, W, channels) in [0, 1] to logits (N, outputs), whose state is `nnx.Param` +
`nnx.BatchStat`, and which has `channels` and `keras_layers()` for `study.summary` (a
`study.Sequential` has both); define `MODEL = ModelSpec(build, convolutional=..., block=...,
outputs=...)` there; add `"name": "package.module:MODEL"` below (or name the spec in the config).
A model with options of its own reads them from a block, config.model.<block> (`ModelSpec.block`),
as a plain dict, and nothing else of the config. Outside the package, the config files that use
it add the block (`config.model.mlp = ml_collections.ConfigDict({"hidden": 32})`; then
`--config.model.mlp.hidden=64` works on the command line), its builder checks the values
(ConfigError), and a resume refuses any change to it; inside the package, the block also goes in
configs/default.py and config.py's RUN_SCHEMA (typed, ranged, `applies_to` via
`Declares(REGISTRY, "block", ...)`), as config.model.wrn and config.model.reader do.
tests/toy_model.py has one of each kind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from svhn_jax import registry
from svhn_jax.errors import ConfigError

REGISTRY = registry.Registry("model.name", kind="svhn_jax.models:ModelSpec", entries={
    "ann1": "svhn_jax.models.study:ANN1",
    "ann2": "svhn_jax.models.study:ANN2",
    "cnn1": "svhn_jax.models.study:CNN1",
    "cnn2": "svhn_jax.models.study:CNN2",
    "wrn": "svhn_jax.models.wrn:WRN",
    "airbench": "svhn_jax.models.airbench:AIRBENCH",
    "multidigit": "svhn_jax.models.number_reader:READER",
})


class ModelSpec(NamedTuple):
  """A registered model: its builder and what is known of it without building it.

  `build(options, *, rngs, channels, outputs, dtype, sample)`: the model, initialized from
  `rngs`, for images of `channels` channels, giving `outputs` logits, computing in `dtype`
  (config.train.compute_dtype, a name; a model may compute in float32 whatever it is);
  `options` is config.model.<block> as a dict, or, with `block` None, config.model's shared
  fields (impl); `sample` a batch of training images (N, H, W, channels) float32 for a model
  that initializes from the data's statistics, or None. Raises ConfigError for options it
  cannot build.
  `convolutional`: whether it convolves (XLA:CPU runs convolutions on one thread per call, so
  seeds are looped rather than vmapped there). `outputs`: its logits unless a task asks for
  another count. `image_size`: the side of the square input it is summarized at.
  `create`: the builder by keyword (`create_model`), for code and tests, or None.
  """

  build: Callable[..., Any]
  convolutional: bool
  block: str | None
  outputs: int
  image_size: int = 32
  create: Callable[..., Any] | None = None


def spec(name: str) -> ModelSpec:
  """The registry entry `name` (case-insensitive) or a 'module:attribute' spec names; ConfigError
  for an unknown name, a spec that does not import, or an attribute that is no `ModelSpec`."""
  return REGISTRY.get(name)  # the registry checks its kind, ModelSpec


def _plain(value: Any) -> Any:
  return value.to_dict() if hasattr(value, "to_dict") else value


def build(model_cfg: Mapping, *, seed: Any, channels: int, dtype: Any = "float32",
          outputs: int | None = None, sample: Any = None) -> Any:
  """The model config.model names (`model_cfg`: config.model, a ConfigDict or dict), initialized
  from `seed` (an int or a JAX key), for images of `channels` channels (1 grey, 3 colour).

  Its builder gets config.model.<its block> only (or, without a block, the shared fields:
  impl). `dtype`: config.train.compute_dtype. `outputs`: the logits the task asks for (None: the
  model's own, `ModelSpec.outputs`; at that default the parameter tree is the model's usual).
  `sample`: training images (N, H, W, channels) float32, passed through to a model that
  initializes from data statistics (airbench: its patch-whitened first layer), or None. Raises
  ConfigError for an unknown name or options the model cannot build.
  """
  from flax import nnx

  model_cfg = _plain(model_cfg)
  entry = spec(model_cfg["name"])
  if entry.block is None:
    options = {k: v for k, v in model_cfg.items() if k != "name" and not isinstance(v, Mapping)}
  elif entry.block in model_cfg:
    options = dict(model_cfg[entry.block])
  else:
    raise ConfigError(f"config.model.name={model_cfg['name']!r}: the config has no block "
                      f"config.model.{entry.block} for its options")
  return entry.build(options, rngs=nnx.Rngs(seed), channels=channels,
                     outputs=entry.outputs if outputs is None else outputs, dtype=dtype,
                     sample=sample)


def create_model(name: str, *, seed: Any, channels: int = 1, **options: Any) -> Any:
  """The model `name` built by keyword (`ModelSpec.create`) from `seed`, for code and tests:
  `options` are that model's own (study: impl, pool, outputs; wrn: depth, width, dropout,
  standardize, dtype, outputs; multidigit: size, dropout, outputs; airbench: block1..3,
  bn_momentum, whiten_kernel, whiten_eps, sample, dtype, outputs), another's a TypeError.
  Raises ConfigError for an unknown name, a model without `create`, or options it cannot build."""
  from flax import nnx

  entry = spec(name)
  if entry.create is None:
    raise ConfigError(f"config.model.name={name!r}: builds from a config only (models.build)")
  return entry.create(rngs=nnx.Rngs(seed), channels=channels, **options)
