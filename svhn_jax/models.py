"""The model registry: name -> builder and static facts; the study's four classifiers and the
Wide ResNets of Zagoruyko & Komodakis 2016.

Each model is an ordered list of layers, like a Keras `Sequential`, so `summary` prints one row
per Keras layer (per residual block for a Wide ResNet) and the forward pass is a plain loop that
jit-compiles into a clean graph. Keras's final softmax is left out: models return logits, and the
loss applies log-softmax.

A model's state is exactly `nnx.Param` + `nnx.BatchStat` (dropout keys come from the caller at
each call), so `nnx.split(model, nnx.Param, nnx.BatchStat)` captures all of it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from svhn_jax import number_models
from svhn_jax.errors import ConfigError
from svhn_jax.layers import (BatchNormalization, ConvBlock, Dense, Dropout, Flatten, LeakyReLU,
                             use_fused)
from svhn_jax.transforms import NUM_CLASSES

IMAGE_SIZE = 32


class Sequential(nnx.Module):
  """An ordered list of layers applied one after another, as Keras `Sequential`."""

  def __init__(self, layers: Sequence[nnx.Module], channels: int):
    self.layers = nnx.List(layers)
    self.channels = channels

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """Returns logits (N, 10) for float32 images `x` (N, 32, 32, channels) in [0, 1].

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


# The study's builders take the Wide ResNet's options too (`**wrn_options`: depth, width,
# dropout, dtype), so that `create_model` builds any model with one call, and ignore them: the
# study's models are fixed, and compute in float32.


def ann1(*, rngs: nnx.Rngs, channels: int = 1, fused: bool = False, pool: str = "reshape",
         **wrn_options):
  """Dense(64, relu) -> Dense(32, relu) -> Dense(10) on the flattened image: 68,010 params."""
  del fused, pool, wrn_options  # no fused layer, no pooling
  return Sequential([
      Flatten(),
      Dense(IMAGE_SIZE * IMAGE_SIZE * channels, 64, jax.nn.relu, rngs=rngs),
      Dense(64, 32, jax.nn.relu, rngs=rngs),
      Dense(32, NUM_CLASSES, rngs=rngs),
  ], channels)


def ann2(*, rngs: nnx.Rngs, channels: int = 1, fused: bool = False, pool: str = "reshape",
         **wrn_options):
  """A deeper MLP with Dropout(0.2) and BatchNorm: 310,250 params, 64 non-trainable."""
  del pool, wrn_options
  return Sequential([
      Flatten(),
      Dense(IMAGE_SIZE * IMAGE_SIZE * channels, 256, jax.nn.relu, rngs=rngs),
      Dense(256, 128, jax.nn.relu, rngs=rngs),
      Dropout(0.2),
      Dense(128, 64, jax.nn.relu, rngs=rngs),
      Dense(64, 64, jax.nn.relu, rngs=rngs),
      Dense(64, 32, jax.nn.relu, rngs=rngs),
      BatchNormalization(32, fused=fused, rngs=rngs),
      Dense(32, NUM_CLASSES, rngs=rngs),
  ], channels)


def cnn1(*, rngs: nnx.Rngs, channels: int = 1, fused: bool = False, pool: str = "reshape",
         **wrn_options):
  """Two 3x3 convs, one max pool, Dense(32), Dense(10): 267,306 params."""
  del wrn_options
  return Sequential([
      ConvBlock(channels, 16, fused=fused, rngs=rngs),
      ConvBlock(16, 32, pool=pool, fused=fused, rngs=rngs),
      Flatten(),
      Dense(16 * 16 * 32, 32, rngs=rngs),
      LeakyReLU(),
      Dense(32, NUM_CLASSES, rngs=rngs),
  ], channels)


def cnn2(*, rngs: nnx.Rngs, channels: int = 1, fused: bool = False, pool: str = "reshape",
         **wrn_options):
  """Two conv blocks with BatchNorm, Dense(32), Dropout(0.5): 164,362 params, 192 non-trainable."""
  del wrn_options
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
      Dense(32, NUM_CLASSES, rngs=rngs),
  ], channels)


# Wide ResNets: WRN-d-k of Zagoruyko & Komodakis 2016, "Wide Residual Networks" (BMVC; arXiv
# 1605.07146), for 32x32 inputs, as the authors' code builds them
# (github.com/szagoruyko/wide-residual-networks: models/wide-resnet.lua, and pytorch/resnet.py,
# which "reproduces exactly" the Lua model).

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
    raise ConfigError(f"config.model.depth={depth!r}: a Wide ResNet's depth is 6n+4 with n >= 1 "
                      "(10, 16, 22, 28, 40, ...)")
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


def wrn(*, rngs: nnx.Rngs, channels: int = 1, fused: bool = False, pool: str = "reshape",
        depth: int = 28, width: int = 2, dropout: float = 0.0, dtype=jnp.float32,
        standardize: bool = False) -> Sequential:
  """WRN-depth-width (Zagoruyko & Komodakis 2016) for 32x32 images with `channels` channels.

  A 3x3 conv to 16 channels; three groups of n = (depth - 4) / 6 `WideBlock`s with 16k, 32k and
  64k channels (k = `width`), the first block of each group at stride 1, 2, 2; BN-ReLU; global
  average pool; Dense(10). `dropout` is the rate between each block's convs (the paper's 0.3 on
  CIFAR, 0.4 on SVHN). WRN-28-10 on colour images has 36,479,194 trainable parameters, the
  paper's 36.5M (tests/test_models.py counts any d, k by hand).

  `dtype` float32 or bfloat16 (or its name): the activations' dtype, parameters and BatchNorm
  statistics staying float32; the pooled features and logits are float32 either way.
  `standardize` puts a `PerImageStandardization` (no parameters) before the first conv.

  `fused` and `pool` belong to the study's layers and are ignored: the fused training
  BatchNorm of `fast_layers` measured no faster in a WRN train step on 2 CPU cores (batch 128,
  fastest step, interleaved: WRN-10-1 0.275 s fused vs 0.264 s plain, WRN-16-2 1.200 vs 1.192).
  Raises ConfigError for a depth that is not 6n+4 (n >= 1), a width below 1, a dropout outside
  [0, 1) or another dtype.
  """
  del fused, pool
  n = wrn_blocks(depth)
  if isinstance(width, bool) or not isinstance(width, int) or width < 1:
    raise ConfigError(f"config.model.width={width!r}: expected a whole number of at least 1")
  if not 0 <= dropout < 1:
    raise ConfigError(f"config.model.dropout={dropout!r}: expected a number in [0, 1)")
  dtype = _compute_dtype(dtype)
  layers = [PerImageStandardization()] if standardize else []
  layers, features = layers + [WideConv(channels, 16, dtype=dtype, rngs=rngs)], 16
  for group_features, stride in ((16 * width, 1), (32 * width, 2), (64 * width, 2)):
    for i in range(n):
      layers.append(WideBlock(features, group_features, stride if i == 0 else 1,
                              dropout=dropout, dtype=dtype, rngs=rngs))
      features = group_features
  layers += [BatchNormReLU(features, dtype=dtype, rngs=rngs), GlobalAveragePooling2D(),
             Logits(features, NUM_CLASSES, rngs=rngs)]
  return Sequential(layers, channels)


class ModelSpec(NamedTuple):
  """A registered model: its builder and what is known of it without building it."""

  build: Callable[..., Sequential]
  convolutional: bool


REGISTRY: dict[str, ModelSpec] = {
    "ann1": ModelSpec(ann1, convolutional=False),
    "ann2": ModelSpec(ann2, convolutional=False),
    "cnn1": ModelSpec(cnn1, convolutional=True),
    "cnn2": ModelSpec(cnn2, convolutional=True),
    "wrn": ModelSpec(wrn, convolutional=True),
    "multidigit": ModelSpec(number_models.multidigit, convolutional=True),
}


def spec(name: str) -> ModelSpec:
  """The registry entry of `name` (case-insensitive); ConfigError for an unknown name."""
  key = name.lower() if isinstance(name, str) else name
  if key not in REGISTRY:
    raise ConfigError(f"config.model.name={name!r}: expected one of {', '.join(REGISTRY)}")
  return REGISTRY[key]


def create_model(name: str, *, seed: int | jax.Array, channels: int = 1, impl: str = "auto",
                 pool: str = "reshape", depth: int = 28, width: int = 2, dropout: float = 0.0,
                 dtype=jnp.float32, standardize: bool = False) -> Sequential:
  """Returns the model called `name`, initialized from `seed`, for images with `channels`
  channels (1 grey, 3 colour).

  `impl` ('auto', 'fast', 'flax': see `layers.use_fused`) and `pool` change how the study's
  models compute, never what: same parameters, same outputs to float rounding. `depth`,
  `width`, `dropout`, `dtype` (float32 or bfloat16 activations) and `standardize` (per-image
  standardization of the input) shape a Wide ResNet (`wrn`) and are ignored by the study's
  models. Raises ConfigError for an unknown name, impl or pool, or WRN options `wrn` cannot
  build.
  """
  return spec(name).build(rngs=nnx.Rngs(seed), channels=channels, fused=use_fused(impl),
                          pool=pool, depth=depth, width=width, dropout=dropout, dtype=dtype,
                          standardize=standardize)


def from_config(model_cfg: Mapping, *, seed: int | jax.Array, channels: int,
                dtype=jnp.float32) -> Sequential:
  """`create_model` with config.model's name, impl, depth, width, dropout and standardize
  (`model_cfg` is config.model, a ConfigDict or a dict); `dtype` as in `create_model`
  (config.train's compute_dtype). Raises ConfigError as `create_model` does."""
  return create_model(model_cfg["name"], seed=seed, channels=channels, impl=model_cfg["impl"],
                      depth=model_cfg["depth"], width=model_cfg["width"],
                      dropout=model_cfg["dropout"], dtype=dtype,
                      standardize=model_cfg["standardize"])


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


def _layer_rows(model: Sequential) -> list[tuple[str, str, str]]:
  """(name (type), output shape, param count) per Keras layer, named as Keras numbers them;
  shapes traced for one image without computing."""
  rows, seen = [], {}
  size = getattr(model, "image_size", IMAGE_SIZE)  # the number reader's 54
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
