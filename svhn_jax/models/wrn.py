"""Wide ResNets: WRN-d-k of Zagoruyko & Komodakis 2016, "Wide Residual Networks" (BMVC; arXiv
1605.07146), for 32x32 inputs, as the authors' code builds them
(github.com/szagoruyko/wide-residual-networks: models/wide-resnet.lua, and pytorch/resnet.py,
which "reproduces exactly" the Lua model). Built as a `study.Sequential` of blocks, so the Keras
`summary` prints one row per residual block. Options: config.model.wrn (depth, width, dropout,
standardize) and config.train.compute_dtype.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
from flax import nnx

from svhn_jax.errors import ConfigError
from svhn_jax.layers import Dropout
from svhn_jax.models import ModelSpec
from svhn_jax.models.study import Sequential
from svhn_jax.transforms import NUM_CLASSES

# Torch's BatchNorm defaults, which the authors' code keeps (Torch7 nn.SpatialBatchNormalization
# and PyTorch's F.batch_norm: momentum 0.1, eps 1e-5). Torch's momentum weighs the new batch,
# flax's the old running value: Torch 0.1 is flax 0.9. Not Keras's 0.99 and 1e-3 (layers.py).
WRN_BN_MOMENTUM = 0.9
WRN_BN_EPSILON = 1e-5
# He et al. 2015's normal init with the fan-in, N(0, 2 / (kh * kw * c_in)), untruncated: the
# authors' `MSRinit` (models/utils.lua, n = kW*kH*nInputPlane since commit ea02518 "fix MSRA
# init"; fan-out before it) and PyTorch's `kaiming_normal_` default mode='fan_in'
# (pytorch/utils.py `conv_params`).
_he_normal_fan_in = jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")
# Torch's nn.Linear default, which the Lua model keeps (its `FCinit` zeroes only the bias):
# U(-1/sqrt(fan_in), 1/sqrt(fan_in)), variance 1 / (3 fan_in). PyTorch's nn.Linear default too.
_torch_linear_uniform = jax.nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")
_WRN_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))


def wrn_blocks(depth: int) -> int:
  """Blocks per group, n = (depth - 4) / 6, of a WRN-depth-k (three groups of n blocks of two
  3x3 convs; the paper and the authors' code take depth = 6n + 4). Raises ConfigError unless
  depth is 6n + 4 with n >= 1 (10, 16, 22, 28, 40, ...).
  """
  if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
    raise ConfigError(f"config.model.wrn.depth={depth!r}: a Wide ResNet's depth is 6n+4 with "
                      "n >= 1 (10, 16, 22, 28, 40, ...)")
  return (depth - 4) // 6


def _compute_dtype(dtype) -> jnp.dtype:
  """`dtype` (a JAX dtype or its name) as a numpy dtype; ConfigError unless float32 or bfloat16."""
  try:
    resolved = jnp.dtype(dtype)
  except TypeError:
    resolved = None
  if dtype is None or resolved not in _WRN_DTYPES:
    name = dtype if dtype is None or resolved is None else resolved.name
    raise ConfigError(f"config.train.compute_dtype={name!r}: expected float32 or bfloat16")
  return resolved


class WideConv(nnx.Conv):
  """A Wide ResNet convolution: bias-free, He-normal (fan-in) kernel, Torch's symmetric padding.

  Kernel (k, k, in, out) float32; activations in `dtype`. A 3x3 conv pads 1 on every side, as
  Torch does, so at stride 2 output pixel i reads input rows 2i-1..2i+1 (flax's 'SAME' would pad
  only the far side and read 2i..2i+2); a 1x1 conv (the shortcut projection) pads nothing.
  """

  def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, stride: int = 1,
               *, dtype=jnp.float32, rngs: nnx.Rngs):
    pad = (kernel_size - 1) // 2
    super().__init__(in_features, out_features, (kernel_size, kernel_size), (stride, stride),
                     padding=((pad, pad), (pad, pad)), use_bias=False,
                     kernel_init=_he_normal_fan_in, dtype=dtype, param_dtype=jnp.float32,
                     rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    return super().__call__(x)


class WideBatchNorm(nnx.BatchNorm):
  """BatchNorm with Torch's settings (momentum 0.1 = flax 0.9, epsilon 1e-5), scale 1, bias 0.

  Statistics and parameters are float32 whatever `dtype`, the dtype of the output. Training
  mode uses and updates batch statistics (the running variance from the biased batch variance,
  as flax does; Torch's unbiased one differs by a factor N*H*W / (N*H*W - 1)).
  """

  def __init__(self, num_features: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
    super().__init__(num_features, momentum=WRN_BN_MOMENTUM, epsilon=WRN_BN_EPSILON, dtype=dtype,
                     param_dtype=jnp.float32, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    return super().__call__(x, use_running_average=not train)


class WideBlock(nnx.Module):
  """The Wide ResNet's pre-activation basic block, B(3, 3) of the paper (Fig. 1c; 1d with dropout):

    o1 = ReLU(BN(x)); y = conv3x3(o1, stride); o2 = Dropout(ReLU(BN(y))); z = conv3x3(o2)
    output = z + (x, or conv1x1(o1, stride) when the shape changes)

  (N, H, W, in_features) -> (N, H/stride, W/stride, out_features). Dropout sits after the second
  BN-ReLU, right before the second conv, where the authors' code puts it (models/wide-resnet.lua),
  and only when `dropout` > 0. The projection shortcut reads the pre-activated input o1, as the
  authors' code does.
  """

  def __init__(self, in_features: int, out_features: int, stride: int = 1, *,
               dropout: float = 0.0, dtype=jnp.float32, rngs: nnx.Rngs):
    self.norm1 = WideBatchNorm(in_features, dtype=dtype, rngs=rngs)
    self.conv1 = WideConv(in_features, out_features, 3, stride, dtype=dtype, rngs=rngs)
    self.norm2 = WideBatchNorm(out_features, dtype=dtype, rngs=rngs)
    self.dropout = Dropout(dropout) if dropout > 0 else None
    self.conv2 = WideConv(out_features, out_features, 3, 1, dtype=dtype, rngs=rngs)
    projects = in_features != out_features or stride != 1
    self.shortcut = (WideConv(in_features, out_features, 1, stride, dtype=dtype, rngs=rngs)
                     if projects else None)

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    o1 = jax.nn.relu(self.norm1(x, train=train))
    o2 = jax.nn.relu(self.norm2(self.conv1(o1), train=train))
    if self.dropout is not None:
      o2 = self.dropout(o2, train=train, rngs=rngs)
    return self.conv2(o2) + (x if self.shortcut is None else self.shortcut(o1))


class PerImageStandardization(nnx.Module):
  """Each image scaled to zero mean and unit variance over its H*W*C values, as TensorFlow's
  `tf.image.per_image_standardization`: (x - mean) / max(std, 1 / sqrt(H*W*C)), the floor keeping
  a flat image finite. (N, H, W, C) -> same shape, float32; no parameters.

  Pixels are in [0, 1], so the floor is 1/32 for a 32x32 grey crop: a crop whose std is under
  8 grey levels is scaled by 32 and no more, and keeps some of its faintness. Otherwise a
  crop's contrast and brightness no longer reach the network, as the global contrast
  normalization of Goodfellow et al. 2013 (arXiv 1302.4389) and the SVHN preprocessing of
  Sermanet et al. 2012 (local contrast normalization) intend: SVHN's digits range from faint to
  stark.
  """

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    x = x.astype(jnp.float32)
    axes = tuple(range(1, x.ndim))
    centred = x - jnp.mean(x, axis=axes, keepdims=True)
    std = jnp.sqrt(jnp.mean(jnp.square(centred), axis=axes, keepdims=True))
    return centred / jnp.maximum(std, 1.0 / math.sqrt(math.prod(x.shape[1:])))


class BatchNormReLU(nnx.Module):
  """The final BN-ReLU of a pre-activation network: (N, H, W, C) -> same shape and dtype."""

  def __init__(self, num_features: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
    self.norm = WideBatchNorm(num_features, dtype=dtype, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    return jax.nn.relu(self.norm(x, train=train))


class GlobalAveragePooling2D(nnx.Module):
  """Keras `GlobalAveragePooling2D`: (N, H, W, C) -> (N, C) float32 means over H and W (the
  authors' 8x8 average pool on the 8x8 maps of a 32x32 input)."""

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


class Logits(nnx.Linear):
  """The classifier, computed in float32 whatever the model's dtype: Torch's nn.Linear init
  U(+-1/sqrt(in_features)) and a zero bias (the authors' `FCinit`). (N, in) -> (N, out)."""

  def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs):
    super().__init__(in_features, out_features, kernel_init=_torch_linear_uniform,
                     bias_init=jax.nn.initializers.zeros, dtype=jnp.float32,
                     param_dtype=jnp.float32, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    return super().__call__(x)


def wrn(*, rngs: nnx.Rngs, channels: int = 1, outputs: int = NUM_CLASSES, depth: int = 28,
        width: int = 2, dropout: float = 0.0, standardize: bool = False,
        dtype=jnp.float32) -> Sequential:
  """WRN-depth-width (Zagoruyko & Komodakis 2016) for 32x32 images with `channels` channels.

  A 3x3 conv to 16 channels; three groups of n = (depth - 4) / 6 `WideBlock`s with 16k, 32k and
  64k channels (k = `width`), the first block of each group at stride 1, 2, 2; BN-ReLU; global
  average pool; Dense(`outputs`: the 10 digit classes unless a task asks for another count).
  `dropout` is the rate between each block's convs (the paper's 0.3 on CIFAR, 0.4 on SVHN).
  WRN-28-10 on colour images has 36,479,194 trainable parameters, the paper's 36.5M
  (tests/test_models.py counts any d, k by hand).

  `dtype` float32 or bfloat16 (or its name): the activations' dtype, parameters and BatchNorm
  statistics staying float32; the pooled features and logits are float32 either way.
  `standardize` puts a `PerImageStandardization` (no parameters) before the first conv.

  Plain Flax layers whatever config.model.impl: the fused training BatchNorm of `fast_layers`
  measured no faster in a WRN train step on 2 CPU cores (batch 128, fastest step, interleaved:
  WRN-10-1 0.275 s fused vs 0.264 s plain, WRN-16-2 1.200 vs 1.192).
  Raises ConfigError for a depth that is not 6n+4 (n >= 1), a width below 1, a dropout outside
  [0, 1) or another dtype.
  """
  n = wrn_blocks(depth)
  if isinstance(width, bool) or not isinstance(width, int) or width < 1:
    raise ConfigError(f"config.model.wrn.width={width!r}: expected a whole number of at least 1")
  if not 0 <= dropout < 1:
    raise ConfigError(f"config.model.wrn.dropout={dropout!r}: expected a number in [0, 1)")
  dtype = _compute_dtype(dtype)
  layers = [PerImageStandardization()] if standardize else []
  layers, features = layers + [WideConv(channels, 16, dtype=dtype, rngs=rngs)], 16
  for group_features, stride in ((16 * width, 1), (32 * width, 2), (64 * width, 2)):
    for i in range(n):
      layers.append(WideBlock(features, group_features, stride if i == 0 else 1,
                              dropout=dropout, dtype=dtype, rngs=rngs))
      features = group_features
  layers += [BatchNormReLU(features, dtype=dtype, rngs=rngs), GlobalAveragePooling2D(),
             Logits(features, outputs, rngs=rngs)]
  return Sequential(layers, channels)


def _from_config(options: Mapping, *, rngs: nnx.Rngs, channels: int, outputs: int, dtype,
                 sample) -> Sequential:
  """The registry's builder: `wrn` of config.model.wrn (`options`: depth, width, dropout,
  standardize) computing in `dtype` (config.train.compute_dtype)."""
  del sample  # nothing read from the data
  return wrn(rngs=rngs, channels=channels, outputs=outputs, depth=options["depth"],
             width=options["width"], dropout=options["dropout"],
             standardize=options["standardize"], dtype=dtype)


WRN = ModelSpec(_from_config, convolutional=True, block="wrn", outputs=NUM_CLASSES, create=wrn)
