"""The data statistics the EDA reports, on small hand-made arrays."""

import numpy as np
import pytest

from svhn_jax import data_stats


def test_class_counts_and_imbalance():
  labels = np.array([0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  counts = data_stats.class_counts(labels)
  assert counts.tolist() == [3, 2, 1, 1, 1, 1, 1, 1, 1, 1]
  assert data_stats.imbalance_ratio(counts) == 3.0
  assert data_stats.imbalance_ratio(data_stats.class_counts(np.array([0, 1]))) == float("inf")


def test_dark_share_counts_images_whose_mean_is_under_128():
  images = np.stack([np.full((32, 32), v, np.float32) for v in (0, 127.9, 128, 255)])
  assert data_stats.dark_share(images) == 0.5


def test_class_means_average_each_digit_and_leave_missing_ones_zero():
  images = np.stack([np.full((2, 2), v, np.float32) for v in (10, 30, 50)])
  means = data_stats.class_means(images, np.array([3, 3, 7]))
  assert means[3].tolist() == [[20, 20], [20, 20]] and means[7][0, 0] == 50
  assert not means[0].any()


def test_samples_per_class_are_distinct_members_of_their_class_and_seeded():
  labels = np.repeat(np.arange(10), 7)
  picks = data_stats.samples_per_class(labels, 5, seed=1)
  assert all(len(set(p)) == 5 and (labels[p] == d).all() for d, p in enumerate(picks))
  assert all(np.array_equal(a, b) for a, b in zip(picks, data_stats.samples_per_class(labels, 5, 1)))
  assert len(data_stats.samples_per_class(np.array([0, 0]), 5, 0)[0]) == 2


def test_centre_minus_edge_is_positive_for_a_bright_centre():
  image = np.zeros((32, 32))
  image[8:24, 8:24] = 100
  assert data_stats.centre_minus_edge(image) == pytest.approx(100)
