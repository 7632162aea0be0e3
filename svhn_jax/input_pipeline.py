"""From loaded splits to model-ready arrays on the devices: preparation, mask, batching, carving.

Images stay in their pixel units until the jitted step: uint8 where the file's pixels are whole
numbers 0..255 (a quarter of float32's memory; `steps.model_input` scales them on the device),
float32 model input in [0, 1] where they are not, or after the mask's host-side preprocessing.
"""

from __future__ import annotations

import logging

import jax
import numpy as np
from sklearn import model_selection

from svhn_jax import parallel, transforms
from svhn_jax.config import PREPROCESS_MODES
from svhn_jax.data import Dataset, Split
from svhn_jax.errors import ConfigError, DataError


def prepare(dataset: Dataset, preprocess: str = "raw") -> tuple[Dataset, np.ndarray | None]:
  """The splits as model inputs and, for 'mask', the (32, 32) mask built from the training split.

  'raw': uint8 pixels kept as they are, float32 pixels (0..255) scaled to [0, 1] on the host.
  'mask': every split background-normalized, times the data-driven mask, scaled to [0, 1]
  (float32). Whole-number labels become int32 (digits (N,), numbers (N, 6)); others, such as a
  box task's float32 (N, 4), keep their dtype. Raises ConfigError for another mode.
  """
  if preprocess not in PREPROCESS_MODES:
    raise ConfigError(
        f"config.data.preprocess={preprocess!r}: expected one of {', '.join(PREPROCESS_MODES)}")
  mask = None
  if preprocess == "mask":
    mask = transforms.data_driven_mask(np.asarray(dataset.train.images, np.float32))
  return Dataset(*(Split(prepare_images(split.images, mask), _labels(split.labels))
                   for split in dataset)), mask


def _labels(labels: np.ndarray) -> np.ndarray:
  labels = np.asarray(labels)
  return labels.astype(np.int32) if np.issubdtype(labels.dtype, np.integer) else labels


def prepare_images(images: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
  """Pixels 0..255 (N, H, W[, C]) -> what the device holds: uint8 pixels unchanged; otherwise
  float32 in [0, 1], background-normalized and masked first when a mask is given."""
  if mask is None and images.dtype == np.uint8:
    return images
  images = np.asarray(images, np.float32)
  if mask is not None:
    images = transforms.apply_mask(transforms.normalize_background(images), mask)
  return transforms.scale(images)


def carve_validation(labels: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """(train, validation) index arrays into `labels`, the validation part `size` of them (at most
  a fifth), stratified by class where every class has two or more members, drawn by `seed`.

  The one carving for every source without a validation split (SVHN format 2, and later the
  full photos), through scikit-learn's `train_test_split`; indices come back sorted.
  """
  n = len(labels)
  cap = n // 5
  if size > cap:
    logging.info("Carving %d validation crops, a fifth of %d, not the %d asked for", cap, n, size)
    size = cap
  if size < 1:
    raise DataError(f"{n} training crops are too few to carve a validation split from; "
                    "expected at least 5")
  counts = np.bincount(labels)
  stratify = labels if counts[counts > 0].min() >= 2 and size >= np.count_nonzero(counts) else None
  train, val = model_selection.train_test_split(np.arange(n), test_size=size, random_state=seed,
                                                stratify=stratify)
  return np.sort(train), np.sort(val)


def to_device(split: Split, mesh: jax.sharding.Mesh) -> Split:
  """The split replicated on every device of `mesh`: each step gathers its batch there."""
  return Split(*parallel.replicate(tuple(split), mesh))


def epoch_batches(key: jax.Array, epoch: int, n: int, batch_size: int
                  ) -> tuple[jax.Array, jax.Array]:
  """This epoch's shuffled sample order: full batches (k, B) and the last partial one (1, r),
  as Keras sees every sample each epoch. Drawn from `key` folded with `epoch`. A step-counted
  run takes the full batches only (`epoch_segments`)."""
  perm = jax.random.permutation(jax.random.fold_in(key, epoch), n).astype(np.int32)
  full = (n // batch_size) * batch_size
  return perm[:full].reshape(-1, batch_size), perm[full:].reshape(1, -1)


def epoch_segments(start: int, stop: int, steps_per_epoch: int) -> list[tuple[int, int, int]]:
  """Global steps `start`..`stop - 1` of a step-counted run as (epoch, first, end) pieces, each
  within one epoch: global step s takes full batch s % k of epoch s // k's order
  (`epoch_batches`, k = `steps_per_epoch` full batches), so S steps walk the epochs' seeded
  orders batch after batch, across epoch boundaries, each epoch's partial batch left out."""
  pieces = []
  step = start
  while step < stop:
    epoch, first = divmod(step, steps_per_epoch)
    end = min(steps_per_epoch, first + stop - step)
    pieces.append((epoch, first, end))
    step += end - first
  return pieces
