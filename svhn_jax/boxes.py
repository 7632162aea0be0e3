"""Box arithmetic for locating a house number in a whole photo: pure functions of arrays.

Two spellings of a box, both x to the right from the photo's left edge and y down from its top
edge, a photo of W x H pixels spanning [0, W] x [0, H] (as `house_numbers`):

- format 1's (left, top, width, height) in pixels, as digitStruct.mat holds a digit's box;
- corners (x0, y0, x1, y1), x0 <= x1 and y0 <= y1, in pixels or as a share of an image's side
  (the locator's labels and outputs: shares of the letterboxed input, in [0, 1]).

- `union_box`: the corners of the box around all of a photo's digit boxes (format 1's), the
  number's box that Goodfellow et al. 2013 (arXiv 1312.6082, section 5.1) crop around.
- `corners`, `ltwh`: one spelling to the other.
- `Letterbox`, `letterbox_geometry`, `letterbox`: a photo resized to a size x size square with
  its aspect ratio kept, centred and padded; `to_letterbox`, `from_letterbox` map a box's
  corners between the photo's pixels and shares of that square.
- `context_window`, `window_pixels`, `to_window`, `from_window`: a window of the photo around a
  box, with context on each side, in whole pixels (the locator's zoomed training views and its
  second, refining pass, `tasks.locate`); its pixels; a box's corners between the photo's pixels
  and the window's.
- `iou`, `giou`: intersection over union and Rezatofighi et al. 2019's generalized IoU of
  corners (..., 4), numpy or JAX (jit-compatible) by the arrays given.

Numbers are float64 on the host (numpy); `iou` and `giou` keep their inputs' float dtype.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from svhn_jax import house_numbers
from svhn_jax.transforms import luma

# Pillow's bilinear filter (Image.Resampling.BILINEAR), as `house_numbers.crop_number` resizes.
RESAMPLE = 2


# ---------------------------------------------------------------------------------------------
# Spellings

def union_box(boxes: np.ndarray) -> np.ndarray:
  """Returns float64 (4,) corners (x0, y0, x1, y1): the smallest box holding all of `boxes`.

  `boxes` (k, 4), k >= 1, are a photo's digit boxes (left, top, width, height) in pixels, as
  format 1 gives them; they may reach outside the photo (the union does too: clip it to the
  photo with `clip_corners`). Raises ValueError for `boxes` not of shape (k, 4) with k >= 1, a
  non-finite value, or a negative width or height.
  """
  boxes = np.asarray(boxes, np.float64)
  if boxes.ndim != 2 or boxes.shape[1] != 4 or not len(boxes):
    raise ValueError(f"union_box: boxes must be (k, 4) with k >= 1 (left, top, width, height), "
                     f"got shape {boxes.shape}")
  if not np.isfinite(boxes).all() or (boxes[:, 2:] < 0).any():
    raise ValueError(f"union_box: boxes must be finite with width and height >= 0, got "
                     f"{boxes.tolist()}")
  return np.array([boxes[:, 0].min(), boxes[:, 1].min(), (boxes[:, 0] + boxes[:, 2]).max(),
                   (boxes[:, 1] + boxes[:, 3]).max()])


def corners(boxes: np.ndarray) -> np.ndarray:
  """float64 (..., 4) corners (x0, y0, x1, y1) of boxes (..., 4) (left, top, width, height)."""
  boxes = np.asarray(boxes, np.float64)
  return np.concatenate([boxes[..., :2], boxes[..., :2] + boxes[..., 2:]], -1)


def ltwh(boxes: np.ndarray) -> np.ndarray:
  """float64 (..., 4) (left, top, width, height) of corners (..., 4) (x0, y0, x1, y1)."""
  boxes = np.asarray(boxes, np.float64)
  return np.concatenate([boxes[..., :2], boxes[..., 2:] - boxes[..., :2]], -1)


def clip_corners(box: np.ndarray, photo_size: tuple[int, int]) -> np.ndarray:
  """float64 (..., 4) corners `box` cut to a photo of `photo_size` = (width, height) pixels:
  each coordinate clipped to [0, width] or [0, height] (a box wholly outside becomes empty on
  that axis, at the edge)."""
  width, height = _photo_size(photo_size, "clip_corners")
  box = np.asarray(box, np.float64)
  return np.clip(box, 0.0, np.array([width, height, width, height], np.float64))


def _photo_size(photo_size: tuple[int, int], where: str) -> tuple[int, int]:
  size = tuple(photo_size)
  if len(size) != 2 or not all(float(v).is_integer() and v >= 1 for v in size):
    raise ValueError(f"{where}: photo_size must be (width, height), whole numbers >= 1, got "
                     f"{photo_size}")
  return int(size[0]), int(size[1])


# ---------------------------------------------------------------------------------------------
# Letterboxing

class Letterbox(NamedTuple):
  """Where a photo lies in its size x size letterbox: photo pixel x goes to letterbox pixel
  x * scale_x + offset_x, y to y * scale_y + offset_y (letterbox pixels, the same axes).

  The photo is resized to round(width * s) x round(height * s) pixels (at least 1 each), s =
  size / max(width, height), so scale_x and scale_y are those whole sizes over the photo's and
  differ from s by less than a pixel's worth; the offsets centre it (whole pixels, the spare
  pixel, if odd, right or below)."""

  size: int  # the square's side, pixels
  scale_x: float  # letterbox pixels per photo pixel, across
  scale_y: float  # and down
  offset_x: int  # the resized photo's left edge in the letterbox, pixels
  offset_y: int  # its top edge


def letterbox_geometry(photo_size: tuple[int, int], size: int) -> Letterbox:
  """The `Letterbox` of a photo of `photo_size` = (width, height) pixels in a size x size
  square. Raises ValueError for a photo size that is not two whole numbers >= 1, or `size` < 1.
  """
  width, height = _photo_size(photo_size, "letterbox_geometry")
  if int(size) != size or size < 1:
    raise ValueError(f"letterbox_geometry: size must be a whole number >= 1, got {size}")
  size = int(size)
  scale = size / max(width, height)
  new_w = min(size, max(1, round(width * scale)))
  new_h = min(size, max(1, round(height * scale)))
  return Letterbox(size, new_w / width, new_h / height, (size - new_w) // 2, (size - new_h) // 2)


def letterbox(photo: np.ndarray, size: int, color: str = "grey"
              ) -> tuple[np.ndarray, Letterbox]:
  """Returns (image, geometry): `photo` resized into a size x size square with its aspect ratio
  kept (`letterbox_geometry`), uint8 (size, size) for color="grey" or (size, size, 3) for
  "rgb", and where it lies there.

  `photo` is uint8 (H, W, 3) RGB or (H, W) grey. Pillow's bilinear filter resizes it (it
  averages every photo pixel under an output pixel when shrinking); grey is taken after the
  resize by the study's luma (`transforms.luma`), as `house_numbers.crop_number` does. The rest
  of the square is the mean of the resized photo (per channel, rounded), so that the padding's
  edge is no stronger than the photo's own.

  Raises ValueError for a photo that is not uint8 (H, W, 3) or (H, W), color="rgb" of a grey
  photo, another `color`, or a `size` < 1.
  """
  photo = house_numbers.check_photo(photo, color, "letterbox")
  geometry = letterbox_geometry((photo.shape[1], photo.shape[0]), size)
  new_w = round(photo.shape[1] * geometry.scale_x)
  new_h = round(photo.shape[0] * geometry.scale_y)
  from PIL import Image
  resized = np.asarray(Image.fromarray(photo).resize((new_w, new_h), RESAMPLE))
  if color == "grey" and resized.ndim == 3:
    resized = luma(resized)
  fill = np.round(resized.reshape(-1, *resized.shape[2:]).mean(0)).astype(np.uint8)
  out = np.empty((geometry.size, geometry.size) + resized.shape[2:], np.uint8)
  out[...] = fill
  out[geometry.offset_y:geometry.offset_y + new_h,
      geometry.offset_x:geometry.offset_x + new_w] = resized
  return out, geometry


def to_letterbox(box: np.ndarray, geometry: Letterbox) -> np.ndarray:
  """float64 (..., 4): corners `box` (..., 4) in photo pixels as shares of the letterbox's side
  (0: its left or top edge, 1: its right or bottom edge)."""
  box = np.asarray(box, np.float64)
  scale, offset = _affine(geometry)
  return (box * scale + offset) / geometry.size


def from_letterbox(box: np.ndarray, geometry: Letterbox) -> np.ndarray:
  """float64 (..., 4): corners `box` (..., 4) as shares of the letterbox's side, in the photo's
  pixels (the inverse of `to_letterbox`; not clipped to the photo)."""
  box = np.asarray(box, np.float64)
  scale, offset = _affine(geometry)
  return (box * geometry.size - offset) / scale


def _affine(geometry: Letterbox) -> tuple[np.ndarray, np.ndarray]:
  scale = np.array([geometry.scale_x, geometry.scale_y] * 2, np.float64)
  offset = np.array([geometry.offset_x, geometry.offset_y] * 2, np.float64)
  return scale, offset


# ---------------------------------------------------------------------------------------------
# Windows: a part of the photo around a box, looked at again (the locator's coarse-to-fine pass)

def context_window(box: np.ndarray, photo_size: tuple[int, int], factor, place=(0.5, 0.5),
                   min_size: float = 1.0) -> np.ndarray:
  """Returns int64 (4,) corners (x0, y0, x1, y1) in whole photo pixels: a window around the
  corners `box` (4,) (photo pixels) with context on each side, cut to the photo.

  The window is `factor` (fx, fy), or one number for both, times the box's width and height
  (each at least `min_size` pixels); `place` (px, py) in [0, 1] puts the box in it: its left
  edge px of the spare width (window width - box width) right of the window's left edge (0: the
  box at the window's left edge, 0.5: centred, 1: at its right edge), likewise down. Then the
  window is widened outward to whole pixels (floor of x0, y0; ceil of x1, y1) and clipped to
  [0, width] x [0, height], and on an axis where less than a pixel is left (a box lying outside
  the photo) it becomes the photo's pixel nearest to it. So x0 < x1 and y0 < y1 always, and a box
  inside the photo lies inside its window.

  E.g. box (10, 20, 30, 30) in a 100 x 50 photo, factor 2, centred: 40 x 20 pixels at (0, 15,
  40, 35); factor (3, 4), place (0, 1): 60 x 40 from (10, -10), cut to (10, 0, 70, 30).

  Raises ValueError for a `box` not 4 finite values, a factor below 1 or not finite, a place
  outside [0, 1], a negative or non-finite `min_size`, or a `photo_size` that is not two whole
  numbers >= 1.
  """
  width, height = _photo_size(photo_size, "context_window")
  box = np.asarray(box, np.float64)
  factor = np.broadcast_to(np.asarray(factor, np.float64), (2,))
  place = np.broadcast_to(np.asarray(place, np.float64), (2,))
  if box.shape != (4,) or not np.isfinite(box).all():
    raise ValueError(f"context_window: box must be 4 finite corners (x0, y0, x1, y1), got "
                     f"{box.tolist()}")
  if not (np.isfinite(factor).all() and (factor >= 1).all()):
    raise ValueError(f"context_window: factor must be finite and at least 1, got "
                     f"{factor.tolist()}")
  if not ((place >= 0).all() and (place <= 1).all()):
    raise ValueError(f"context_window: place must lie in [0, 1], got {place.tolist()}")
  if not (math.isfinite(min_size) and min_size >= 0):
    raise ValueError(f"context_window: min_size must be a finite number >= 0, got {min_size}")
  size = np.maximum(box[2:] - box[:2], 0.0)
  wanted = np.maximum(size * factor, min_size)
  start = box[:2] - place * np.maximum(wanted - size, 0.0)
  limit = np.array([width, height], np.float64)
  low = np.clip(np.floor(start), 0, limit)
  high = np.clip(np.ceil(start + wanted), 0, limit)
  # Less than a pixel left (a box outside the photo): the photo's pixel nearest to it.
  high = np.maximum(high, np.minimum(low + 1, limit))
  low = np.minimum(low, high - 1)
  return np.concatenate([low, high]).astype(np.int64)


def window_pixels(photo: np.ndarray, window: np.ndarray) -> np.ndarray:
  """The pixels of `photo` (H, W[, C]) inside `window`, whole-pixel corners (x0, y0, x1, y1)
  (`context_window`'s): photo[y0:y1, x0:x1], a view, not a copy."""
  x0, y0, x1, y1 = (int(v) for v in window)
  return photo[y0:y1, x0:x1]


def to_window(box: np.ndarray, window: np.ndarray) -> np.ndarray:
  """float64 (..., 4): corners `box` (..., 4) in photo pixels as pixels of `window` (corners in
  the photo's pixels) from its top-left corner: box - (x0, y0, x0, y0)."""
  window = np.asarray(window, np.float64)
  return np.asarray(box, np.float64) - np.concatenate([window[:2], window[:2]])


def from_window(box: np.ndarray, window: np.ndarray) -> np.ndarray:
  """float64 (..., 4): corners `box` (..., 4) in pixels of `window` as the photo's pixels (the
  inverse of `to_window`): box + (x0, y0, x0, y0)."""
  window = np.asarray(window, np.float64)
  return np.asarray(box, np.float64) + np.concatenate([window[:2], window[:2]])


# ---------------------------------------------------------------------------------------------
# Overlap

def _module(*arrays):
  return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def _areas(a, b, xp):
  """(intersection, union, enclosing box's area), each (...,), of corners a and b (..., 4)."""
  width = lambda box: xp.maximum(box[..., 2] - box[..., 0], 0)
  height = lambda box: xp.maximum(box[..., 3] - box[..., 1], 0)
  inter_w = xp.maximum(xp.minimum(a[..., 2], b[..., 2]) - xp.maximum(a[..., 0], b[..., 0]), 0)
  inter_h = xp.maximum(xp.minimum(a[..., 3], b[..., 3]) - xp.maximum(a[..., 1], b[..., 1]), 0)
  inter = inter_w * inter_h
  union = width(a) * height(a) + width(b) * height(b) - inter
  hull = ((xp.maximum(a[..., 2], b[..., 2]) - xp.minimum(a[..., 0], b[..., 0]))
          * (xp.maximum(a[..., 3], b[..., 3]) - xp.minimum(a[..., 1], b[..., 1])))
  return inter, union, hull


def _ratio(num, den, xp):
  """num / den, 0 where den is 0 (no division by zero inside jit either)."""
  safe = xp.where(den > 0, den, 1)
  return xp.where(den > 0, num / safe, 0)


def iou(a, b):
  """Intersection over union of corners `a` and `b` (..., 4) (x0, y0, x1, y1), broadcast
  against each other: (...,) in [0, 1], 0 where both are empty (zero union). A box with x1 < x0
  or y1 < y0 counts as empty. numpy arrays give numpy, a JAX array JAX (jit-compatible)."""
  xp = _module(a, b)
  a, b = xp.asarray(a), xp.asarray(b)
  inter, union, _ = _areas(a, b, xp)
  return _ratio(inter, union, xp)


def giou(a, b):
  """Generalized IoU (Rezatofighi et al. 2019, "Generalized Intersection over Union", CVPR,
  arXiv 1902.09630, algorithm 1) of corners `a` and `b` (..., 4): IoU - (C - U) / C, C the area
  of the smallest box enclosing both and U their union; (...,) in [-1, 1], equal to IoU for
  nested or identical boxes and approaching -1 for small boxes far apart. The C term is 0 where
  C is 0. numpy or JAX as `iou`."""
  xp = _module(a, b)
  a, b = xp.asarray(a), xp.asarray(b)
  inter, union, hull = _areas(a, b, xp)
  return _ratio(inter, union, xp) - _ratio(hull - union, hull, xp)

