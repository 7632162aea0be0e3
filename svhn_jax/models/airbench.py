"""A small all-convolutional network in the style of Keller Jordan's CIFAR-10 airbench
(github.com/KellerJordan/cifar10-airbench, airbench94_muon.py: `CifarNet`), for time to accuracy
(configs/speedrun.py). Options: config.model.airbench and config.train.compute_dtype.

  patch whitening: a k x k conv (no padding) whose filters are fixed from the training data's
                   patch statistics (`whitening_filters`), plus a trained bias; GELU
  three blocks:    conv3x3 -> max pool 2 -> BatchNorm -> GELU -> conv3x3 -> BatchNorm -> GELU
  head:            max pool 3 (the 3x3 maps of a 32x32 input to 1x1), a bias-free linear layer

As airbench: convolutions bias-free, 'same' padded, their first `in` filters initialized to the
identity (Torch's `dirac_`), the rest U(+-1/sqrt(fan_in)) (Torch's default); BatchNorm without a
scale (fixed at 1), epsilon 1e-12, its running statistics fast (`bn_momentum`, flax's convention:
the weight of the old value; airbench's `BatchNorm(momentum=0.6)` passes Torch momentum 1 - 0.6,
i.e. flax 0.6); GELU exact; the head's weight unit-std and its output divided by its width, so
that its learning rate does not depend on the width (configs/speedrun.py).

The whitening filters are `WhiteningFilters`, a kind of `nnx.BatchStat`: fixed statistics of the
data, as BatchNorm's running ones are, so the optimizer never sees them (airbench sets
`requires_grad = False`), they count as non-trainable in the summary and a checkpoint holds them.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from svhn_jax.errors import ConfigError
from svhn_jax.models import ModelSpec
from svhn_jax.models.study import Sequential
from svhn_jax.transforms import NUM_CLASSES

BN_EPSILON = 1e-12
IMAGE_SIZE = 32
_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))


def _host_uniform(key: jax.Array, shape: tuple[int, ...], bound: float) -> np.ndarray:
  """U(-bound, bound) float32 of `shape`, drawn on the host by numpy from the bits of `key`:
  deterministic per key, and no XLA program compiled per shape at build (each distinct shape of
  `jax.random.uniform` compiles one, seconds each on a busy CPU)."""
  seed = np.asarray(jax.random.key_data(key)).astype(np.uint64).ravel().tolist()
  return np.random.default_rng(seed).uniform(-bound, bound, shape).astype(np.float32)


def whitening_filters(images, kernel_size: int, eps: float, *, chunk: int = 1000) -> np.ndarray:
  """Patch-whitening filters from `images`, as airbench's `init_whiten` (KellerJordan/
  cifar10-airbench, airbench94_muon.py): the eigen-decomposition of the uncentred covariance
  (second-moment matrix) of every `kernel_size` x `kernel_size` patch (stride 1, no padding)
  of the images, C = P^T P / n over the n patches flattened to rows P (d = k * k * channels
  values, in (row, column, channel) order); filter i is eigenvector v_i / sqrt(lambda_i + eps),
  eigenvalues ascending, then the same filters negated (both signs, so a following GELU or ReLU
  loses nothing).

  images: (N, H, W, C) floats (the model input, [0, 1]), H and W at least `kernel_size`.
  Returns float32 (k, k, C, 2 d), a flax conv kernel (HWIO): the conv of a patch gives
  v_i . patch / sqrt(lambda_i + eps) in output channel i and its negation in channel d + i.
  Each eigenvector's sign is fixed (its largest-magnitude entry positive, the first such on a
  tie), so the filters do not depend on the eigen-solver's choice. Computed on the host in
  float64 (numpy), `chunk` images at a time. Raises ValueError for images of another rank, too
  small for a patch, or none.
  """
  x = np.asarray(images)
  if x.ndim != 4 or x.shape[0] == 0 or min(x.shape[1:3]) < kernel_size or kernel_size < 1:
    raise ValueError(f"whitening_filters: images of shape {x.shape}; expected (N, H, W, C) with "
                     f"N >= 1 and H, W >= kernel_size={kernel_size}")
  k, channels = kernel_size, x.shape[-1]
  d = k * k * channels
  rows, cols = x.shape[1] - k + 1, x.shape[2] - k + 1
  second_moment = np.zeros((d, d), np.float64)
  for start in range(0, x.shape[0], chunk):
    part = x[start:start + chunk].astype(np.float64)
    # (n, rows, cols, k * k, C): the window's pixels in (row, column) order, then channels.
    patches = np.stack([part[:, dy:dy + rows, dx:dx + cols, :]
                        for dy in range(k) for dx in range(k)], axis=3)
    flat = patches.reshape(-1, d)
    second_moment += flat.T @ flat
  second_moment /= x.shape[0] * rows * cols
  eigenvalues, eigenvectors = np.linalg.eigh(second_moment)  # ascending, columns
  largest = np.argmax(np.abs(eigenvectors), axis=0)
  signs = np.sign(eigenvectors[largest, np.arange(d)])
  eigenvectors = eigenvectors * np.where(signs == 0, 1.0, signs)
  scaled = eigenvectors / np.sqrt(np.maximum(eigenvalues, 0.0) + eps)
  kernel = np.concatenate([scaled, -scaled], axis=1).reshape(k, k, channels, 2 * d)
  return kernel.astype(np.float32)


class WhiteningFilters(nnx.BatchStat):
  """The fixed filters of `PatchWhitening`: statistics of the training data, not trained."""


class PatchWhitening(nnx.Module):
  """airbench's first layer: a `kernel_size` conv with no padding whose 2 k^2 C filters are
  `whitening_filters` of `sample`, fixed, and a trained bias (zeros at first).

  (N, H, W, C) -> (N, H - k + 1, W - k + 1, 2 k^2 C) in `dtype`. Without a `sample` the
  filters are zeros: a model built to receive a checkpoint's (`svhn_jax.inference`)."""

  def __init__(self, channels: int, kernel_size: int, *, sample=None, eps: float,
               dtype=jnp.float32):
    width = 2 * kernel_size * kernel_size * channels
    kernel = (np.zeros((kernel_size, kernel_size, channels, width), np.float32) if sample is None
              else whitening_filters(sample, kernel_size, eps))
    self.kernel = WhiteningFilters(jnp.asarray(kernel))
    self.bias = nnx.Param(jnp.zeros((width,), jnp.float32))
    self.dtype = dtype
    self.features = width

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    y = jax.lax.conv_general_dilated(
        x.astype(self.dtype), self.kernel[...].astype(self.dtype), (1, 1), "VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + self.bias[...].astype(self.dtype)


def _dirac_then_uniform(key, shape, dtype=jnp.float32):
  """Torch's default conv init (kaiming_uniform_ with a = sqrt(5): U(+-1/sqrt(fan_in))), then
  `dirac_` on the first in_channels filters: a 'same' 3x3 conv that starts by passing its input
  channels through (HWIO `shape`). Drawn on the host (`_host_uniform`)."""
  kh, kw, cin, cout = shape
  n = min(cin, cout)
  kernel = _host_uniform(key, shape, 1 / np.sqrt(kh * kw * cin))
  kernel[..., :n] = 0
  kernel[kh // 2, kw // 2, np.arange(n), np.arange(n)] = 1
  return jnp.asarray(kernel, dtype)


class Conv(nnx.Conv):
  """airbench's `Conv`: 3x3, 'same', bias-free, `_dirac_then_uniform`; float32 parameters,
  activations in `dtype`."""

  def __init__(self, in_features: int, out_features: int, *, dtype, rngs: nnx.Rngs):
    super().__init__(in_features, out_features, (3, 3), padding="SAME", use_bias=False,
                     kernel_init=_dirac_then_uniform, dtype=dtype, param_dtype=jnp.float32,
                     rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    return super().__call__(x)


class BatchNorm(nnx.BatchNorm):
  """airbench's `BatchNorm`: no scale, a bias, epsilon 1e-12, running statistics with flax
  momentum `momentum` (the old value's weight). Statistics and bias float32; output `dtype`."""

  def __init__(self, num_features: int, *, momentum: float, dtype, rngs: nnx.Rngs):
    super().__init__(num_features, use_scale=False, momentum=momentum, epsilon=BN_EPSILON,
                     dtype=dtype, param_dtype=jnp.float32, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    return super().__call__(x, use_running_average=not train)


class GELU(nnx.Module):
  """Exact GELU (Torch's `nn.GELU()` default), shape and dtype kept."""

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    return jax.nn.gelu(x, approximate=False)


class MaxPool(nnx.Module):
  """Max pool of `size` x `size` windows at stride `size`, no padding (Torch's `MaxPool2d`: a
  side of 31 pools to 15)."""

  def __init__(self, size: int):
    self.size = size

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    window = (self.size, self.size)
    return nnx.max_pool(x, window, strides=window, padding="VALID")


class ConvGroup(nnx.Module):
  """airbench's `ConvGroup`: conv -> pool 2 -> BN -> GELU -> conv -> BN -> GELU.
  (N, H, W, in_features) -> (N, H // 2, W // 2, out_features)."""

  def __init__(self, in_features: int, out_features: int, *, momentum: float, dtype,
               rngs: nnx.Rngs):
    self.conv1 = Conv(in_features, out_features, dtype=dtype, rngs=rngs)
    self.pool = MaxPool(2)
    self.norm1 = BatchNorm(out_features, momentum=momentum, dtype=dtype, rngs=rngs)
    self.conv2 = Conv(out_features, out_features, dtype=dtype, rngs=rngs)
    self.norm2 = BatchNorm(out_features, momentum=momentum, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    x = jax.nn.gelu(self.norm1(self.pool(self.conv1(x)), train=train), approximate=False)
    return jax.nn.gelu(self.norm2(self.conv2(x), train=train), approximate=False)


class Head(nnx.Linear):
  """airbench's classifier: bias-free, its weight uniform with std 1 (Torch's default uniform
  rescaled by `w *= 1 / w.std()`), its output divided by `in_features`; float32 whatever the model's
  dtype. (N, ..., in_features) flattened to (N, in_features) -> (N, outputs)."""

  def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs):
    # Std 1: U(+-sqrt(3)), drawn on the host (`_host_uniform`).
    init = lambda key, shape, dtype=jnp.float32: jnp.asarray(
        _host_uniform(key, shape, np.sqrt(3.0)), dtype)
    super().__init__(in_features, out_features, use_bias=False, kernel_init=init,
                     dtype=jnp.float32, param_dtype=jnp.float32, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    x = x.reshape(x.shape[0], -1).astype(jnp.float32)
    return super().__call__(x) / jnp.float32(self.in_features)


def _check(options: Mapping) -> None:
  for name in ("block1", "block2", "block3", "whiten_kernel"):
    value = options[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ConfigError(f"config.model.airbench.{name}={value!r}: expected a whole number of at "
                        "least 1")
  if not 0 <= options["bn_momentum"] < 1:
    raise ConfigError(f"config.model.airbench.bn_momentum={options['bn_momentum']!r}: expected a "
                      "number in [0, 1) (flax's: the old running value's weight)")
  if not options["whiten_eps"] > 0:
    raise ConfigError(f"config.model.airbench.whiten_eps={options['whiten_eps']!r}: expected a "
                      "number above 0")


def airbench(*, rngs: nnx.Rngs, channels: int = 1, outputs: int = NUM_CLASSES, block1: int = 64,
             block2: int = 256, block3: int = 256, bn_momentum: float = 0.6,
             whiten_kernel: int = 2, whiten_eps: float = 5e-4, sample=None,
             dtype=jnp.float32) -> Sequential:
  """airbench94's network (widths 64, 256, 256 by default) for 32x32 images of `channels`
  channels: `PatchWhitening` of `sample` ((N, H, W, channels) float32 training images, or None:
  zero filters for a checkpoint to fill), GELU, three `ConvGroup`s, max pool 3, `Head`.
  `dtype` float32 or bfloat16: the activations', parameters and statistics float32, logits
  float32. Raises ConfigError for a width or kernel below 1, a momentum outside [0, 1), an eps
  not above 0 or another dtype."""
  options = dict(block1=block1, block2=block2, block3=block3, bn_momentum=bn_momentum,
                 whiten_kernel=whiten_kernel, whiten_eps=whiten_eps)
  _check(options)
  try:
    resolved = jnp.dtype(dtype)
  except TypeError:
    resolved = None
  if resolved not in _DTYPES:
    name = getattr(resolved, "name", dtype)
    raise ConfigError(f"config.train.compute_dtype={name!r}: expected float32 or bfloat16")
  dtype = resolved
  side = (IMAGE_SIZE - whiten_kernel + 1) // 8 // 3  # three pools of 2, then one of 3
  if side < 1:
    raise ConfigError(f"config.model.airbench.whiten_kernel={whiten_kernel}: leaves no pixel of a "
                      f"{IMAGE_SIZE}x{IMAGE_SIZE} image after the pools; expected at most "
                      f"{IMAGE_SIZE - 23}")
  whiten = PatchWhitening(channels, whiten_kernel, sample=sample, eps=whiten_eps, dtype=dtype)
  layers, features = [whiten, GELU()], whiten.features
  for width in (block1, block2, block3):
    layers.append(ConvGroup(features, width, momentum=bn_momentum, dtype=dtype, rngs=rngs))
    features = width
  layers += [MaxPool(3), Head(features * side * side, outputs, rngs=rngs)]
  return Sequential(layers, channels)


def _from_config(options: Mapping, *, rngs: nnx.Rngs, channels: int, outputs: int, dtype,
                 sample) -> Sequential:
  """The registry's builder: `airbench` of config.model.airbench (`options`), its first layer
  whitened from `sample` (`models.build`: the model input of the first training images)."""
  return airbench(rngs=rngs, channels=channels, outputs=outputs, sample=sample, dtype=dtype,
                  **{k: options[k] for k in ("block1", "block2", "block3", "bn_momentum",
                                             "whiten_kernel", "whiten_eps")})


AIRBENCH = ModelSpec(_from_config, convolutional=True, block="airbench", outputs=NUM_CLASSES,
                     create=airbench)
