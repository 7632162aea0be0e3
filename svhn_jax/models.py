"""The Keras study's four classifiers (ANN1, ANN2, CNN1, CNN2) as Flax NNX modules.

Each model is an ordered list of named layers, like a Keras `Sequential`, so that `summary` can
print one row per layer and the forward pass is a plain loop that jit-compiles into a clean graph.
Every layer takes `(x, *, train, rngs)`. Layers match Keras where it changes the numbers:
glorot-uniform kernels, zero biases, BatchNorm epsilon 1e-3 and momentum 0.99, LeakyReLU slope
0.1, 'same' padding, NHWC, Flatten in (H, W, C) order. Keras's final softmax is left out: models
return logits, and the loss applies log-softmax.

A model's state is exactly `nnx.Param` + `nnx.BatchStat` (dropout keys come from the caller at
each call), so `nnx.split(model, nnx.Param, nnx.BatchStat)` captures all of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from svhn_jax import fast_layers
from svhn_jax.errors import ConfigError

INPUT_SHAPE = (32, 32, 1)
NUM_CLASSES = 10
POOLS = ("reshape", "reduce_window")
# "fast": conv blocks and training-mode BatchNorm through svhn_jax.fast_layers; "flax": the plain
# layers one by one, the reference the fast path is tested against.
IMPLS = ("fast", "flax")
LEAKY_SLOPE = 0.1

_glorot_uniform = jax.nn.initializers.glorot_uniform()
_zeros = jax.nn.initializers.zeros


class Dense(nnx.Linear):
  """Keras `Dense`: glorot-uniform kernel, zero bias, optional activation."""

  def __init__(self, in_features: int, out_features: int,
               activation: Callable[[jax.Array], jax.Array] | None = None, *, rngs: nnx.Rngs):
    super().__init__(in_features, out_features, kernel_init=_glorot_uniform, bias_init=_zeros,
                     rngs=rngs)
    self.activation = activation

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    y = super().__call__(x)
    return y if self.activation is None else self.activation(y)


class Conv2D(nnx.Conv):
  """Keras `Conv2D(features, 3x3, padding='same')`: glorot-uniform kernel, zero bias."""

  def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs):
    super().__init__(in_features, out_features, (3, 3), padding="SAME",
                     kernel_init=_glorot_uniform, bias_init=_zeros, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    return super().__call__(x)


class BatchNormalization(nnx.BatchNorm):
  """Keras `BatchNormalization`: epsilon 1e-3 and momentum 0.99, batch statistics in training."""

  def __init__(self, num_features: int, *, rngs: nnx.Rngs):
    super().__init__(num_features, momentum=0.99, epsilon=1e-3, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    return super().__call__(x, use_running_average=not train)

  def fast_train(self, x: jax.Array) -> jax.Array:
    """Training mode through `fast_layers.batch_norm`; updates the running statistics as
    flax does."""
    y, mean, var = fast_layers.batch_norm(x, self.scale[...], self.bias[...], self.epsilon)
    mean, var = jax.lax.stop_gradient((mean, var))
    self.mean[...] = self.momentum * self.mean[...] + (1 - self.momentum) * mean
    self.var[...] = self.momentum * self.var[...] + (1 - self.momentum) * var
    return y


class Dropout(nnx.Dropout):
  """Keras `Dropout`, keyed by the caller's `rngs` ('dropout' stream) when training."""

  def __init__(self, rate: float):
    # No rngs here: a stored key would become model state beyond Param + BatchStat.
    super().__init__(rate)

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    return super().__call__(x, deterministic=not train, rngs=rngs)


class LeakyReLU(nnx.Module):
  """Keras `LeakyReLU(negative_slope)`."""

  def __init__(self, negative_slope: float = LEAKY_SLOPE):
    self.negative_slope = negative_slope

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    return jax.nn.leaky_relu(x, self.negative_slope)


def _checked_pool(pool: str) -> str:
  if pool not in POOLS:
    raise ConfigError(f"config.model.pool is {pool!r}; valid values: {', '.join(POOLS)}.")
  return pool


class MaxPooling2D(nnx.Module):
  """Keras `MaxPooling2D((2, 2))` on NHWC with even height and width.

  `pool="reshape"` takes the max over a (N, H/2, 2, W/2, 2, C) view: XLA:CPU runs it faster
  than `reduce_window` and its gradient (measured: a CNN2 train step, batch 128, ~20% less
  time); `pool="reduce_window"` is flax's reference `max_pool`.
  """

  def __init__(self, pool: str = "reshape"):
    self.pool = _checked_pool(pool)

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    if self.pool == "reduce_window":
      return nnx.max_pool(x, (2, 2), strides=(2, 2))
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class Flatten(nnx.Module):
  """Keras `Flatten`: NHWC rows in (H, W, C) order, so Dense weights line up with Keras's."""

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    return x.reshape(x.shape[0], -1)


def _checked_impl(impl: str) -> str:
  if impl not in IMPLS:
    raise ConfigError(f"config.model.impl is {impl!r}; valid values: {', '.join(IMPLS)}.")
  return impl


def _conv_block_length(layers: Sequence[nnx.Module], i: int) -> int:
  """How many layers from `i` form Conv2D -> LeakyReLU [-> MaxPooling2D]; 0 if none do."""
  if not (isinstance(layers[i], Conv2D) and i + 1 < len(layers)
          and isinstance(layers[i + 1], LeakyReLU)):
    return 0
  return 3 if i + 2 < len(layers) and isinstance(layers[i + 2], MaxPooling2D) else 2


def _fast_forward(layers: Sequence[nnx.Module], x: jax.Array, train: bool,
                  rngs: nnx.Rngs | None) -> jax.Array:
  i = 0
  while i < len(layers):
    layer, length = layers[i], _conv_block_length(layers, i)
    if length:
      x = fast_layers.conv_block(x, layer.kernel[...], layer.bias[...],
                                 layers[i + 1].negative_slope, length == 3)
    elif train and isinstance(layer, BatchNormalization):
      x = layer.fast_train(x)
    else:
      x = layer(x, train=train, rngs=rngs)
    i += max(length, 1)
  return x


class Sequential(nnx.Module):
  """An ordered list of layers applied one after another, as Keras `Sequential`."""

  def __init__(self, layers: Sequence[nnx.Module], impl: str = "fast"):
    self.layers = nnx.List(layers)
    self.impl = _checked_impl(impl)

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """Returns logits (N, 10) for float images `x` (N, 32, 32, 1) in [0, 1].

    `train=True` makes BatchNorm use and update batch statistics and turns Dropout on, keyed
    by the 'dropout' stream of `rngs`; with `train=False`, `rngs` may be None.
    """
    if self.impl == "fast":
      return _fast_forward(self.layers, x, train, rngs)
    for layer in self.layers:
      x = layer(x, train=train, rngs=rngs)
    return x


class ANN1(Sequential):
  """Dense(64, relu) -> Dense(32, relu) -> Dense(10) on the flattened image: 68,010 params."""

  def __init__(self, *, rngs: nnx.Rngs, pool: str = "reshape", impl: str = "fast"):
    del pool  # no pooling; taken so that every model is built the same way
    super().__init__([
        Flatten(),
        Dense(1024, 64, jax.nn.relu, rngs=rngs),
        Dense(64, 32, jax.nn.relu, rngs=rngs),
        Dense(32, NUM_CLASSES, rngs=rngs),
    ], impl)


class ANN2(Sequential):
  """A deeper MLP with Dropout(0.2) and BatchNorm: 310,250 params, 64 non-trainable."""

  def __init__(self, *, rngs: nnx.Rngs, pool: str = "reshape", impl: str = "fast"):
    del pool  # no pooling; taken so that every model is built the same way
    super().__init__([
        Flatten(),
        Dense(1024, 256, jax.nn.relu, rngs=rngs),
        Dense(256, 128, jax.nn.relu, rngs=rngs),
        Dropout(0.2),
        Dense(128, 64, jax.nn.relu, rngs=rngs),
        Dense(64, 64, jax.nn.relu, rngs=rngs),
        Dense(64, 32, jax.nn.relu, rngs=rngs),
        BatchNormalization(32, rngs=rngs),
        Dense(32, NUM_CLASSES, rngs=rngs),
    ], impl)


class CNN1(Sequential):
  """Two 3x3 convs, one max pool, Dense(32), Dense(10): 267,306 params."""

  def __init__(self, *, rngs: nnx.Rngs, pool: str = "reshape", impl: str = "fast"):
    super().__init__([
        Conv2D(1, 16, rngs=rngs),
        LeakyReLU(),
        Conv2D(16, 32, rngs=rngs),
        LeakyReLU(),
        MaxPooling2D(pool),
        Flatten(),
        Dense(16 * 16 * 32, 32, rngs=rngs),
        LeakyReLU(),
        Dense(32, NUM_CLASSES, rngs=rngs),
    ], impl)


class CNN2(Sequential):
  """Two conv blocks with BatchNorm, Dense(32), Dropout(0.5): 164,362 params, 192 non-trainable."""

  def __init__(self, *, rngs: nnx.Rngs, pool: str = "reshape", impl: str = "fast"):
    super().__init__([
        Conv2D(1, 16, rngs=rngs),
        LeakyReLU(),
        Conv2D(16, 32, rngs=rngs),
        LeakyReLU(),
        MaxPooling2D(pool),
        BatchNormalization(32, rngs=rngs),
        Conv2D(32, 32, rngs=rngs),
        LeakyReLU(),
        Conv2D(32, 64, rngs=rngs),
        LeakyReLU(),
        MaxPooling2D(pool),
        BatchNormalization(64, rngs=rngs),
        Flatten(),
        Dense(8 * 8 * 64, 32, rngs=rngs),
        LeakyReLU(),
        Dropout(0.5),
        Dense(32, NUM_CLASSES, rngs=rngs),
    ], impl)


MODELS: dict[str, type[Sequential]] = {"ann1": ANN1, "ann2": ANN2, "cnn1": CNN1, "cnn2": CNN2}


def create_model(name: str, *, seed: int | jax.Array, pool: str = "reshape",
                 impl: str = "fast") -> nnx.Module:
  """Returns the model called `name` (case-insensitive), initialized from `seed`.

  `pool` and `impl` change how the model computes, never what: same parameters, same outputs
  to float rounding.
  """
  key = name.lower()
  if key not in MODELS:
    raise ConfigError(f"config.model.name is {name!r}; valid names: {', '.join(MODELS)}.")
  # Checked here too, so that a bad pool fails for the ANNs, which never use it.
  return MODELS[key](rngs=nnx.Rngs(seed), pool=_checked_pool(pool), impl=_checked_impl(impl))


def has_convolution(model: Sequential) -> bool:
  return any(isinstance(layer, nnx.Conv) for layer in model.layers)


def _size(state: nnx.State) -> int:
  return sum(leaf.size for leaf in jax.tree.leaves(state))


def param_counts(model: nnx.Module) -> tuple[int, int, int]:
  """Returns (total, trainable, non_trainable) as Keras counts them.

  BatchNorm's running mean and variance are Keras's non-trainable weights.
  """
  trainable = _size(nnx.state(model, nnx.Param))
  non_trainable = _size(nnx.state(model, nnx.BatchStat))
  return trainable + non_trainable, trainable, non_trainable


def _keras_name(layer: nnx.Module) -> str:
  """Returns Keras's base name for a layer type: `LeakyReLU` -> `leaky_re_lu`."""
  name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", type(layer).__name__)
  return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _output_shapes(model: Sequential) -> list[tuple[int, ...]]:
  """Returns each layer's output shape for one input image, traced without computing."""
  shapes = []
  x = jax.ShapeDtypeStruct((1,) + INPUT_SHAPE, jnp.float32)
  for layer in model.layers:
    x = jax.eval_shape(lambda x, layer=layer: layer(x), x)
    shapes.append(x.shape)
  return shapes


def _layer_rows(model: Sequential) -> list[tuple[str, str, str]]:
  """Returns (name (type), output shape, param count) per layer, named as Keras numbers them."""
  rows, seen = [], {}
  for layer, shape in zip(model.layers, _output_shapes(model)):
    base = _keras_name(layer)
    count = seen.get(base, 0)
    seen[base] = count + 1
    name = base if count == 0 else f"{base}_{count}"
    shape_text = "(None" + "".join(f", {d}" for d in shape[1:]) + ")"
    rows.append((f"{name} ({type(layer).__name__})", shape_text, f"{param_counts(layer)[0]:,}"))
  return rows


def summary(model: Sequential, name: str | None = None) -> str:
  """Returns a Keras-style summary: one row per layer, then total/trainable/non-trainable."""
  header = ("Layer (type)", "Output Shape", "Param #")
  rows = _layer_rows(model)
  widths = [max(len(cell) for cell in column) + 3 for column in zip(header, *rows)]
  rule = "_" * sum(widths)
  table = [_row(row, widths) for row in rows]
  total, trainable, non_trainable = param_counts(model)
  return "\n".join([
      f'Model: "{name or type(model).__name__.lower()}"', rule, _row(header, widths),
      "=" * sum(widths), *table, "=" * sum(widths),
      f"Total params: {total:,}", f"Trainable params: {trainable:,}",
      f"Non-trainable params: {non_trainable:,}", rule,
  ])


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
  return " " + "".join(cell.ljust(w) for cell, w in zip(cells, widths)).rstrip()
