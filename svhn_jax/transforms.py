"""Pure array functions that prepare SVHN crops for the models, as the Keras study did.

Every function takes numpy arrays and returns new ones: no I/O, no state, nothing global.
Images are (N, 32, 32) with pixel values 0..255 unless a docstring says otherwise.
"""

from __future__ import annotations

import numpy as np

NUM_CLASSES = 10


def scale(images: np.ndarray) -> np.ndarray:
  """Returns `images` as float32 in [0, 1], from pixel values 0..255."""
  return np.asarray(images, np.float32) / np.float32(255)


def flatten(images: np.ndarray) -> np.ndarray:
  """Returns (N, 32, 32) images as (N, 1024) rows, the input of the study's ANNs."""
  images = np.asarray(images)
  return images.reshape(len(images), -1)


def add_channel(images: np.ndarray) -> np.ndarray:
  """Returns (N, 32, 32) images as (N, 32, 32, 1): NHWC with one greyscale channel."""
  return np.asarray(images)[..., np.newaxis]


def one_hot(labels: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
  """Returns (N, num_classes) float32 one-hot rows for integer `labels`."""
  labels = np.asarray(labels)
  return (labels[..., np.newaxis] == np.arange(num_classes)).astype(np.float32)


def luma(images: np.ndarray) -> np.ndarray:
  """Colour (..., 3) pixels 0..255 -> grey (...) by the study's luma, 0.299 R + 0.587 G +
  0.114 B, rounded to whole grey levels: uint8 in, uint8 out, computed in Pillow's fixed point
  (R 19595 + G 38470 + B 7471 + 2^15) >> 16, so it equals Image.convert('L') pixel for pixel
  (ITU-R BT.601 weights); other dtypes give float32."""
  images = np.asarray(images)
  if images.dtype == np.uint8:
    r, g, b = (images[..., c].astype(np.uint32) for c in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)
  weights = np.array([0.299, 0.587, 0.114])
  return np.round(np.asarray(images, np.float64) @ weights).astype(np.float32)


def remap_labels(labels: np.ndarray) -> np.ndarray:
  """Returns int32 labels 0..9: SVHN's own label 10 (the digit zero) becomes 0."""
  labels = np.asarray(labels)
  return np.where(labels == 10, 0, labels).astype(np.int32)


def normalize_background(images: np.ndarray, threshold: float = 128.0) -> np.ndarray:
  """Returns `images` (0..255) with every dark one (mean pixel < `threshold`) inverted.

  Most SVHN crops show light digits on a dark background; inverting those gives every crop a
  light background with dark digits, so that a mean over crops shows where digits sit.
  """
  images = np.asarray(images)
  means = images.reshape(len(images), -1).mean(axis=1)
  dark = (means < threshold).reshape((-1,) + (1,) * (images.ndim - 1))
  return np.where(dark, 255 - images, images)


def data_driven_mask(train_images: np.ndarray) -> np.ndarray:
  """Returns a (32, 32) float32 mask in [0, 1]: where training digits tend to be drawn.

  It is the mean of the inverted background-normalized crops (digit strokes bright), min-max
  scaled. Build it from training images only, so that no validation or test pixel leaks in.
  """
  strokes = 255 - normalize_background(train_images)
  # float64 accumulation: a float32 mean over ~42,000 crops loses the low bits.
  mean = strokes.mean(axis=0, dtype=np.float64)
  low, high = mean.min(), mean.max()
  if high == low:
    raise ValueError("data_driven_mask: the mean training image is constant, so it has no "
                     "spatial pattern to build a mask from.")
  return ((mean - low) / (high - low)).astype(np.float32)


def apply_mask(images: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """Returns `images * mask`, the (H, W) mask broadcast over the batch (and any channel axis)."""
  images, mask = np.asarray(images), np.asarray(mask)
  # Trailing singleton axes stop an (H, W) mask from broadcasting against (W, C) instead.
  return images * mask.reshape(mask.shape + (1,) * (images.ndim - 1 - mask.ndim))
