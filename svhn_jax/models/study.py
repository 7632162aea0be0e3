"""The study's four classifiers (ANN1, ANN2, CNN1, CNN2 of the Keras study), the `Sequential`
they and the Wide ResNets are built as, and Keras's `summary` and parameter counts.

Each model is an ordered list of layers, like a Keras `Sequential`, so `summary` prints one row
per Keras layer (per residual block for a Wide ResNet) and the forward pass is a plain loop that
jit-compiles into a clean graph. Keras's final softmax is left out: models return logits, and the
loss applies log-softmax.

A model's state is exactly `nnx.Param` + `nnx.BatchStat` (dropout keys come from the caller at
each call), so `nnx.split(model, nnx.Param, nnx.BatchStat)` captures all of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from svhn_jax.layers import (BatchNormalization, ConvBlock, Dense, Dropout, Flatten, LeakyReLU,
                             use_fused)
from svhn_jax.models import ModelSpec
from svhn_jax.transforms import NUM_CLASSES

IMAGE_SIZE = 32


class Sequential(nnx.Module):
  """An ordered list of layers applied one after another, as Keras `Sequential`."""

  def __init__(self, layers: Sequence[nnx.Module], channels: int):
    self.layers = nnx.List(layers)
    self.channels = channels

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """Returns logits (N, outputs) for float32 images `x` (N, 32, 32, channels) in [0, 1].

    `train=True` makes BatchNorm use and update batch statistics and turns Dropout on, keyed
    by the 'dropout' stream of `rngs`; with `train=False`, `rngs` may be None.
    """
    for layer in self.layers:
      x = layer(x, train=train, rngs=rngs)
    return x

  def keras_layers(self) -> list[nnx.Module]:
    """The layers as Keras lists them: a `ConvBlock` is its Conv2D, LeakyReLU and pool."""
    return [sub for layer in self.layers
            for sub in (layer.keras_layers() if isinstance(layer, ConvBlock) else [layer])]


# The study's models are fixed: their only options say how the layers compute, never what
# (`impl`: 'auto', 'fast' or 'flax', see `layers.use_fused`; `pool`: the max pool's
# implementation, see `layers.ConvBlock`): same parameters, same outputs to float rounding. They
# compute in float32, as Keras did. `outputs`: the logits (10 digit classes unless a task asks
# for another count; the parameter tree is the same but for the last layer's shapes).


def ann1(*, rngs: nnx.Rngs, channels: int = 1, outputs: int = NUM_CLASSES, impl: str = "auto",
         pool: str = "reshape") -> Sequential:
  """Dense(64, relu) -> Dense(32, relu) -> Dense(10) on the flattened image: 68,010 params.
  No fused layer and no pooling: `impl` is checked only, `pool` ignored."""
  use_fused(impl)
  del pool
  return Sequential([
      Flatten(),
      Dense(IMAGE_SIZE * IMAGE_SIZE * channels, 64, jax.nn.relu, rngs=rngs),
      Dense(64, 32, jax.nn.relu, rngs=rngs),
      Dense(32, outputs, rngs=rngs),
  ], channels)


def ann2(*, rngs: nnx.Rngs, channels: int = 1, outputs: int = NUM_CLASSES, impl: str = "auto",
         pool: str = "reshape") -> Sequential:
  """A deeper MLP with Dropout(0.2) and BatchNorm: 310,250 params, 64 non-trainable. No pooling:
  `pool` is ignored."""
  del pool
  fused = use_fused(impl)
  return Sequential([
      Flatten(),
      Dense(IMAGE_SIZE * IMAGE_SIZE * channels, 256, jax.nn.relu, rngs=rngs),
      Dense(256, 128, jax.nn.relu, rngs=rngs),
      Dropout(0.2),
      Dense(128, 64, jax.nn.relu, rngs=rngs),
      Dense(64, 64, jax.nn.relu, rngs=rngs),
      Dense(64, 32, jax.nn.relu, rngs=rngs),
      BatchNormalization(32, fused=fused, rngs=rngs),
      Dense(32, outputs, rngs=rngs),
  ], channels)


def cnn1(*, rngs: nnx.Rngs, channels: int = 1, outputs: int = NUM_CLASSES, impl: str = "auto",
         pool: str = "reshape") -> Sequential:
  """Two 3x3 convs, one max pool, Dense(32), Dense(10): 267,306 params."""
  fused = use_fused(impl)
  return Sequential([
      ConvBlock(channels, 16, fused=fused, rngs=rngs),
      ConvBlock(16, 32, pool=pool, fused=fused, rngs=rngs),
      Flatten(),
      Dense(16 * 16 * 32, 32, rngs=rngs),
      LeakyReLU(),
      Dense(32, outputs, rngs=rngs),
  ], channels)


def cnn2(*, rngs: nnx.Rngs, channels: int = 1, outputs: int = NUM_CLASSES, impl: str = "auto",
         pool: str = "reshape") -> Sequential:
  """Two conv blocks with BatchNorm, Dense(32), Dropout(0.5): 164,362 params, 192 non-trainable."""
  fused = use_fused(impl)
  return Sequential([
      ConvBlock(channels, 16, fused=fused, rngs=rngs),
      ConvBlock(16, 32, pool=pool, fused=fused, rngs=rngs),
      BatchNormalization(32, fused=fused, rngs=rngs),
      ConvBlock(32, 32, fused=fused, rngs=rngs),
      ConvBlock(32, 64, pool=pool, fused=fused, rngs=rngs),
      BatchNormalization(64, fused=fused, rngs=rngs),
      Flatten(),
      Dense(8 * 8 * 64, 32, rngs=rngs),
      LeakyReLU(),
      Dropout(0.5),
      Dense(32, outputs, rngs=rngs),
  ], channels)


def _from_config(builder: Callable[..., Sequential]) -> Callable[..., Sequential]:
  """The registry's builder of a study model: config.model's shared fields (`options`: impl)."""

  def build(options: Mapping, *, rngs: nnx.Rngs, channels: int, outputs: int, dtype,
            sample) -> Sequential:
    del dtype, sample  # float32 Keras layers; nothing read from the data
    return builder(rngs=rngs, channels=channels, outputs=outputs, impl=options["impl"])

  return build


ANN1 = ModelSpec(_from_config(ann1), convolutional=False, block=None, outputs=NUM_CLASSES,
                 create=ann1)
ANN2 = ModelSpec(_from_config(ann2), convolutional=False, block=None, outputs=NUM_CLASSES,
                 create=ann2)
CNN1 = ModelSpec(_from_config(cnn1), convolutional=True, block=None, outputs=NUM_CLASSES,
                 create=cnn1)
CNN2 = ModelSpec(_from_config(cnn2), convolutional=True, block=None, outputs=NUM_CLASSES,
                 create=cnn2)


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


def _layer_rows(model: nnx.Module, image_size: int) -> list[tuple[str, str, str]]:
  """(name (type), output shape, param count) per Keras layer, named as Keras numbers them;
  shapes traced for one image of `image_size` pixels a side without computing."""
  rows, seen = [], {}
  size = image_size
  x = jax.ShapeDtypeStruct((1, size, size, model.channels), jnp.float32)
  for layer in model.keras_layers():
    x = jax.eval_shape(lambda x, layer=layer: layer(x), x)
    base = _keras_name(layer)
    count = seen.get(base, 0)
    seen[base] = count + 1
    name = base if count == 0 else f"{base}_{count}"
    shape_text = "(None" + "".join(f", {d}" for d in x.shape[1:]) + ")"
    rows.append((f"{name} ({type(layer).__name__})", shape_text, f"{param_counts(layer)[0]:,}"))
  return rows


def summary(model: nnx.Module, name: str | None = None, *, image_size: int = IMAGE_SIZE) -> str:
  """Returns a Keras-style summary: one row per layer, then total/trainable/non-trainable.

  `model` has `channels` and `keras_layers()` (a `Sequential`, the number reader), traced on an
  input of `image_size` pixels a side (`ModelSpec.image_size`: 54 for the number reader)."""
  header = ("Layer (type)", "Output Shape", "Param #")
  rows = _layer_rows(model, image_size)
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
