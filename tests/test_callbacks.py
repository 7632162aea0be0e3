"""Early stopping and plateau control against Keras's semantics on scripted metric sequences."""

import math

import pytest

from svhn_jax import callbacks


def run_early_stopping(values, patience=5, min_delta=0.0):
  state = callbacks.EarlyStopping()
  for epoch, value in enumerate(values):
    state = callbacks.early_stopping_update(
        state, value, epoch, patience=patience, min_delta=min_delta)
    if state.stop:
      return state, epoch
  return state, None


def test_early_stopping_stops_after_patience_epochs_without_strict_improvement():
  # Keras: epoch 1 is best; epochs 2-6 do not beat it (an equal value is no improvement), so
  # wait reaches 5 at epoch 6 and training stops there, having run 7 epochs.
  state, stopped = run_early_stopping([0.5, 0.6, 0.6, 0.55, 0.58, 0.59, 0.6, 0.9])
  assert stopped == 6
  assert state.best_epoch == 1
  assert state.best == 0.6
  assert state.wait == 5


def test_early_stopping_improvement_resets_wait():
  state, stopped = run_early_stopping([0.1, 0.2, 0.2, 0.2, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3])
  assert stopped is None
  assert state.best_epoch == 5 and state.wait == 4


def test_early_stopping_min_delta():
  state, _ = run_early_stopping([0.5, 0.505, 0.52], min_delta=0.01)
  assert state.best_epoch == 2 and state.best == 0.52
  state, _ = run_early_stopping([0.5, 0.505], min_delta=0.01)
  assert state.best_epoch == 0 and state.wait == 1


def test_early_stopping_never_stops_on_first_epoch_with_zero_patience():
  state = callbacks.early_stopping_update(
      callbacks.EarlyStopping(), math.nan, 0, patience=0)
  assert not state.stop


PLATEAU = dict(factor=0.5, patience=3, min_delta=1e-4, min_lr=1e-6)


def run_plateau(values, lr=1e-3, **overrides):
  state = callbacks.Plateau(lr=lr)
  rates = []
  for value in values:
    state = callbacks.plateau_update(state, value, **{**PLATEAU, **overrides})
    rates.append(state.lr)
  return state, rates


def test_plateau_halves_after_patience_epochs_without_min_delta_improvement():
  # 0.89995 is below the best 0.9 but not by min_delta 1e-4 (absolute, as in Keras): no improvement.
  state, rates = run_plateau([1.0, 0.9, 0.89995, 0.95, 0.92, 0.85, 0.86, 0.86, 0.86])
  assert rates == [1e-3, 1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 5e-4, 5e-4, 2.5e-4]
  assert state.best == 0.85
  assert state.wait == 0


def test_plateau_counts_only_non_improving_epochs():
  _, rates = run_plateau([1.0, 1.1, 0.9, 1.1, 0.8, 1.1, 1.2])
  assert rates == [1e-3] * 7


def test_plateau_respects_min_lr():
  state, rates = run_plateau([1.0] + [2.0] * 9, lr=3e-6)
  assert rates[3] == pytest.approx(1.5e-6)
  assert rates[6] == 1e-6  # max(0.75e-6, min_lr)
  assert rates[9] == 1e-6  # already at the floor: left alone, wait keeps counting
  assert state.wait == 3


def test_plateau_cooldown_suspends_counting():
  state, rates = run_plateau([1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0], cooldown=2)
  # Reduced at epoch 3; epoch 4 cools down; the counter reaches 0 at epoch 5, which counts again
  # (Keras decrements before testing), so the next reduction comes at epoch 7.
  assert rates == [1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 5e-4, 5e-4, 2.5e-4]
  assert state.wait == 0 and state.cooldown == 2
