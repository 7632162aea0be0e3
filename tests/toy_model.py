"""A model added outside the package, as a researcher would: one module, no edit elsewhere.

Reachable from any config as `--config.model.name=tests.toy_model:MODEL` (the models registry
imports the 'module:attribute' spec). A tiny MLP: Flatten -> Dense(8, relu) -> Dense(outputs).
"""

import jax
from flax import nnx

from svhn_jax.errors import ConfigError
from svhn_jax.layers import Dense, Flatten
from svhn_jax.models import ModelSpec
from svhn_jax.models.study import IMAGE_SIZE, Sequential

HIDDEN = 8


def build(options, *, rngs: nnx.Rngs, channels: int, outputs: int, dtype, sample) -> Sequential:
  """The MLP for 32x32 images with `channels` channels, `outputs` logits, in float32. It has no
  options of its own (`options` holds config.model's shared fields) and reads nothing of the
  data (`sample`)."""
  del options, dtype, sample
  return Sequential([
      Flatten(),
      Dense(IMAGE_SIZE * IMAGE_SIZE * channels, HIDDEN, jax.nn.relu, rngs=rngs),
      Dense(HIDDEN, outputs, rngs=rngs),
  ], channels)


MODEL = ModelSpec(build, convolutional=False, block=None, outputs=10)


def build_sized(options, *, rngs: nnx.Rngs, channels: int, outputs: int, dtype,
                sample) -> Sequential:
  """The same MLP with its hidden width from its own block, config.model.toy_mlp.hidden (a whole
  number >= 1; ConfigError otherwise)."""
  del dtype, sample
  hidden = options.get("hidden")
  if isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1:
    raise ConfigError(f"config.model.toy_mlp.hidden={hidden!r}: expected a whole number >= 1")
  return Sequential([
      Flatten(),
      Dense(IMAGE_SIZE * IMAGE_SIZE * channels, hidden, jax.nn.relu, rngs=rngs),
      Dense(hidden, outputs, rngs=rngs),
  ], channels)


# A model with options of its own: a config that uses it adds the block config.model.toy_mlp.
SIZED = ModelSpec(build_sized, convolutional=False, block="toy_mlp", outputs=10)
