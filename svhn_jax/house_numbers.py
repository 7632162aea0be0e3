"""Whole house numbers cut from SVHN's full photos (format 1), as Goodfellow et al. read them.

Goodfellow, Bulatov, Ibarz, Arnoud and Shet 2013, "Multi-digit Number Recognition from Street
View Imagery using Deep Convolutional Neural Networks" (arXiv 1312.6082), section 5.1: take the
smallest box holding all of a photo's digit boxes, expand it by 30% in x and in y, crop the photo
to it and resize the crop to 64x64 (aspect ratio not kept); train on 54x54 crops at random
places in it; read a length (0..5 or "more than 5") and five digits, each with its own softmax.

- `number_box`, `clip_box`: the crop box in photo pixels.
- `crop_number`: that box of a photo as a uint8 64x64 image, grey or colour.
- `number_labels`: a photo's digits as (length class, five digit classes).
- `centre_crop`, `random_crop`: the 54x54 crops of evaluation and training; pure functions of
  arrays (and a jax.random key), so they can run inside a jitted step.
- `draw_margins`, `number_arrays`: a whole split as arrays, ready for training.

Boxes are (left, top, width, height) in pixels, as digitStruct.mat holds them: x to the right
from the photo's left edge, y down from its top edge; a photo of W x H pixels spans
[0, W] x [0, H]. Photo sizes are (width, height), as Pillow's Image.size. Everything but
`random_crop` is numpy.
"""

from __future__ import annotations

import concurrent.futures
import functools
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from svhn_jax.transforms import luma

if TYPE_CHECKING:
  # Host-side types only: the number model and task import this module's constants and device
  # crops, and must not pull in Pillow or the photo loaders (`svhn_jax.steps` stays light).
  from svhn_jax.datasets.digit_struct import Photo
  from svhn_jax.datasets.photos import FullSplit

# Widening on each side, a share of the box's width (x) and height (y): 30% in all, arXiv
# 1312.6082 section 5.1.
GOODFELLOW_MARGIN = 0.15
# Per-photo margins for training, drawn uniformly: this project's recipe, not Goodfellow's. From
# his 15% a side up to the box's own size a side (a crop three times the number's width and
# height), so that a model also sees numbers small within their crop.
TRAIN_MARGINS = (0.15, 1.0)
SIZE = 64  # the resized number crop, pixels a side (arXiv 1312.6082 section 5.1)
CROP = 54  # the model's input, cut from the 64x64 crop (arXiv 1312.6082 section 5.1)
MAX_DIGITS = 5  # digit positions read (arXiv 1312.6082: N = 5)
NO_DIGIT = 10  # the digit class of a position past the number's length
COLORS = ("grey", "rgb")
# Pillow's bilinear filter; when shrinking it widens its support by the scale factor, so it
# averages every source pixel under an output pixel (no aliasing). Format 2's 32x32 crops are
# made with the same filter (datasets.photos.square_crops).
# Pillow's Image.Resampling.BILINEAR (its value, so that this module imports no Pillow).
RESAMPLE = 2
_PROGRESS_EVERY = 1000  # photos between progress calls of number_arrays


# ---------------------------------------------------------------------------------------------
# Boxes

def number_box(boxes: np.ndarray, margin: float = GOODFELLOW_MARGIN,
               photo_size: tuple[int, int] | None = None, min_aspect: float = 0.0) -> np.ndarray:
  """Returns float64 (4,) (left, top, width, height): the box around all of `boxes`, widened.

  `boxes` (k, 4), k >= 1, are a photo's digit boxes in pixels; they may reach outside the photo
  (SVHN's do: negative left or top, right or bottom past the photo's size): the union is taken of
  the boxes as they are. The union's width w and height h are then widened by `margin` * w on
  the left and on the right and `margin` * h above and below (Goodfellow's 30% in total is
  margin 0.15). A box then narrower than `min_aspect` times its height is widened about its
  centre to that width (more of the photo beside a narrow number, so that resizing the crop to a
  square does not stretch a single digit across it; 0: never). With `photo_size` = (width,
  height) the result is clipped to the photo by
  `clip_box`; without it, it may reach outside the photo, and it is as wide as the digits are
  (zero for digit boxes of zero width).

  Raises ValueError for `boxes` not of shape (k, 4) with k >= 1, a non-finite value, a negative
  width or height, or a negative or non-finite `margin` or `min_aspect`.
  """
  boxes = np.asarray(boxes, np.float64)
  if boxes.ndim != 2 or boxes.shape[1] != 4 or not len(boxes):
    raise ValueError(f"number_box: boxes must be (k, 4) with k >= 1 (left, top, width, height),"
                     f" got shape {boxes.shape}")
  if not np.isfinite(boxes).all() or (boxes[:, 2:] < 0).any():
    raise ValueError(f"number_box: boxes must be finite with width and height >= 0, got "
                     f"{boxes.tolist()}")
  if not (math.isfinite(margin) and margin >= 0):
    raise ValueError(f"number_box: margin must be a finite share >= 0, got {margin}")
  if not (math.isfinite(min_aspect) and min_aspect >= 0):
    raise ValueError(f"number_box: min_aspect must be a finite ratio >= 0, got {min_aspect}")
  left, top = boxes[:, 0].min(), boxes[:, 1].min()
  right, bottom = (boxes[:, 0] + boxes[:, 2]).max(), (boxes[:, 1] + boxes[:, 3]).max()
  width, height = right - left, bottom - top
  box = np.array([left - margin * width, top - margin * height, width * (1 + 2 * margin),
                  height * (1 + 2 * margin)])
  if box[2] < min_aspect * box[3]:
    box[0] -= (min_aspect * box[3] - box[2]) / 2
    box[2] = min_aspect * box[3]
  return box if photo_size is None else clip_box(box, photo_size)


def clip_box(box: np.ndarray, photo_size: tuple[int, int]) -> np.ndarray:
  """Returns float64 (4,) (left, top, width, height): `box` cut to the photo, never empty.

  `photo_size` is (width, height) in pixels. Each axis is clipped to [0, width] or [0, height].
  Where less than one pixel is left on an axis (a box of zero width or height, or one lying
  wholly outside the photo on that axis), that axis becomes the one-pixel span centred as near
  the box's centre as the photo allows: a zero-width box at x = 10 becomes [9.5, 10.5], one
  lying wholly left of the photo becomes [0, 1]. So the result always lies inside the photo
  with a width and a height of at least one pixel, and `crop_number` can always resize it.

  Raises ValueError for a `box` not of shape (4,) or non-finite, a negative width or height, or
  a `photo_size` that is not two whole numbers >= 1.
  """
  box = np.asarray(box, np.float64)
  if box.shape != (4,) or not np.isfinite(box).all() or (box[2:] < 0).any():
    raise ValueError(f"clip_box: box must be 4 finite values (left, top, width, height) with "
                     f"width and height >= 0, got {box.tolist()}")
  width, height = _photo_size(photo_size, "clip_box")
  x0, x1 = _clip_span(box[0], box[0] + box[2], width)
  y0, y1 = _clip_span(box[1], box[1] + box[3], height)
  return np.array([x0, y0, x1 - x0, y1 - y0])


def _photo_size(photo_size: tuple[int, int], where: str) -> tuple[int, int]:
  size = tuple(photo_size)
  if len(size) != 2 or not all(float(v).is_integer() and v >= 1 for v in size):
    raise ValueError(f"{where}: photo_size must be (width, height), whole numbers >= 1, got "
                     f"{photo_size}")
  return int(size[0]), int(size[1])


def _clip_span(start: float, end: float, extent: int) -> tuple[float, float]:
  """[start, end] clipped to [0, extent], or the one-pixel span nearest its centre."""
  low, high = min(max(start, 0.0), extent), min(max(end, 0.0), extent)
  if high - low >= 1:
    return low, high
  centre = min(max((start + end) / 2, 0.5), extent - 0.5)
  return centre - 0.5, centre + 0.5


# ---------------------------------------------------------------------------------------------
# Pixels

def check_photo(photo, color: str, caller: str) -> np.ndarray:
  """`photo` as an array if it is uint8 (H, W, 3) or (H, W) and `color` ("grey" or "rgb") can
  be made of it; else ValueError naming `caller` and what was expected."""
  photo = np.asarray(photo)
  if color not in COLORS:
    raise ValueError(f"{caller}: color={color!r}, expected one of {COLORS}")
  if photo.dtype != np.uint8 or not (photo.ndim == 2 or (photo.ndim == 3 and photo.shape[2] == 3)):
    raise ValueError(f"{caller}: photo must be uint8 (H, W, 3) or (H, W), got {photo.dtype} "
                     f"{photo.shape}")
  if photo.ndim == 2 and color == "rgb":
    raise ValueError(f"{caller}: color='rgb' needs an (H, W, 3) photo, got a grey one")
  return photo


def crop_number(photo: np.ndarray, box: np.ndarray, size: int = SIZE,
                color: str = "grey") -> np.ndarray:
  """Returns `box` of `photo` resized to size x size, aspect ratio not kept: uint8 (size, size)
  for color="grey", (size, size, 3) for color="rgb".

  `photo` is uint8 (H, W, 3) RGB (as FullSplit.image gives) or (H, W) grey; `box` is (left,
  top, width, height) in pixels, fractional allowed, inside the photo (see `clip_box`). Pillow
  resizes the box's area straight from the photo, sub-pixel position included, with its
  bilinear filter (RESAMPLE). Grey is taken after the resize, by the study's luma
  0.299 R + 0.587 G + 0.114 B in Pillow's fixed point (transforms.luma, equal to
  Image.convert('L')), as svhn_full's digit crops are.

  Raises ValueError for a `photo` that is not uint8 (H, W, 3) or (H, W), color="rgb" of a grey
  photo, a `color` other than "grey" or "rgb", a `size` < 1, and a `box` not inside the photo or
  under 1e-3 pixel wide or high.
  """
  photo = check_photo(photo, color, "crop_number")
  if int(size) != size or size < 1:
    raise ValueError(f"crop_number: size must be a whole number >= 1, got {size}")
  left, top, width, height = np.asarray(box, np.float64).tolist()
  photo_h, photo_w = photo.shape[:2]
  slack = 1e-6  # float round-off of a box clipped to the photo's edge
  if not (left >= -slack and top >= -slack and left + width <= photo_w + slack
          and top + height <= photo_h + slack and width >= 1e-3 and height >= 1e-3):
    raise ValueError(f"crop_number: box {[left, top, width, height]} is not inside the "
                     f"{photo_w}x{photo_h} photo (or is empty); clip it first with clip_box")
  region = (max(left, 0.0), max(top, 0.0), min(left + width, photo_w),
            min(top + height, photo_h))
  from PIL import Image
  resized = np.asarray(Image.fromarray(photo).resize((int(size), int(size)), RESAMPLE,
                                                     box=region))
  return luma(resized) if color == "grey" and resized.ndim == 3 else resized


# ---------------------------------------------------------------------------------------------
# Labels

def number_labels(digit_labels: Sequence[int],
                  max_digits: int = MAX_DIGITS) -> tuple[int, np.ndarray]:
  """Returns (length, digits) of a photo's digit labels, in reading order.

  `length` is the length class, an int: the number of digits k for k <= `max_digits`, and
  `max_digits` + 1 (6 by default) for "more than `max_digits`", as Goodfellow's length softmax
  (arXiv 1312.6082 section 3: L in {0, 1, ..., N, "more than N"}); an empty sequence gives 0.
  `digits` is int32 (max_digits,): the first min(k, max_digits) digits as 0..9 (SVHN's label 10
  is the digit zero, mapped to 0), then NO_DIGIT (10) at every position past the length. A
  number of more than `max_digits` digits keeps its first `max_digits` (its length class says
  the rest is unread).

  Raises ValueError for a label outside 0..10 or not a whole number, and `max_digits` < 1.
  """
  if max_digits < 1:
    raise ValueError(f"number_labels: max_digits must be >= 1, got {max_digits}")
  labels = np.asarray(digit_labels, np.float64).ravel()
  if not np.isin(labels, np.arange(11)).all():
    raise ValueError(f"number_labels: digit labels must be 0..10 (10 is SVHN's zero), got "
                     f"{labels.tolist()}")
  labels = np.where(labels == 10, 0, labels).astype(np.int32)
  length = len(labels) if len(labels) <= max_digits else max_digits + 1
  digits = np.full(max_digits, NO_DIGIT, np.int32)
  kept = labels[:max_digits]
  digits[:len(kept)] = kept
  return length, digits


# ---------------------------------------------------------------------------------------------
# 54x54 crops

def _check_crop(images, crop: int, where: str) -> tuple[int, int]:
  if images.ndim not in (3, 4):
    raise ValueError(f"{where}: images must be (N, H, W) or (N, H, W, C), got shape "
                     f"{images.shape}")
  height, width = images.shape[1:3]
  if not 1 <= crop <= min(height, width):
    raise ValueError(f"{where}: crop {crop} does not fit {height}x{width} images")
  return height, width


def centre_crop(images, crop: int = CROP):
  """Returns the centred crop x crop window of each of `images` (N, H, W) or (N, H, W, C), as
  the same kind of array (numpy or JAX) and dtype: the evaluation input. The window starts at
  ((H - crop) // 2, (W - crop) // 2): rows and columns 5..58 of a 64x64 image for crop 54.

  Raises ValueError for images of another rank, or a crop larger than they are.
  """
  height, width = _check_crop(images, crop, "centre_crop")
  top, left = (height - crop) // 2, (width - crop) // 2
  return images[:, top:top + crop, left:left + crop]


def random_crop(images, key: jax.Array, crop: int = CROP) -> jax.Array:
  """Returns a crop x crop window of each of `images` (N, H, W) or (N, H, W, C), each at its own
  place drawn uniformly from the (H - crop + 1) x (W - crop + 1) possible ones with `key`
  (jax.random): the training input (arXiv 1312.6082 section 5.1). Same dtype out, a JAX array;
  the same key gives the same crops; jit-compatible (`crop` static).

  Raises ValueError for images of another rank, or a crop larger than they are.
  """
  images = jnp.asarray(images)
  height, width = _check_crop(images, crop, "random_crop")
  corners = jax.random.randint(key, (len(images), 2), 0,
                               jnp.array([height - crop + 1, width - crop + 1]))
  return _windows(images, corners, crop)


@functools.partial(jax.jit, static_argnames="crop")
def _windows(images: jax.Array, corners: jax.Array, crop: int) -> jax.Array:
  """The crop x crop window of each image at its (top, left) corner: one compiled program per
  shape, also when called outside a jitted step."""
  window = (crop, crop) + images.shape[3:]

  def cut(image, corner):
    start = (corner[0], corner[1]) + (0,) * (image.ndim - 2)
    return jax.lax.dynamic_slice(image, start, window)

  return jax.vmap(cut)(images, corners)


# ---------------------------------------------------------------------------------------------
# Whole splits

class NumberArrays(NamedTuple):
  """A split's house numbers, one row per photo, in the photos' order."""
  images: np.ndarray  # uint8 (N, size, size) grey, or (N, size, size, 3) rgb
  lengths: np.ndarray  # int32 (N,): 1..max_digits, max_digits + 1 for more (number_labels)
  digits: np.ndarray  # int32 (N, max_digits): 0..9, NO_DIGIT (10) past the length
  boxes: np.ndarray  # float32 (N, 4): each crop's box in its photo's pixels, widened and clipped


def draw_margins(count: int, low: float, high: float, seed: int) -> np.ndarray:
  """Returns float64 (count,) margins drawn uniformly from [low, high] by numpy's default
  generator seeded with `seed`: the same arguments give the same margins.

  Raises ValueError for a negative `count`, or not 0 <= low <= high (finite).
  """
  if count < 0:
    raise ValueError(f"draw_margins: count must be >= 0, got {count}")
  if not (math.isfinite(low) and math.isfinite(high) and 0 <= low <= high):
    raise ValueError(f"draw_margins: expected finite 0 <= low <= high, got ({low}, {high})")
  return np.random.default_rng(seed).uniform(low, high, count)


def number_arrays(photos: FullSplit | Sequence[tuple[Photo, np.ndarray]], *,
                  margin: float | tuple[float, float] = GOODFELLOW_MARGIN, seed: int = 0,
                  color: str = "grey", size: int = SIZE, max_digits: int = MAX_DIGITS,
                  min_aspect: float = 0.0, workers: int = 1,
                  progress: Callable[[int], None] | None = None) -> NumberArrays:
  """Returns every photo's house number: `crop_number` of its `number_box`, and its labels.

  `photos` is a FullSplit (open_full: photos read one at a time) or (Photo, uint8 (H, W, 3)
  pixels) pairs. `margin` is one share for every photo (Goodfellow's 0.15 a side by default) or
  (low, high): one margin per photo drawn by `draw_margins(N, low, high, seed)` (TRAIN_MARGINS
  for training), so the same seed gives the same crops; `min_aspect` as number_box's. `workers` threads read and crop the
  photos (Pillow resizes outside Python's lock); the output does not depend on their number,
  and on a shared 2-core machine 2 gained little over 1. `progress`, if given, is called with
  the number of photos done, every 1,000 and at the end (0 for none).

  Speed, measured on one core of a 2-core Intel Xeon with synthetic_photos' photos (median
  112 x 55 px) read from PNG: about 1,100 photos a second of CPU time, so
  train's 33,402 take about 30 s.

  Raises ValueError for a bad `margin`, `color`, `size` or `max_digits` (see crop_number,
  number_labels) and a photo without digits; DataError (svhn_jax.errors) for an unreadable photo.
  """
  count = len(photos)
  if isinstance(margin, (int, float)):
    if not (math.isfinite(margin) and margin >= 0):
      raise ValueError(f"number_arrays: margin must be a finite share >= 0, got {margin}")
    margins = np.full(count, float(margin))
  else:
    low, high = margin
    margins = draw_margins(count, low, high, seed)
  if color not in COLORS:
    raise ValueError(f"number_arrays: color={color!r}, expected one of {COLORS}")
  if workers < 1:
    raise ValueError(f"number_arrays: workers must be >= 1, got {workers}")
  shape = (count, size, size) + ((3,) if color == "rgb" else ())
  out = NumberArrays(np.empty(shape, np.uint8), np.empty(count, np.int32),
                     np.empty((count, max_digits), np.int32), np.empty((count, 4), np.float32))

  def one(i: int) -> None:
    photo, pixels = _photo(photos, i)
    if not len(photo.labels):
      raise ValueError(f"number_arrays: photo {photo.name} has no digits")
    box = number_box(photo.boxes, margins[i], (pixels.shape[1], pixels.shape[0]), min_aspect)
    out.images[i] = crop_number(pixels, box, size, color)
    out.lengths[i], out.digits[i] = number_labels(photo.labels, max_digits)
    out.boxes[i] = box

  if progress and not count:
    progress(0)
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    for start in range(0, count, _PROGRESS_EVERY):
      # list(): raises the first error of the chunk here, in the caller's thread.
      list(pool.map(one, range(start, min(start + _PROGRESS_EVERY, count))))
      if progress:
        progress(min(start + _PROGRESS_EVERY, count))
  return out


def _photo(photos: FullSplit | Sequence[tuple[Photo, np.ndarray]],
           i: int) -> tuple[Photo, np.ndarray]:
  from svhn_jax.datasets.photos import FullSplit
  if isinstance(photos, FullSplit):
    return photos.photos[i], photos.image(i)
  photo, pixels = photos[i]
  return photo, np.asarray(pixels)
