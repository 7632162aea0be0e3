"""Each transform against a case small enough to compute by hand."""

import numpy as np
import pytest

from svhn_jax import transforms

# Mean 25: dark, so normalize_background inverts it.
DARK = np.array([[10, 20], [30, 40]], np.float32)
# Mean 175: light, left as is.
LIGHT = np.array([[200, 100], [150, 250]], np.float32)


def test_scale_maps_0_255_to_unit_float32():
  out = transforms.scale(np.array([[0, 51], [102, 255]], np.uint8))
  np.testing.assert_allclose(out, [[0.0, 0.2], [0.4, 1.0]], rtol=1e-6)
  assert out.dtype == np.float32


def test_flatten_keeps_row_major_pixel_order():
  images = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
  np.testing.assert_array_equal(transforms.flatten(images), [[0, 1, 2, 3], [4, 5, 6, 7]])
  assert transforms.flatten(np.zeros((3, 32, 32), np.float32)).shape == (3, 1024)


def test_add_channel_appends_a_greyscale_axis():
  images = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
  out = transforms.add_channel(images)
  assert out.shape == (2, 2, 2, 1)
  np.testing.assert_array_equal(out[..., 0], images)
  assert transforms.add_channel(np.zeros((3, 32, 32), np.float32)).shape == (3, 32, 32, 1)


def test_one_hot_rows():
  out = transforms.one_hot(np.array([0, 3, 9]))
  expected = np.zeros((3, 10), np.float32)
  expected[0, 0] = expected[1, 3] = expected[2, 9] = 1.0
  np.testing.assert_array_equal(out, expected)
  assert out.dtype == np.float32
  np.testing.assert_array_equal(transforms.one_hot(np.array([2]), num_classes=4), [[0, 0, 1, 0]])


def test_remap_labels_turns_svhn_ten_into_zero():
  out = transforms.remap_labels(np.array([10, 1, 9, 0, 10], np.uint8))
  np.testing.assert_array_equal(out, [0, 1, 9, 0, 0])
  assert out.dtype == np.int32


def test_normalize_background_inverts_only_dark_images():
  at_threshold = np.full((2, 2), 128.0, np.float32)
  out = transforms.normalize_background(np.stack([DARK, LIGHT, at_threshold]))
  np.testing.assert_array_equal(out[0], [[245, 235], [225, 215]])
  np.testing.assert_array_equal(out[1], LIGHT)
  np.testing.assert_array_equal(out[2], at_threshold)  # "under" the threshold is strict
  assert out.dtype == np.float32


def test_normalize_background_threshold_is_a_parameter():
  out = transforms.normalize_background(LIGHT[np.newaxis], threshold=200.0)
  np.testing.assert_array_equal(out[0], 255 - LIGHT)


def test_data_driven_mask_by_hand():
  # Strokes (255 - normalized): DARK -> itself, LIGHT -> [[55, 155], [105, 5]].
  # Their mean [[32.5, 87.5], [67.5, 22.5]] spans 22.5..87.5, a range of 65.
  mask = transforms.data_driven_mask(np.stack([DARK, LIGHT]))
  np.testing.assert_allclose(mask, [[10 / 65, 1.0], [45 / 65, 0.0]], rtol=1e-6)
  assert mask.dtype == np.float32


def test_data_driven_mask_is_exactly_0_to_1_on_32x32():
  images = np.random.default_rng(0).uniform(0, 255, (16, 32, 32)).astype(np.float32)
  mask = transforms.data_driven_mask(images)
  assert mask.shape == (32, 32)
  assert mask.dtype == np.float32
  assert mask.min() == 0.0
  assert mask.max() == 1.0


def test_data_driven_mask_rejects_a_constant_mean():
  with pytest.raises(ValueError, match="constant"):
    transforms.data_driven_mask(np.full((3, 4, 4), 200.0, np.float32))


def test_apply_mask_broadcasts_over_batch_and_channel():
  images = np.arange(1, 9, dtype=np.float32).reshape(2, 2, 2)
  mask = np.array([[0.0, 1.0], [0.5, 0.0]], np.float32)
  expected = [[[0, 2], [1.5, 0]], [[0, 6], [3.5, 0]]]
  np.testing.assert_array_equal(transforms.apply_mask(images, mask), expected)
  with_channel = transforms.apply_mask(images[..., np.newaxis], mask)
  assert with_channel.shape == (2, 2, 2, 1)
  np.testing.assert_array_equal(with_channel[..., 0], expected)
