"""Early stopping and plateau learning-rate control with Keras's semantics, as pure state + update.

Each controller is an immutable NamedTuple and an update function, `early_stopping_update(state,
value, epoch, ...)` and `plateau_update(state, value, ...)`, returning the new state; the train
loop calls each once per validation with its metric: once an epoch in an epoch-counted run, once
every `config.train.eval_every_steps` steps (and after the last) in a step-counted one, so
patience, cooldown and `epoch` count validations. Keeping them
as plain data lets a checkpoint carry them and a resumed run continue exactly where it stopped.

Why not optax.contrib.reduce_on_plateau or flax's EarlyStopping: the former counts every call
toward patience and tests improvement relatively by default, the latter stops after patience + 1
non-improving updates; the study's numbers come from Keras's callbacks, which these reproduce.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


class EarlyStopping(NamedTuple):
  """Keras EarlyStopping(monitor='val_accuracy', mode='max') state."""

  best: float = -math.inf
  best_epoch: int = -1
  wait: int = 0
  stop: bool = False


def early_stopping_update(
    state: EarlyStopping, value: float, epoch: int, *, patience: int, min_delta: float = 0.0
) -> EarlyStopping:
  """One epoch of Keras's EarlyStopping in 'max' mode; `best_epoch` is the epoch to restore."""
  wait = state.wait + 1
  if value - min_delta > state.best:
    return EarlyStopping(best=value, best_epoch=epoch, wait=0, stop=False)
  return state._replace(wait=wait, stop=wait >= patience and epoch > 0)


class Plateau(NamedTuple):
  """Keras ReduceLROnPlateau(monitor='val_loss', mode='min') state and the current rate."""

  lr: float
  best: float = math.inf
  wait: int = 0
  cooldown: int = 0


def plateau_update(
    state: Plateau, value: float, *, factor: float, patience: int, min_delta: float,
    min_lr: float, cooldown: int = 0,
) -> Plateau:
  """One epoch of Keras's ReduceLROnPlateau in 'min' mode; returns the rate for the next epoch."""
  wait, cooling = state.wait, state.cooldown
  if cooling > 0:
    cooling -= 1
    wait = 0
  if value < state.best - min_delta:
    return state._replace(best=value, wait=0, cooldown=cooling)
  if cooling > 0:
    return state._replace(wait=wait, cooldown=cooling)
  wait += 1
  lr = state.lr
  # Keras keeps the rate in a float32 variable: a rate already at the floor is left alone.
  if wait >= patience and np.float32(lr) > np.float32(min_lr):
    return Plateau(lr=max(lr * factor, min_lr), best=state.best, wait=0, cooldown=cooldown)
  return state._replace(wait=wait, cooldown=cooling)

