"""Keras-compatible layers in Flax NNX, each computing through its fused or its plain path.

Layers match Keras where it changes the numbers: glorot-uniform kernels, zero biases, BatchNorm
epsilon 1e-3 and momentum 0.99, LeakyReLU slope 0.1, 'same' padding, NHWC, Flatten in (H, W, C)
order. Every layer takes `(x, *, train, rngs)`.

Two layers have a fused path for XLA:CPU (`svhn_jax.fast_layers`, hand-written gradients that
cut passes over the large activations): `ConvBlock` (Conv2D -> LeakyReLU [-> MaxPooling2D]) and
`BatchNormalization` in training mode. Which path runs is the layer's own `fused` attribute,
fixed at construction from `config.model.impl` by `use_fused`, the one place that decides it per
backend. Both paths compute the same function with the same parameters, to float rounding
(tests/test_layers.py holds them to tolerance, outputs and gradients).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
from flax import nnx

from svhn_jax import fast_layers
from svhn_jax.errors import ConfigError

POOLS = ("reshape", "reduce_window")
LEAKY_SLOPE = 0.1

_glorot_uniform = jax.nn.initializers.glorot_uniform()
_zeros = jax.nn.initializers.zeros


def use_fused(impl: str) -> bool:
  """Whether layers take their fused path: `impl` 'fast' yes, 'flax' no, 'auto' on the CPU only
  (the fused layers were written and measured for XLA:CPU; GPUs and TPUs fuse well on their own).
  Raises ConfigError for any other value."""
  if impl == "auto":
    return jax.default_backend() == "cpu"
  if impl in ("fast", "flax"):
    return impl == "fast"
  raise ConfigError(f"config.model.impl={impl!r}: expected one of auto, fast, flax")


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


class LeakyReLU(nnx.Module):
  """Keras `LeakyReLU(negative_slope)`."""

  def __init__(self, negative_slope: float = LEAKY_SLOPE):
    self.negative_slope = negative_slope

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    return jax.nn.leaky_relu(x, self.negative_slope)


class MaxPooling2D(nnx.Module):
  """Keras `MaxPooling2D((2, 2))` on NHWC with even height and width.

  `pool="reshape"` takes the max over a (N, H/2, 2, W/2, 2, C) view: XLA:CPU runs it and its
  gradient faster than `reduce_window` (measured: a CNN2 train step, batch 128, ~20% less time);
  `pool="reduce_window"` is flax's reference `max_pool`. Raises ConfigError for another value.
  """

  def __init__(self, pool: str = "reshape"):
    if pool not in POOLS:
      raise ConfigError(f"pool={pool!r}: expected one of {', '.join(POOLS)}")
    self.pool = pool

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    if self.pool == "reduce_window":
      return nnx.max_pool(x, (2, 2), strides=(2, 2))
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class ConvBlock(nnx.Module):
  """Keras's Conv2D -> LeakyReLU [-> MaxPooling2D], as the study stacks them.

  Fused (`fused=True`), the three run as one `fast_layers.conv_block` with a hand-written
  gradient; otherwise layer by layer. `keras_layers` lists the three for the model summary.
  The fused block pools by its own argmax (the `reshape` pooling's result), so asking it for
  `pool="reduce_window"` is refused rather than ignored.
  """

  def __init__(self, in_features: int, out_features: int, *, pool: str | None = None,
               fused: bool = False, rngs: nnx.Rngs):
    if fused and pool == "reduce_window":
      raise ConfigError("pool='reduce_window' runs only on the plain layers: use "
                        "config.model.impl=flax, or pool='reshape'")
    self.conv = Conv2D(in_features, out_features, rngs=rngs)
    self.activation = LeakyReLU()
    self.pool = MaxPooling2D(pool) if pool else None
    self.fused = fused

  def keras_layers(self) -> list[nnx.Module]:
    return [self.conv, self.activation] + ([self.pool] if self.pool else [])

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    if self.fused:
      return fast_layers.conv_block(x, self.conv.kernel[...], self.conv.bias[...],
                                    self.activation.negative_slope, self.pool is not None)
    for layer in self.keras_layers():
      x = layer(x, train=train, rngs=rngs)
    return x


class BatchNormalization(nnx.BatchNorm):
  """Keras `BatchNormalization`: epsilon 1e-3 and momentum 0.99, batch statistics in training.

  Fused, training mode runs `fast_layers.batch_norm` (closed-form gradient) and updates the
  running statistics as flax does; inference is flax's either way.
  """

  def __init__(self, num_features: int, *, fused: bool = False, rngs: nnx.Rngs):
    super().__init__(num_features, momentum=0.99, epsilon=1e-3, rngs=rngs)
    self.fused = fused

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    if not (train and self.fused):
      return super().__call__(x, use_running_average=not train)
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


class Flatten(nnx.Module):
  """Keras `Flatten`: NHWC rows in (H, W, C) order, so Dense weights line up with Keras's."""

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    return x.reshape(x.shape[0], -1)
