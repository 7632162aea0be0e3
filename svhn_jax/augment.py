"""Data augmentation for SVHN crops as pure JAX functions, to run inside a jitted train step.

Images are floating (N, H, W, C) arrays with values in [0, 1], C = 1 (grey) or 3 (colour).
Every function returns an array of the same shape and dtype, values still in [0, 1], and never
leaves the device. Random functions take a `jax.random` key and split it into one key per
image: each image draws its own parameters, and the same key gives bit-identical output on the
CPU. Nothing flips images: a mirrored 2, 5 or 7 is no longer that digit.

- `random_translate`: the pad-and-random-crop of the classic CIFAR/SVHN recipe.
- `cutout`: DeVries & Taylor 2017, "Improved Regularization of Convolutional Neural Networks
  with Cutout" (arXiv 1708.04552).
- `rand_augment`: Cubuk et al. 2019, "RandAugment: Practical automated data augmentation with a
  reduced search space" (arXiv 1909.13719). Each of its ops is public too, as
  `op(images, magnitude)` on one (H, W, C) image or an (N, H, W, C) batch.
- `augment`: the three composed, for the train step.
- `distort`: per-image random distortions drawn from continuous ranges, for whole house numbers
  (issue 30): scale and aspect jitter, rotation and shear in one resampling (`warp_matrix`,
  `warp`), contrast and colour (RandAugment's `contrast` and `color` blends at a drawn factor)
  and gaussian blur (`gaussian_blur`).

Op semantics follow the PIL-based reference implementations, timm's `auto_augment.py` and
tensorflow/models' `autoaugment.py` (see `rand_augment`), on the [0, 1] scale: "8-bit" below
means `round(255 * x)`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

# RandAugment's magnitude scale, 0..10 as in tensorflow/models (`_MAX_LEVEL = 10`) and timm
# (`_LEVEL_DENOM = 10`): at 10 each op reaches the AutoAugment paper's largest setting.
MAX_MAGNITUDE = 10.0

# What magnitude 10 means, from timm's `*_level_to_arg` functions.
_MAX_DEGREES = 30.0
_MAX_SHEAR = 0.3
_MAX_TRANSLATE = 0.45  # of the image's width or height: timm's `translate_pct`
_MAX_ENHANCE = 0.9  # blend factor 1 +- 0.9: timm's "increasing" enhance ops
_MIN_ENHANCE = 0.1  # timm's floor on that factor
_MAX_POSTERIZE_BITS = 4  # bits dropped at magnitude 10: the AutoAugment paper's 4..8 bits kept

# ITU-R 601-2 luma, the weights of PIL's convert("L").
_LUMA = (0.299, 0.587, 0.114)


def _check_images(images, *, batched: bool = False) -> jax.Array:
  images = jnp.asarray(images)
  ranks = (4,) if batched else (3, 4)
  if (images.ndim not in ranks or images.shape[-1] not in (1, 3)
      or not jnp.issubdtype(images.dtype, jnp.floating)):
    want = "(N, H, W, C)" if batched else "(H, W, C) or (N, H, W, C)"
    raise ValueError(f"expected floating images of shape {want} with C = 1 or 3, got "
                     f"{images.dtype} {images.shape}")
  return images


def _magnitude(magnitude, images: jax.Array) -> jax.Array:
  """`magnitude` as an array of images' dtype, shaped () or one per image (N,)."""
  magnitude = jnp.asarray(magnitude, images.dtype)
  if magnitude.shape not in ((), images.shape[:-3]):
    raise ValueError(f"magnitude must be a scalar or have shape {images.shape[:-3]} (one per "
                     f"image), got shape {magnitude.shape}")
  return magnitude


def _pixelwise(value: jax.Array, images: jax.Array) -> jax.Array:
  """A scalar or per-image `value` reshaped to broadcast against `images`."""
  return value.reshape(value.shape + (1,) * (images.ndim - value.ndim))


def _count(value, name: str) -> int:
  value = operator.index(value)
  if value < 0:
    raise ValueError(f"{name} must be >= 0, got {value}")
  return value


def _check_magnitude(magnitude) -> float:
  magnitude = float(magnitude)
  if not 0 <= magnitude <= MAX_MAGNITUDE:
    raise ValueError(f"magnitude must be in [0, {MAX_MAGNITUDE:g}] (RandAugment's scale as in "
                     f"tensorflow/models and timm), got {magnitude}")
  return magnitude


def _per_image_keys(key: jax.Array, images: jax.Array) -> jax.Array:
  return jax.random.split(key, images.shape[0])


def _to_8bit(images: jax.Array) -> jax.Array:
  return jnp.round(jnp.clip(images, 0, 1) * 255).astype(jnp.int32)


def _from_8bit(levels: jax.Array, dtype) -> jax.Array:
  return levels.astype(dtype) / 255


# Whole-pixel translation and cutout.


def shift(images, dy, dx) -> jax.Array:
  """Moves image content down by `dy` and right by `dx` whole pixels, repeating edge pixels.

  images: (H, W, C) or (N, H, W, C), floating. dy, dx: integers, scalars or (N,) (one per image),
  negative for up / left. Output pixel (y, x) is input pixel (clip(y - dy), clip(x - dx)):
  exactly an edge-mode pad followed by a crop. Raises ValueError on a bad shape or dtype.
  """
  images = _check_images(images)
  h, w = images.shape[-3:-1]

  def one(image, dy, dx):
    rows = jnp.clip(jnp.arange(h) - dy, 0, h - 1)
    cols = jnp.clip(jnp.arange(w) - dx, 0, w - 1)
    return image[rows][:, cols]

  dy = jnp.broadcast_to(jnp.asarray(dy, jnp.int32), images.shape[:-3])
  dx = jnp.broadcast_to(jnp.asarray(dx, jnp.int32), images.shape[:-3])
  return one(images, dy, dx) if images.ndim == 3 else jax.vmap(one)(images, dy, dx)


def random_translate(images, key: jax.Array, max_shift: int) -> jax.Array:
  """Shifts each image by its own whole-pixel offset, uniform in [-max_shift, max_shift] per axis.

  images: (N, H, W, C), floating, in [0, 1]. This is the classic pad-by-`max_shift`-and-randomly-
  crop recipe (e.g. CIFAR's pad 4, crop 32), with edge padding rather than zeros: SVHN crops are
  cut from street scenes, and a black frame is something no test crop has. Raises ValueError for
  a negative `max_shift` or bad images.
  """
  images = _check_images(images, batched=True)
  max_shift = _count(max_shift, "max_shift")
  offsets = jax.vmap(lambda k: jax.random.randint(k, (2,), -max_shift, max_shift + 1))(
      _per_image_keys(key, images))
  return shift(images, offsets[:, 0], offsets[:, 1])


def erase_square(images, cy, cx, size: int) -> jax.Array:
  """Sets a `size` x `size` square centred on pixel (cy, cx) to 0 in every channel.

  images: (H, W, C) or (N, H, W, C), floating. cy, cx: integers, scalars or (N,). The square
  covers rows cy - size // 2 .. cy - size // 2 + size - 1 (and likewise columns), clipped at the
  image border, so a centre near an edge erases less. Raises ValueError for a negative `size`.
  """
  images = _check_images(images)
  size = _count(size, "size")
  h, w = images.shape[-3:-1]

  def first(centre):
    centre = jnp.broadcast_to(jnp.asarray(centre, jnp.int32), images.shape[:-3])
    return centre.reshape(centre.shape + (1, 1)) - size // 2

  top, left = first(cy), first(cx)
  rows = jnp.arange(h)[:, None]
  cols = jnp.arange(w)[None, :]
  inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
  return jnp.where(inside[..., None], jnp.zeros((), images.dtype), images)


def cutout(images, key: jax.Array, size: int) -> jax.Array:
  """Cutout (DeVries & Taylor 2017, arXiv 1708.04552): zeroes one `size` x `size` square per image.

  images: (N, H, W, C), floating, in [0, 1]. Each square's centre is uniform over the image's
  pixels and the square is clipped at the border, as in the paper's code (`erase_square` gives
  the exact extent; unlike that code, an odd `size` erases `size` rows, not `size - 1`). The
  fill is 0, black: the paper's 0 was in mean-subtracted inputs, i.e. the dataset mean, so on
  these unnormalized images the square is a harder occluder. Raises ValueError for a negative
  `size` or bad images.
  """
  images = _check_images(images, batched=True)
  h, w = images.shape[1:3]
  centres = jax.vmap(lambda k: jax.random.randint(k, (2,), 0, jnp.array([h, w])))(
      _per_image_keys(key, images))
  return erase_square(images, centres[:, 0], centres[:, 1], size)


# `augment`'s `cutout` argument shadows the function.
_cutout = cutout


# RandAugment ops. Each takes (H, W, C) or (N, H, W, C) floating images in [0, 1] and a magnitude
# on the 0..10 scale, a scalar or one per image (N,), and returns images of the same shape and
# dtype in [0, 1]. Ops marked signed treat a negative magnitude as the opposite direction (the
# policy draws the sign); magnitudes past 10 extrapolate linearly. All raise ValueError on a bad
# images shape or dtype or a magnitude of the wrong shape.


def identity(images, magnitude=0.0) -> jax.Array:
  """Returns `images` unchanged (RandAugment's Identity). `magnitude` is ignored."""
  images = _check_images(images)
  _magnitude(magnitude, images)
  return images


def invert(images, magnitude=0.0) -> jax.Array:
  """1 - x (PIL's ImageOps.invert). `magnitude` is ignored."""
  images = _check_images(images)
  _magnitude(magnitude, images)
  return 1 - images


def autocontrast(images, magnitude=0.0) -> jax.Array:
  """Stretches each image's channels to span [0, 1]: (x - min) / (max - min), per channel.

  PIL's ImageOps.autocontrast without cutoff, minus its 8-bit rounding; a constant channel stays
  as it is, as in PIL. `magnitude` is ignored.
  """
  images = _check_images(images)
  _magnitude(magnitude, images)
  low = images.min(axis=(-3, -2), keepdims=True)
  span = images.max(axis=(-3, -2), keepdims=True) - low
  return jnp.where(span > 0, (images - low) / jnp.where(span > 0, span, 1), images)


def _equalize_channel(channel: jax.Array) -> jax.Array:
  """PIL's ImageOps.equalize on one (H, W) channel."""
  levels = _to_8bit(channel)
  hist = jnp.zeros(256, jnp.int32).at[levels.ravel()].add(1)
  step = (levels.size - hist[levels.max()]) // 255
  below = jnp.cumsum(hist) - hist
  # PIL can map the top levels past 255; tensorflow/models clips them, as PIL's 8-bit output does.
  lut = jnp.minimum((step // 2 + below) // jnp.maximum(step, 1), 255)
  return jnp.where(step > 0, _from_8bit(lut[levels], channel.dtype), channel)


def equalize(images, magnitude=0.0) -> jax.Array:
  """Histogram equalization of each channel on its 8-bit levels (PIL's ImageOps.equalize).

  With `step` = (pixels not at the channel's top level) // 255, level v maps to
  min(255, (step // 2 + pixels below v) // step) / 255. A channel with step 0 (fewer than 255
  pixels below its top level, so any image under 16 x 16) is returned unchanged, as PIL does.
  Outputs are multiples of 1/255. `magnitude` is ignored.
  """
  images = _check_images(images)
  _magnitude(magnitude, images)
  channels = jnp.moveaxis(images, -1, -3)
  out = jax.vmap(_equalize_channel)(channels.reshape((-1,) + channels.shape[-2:]))
  return jnp.moveaxis(out.reshape(channels.shape), -3, -1)


def posterize(images, magnitude) -> jax.Array:
  """Keeps the top 8 - floor(0.4 * magnitude) bits of each 8-bit value (PIL's ImageOps.posterize).

  Magnitude 0..10 keeps 8..4 bits: the AutoAugment paper's range, severity growing with magnitude
  (timm's "original" posterize, reversed; its "increasing" one goes down to 0 bits, a black
  image). Keeping 8 bits returns the input unchanged, as timm does; otherwise outputs are
  multiples of 1/255.
  """
  images = _check_images(images)
  # Multiplying before dividing keeps floor() exact at magnitudes such as 5 (2 bits).
  dropped = jnp.floor(_magnitude(magnitude, images) * _MAX_POSTERIZE_BITS / MAX_MAGNITUDE)
  dropped = jnp.clip(dropped, 0, 8)
  dropped = _pixelwise(dropped.astype(jnp.int32), images)
  kept = (_to_8bit(images) >> dropped) << dropped
  return jnp.where(dropped > 0, _from_8bit(kept, images.dtype), images)


def solarize(images, magnitude) -> jax.Array:
  """Inverts (1 - x) every value whose 8-bit level is >= 256 - 25.6 * magnitude (PIL's
  ImageOps.solarize with timm's "increasing" threshold): nothing at magnitude 0, values from
  128/255 up at 5, everything at 10."""
  images = _check_images(images)
  threshold = 256 - _magnitude(magnitude, images) * 256 / MAX_MAGNITUDE
  return jnp.where(images * 255 >= _pixelwise(threshold, images), 1 - images, images)


def _enhance_factor(magnitude, images: jax.Array) -> jax.Array:
  """timm's "increasing" enhance factor: 1 (no change) at magnitude 0, 1 +- 0.9 at 10."""
  factor = 1 + _magnitude(magnitude, images) * (_MAX_ENHANCE / MAX_MAGNITUDE)
  return _pixelwise(jnp.maximum(factor, _MIN_ENHANCE), images)


def _blend(degenerate, images: jax.Array, factor: jax.Array) -> jax.Array:
  """PIL's Image.blend(degenerate, images, factor), clipped to [0, 1] as PIL's 8-bit output is."""
  return jnp.clip(degenerate + factor * (images - degenerate), 0, 1)


def _grey(images: jax.Array) -> jax.Array:
  """Luma as (..., H, W, 1): PIL's convert("L") for colour images, the image itself for grey."""
  if images.shape[-1] == 1:
    return images
  r, g, b = (images[..., i:i + 1] for i in range(3))
  return _LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b


def color(images, magnitude) -> jax.Array:
  """Blends with the image's greyscale version, factor 1 + 0.09 * magnitude (PIL's
  ImageEnhance.Color): saturation. Signed. Grey images are returned unchanged."""
  images = _check_images(images)
  return _blend(_grey(images), images, _enhance_factor(magnitude, images))


def contrast(images, magnitude) -> jax.Array:
  """Blends with a uniform image at the mean luma, factor 1 + 0.09 * magnitude (PIL's
  ImageEnhance.Contrast, without its rounding of the mean to 8 bits). Signed."""
  images = _check_images(images)
  mean = _grey(images).mean(axis=(-3, -2, -1), keepdims=True)
  return _blend(mean, images, _enhance_factor(magnitude, images))


def brightness(images, magnitude) -> jax.Array:
  """Blends with black, i.e. scales by 1 + 0.09 * magnitude, clipped to [0, 1] (PIL's
  ImageEnhance.Brightness). Signed."""
  images = _check_images(images)
  return _blend(jnp.zeros((), images.dtype), images, _enhance_factor(magnitude, images))


def _smooth(images: jax.Array) -> jax.Array:
  """PIL's ImageFilter.SMOOTH, kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13, on the interior;
  the one-pixel border keeps its values, as PIL's 3x3 filters (and tensorflow/models) leave it."""
  h, w = images.shape[-3:-1]
  centre = images[..., 1:-1, 1:-1, :]
  window_sum = sum(images[..., i:i + h - 2, j:j + w - 2, :] for i in range(3) for j in range(3))
  return images.at[..., 1:-1, 1:-1, :].set((window_sum + 4 * centre) / 13)


def sharpness(images, magnitude) -> jax.Array:
  """Blends with the SMOOTH-filtered image, factor 1 + 0.09 * magnitude (PIL's
  ImageEnhance.Sharpness): above 1 sharpens, below 1 blurs. Signed."""
  images = _check_images(images)
  return _blend(_smooth(images), images, _enhance_factor(magnitude, images))


# Geometric ops: a (..., 2, 3) matrix per image, then one bilinear resampling. Row-major pixel
# coordinates (y, x) are taken relative to the image centre ((H - 1) / 2, (W - 1) / 2): output
# pixel (y, x) reads the input at matrix[:, :2] @ (y, x) + matrix[:, 2], the inverse map that
# PIL's Image.transform(AFFINE) takes. Points outside the image take the nearest edge pixel's
# value instead of timm's grey (128) fill, for `random_translate`'s reason: a uniform wedge is
# something no test crop shows.


def _affine(a, b, c, d, e, f) -> jax.Array:
  entries = jnp.broadcast_arrays(a, b, c, d, e, f)
  return jnp.stack([jnp.stack(entries[:3], -1), jnp.stack(entries[3:], -1)], -2)


def _rotate_matrix(magnitude: jax.Array, height: int, width: int) -> jax.Array:
  angle = jnp.deg2rad(magnitude * (_MAX_DEGREES / MAX_MAGNITUDE))
  cos, sin, zero = jnp.cos(angle), jnp.sin(angle), jnp.zeros_like(angle)
  return _affine(cos, sin, zero, -sin, cos, zero)


def _shear_x_matrix(magnitude: jax.Array, height: int, width: int) -> jax.Array:
  factor = magnitude * (_MAX_SHEAR / MAX_MAGNITUDE)
  one, zero = jnp.ones_like(factor), jnp.zeros_like(factor)
  return _affine(one, zero, zero, factor, one, zero)


def _shear_y_matrix(magnitude: jax.Array, height: int, width: int) -> jax.Array:
  factor = magnitude * (_MAX_SHEAR / MAX_MAGNITUDE)
  one, zero = jnp.ones_like(factor), jnp.zeros_like(factor)
  return _affine(one, factor, zero, zero, one, zero)


def _translate_x_matrix(magnitude: jax.Array, height: int, width: int) -> jax.Array:
  pixels = magnitude * (_MAX_TRANSLATE * width / MAX_MAGNITUDE)
  one, zero = jnp.ones_like(pixels), jnp.zeros_like(pixels)
  return _affine(one, zero, zero, zero, one, pixels)


def _translate_y_matrix(magnitude: jax.Array, height: int, width: int) -> jax.Array:
  pixels = magnitude * (_MAX_TRANSLATE * height / MAX_MAGNITUDE)
  one, zero = jnp.ones_like(pixels), jnp.zeros_like(pixels)
  return _affine(one, zero, pixels, zero, one, zero)


def _resample(image: jax.Array, matrix: jax.Array) -> jax.Array:
  """One (H, W, C) image bilinearly resampled through a (2, 3) matrix; points outside the image
  take the nearest edge pixel's value."""
  h, w, c = image.shape
  cy, cx = (h - 1) / 2, (w - 1) / 2
  y, x = jnp.meshgrid(jnp.arange(h, dtype=image.dtype) - cy,
                      jnp.arange(w, dtype=image.dtype) - cx, indexing="ij")
  src_y = jnp.clip(matrix[0, 0] * y + matrix[0, 1] * x + matrix[0, 2] + cy, 0, h - 1)
  src_x = jnp.clip(matrix[1, 0] * y + matrix[1, 1] * x + matrix[1, 2] + cx, 0, w - 1)
  y0, x0 = jnp.floor(src_y), jnp.floor(src_x)
  wy, wx = (src_y - y0)[..., None], (src_x - x0)[..., None]
  y0, x0 = y0.astype(jnp.int32), x0.astype(jnp.int32)
  y1, x1 = jnp.minimum(y0 + 1, h - 1), jnp.minimum(x0 + 1, w - 1)
  flat = image.reshape(h * w, c)

  def at(yi, xi):
    return flat[(yi * w + xi).ravel()].reshape(h, w, c)

  top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
  bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx
  return top * (1 - wy) + bottom * wy


def _warp(images: jax.Array, matrices: jax.Array) -> jax.Array:
  matrices = jnp.broadcast_to(matrices, images.shape[:-3] + (2, 3))
  return _resample(images, matrices) if images.ndim == 3 else jax.vmap(_resample)(images, matrices)


def _geometric(matrix_fn: Callable, images, magnitude) -> jax.Array:
  images = _check_images(images)
  h, w = images.shape[-3:-1]
  return _warp(images, matrix_fn(_magnitude(magnitude, images), h, w))


def rotate(images, magnitude) -> jax.Array:
  """Rotates counter-clockwise by 3 * magnitude degrees (30 at magnitude 10) about the image
  centre, as PIL's Image.rotate. Signed. Bilinear, edge pixels repeated outside the image."""
  return _geometric(_rotate_matrix, images, magnitude)


def shear_x(images, magnitude) -> jax.Array:
  """Output (y, x) reads input (y, x + s * y), s = 0.03 * magnitude (0.3 at 10), y and x from the
  image centre. PIL's affine (1, s, 0, 0, 1, 0), but about the centre rather than the top-left
  corner, so the centred digit stays centred. Signed. Bilinear, edge pixels repeated."""
  return _geometric(_shear_x_matrix, images, magnitude)


def shear_y(images, magnitude) -> jax.Array:
  """Output (y, x) reads input (y + s * x, x), s = 0.03 * magnitude, about the centre: `shear_x`
  with the axes swapped. Signed. Bilinear, edge pixels repeated."""
  return _geometric(_shear_y_matrix, images, magnitude)


def translate_x(images, magnitude) -> jax.Array:
  """Output (y, x) reads input (y, x + t), t = 0.045 * magnitude * W pixels (0.45 W at 10,
  timm's relative translate): content moves left for t > 0. Signed. Bilinear (t need not be a
  whole number), edge pixels repeated."""
  return _geometric(_translate_x_matrix, images, magnitude)


def translate_y(images, magnitude) -> jax.Array:
  """Output (y, x) reads input (y + t, x), t = 0.045 * magnitude * H pixels: content moves up for
  t > 0. Signed. Bilinear, edge pixels repeated."""
  return _geometric(_translate_y_matrix, images, magnitude)


OPS: dict[str, Callable[..., jax.Array]] = {
    "identity": identity,
    "autocontrast": autocontrast,
    "equalize": equalize,
    "invert": invert,
    "rotate": rotate,
    "posterize": posterize,
    "solarize": solarize,
    "color": color,
    "contrast": contrast,
    "brightness": brightness,
    "sharpness": sharpness,
    "shear_x": shear_x,
    "shear_y": shear_y,
    "translate_x": translate_x,
    "translate_y": translate_y,
}
ALL_OPS: tuple[str, ...] = tuple(OPS)

# Ops whose magnitude `rand_augment` negates with probability 1/2.
SIGNED_OPS = frozenset({"rotate", "shear_x", "shear_y", "translate_x", "translate_y", "color",
                        "contrast", "brightness", "sharpness"})

_MATRICES = {
    "rotate": _rotate_matrix,
    "shear_x": _shear_x_matrix,
    "shear_y": _shear_y_matrix,
    "translate_x": _translate_x_matrix,
    "translate_y": _translate_y_matrix,
}


def validate_ops(ops: Sequence[str]) -> tuple[str, ...]:
  """Returns `ops` as a tuple after checking every name is in `ALL_OPS`, each at most once.

  Raises ValueError naming the first unknown or repeated op (and listing the known ones), or
  when `ops` is a bare string rather than a sequence of names.
  """
  if isinstance(ops, str):
    raise ValueError(f"ops must be a sequence of op names, not the string {ops!r}")
  ops = tuple(ops)
  for i, name in enumerate(ops):
    if name not in OPS:
      raise ValueError(f"unknown augmentation op {name!r}; known ops: {', '.join(ALL_OPS)}")
    if name in ops[:i]:
      raise ValueError(f"augmentation op {name!r} is listed twice in {ops}")
  return ops


def _draw_ops(key: jax.Array, num_ops: int, num_choices: int) -> tuple[jax.Array, jax.Array]:
  """One image's op indices (num_ops,) and magnitude signs (num_ops,) of +-1."""
  op_key, sign_key = jax.random.split(key)
  signs = jnp.where(jax.random.bernoulli(sign_key, 0.5, (num_ops,)), -1.0, 1.0)
  return jax.random.randint(op_key, (num_ops,), 0, num_choices), signs


def _apply_chosen(images: jax.Array, ops: tuple[str, ...], choice: jax.Array,
                  signed_magnitude: jax.Array, magnitude: float) -> jax.Array:
  """Applies op `ops[choice[i]]` to image i: every enabled op on the whole batch, then a select."""
  h, w = images.shape[1:3]

  def chosen(i: int) -> jax.Array:
    return (choice == i)[:, None, None, None]

  out = images
  geometric = [i for i, name in enumerate(ops) if name in _MATRICES]
  if geometric:
    # The geometric ops share one resampling: each image's matrix is picked first.
    matrix = jnp.broadcast_to(jnp.eye(2, 3, dtype=images.dtype), (len(images), 2, 3))
    for i in geometric:
      matrix = jnp.where(chosen(i)[..., 0], _MATRICES[ops[i]](signed_magnitude, h, w), matrix)
    is_geometric = jnp.isin(choice, jnp.asarray(geometric))[:, None, None, None]
    out = jnp.where(is_geometric, _warp(images, matrix), out)
  for i, name in enumerate(ops):
    if name not in _MATRICES and name != "identity":
      op_magnitude = signed_magnitude if name in SIGNED_OPS else magnitude
      out = jnp.where(chosen(i), OPS[name](images, op_magnitude), out)
  return out


def rand_augment(images, key: jax.Array, *, num_ops: int, magnitude: float,
                 ops: Sequence[str] = ALL_OPS) -> jax.Array:
  """RandAugment (Cubuk et al. 2019, arXiv 1909.13719): `num_ops` ops in turn, each drawn
  uniformly (with replacement) from `ops` for each image, all at `magnitude`.

  images: (N, H, W, C), floating, in [0, 1]. magnitude: a Python number on the 0..10 scale of
  tensorflow/models and timm, where 10 is the AutoAugment paper's strongest setting. Each op is
  always applied (the paper's policy; timm applies each with probability 1/2), and the ops in
  `SIGNED_OPS` get a random sign per image and layer. The mappings are timm's "increasing"
  variants, so that magnitude 0 leaves every op but invert, autocontrast and equalize a no-op;
  see each op's docstring.

  Under vmap, `lax.switch` on a per-image index runs every branch on every image anyway and then
  selects; this does the same explicitly, with one saving: the five geometric ops share a single
  resampling of the batch, through each image's chosen matrix (identity for the other ops).

  Raises ValueError for an unknown op, an empty `ops` with `num_ops` > 0, a negative `num_ops`,
  a magnitude outside [0, 10], or bad images.
  """
  images = _check_images(images, batched=True)
  ops = validate_ops(ops)
  num_ops = _count(num_ops, "num_ops")
  magnitude = _check_magnitude(magnitude)
  if num_ops == 0:
    return images
  if not ops:
    raise ValueError("rand_augment: `ops` is empty, so there is nothing to draw num_ops="
                     f"{num_ops} ops from")
  choices, signs = jax.vmap(lambda k: _draw_ops(k, num_ops, len(ops)))(
      _per_image_keys(key, images))
  for layer in range(num_ops):
    signed = (signs[:, layer] * magnitude).astype(images.dtype)
    images = _apply_chosen(images, ops, choices[:, layer], signed, magnitude)
  return images


def augment(images, key: jax.Array, *, translate: int = 0, cutout: int = 0,
            rand_augment_ops: int = 0, rand_augment_magnitude: float = 0,
            ops: Sequence[str] = ALL_OPS) -> jax.Array:
  """The train-time augmentation: `rand_augment`, then `random_translate`, then `cutout`.

  images: (N, H, W, C), floating, in [0, 1]. translate: `random_translate`'s max_shift;
  cutout: the square's side; rand_augment_ops, rand_augment_magnitude, ops: `rand_augment`'s
  num_ops, magnitude and ops. A 0 turns a stage off; with all three off the images come back
  unchanged. Cutout comes last so that its square stays exactly 0, as random erasing follows
  RandAugment in timm. Each stage has its own key, split from `key` whatever is enabled, so
  turning one stage on or off leaves the others' draws as they were.

  Raises ValueError for any invalid setting, including those of stages that are off.
  """
  images = _check_images(images, batched=True)
  ops = validate_ops(ops)
  translate, cutout = _count(translate, "translate"), _count(cutout, "cutout")
  rand_augment_ops = _count(rand_augment_ops, "rand_augment_ops")
  rand_augment_magnitude = _check_magnitude(rand_augment_magnitude)
  rand_augment_key, translate_key, cutout_key = jax.random.split(key, 3)
  if rand_augment_ops:
    images = rand_augment(images, rand_augment_key, num_ops=rand_augment_ops,
                          magnitude=rand_augment_magnitude, ops=ops)
  if translate:
    images = random_translate(images, translate_key, translate)
  if cutout:
    images = _cutout(images, cutout_key, cutout)
  return images


# Distortions for whole numbers: every image draws its own amounts from continuous ranges.

BLUR_RADIUS = 4  # taps each side of `gaussian_blur`'s kernel: sigmas up to 2 keep 98% of its mass
# distort's ranges, in the order each image draws them (`distort`).
DISTORTIONS = ("scale", "aspect", "rotation", "shear", "contrast", "blur", "color")


def warp_matrix(scale, aspect, degrees, shear) -> jax.Array:
  """The (..., 2, 3) inverse map (the `_resample` convention: output (y, x) from the centre reads
  the input at matrix[:, :2] @ (y, x) + matrix[:, 2]) of this change of the content: stretched
  horizontally by `aspect`, scaled by `scale`, sheared (a point at height y moves right by
  shear * y), then rotated counter-clockwise by `degrees` as `rotate` turns it. Arguments are
  scalars or (N,) arrays: the forward map R(degrees) @ [[1, 0], [shear, 1]] @ diag(scale, scale *
  aspect) on (y, x), inverted in closed form."""
  scale, aspect, degrees, shear = (jnp.asarray(v, jnp.float32)
                                   for v in (scale, aspect, degrees, shear))
  angle = jnp.deg2rad(degrees)
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  # inverse = diag(1 / s, 1 / (s a)) @ [[1, 0], [-shear, 1]] @ [[cos, sin], [-sin, cos]]
  sy, sx = 1 / scale, 1 / (scale * aspect)
  zero = jnp.zeros_like(cos * sy * sx * shear)
  return _affine(sy * cos, sy * sin, zero,
                 sx * (-shear * cos - sin), sx * (-shear * sin + cos), zero)


def warp(images, matrices) -> jax.Array:
  """Resamples each image through its (2, 3) inverse map (`warp_matrix`; one for all, or (N, 2,
  3)): bilinear, about the image centre, edge pixels repeated outside the image, as the
  geometric RandAugment ops. Raises ValueError on bad images."""
  images = _check_images(images)
  return _warp(images, jnp.asarray(matrices, images.dtype))


def gaussian_blur(images, sigma) -> jax.Array:
  """Blurs each image by a gaussian of standard deviation `sigma` pixels (a scalar or one per
  image, >= 0; 0 leaves the image as it is): separable, BLUR_RADIUS taps each side with weights
  exp(-k^2 / (2 sigma^2)) normalized to sum 1, edge pixels repeated. Raises ValueError on bad
  images or a sigma of another shape."""
  images = _check_images(images)
  sigma = _magnitude(sigma, images)
  k = jnp.arange(-BLUR_RADIUS, BLUR_RADIUS + 1, dtype=images.dtype)
  safe = jnp.maximum(sigma, 1e-6)[..., None]
  weights = jnp.where(sigma[..., None] > 0, jnp.exp(-k ** 2 / (2 * safe ** 2)),
                      (k == 0).astype(images.dtype))
  weights = weights / weights.sum(-1, keepdims=True)
  r = BLUR_RADIUS
  lead = images.ndim - 3

  def along(x, axis):
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r, r)
    padded = jnp.pad(x, pad, mode="edge")
    size = x.shape[axis]
    out = jnp.zeros_like(x)
    for i in range(2 * r + 1):
      w = weights[..., i].reshape(weights.shape[:-1] + (1,) * 3)
      out = out + w * jax.lax.slice_in_dim(padded, i, i + size, axis=axis)
    return out

  return along(along(images, lead), lead + 1)


def distort(images, key: jax.Array, *, scale: float = 0.0, aspect: float = 0.0,
            rotation: float = 0.0, shear: float = 0.0, contrast: float = 0.0, blur: float = 0.0,
            color: float = 0.0) -> jax.Array:
  """Random distortions of each image of a batch (N, H, W, C), floating, in [0, 1], each drawn
  per image from a key of its own (split from `key`): seven numbers u uniform in [-1, 1] in the
  order of DISTORTIONS, then

    scale factor exp(u * log(1 + scale)) and horizontal stretch exp(u * log(1 + aspect)), both
    log-uniform; rotation u * `rotation` degrees; shear u * `shear` (dx per dy): one `warp`
    through `warp_matrix`, about the centre, edges repeated;
    contrast: blended with the mean luma at factor 1 + u * `contrast` (`contrast`'s blend);
    color: blended with its grey at factor 1 + u * `color` (`color`; grey images unchanged);
    blur: `gaussian_blur` at sigma (u + 1) / 2 * `blur` pixels.

  In that order (geometry, contrast, colour, blur); a 0 turns a stage off (its draw is made all
  the same, so the others' do not change). Nothing flips. Raises ValueError for a negative
  amount, a contrast or color of 1 or more (a factor that could reach 0), or bad images."""
  images = _check_images(images, batched=True)
  amounts = dict(scale=scale, aspect=aspect, rotation=rotation, shear=shear, contrast=contrast,
                 blur=blur, color=color)
  for name, value in amounts.items():
    if not value >= 0 or (name in ("contrast", "color") and value >= 1):
      raise ValueError(f"distort: {name}={value!r}; expected a number >= 0"
                       + (" and below 1" if name in ("contrast", "color") else ""))
  u = jax.vmap(lambda k: jax.random.uniform(k, (len(DISTORTIONS),), images.dtype, -1.0, 1.0))(
      _per_image_keys(key, images))
  u = dict(zip(DISTORTIONS, u.T))
  if scale or aspect or rotation or shear:
    matrices = warp_matrix(jnp.exp(u["scale"] * jnp.log1p(scale)),
                           jnp.exp(u["aspect"] * jnp.log1p(aspect)), u["rotation"] * rotation,
                           u["shear"] * shear)
    images = _warp(images, matrices.astype(images.dtype))
  if contrast:
    mean = _grey(images).mean(axis=(-3, -2, -1), keepdims=True)
    images = _blend(mean, images, _pixelwise(1 + u["contrast"] * contrast, images))
  if color and images.shape[-1] == 3:
    images = _blend(_grey(images), images, _pixelwise(1 + u["color"] * color, images))
  if blur:
    images = gaussian_blur(images, (u["blur"] + 1) / 2 * blur)
  return images
