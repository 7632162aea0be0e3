"""The pure functions a run compiles: model input, loss, train step, scanned epoch, logits.

Each is a function of arrays and static structure only (the model's graph definition and the
optimizer), so `trainer.Trainer` can jit, donate, shard and vmap them without copies. The hot
loop stays functional: `nnx.merge` inside the trace, never `nnx.jit`, which re-walks the object
graph on every call.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from svhn_jax.data import Split

# Pixel value -> model input, computed by numpy as the study scaled on the host: XLA rewrites a
# division by 255 as a multiplication by its reciprocal, which rounds 1 in 3 values differently.
_UINT8_SCALE = np.arange(256, dtype=np.float32) / np.float32(255)


class TrainState(NamedTuple):
  """Everything a train step updates: weights (params, BatchNorm statistics) and Adam's state."""

  params: Any
  batch_stats: Any
  opt_state: Any


class Totals(NamedTuple):
  """Running sums of an epoch on the device, read by the host once per epoch: sample-weighted
  loss, correct predictions, samples, and steps before the first non-finite loss."""

  loss: jax.Array
  correct: jax.Array
  count: jax.Array
  finite_steps: jax.Array

  @classmethod
  def zeros(cls, shape: tuple[int, ...] = ()) -> "Totals":
    """Zero totals; `shape` is () or (seeds,) for a seed axis."""
    return cls(jnp.zeros(shape), jnp.zeros(shape, jnp.int32), jnp.zeros(shape, jnp.int32),
               jnp.zeros(shape, jnp.int32))


def make_optimizer(learning_rate: float, eps: float) -> optax.GradientTransformation:
  """Adam with the rate as a hyperparameter in its state (`optax.inject_hyperparams`), so the
  plateau controller can change it between epochs without recompiling the step."""
  return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate, eps=eps)


def init_state(model: nnx.Module, tx: optax.GradientTransformation) -> tuple[Any, TrainState]:
  """(graphdef, state) of a freshly built model and its optimizer."""
  graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  return graphdef, TrainState(params, batch_stats, tx.init(params))


def with_learning_rate(state: TrainState, lr) -> TrainState:
  """`state` with the rate set to `lr`: a float, or one rate per seed for a seed axis."""
  hyperparams = dict(state.opt_state.hyperparams)
  hyperparams["learning_rate"] = jnp.asarray(np.asarray(lr, np.float64),
                                             hyperparams["learning_rate"].dtype)
  return state._replace(opt_state=state.opt_state._replace(hyperparams=hyperparams))


def model_input(images: jax.Array) -> jax.Array:
  """Float32 NHWC model input in [0, 1]: uint8 pixels scaled by 1/255 (exactly as numpy
  divides), float32 images passed through as already scaled; a channel axis added to (N, H, W).
  """
  if images.dtype == jnp.uint8:
    images = jnp.asarray(_UINT8_SCALE)[images]
  return images[..., None] if images.ndim == 3 else images


def loss_and_logits(graphdef, params, batch_stats, images, labels, *, train: bool, key=None):
  """Mean cross-entropy, the logits and the BatchNorm statistics after this forward pass."""
  # copy=True: BatchNorm writes its statistics into the Variables, which must belong to this
  # trace rather than to the caller's, or jax.grad sees a leaked tracer.
  model = nnx.merge(graphdef, params, batch_stats, copy=True)
  rngs = nnx.Rngs(dropout=key) if train else None
  logits = model(model_input(images), train=train, rngs=rngs)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return loss, (logits, nnx.state(model, nnx.BatchStat))


def train_step(graphdef, tx: optax.GradientTransformation, state: TrainState, totals: Totals,
               data: Split, batches: jax.Array, i: jax.Array, key: jax.Array
               ) -> tuple[TrainState, Totals]:
  """One optimizer step on batch `i` of `batches` ((steps, B) rows of sample indices into
  `data`), gathered on the device; dropout keyed by `key` folded with `i`."""
  idx = jax.lax.dynamic_index_in_dim(batches, i, keepdims=False)
  x, y = data.images[idx], data.labels[idx]
  grad_fn = jax.value_and_grad(
      functools.partial(loss_and_logits, graphdef, train=True, key=jax.random.fold_in(key, i)),
      has_aux=True,
  )
  (loss, (logits, batch_stats)), grads = grad_fn(state.params, state.batch_stats, x, y)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  n = y.shape[0]
  loss_sum = totals.loss + loss * n
  totals = Totals(
      loss=loss_sum,
      correct=totals.correct + jnp.sum(jnp.argmax(logits, -1) == y),
      count=totals.count + n,
      # Losses are never negative, so once the sum is NaN or infinite it stays so: this counts
      # the steps before the first bad one.
      finite_steps=totals.finite_steps + jnp.isfinite(loss_sum),
  )
  return TrainState(params, batch_stats, opt_state), totals


def scan_epoch(graphdef, tx: optax.GradientTransformation, state: TrainState, totals: Totals,
               data: Split, batches: jax.Array, key: jax.Array) -> tuple[TrainState, Totals]:
  """`train_step` over every row of `batches` in one `lax.scan`: the same steps, one dispatch."""
  def body(carry, i):
    return train_step(graphdef, tx, *carry, data, batches, i, key), None

  (state, totals), _ = jax.lax.scan(body, (state, totals), jnp.arange(batches.shape[0]))
  return state, totals


def logits(graphdef, params, batch_stats, images: jax.Array) -> jax.Array:
  """Inference-mode logits (N, classes) of `images` (see `model_input`)."""
  return nnx.merge(graphdef, params, batch_stats)(model_input(images), train=False)


def metrics(logits_: jax.Array, labels: jax.Array) -> dict:
  """Mean cross-entropy 'loss' and 'accuracy' of logits (N, classes) against int labels (N,)."""
  loss = optax.softmax_cross_entropy_with_integer_labels(logits_, labels).mean()
  return {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits_, -1) == labels)}
