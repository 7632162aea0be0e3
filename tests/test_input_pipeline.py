"""From loaded splits to what the devices hold: pixels kept as uint8, the mask's preprocessing,
and each epoch's sample order."""

import jax
import numpy as np
import pytest

from svhn_jax import input_pipeline, transforms
from svhn_jax.data import Dataset, Split
from svhn_jax.errors import ConfigError


def dataset() -> Dataset:
  rng = np.random.default_rng(0)
  whole = rng.integers(0, 256, (6, 32, 32), dtype=np.uint8)
  fractional = rng.uniform(0, 255, (4, 32, 32)).astype(np.float32)
  labels = np.arange(6, dtype=np.uint8)
  return Dataset(Split(whole, labels), Split(fractional, labels[:4]), Split(whole[:5], labels[:5]))


def test_raw_keeps_uint8_pixels_and_scales_float_ones_on_the_host():
  (train, val, test), mask = input_pipeline.prepare(dataset(), "raw")
  assert mask is None
  assert train.images.dtype == np.uint8
  np.testing.assert_array_equal(train.images, dataset().train.images)
  np.testing.assert_array_equal(val.images, dataset().val.images / np.float32(255))
  assert val.images.dtype == np.float32
  assert all(split.labels.dtype == np.int32 for split in (train, val, test))


def test_mask_normalizes_masks_and_scales_every_split_with_the_training_mask():
  original = dataset()
  (train, val, _), mask = input_pipeline.prepare(original, "mask")
  np.testing.assert_array_equal(
      mask, transforms.data_driven_mask(original.train.images.astype(np.float32)))
  want = transforms.scale(transforms.apply_mask(
      transforms.normalize_background(original.val.images), mask))
  np.testing.assert_array_equal(val.images, want)
  assert train.images.dtype == val.images.dtype == np.float32
  np.testing.assert_array_equal(input_pipeline.prepare_images(original.val.images, mask), want)


def test_an_unknown_preprocessing_is_refused():
  with pytest.raises(ConfigError, match=r"^config\.data\.preprocess='masks': expected one of "
                                        r"raw, mask$"):
    input_pipeline.prepare(dataset(), "masks")


def test_an_epoch_order_holds_every_sample_once_in_full_batches_and_one_partial():
  key = jax.random.key(0)
  full, tail = input_pipeline.epoch_batches(key, 0, 70, 32)
  assert full.shape == (2, 32) and tail.shape == (1, 6)
  assert sorted(np.concatenate([np.ravel(full), np.ravel(tail)]).tolist()) == list(range(70))
  again, _ = input_pipeline.epoch_batches(key, 0, 70, 32)
  next_epoch, _ = input_pipeline.epoch_batches(key, 1, 70, 32)
  np.testing.assert_array_equal(full, again)
  assert not np.array_equal(full, next_epoch)
  full, tail = input_pipeline.epoch_batches(key, 0, 64, 32)
  assert full.shape == (2, 32) and tail.shape == (1, 0)


def test_validation_is_carved_stratified_seeded_and_at_most_a_fifth():
  labels = np.repeat(np.arange(10), [30, 20, 40, 10, 10, 20, 30, 10, 20, 10])
  train, val = input_pipeline.carve_validation(labels, 40, seed=0)
  assert len(val) == 40 and len(train) == len(labels) - 40
  assert np.intersect1d(train, val).size == 0
  assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(len(labels)))
  # Stratified: each class's share of the carved split follows its share of the whole.
  np.testing.assert_allclose(np.bincount(labels[val], minlength=10),
                             np.bincount(labels) * 40 / len(labels), atol=1)
  again = input_pipeline.carve_validation(labels, 40, seed=0)
  other = input_pipeline.carve_validation(labels, 40, seed=1)
  assert np.array_equal(again[1], val) and not np.array_equal(other[1], val)
  # Never more than a fifth of the training crops, so that small files still train.
  assert len(input_pipeline.carve_validation(labels, 6_000, seed=0)[1]) == len(labels) // 5


def test_prepare_keeps_labels_that_are_not_whole_numbers():
  """Digit and number labels become int32; a box task's float32 (N, 4) labels stay float32,
  not rounded to 0."""
  images = np.zeros((4, 32, 32), np.uint8)
  boxes = np.full((4, 4), 0.3, np.float32)
  digits = np.array([1, 2, 3, 4], np.uint8)
  (train, _, _), _ = input_pipeline.prepare(Dataset(*(Split(images, boxes),) * 3))
  assert train.labels.dtype == np.float32 and np.array_equal(train.labels, boxes)
  (train, _, _), _ = input_pipeline.prepare(Dataset(*(Split(images, digits),) * 3))
  assert train.labels.dtype == np.int32 and train.labels.tolist() == [1, 2, 3, 4]
