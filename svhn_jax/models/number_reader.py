"""The multi-digit reader of whole house numbers: a shared convolutional trunk and one softmax for
the number's length and one per digit position, after Goodfellow et al. 2013.

Goodfellow, Bulatov, Ibarz, Arnoud and Shet, "Multi-digit Number Recognition from Street View
Imagery using Deep Convolutional Neural Networks" (arXiv 1312.6082), section 5.1: 54x54 inputs,
eight convolutional layers of 48, 64, 128, 160, 192, 192, 192 and 192 units with 5x5 kernels and
'same' zero padding, each followed by 2x2 max pooling whose stride alternates between 2 and 1, two
fully connected layers of 3,072 units, then a softmax over the length (0..5 or "more than 5") and
one over the ten digits at each of five positions. Here every convolution is followed by
BatchNorm and a ReLU (the paper used subtractive normalization, and maxout units in its first
layer), and `model.reader.dropout` drops units after each fully connected layer (the paper dropped
every hidden layer's). `SIZES` holds that architecture ("paper", 23.4 M parameters here, for a
GPU) and a small one ("small", the default, 2.3 M) that trains on 2 CPU cores in minutes: its
input is folded 2x2 into channels (`SpaceToDepth`), so no layer runs at 54x54, and it has four
3x3 convolutions of 32, 64, 96 and 128 units and one fully connected layer of 1,024.

Two column sizes read the number as CRNN does (Shi, Bai and Yao 2015, arXiv 1507.05717), with
CTC (Graves, Fernandez, Gomez and Schmidhuber 2006): "ctc" for a CPU (0.58 M parameters) and
"ctc_paper" for a GPU (6.1 M, the paper's widths and 5x5 kernels). Their trunk pools rows but,
after the first pools, not columns (`column_trunk`: 54x54 -> 4 rows x 14 columns), and each of the
14 columns gets 11 logits (ten digits and CTC's blank) from its own and its neighbours' features:
one digit classifier for every place in the number, where the positional heads need a digit
classifier per position, each learning from only the numbers long enough to reach it. Their
output is (N, 14 x 11) = (N, 154) (`column_logits`); 57 is no multiple of 11, so the logits'
width tells the two kinds apart (`is_columns`), and the number task decodes and scores either.

Two residual sizes put the Wide ResNet's pre-activation blocks (`models.wrn.WideBlock`) in place
of the plain convolutions (`residual_trunk`; issue 30): "residual" for a CPU (space-to-depth to
27x27, blocks of 32, 64 and 128 features down to a 7x7 map, 3.6 M parameters) and
"residual_paper" for a GPU (blocks of 64, 128 and 256 from the full 54x54 input, 16 M). Both
flatten a 7x7 map, every column kept (a 54-pixel-wide number of five digits is about 1.4 columns
a digit there, against 0.8 in the plain sizes' 4x4), before their dense layer and the heads.

The model returns one float32 array of logits (N, 57): the length's 7 logits, then the five
positions' 10 each (`split_logits` takes them apart), or a column reader's (N, 154), so inference
concatenates chunks of it like any classifier's. Its state is exactly `nnx.Param` + `nnx.BatchStat`, as for the other
models of `svhn_jax.models`, whose registry builds it by the name `multidigit` from
config.model.reader (size, dropout). `SIZES` lives in `reader_sizes` (no JAX, for the config).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from svhn_jax.errors import ConfigError
from svhn_jax.house_numbers import CROP, MAX_DIGITS
from svhn_jax.layers import Dropout, Flatten
from svhn_jax.models import ModelSpec
from svhn_jax.models.reader_sizes import SIZES, Architecture, Columns, Residual
from svhn_jax.models.wrn import BatchNormReLU, WideBlock, WideConv

LENGTH_CLASSES = MAX_DIGITS + 2  # lengths 0..5 and "more than 5" (arXiv 1312.6082 section 3)
DIGIT_CLASSES = 10
OUTPUTS = LENGTH_CLASSES + MAX_DIGITS * DIGIT_CLASSES  # 57
# A column reader's classes per column: the ten digits and CTC's blank (Graves et al. 2006).
CTC_CLASSES = DIGIT_CLASSES + 1
BLANK = DIGIT_CLASSES
# BatchNorm's running averages keep 0.9 of their value per step (flax's convention; Torch's 0.1):
# a run of a few hundred steps per epoch would validate on stale statistics with Keras's 0.99.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-3
_he_normal = jax.nn.initializers.variance_scaling(2.0, "fan_in", "normal")
_glorot_uniform = jax.nn.initializers.glorot_uniform()


def split_logits(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(length logits (..., 7), digit logits (..., 5, 10)) of the model's output (..., 57); works
  on numpy and JAX arrays alike. Raises ValueError for another last axis."""
  if logits.shape[-1] != OUTPUTS:
    raise ValueError(f"split_logits: expected logits (..., {OUTPUTS}), got shape {logits.shape}")
  length = logits[..., :LENGTH_CLASSES]
  digits = logits[..., LENGTH_CLASSES:].reshape(*logits.shape[:-1], MAX_DIGITS, DIGIT_CLASSES)
  return length, digits


def is_columns(logits) -> bool:
  """Whether logits (..., K) are a column reader's (K = T x 11, `column_logits`) rather than the
  positional heads' (K = 57, `split_logits`). 57 is no multiple of 11, so K tells them apart."""
  width = logits.shape[-1]
  return width != OUTPUTS and width % CTC_CLASSES == 0


def column_logits(logits):
  """A column reader's logits (..., T x 11) as (..., T, 11): per column (left to right) the ten
  digits' logits, then the blank's. Works on numpy and JAX arrays. Raises ValueError for a last
  axis that is no multiple of 11."""
  if not is_columns(logits):
    raise ValueError(f"column_logits: expected logits (..., T x {CTC_CLASSES}), got shape "
                     f"{logits.shape}")
  return logits.reshape(*logits.shape[:-1], logits.shape[-1] // CTC_CLASSES, CTC_CLASSES)


class NumberConv(nnx.Conv):
  """A k x k convolution, 'same' zero padding, stride 1, no bias (BatchNorm follows), He-normal
  kernel (fan-in): (N, H, W, in) -> (N, H, W, out) float32."""

  def __init__(self, in_features: int, out_features: int, kernel: int, *, rngs: nnx.Rngs):
    super().__init__(in_features, out_features, (kernel, kernel), padding="SAME", use_bias=False,
                     kernel_init=_he_normal, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    return super().__call__(x)


class NumberBatchNorm(nnx.BatchNorm):
  """BatchNorm over the last axis, momentum `BN_MOMENTUM`, epsilon `BN_EPSILON`: batch
  statistics (and running-average updates) in training, the running averages otherwise."""

  def __init__(self, num_features: int, *, rngs: nnx.Rngs):
    super().__init__(num_features, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    return super().__call__(x, use_running_average=not train)


class SpaceToDepth(nnx.Module):
  """Each `block` x `block` patch of pixels as one pixel of block^2 times the channels:
  (N, H, W, C) -> (N, H / block, W / block, block^2 C), patch rows then columns then channels.
  An exact rearrangement; the first convolution then runs at a quarter of the resolution."""

  def __init__(self, block: int):
    self.block = block

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    n, h, w, c = x.shape
    b = self.block
    x = x.reshape(n, h // b, b, w // b, b, c).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h // b, w // b, b * b * c)


class ReLU(nnx.Module):
  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    return jax.nn.relu(x)


class MaxPool(nnx.Module):
  """2x2 max pooling at `stride` 1 or 2 with 'same' padding: (N, H, W, C) -> (N, ceil(H / s),
  ceil(W / s), C), so odd sides (27) pool to their ceiling (14) as in the paper's 54 -> 4. A
  `stride` (rows, columns) pools windows of that shape at that stride instead, e.g. (2, 1): the
  rows halved, every column kept (a column reader's)."""

  def __init__(self, stride: int | tuple[int, int]):
    self.stride = stride

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    if isinstance(self.stride, int):
      return nnx.max_pool(x, (2, 2), strides=(self.stride, self.stride), padding="SAME")
    return nnx.max_pool(x, tuple(self.stride), strides=tuple(self.stride), padding="SAME")


class HiddenDense(nnx.Linear):
  """A fully connected ReLU layer, He-normal kernel, zero bias: (N, in) -> (N, out)."""

  def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs):
    super().__init__(in_features, out_features, kernel_init=_he_normal, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    return jax.nn.relu(super().__call__(x))


class Heads(nnx.Module):
  """The six softmax layers' logits side by side: (N, in) -> (N, 57), the length's 7 then each
  digit position's 10 (`split_logits`). Glorot-uniform kernels, zero biases."""

  def __init__(self, in_features: int, *, rngs: nnx.Rngs):
    self.length = nnx.Linear(in_features, LENGTH_CLASSES, kernel_init=_glorot_uniform, rngs=rngs)
    self.digits = nnx.List([nnx.Linear(in_features, DIGIT_CLASSES, kernel_init=_glorot_uniform,
                                       rngs=rngs) for _ in range(MAX_DIGITS)])

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    return jnp.concatenate([self.length(x), *(head(x) for head in self.digits)], axis=-1)


class ColumnFeatures(nnx.Module):
  """Each column of a map as one vector of its rows' features: (N, H, W, C) -> (N, W, H C), rows
  then channels."""

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    n, h, w, c = x.shape
    return x.transpose(0, 2, 1, 3).reshape(n, w, h * c)


class ColumnDense(nnx.Conv):
  """A column's ReLU units from its own and its two neighbours' features: a convolution across
  columns of width 3, 'same' zero padding, He-normal kernel, zero bias: (N, T, in) -> (N, T, out).
  """

  def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs):
    super().__init__(in_features, out_features, (3,), padding="SAME", kernel_init=_he_normal,
                     rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    return jax.nn.relu(super().__call__(x))


class ColumnHeads(nnx.Linear):
  """Each column's 11 logits (ten digits, CTC's blank), flattened: (N, T, in) -> (N, T x 11)
  (`column_logits` takes them apart). Glorot-uniform kernel, zero bias."""

  def __init__(self, in_features: int, *, rngs: nnx.Rngs):
    super().__init__(in_features, CTC_CLASSES, kernel_init=_glorot_uniform, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    x = super().__call__(x)
    return x.reshape(x.shape[0], -1)


class OutputLayer(nnx.Linear):
  """`outputs` logits in one layer (a task other than reading numbers): Glorot-uniform kernel,
  zero bias, (N, in) -> (N, outputs)."""

  def __init__(self, in_features: int, outputs: int, *, rngs: nnx.Rngs):
    super().__init__(in_features, outputs, kernel_init=_glorot_uniform, rngs=rngs)

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    return super().__call__(x)


class NumberReader(nnx.Module):
  """The reader: float32 images (N, 54, 54, channels) in [0, 1] -> logits (N, 57).

  `keras_layers` lists its layers in order for `study.summary`, which traces them from an input
  of `READER.image_size` (54) pixels a side.
  """

  def __init__(self, layers: Sequence[nnx.Module], channels: int):
    self.layers = nnx.List(layers)
    self.channels = channels

  def __call__(self, x: jax.Array, *, train: bool = False,
               rngs: nnx.Rngs | None = None) -> jax.Array:
    """Logits (N, 57) of `x` (N, 54, 54, channels). `train=True` uses and updates BatchNorm's
    batch statistics and turns dropout on, keyed by the 'dropout' stream of `rngs`."""
    for layer in self.layers:
      x = layer(x, train=train, rngs=rngs)
    return x

  def keras_layers(self) -> list[nnx.Module]:
    return list(self.layers)


def architecture(size: str) -> Architecture | Residual:
  """`SIZES[size]`; ConfigError naming config.model.reader.size for another name."""
  if size not in SIZES:
    raise ConfigError(f"config.model.reader.size={size!r}: expected one of {', '.join(SIZES)}")
  return SIZES[size]


def residual_trunk(arch: Residual, channels: int, *, rngs: nnx.Rngs
                   ) -> tuple[list[nnx.Module], int]:
  """The layers of a residual trunk and the count of features they flatten to, for 54x54 inputs
  with `channels` channels: SpaceToDepth(`arch.space_to_depth`) when above 1; a 3x3 `WideConv`
  to `arch.stem` features; per group (features, blocks, stride) that many of the Wide ResNet's
  pre-activation `WideBlock`s (BN-ReLU-conv twice, identity or 1x1 projection shortcut; the
  first at `stride`, Torch's symmetric padding: side s -> ceil(s / stride)); the final
  BN-ReLU; Flatten. Float32, no dropout inside the blocks."""
  layers, features, side = [], channels, CROP
  if arch.space_to_depth > 1:
    layers.append(SpaceToDepth(arch.space_to_depth))
    features, side = features * arch.space_to_depth ** 2, side // arch.space_to_depth
  layers.append(WideConv(features, arch.stem, rngs=rngs))
  features = arch.stem
  for out, blocks, stride in arch.groups:
    for i in range(blocks):
      layers.append(WideBlock(features, out, stride if i == 0 else 1, rngs=rngs))
      features = out
    side = -(-side // stride)
  layers += [BatchNormReLU(features, rngs=rngs), Flatten()]
  return layers, side * side * features


def multidigit(*, rngs: nnx.Rngs, channels: int = 1, outputs: int = OUTPUTS, size: str = "small",
               dropout: float = 0.0) -> NumberReader:
  """The reader of `SIZES[size]` for 54x54 images with `channels` channels (1 grey, 3 colour):
  per convolutional layer NumberConv -> NumberBatchNorm -> ReLU -> MaxPool(stride); Flatten;
  per fully connected layer HiddenDense, then Dropout(`dropout`) when `dropout` > 0; Heads (the
  57 logits of `split_logits`), or for another count of `outputs` (a task of its own reusing the
  trunk) one Glorot-uniform linear layer of that many. A `Residual` size ("residual",
  "residual_paper") has `residual_trunk`'s layers in place of the convolutions, then the same
  dense layers and heads. A `Columns` size ("ctc", "ctc_paper") is `_column_reader`'s: logits
  (N, T x 11) of T columns for numbers, a flattened map for another task. Raises ConfigError for an unknown `size` or a `dropout` outside [0, 1).
  """
  arch = architecture(size)
  if not 0 <= dropout < 1:
    raise ConfigError(f"config.model.reader.dropout={dropout!r}: expected a number in [0, 1)")
  if isinstance(arch, Columns):
    return _column_reader(arch, channels, outputs, dropout, rngs=rngs)
  if isinstance(arch, Residual):
    layers, features = residual_trunk(arch, channels, rngs=rngs)
  else:
    layers, features = _plain_trunk(arch, channels, rngs=rngs)
  for units in arch.dense:
    layers.append(HiddenDense(features, units, rngs=rngs))
    if dropout > 0:
      layers.append(Dropout(dropout))
    features = units
  layers.append(Heads(features, rngs=rngs) if outputs == OUTPUTS else
                OutputLayer(features, outputs, rngs=rngs))
  return NumberReader(layers, channels)


def column_trunk(arch: Columns, channels: int, *, rngs: nnx.Rngs
                 ) -> tuple[list[nnx.Module], tuple[int, int, int]]:
  """The layers of a column reader's trunk and the (rows, columns, features) of its last map,
  for 54x54 inputs with `channels` channels: SpaceToDepth when asked, then per layer NumberConv
  -> NumberBatchNorm -> ReLU -> MaxPool((rows, columns)) unless the pool is (1, 1)."""
  layers, features = [], channels
  rows = columns = CROP
  if arch.space_to_depth > 1:
    layers.append(SpaceToDepth(arch.space_to_depth))
    features *= arch.space_to_depth ** 2
    rows = columns = CROP // arch.space_to_depth
  for out, pool in arch.conv:
    layers += [NumberConv(features, out, arch.kernel, rngs=rngs), NumberBatchNorm(out, rngs=rngs),
               ReLU()]
    if tuple(pool) != (1, 1):
      layers.append(MaxPool(tuple(pool)))
      rows, columns = -(-rows // pool[0]), -(-columns // pool[1])
    features = out
  return layers, (rows, columns, features)


def _column_reader(arch: Columns, channels: int, outputs: int, dropout: float, *,
                   rngs: nnx.Rngs) -> NumberReader:
  """`column_trunk`, then for numbers (`outputs` = OUTPUTS) ColumnFeatures, per `arch.dense`
  ColumnDense (and Dropout), ColumnHeads: logits (N, T x 11), T the last map's columns; for
  another task, Flatten, HiddenDense per `arch.dense` and an OutputLayer of `outputs`."""
  layers, (rows, columns, features) = column_trunk(arch, channels, rngs=rngs)
  if outputs == OUTPUTS:
    layers.append(ColumnFeatures())
    features *= rows
    for units in arch.dense:
      layers.append(ColumnDense(features, units, rngs=rngs))
      if dropout > 0:
        layers.append(Dropout(dropout))
      features = units
    layers.append(ColumnHeads(features, rngs=rngs))
    return NumberReader(layers, channels)
  layers.append(Flatten())
  features *= rows * columns
  for units in arch.dense:
    layers.append(HiddenDense(features, units, rngs=rngs))
    if dropout > 0:
      layers.append(Dropout(dropout))
    features = units
  layers.append(OutputLayer(features, outputs, rngs=rngs))
  return NumberReader(layers, channels)


def _plain_trunk(arch: Architecture, channels: int, *, rngs: nnx.Rngs
                 ) -> tuple[list[nnx.Module], int]:
  """The layers of a plain trunk (the sizes "small", "paper") and the features they flatten to:
  SpaceToDepth when asked, per convolutional layer NumberConv -> NumberBatchNorm -> ReLU ->
  MaxPool(stride), Flatten."""
  layers, features, side = [], channels, CROP
  if arch.space_to_depth > 1:
    layers.append(SpaceToDepth(arch.space_to_depth))
    features, side = features * arch.space_to_depth ** 2, side // arch.space_to_depth
  for out, stride in arch.conv:
    layers += [NumberConv(features, out, arch.kernel, rngs=rngs), NumberBatchNorm(out, rngs=rngs),
               ReLU()]
    if stride:
      layers.append(MaxPool(stride))
      side = -(-side // stride)
    features = out
  layers.append(Flatten())
  return layers, side * side * features


def _from_config(options: Mapping, *, rngs: nnx.Rngs, channels: int, outputs: int, dtype,
                 sample) -> NumberReader:
  """The registry's builder: `multidigit` of config.model.reader (`options`: size, dropout)."""
  del dtype, sample  # float32 layers; nothing read from the data
  return multidigit(rngs=rngs, channels=channels, outputs=outputs, size=options["size"],
                    dropout=options["dropout"])


READER = ModelSpec(_from_config, convolutional=True, block="reader", outputs=OUTPUTS,
                   image_size=CROP, create=multidigit)
