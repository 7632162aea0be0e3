"""What the study's exploratory analysis measured on a dataset, as pure functions of arrays."""

from __future__ import annotations

import numpy as np

from svhn_jax.transforms import NUM_CLASSES

DARK_THRESHOLD = 128.0  # the same cut as transforms.normalize_background


def class_counts(labels: np.ndarray) -> np.ndarray:
  """Returns (10,) int64 counts of each digit."""
  return np.bincount(np.asarray(labels), minlength=NUM_CLASSES)[:NUM_CLASSES]


def imbalance_ratio(counts: np.ndarray) -> float:
  """Largest class count over the smallest: 1.0 is perfectly balanced, inf a missing class."""
  counts = np.asarray(counts)
  return float("inf") if counts.min() == 0 else float(counts.max() / counts.min())


def dark_share(images: np.ndarray, threshold: float = DARK_THRESHOLD) -> float:
  """Share of images whose mean pixel is under `threshold`: light digits on a dark background."""
  images = np.asarray(images)
  if len(images) == 0:
    return float("nan")
  return float((images.reshape(len(images), -1).mean(axis=1) < threshold).mean())


def class_means(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """Returns (10, H, W) float32: the mean image of each digit (zeros for a missing digit)."""
  images, labels = np.asarray(images), np.asarray(labels)
  means = np.zeros((NUM_CLASSES, *images.shape[1:]), np.float32)
  for digit in range(NUM_CLASSES):
    chosen = images[labels == digit]
    if len(chosen):
      means[digit] = chosen.mean(axis=0, dtype=np.float64)
  return means


def samples_per_class(labels: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
  """Per digit, the indices of up to `k` of its images, drawn at random without replacement."""
  rng = np.random.default_rng(seed)
  labels = np.asarray(labels)
  picks = []
  for digit in range(NUM_CLASSES):
    where = np.flatnonzero(labels == digit)
    picks.append(np.sort(rng.choice(where, size=min(k, len(where)), replace=False)))
  return picks


def centre_minus_edge(image: np.ndarray, border: int = 8) -> float:
  """Mean of the central region minus the mean of the `border`-pixel frame around it: positive
  where a mean image is brighter in the centre, where the labelled digit sits."""
  image = np.asarray(image, np.float64)
  inner = np.zeros(image.shape, bool)
  inner[border:-border, border:-border] = True
  return float(image[inner].mean() - image[~inner].mean())
