"""Error-analysis helpers: the most-confused pairs and the high-confidence errors."""

import numpy as np

from svhn_jax import evaluate


def test_confused_pairs_are_the_largest_off_diagonal_cells():
  confusion = np.diag([50] * 10)
  confusion[3, 5], confusion[5, 3], confusion[1, 7], confusion[2, 2] = 9, 4, 9, 99
  assert evaluate.confused_pairs(confusion, 2) == [(1, 7, 9), (3, 5, 9)]
  assert evaluate.confused_pairs(confusion, 10) == [(1, 7, 9), (3, 5, 9), (5, 3, 4)]


def test_confident_errors_are_wrong_above_the_threshold_most_confident_first():
  probs = np.array([[0.9, 0.1], [0.1, 0.9], [0.05, 0.95], [0.2, 0.8], [0.86, 0.14]])
  labels = np.array([0, 0, 0, 0, 1])
  assert evaluate.confident_errors(probs, labels, 0.85).tolist() == [2, 1, 4]
