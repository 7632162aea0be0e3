"""The pure functions a run compiles: model input, loss, train step, scanned epoch, logits.

Each is a function of arrays and static structure only (the model's graph definition, the
optimizer, the recipe's options and the task, `svhn_jax.tasks`, which gives the step its inputs,
loss and counts), so `trainer.Trainer` can jit, donate, shard and vmap them without copies. The hot
loop stays functional: `nnx.merge` inside the trace, never `nnx.jit`, which re-walks the object
graph on every call.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from svhn_jax import augment, recipes

if TYPE_CHECKING:  # annotations only: the data layer is not the compiled step's
  from svhn_jax.data import Split
  from svhn_jax.tasks.base import Task

# Pixel value -> model input, computed by numpy as the study scaled on the host: XLA rewrites a
# division by 255 as a multiplication by its reciprocal, which rounds 1 in 3 values differently.
_UINT8_SCALE = np.arange(256, dtype=np.float32) / np.float32(255)


class TrainState(NamedTuple):
  """Everything a train step updates: weights (params, BatchNorm statistics), the optimizer's
  state and, with `StepOptions.ema_decay`, the moving average of the params (else None)."""

  params: Any
  batch_stats: Any
  opt_state: Any
  ema: Any = None


class StepOptions(NamedTuple):
  """The static parts of a recipe the step applies (hashable, compiled in): label smoothing,
  the EMA's decay (0: none), the augmentation, as `augment.augment`'s keyword arguments
  (empty: none), and the distortions, as `augment.distort`'s (those not 0; empty: none). The
  defaults are the study's step."""

  label_smoothing: float = 0.0
  ema_decay: float = 0.0
  augment: tuple[tuple[str, Any], ...] = ()
  distort: tuple[tuple[str, float], ...] = ()

  @classmethod
  def from_config(cls, train_cfg) -> "StepOptions":
    a = train_cfg.augment
    stages = {"translate": a.translate, "cutout": a.cutout, "rand_augment_ops": a.num_ops}
    kwargs = ()
    if any(stages.values()):
      kwargs = (*stages.items(), ("rand_augment_magnitude", float(a.magnitude)),
                ("ops", tuple(a.ops)))
    # A config.json written before the distortions existed has none.
    ranges = a.get("distort") or {}
    distort = tuple((name, float(ranges[name])) for name in augment.DISTORTIONS
                    if ranges.get(name))
    return cls(float(train_cfg.label_smoothing), float(train_cfg.ema_decay), kwargs, distort)


def eval_params(state: TrainState):
  """The parameters to evaluate: the moving average where the recipe keeps one."""
  return state.params if state.ema is None else state.ema


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


def init_state(model: nnx.Module, tx: optax.GradientTransformation, *, ema: bool = False
               ) -> tuple[Any, TrainState]:
  """(graphdef, state) of a freshly built model and its optimizer; with `ema`, the average
  starts at the initial params."""
  graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  average = jax.tree.map(jnp.copy, params) if ema else None
  return graphdef, TrainState(params, batch_stats, tx.init(params), average)


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


def loss_and_logits(graphdef, params, batch_stats, images, labels, *, train: bool, key=None,
                    label_smoothing: float = 0.0, task: Task):
  """The task's mean loss (for digits the cross-entropy, targets smoothed by
  `label_smoothing`), the logits and the BatchNorm statistics after this forward pass."""
  # copy=True: BatchNorm writes its statistics into the Variables, which must belong to this
  # trace rather than to the caller's, or jax.grad sees a leaked tracer.
  model = nnx.merge(graphdef, params, batch_stats, copy=True)
  rngs = nnx.Rngs(dropout=key) if train else None
  logits = model(model_input(images), train=train, rngs=rngs)
  loss = task.loss(logits, labels, label_smoothing)
  return loss, (logits, nnx.state(model, nnx.BatchStat))


# Augmentation keys come from the step's key folded with this first, apart from dropout's;
# the task's input keys (a numbers run's random crops) with the second, the distortions' with
# the third.
_AUGMENT_STREAM = 0x7FFFFFFF
_INPUT_STREAM = 0x7FFFFFFE
_DISTORT_STREAM = 0x7FFFFFFD


def train_step(graphdef, tx: optax.GradientTransformation, options: StepOptions,
               state: TrainState, totals: Totals, data: Split, batches: jax.Array, i: jax.Array,
               key: jax.Array, *, task: Task) -> tuple[TrainState, Totals]:
  """One optimizer step on batch `i` of `batches` ((steps, B) rows of sample indices into
  `data`), gathered, made into the task's training input (`task.train_images`), distorted
  (`augment.distort`) and augmented on the device; dropout keyed by `key` folded with `i`, the
  task's input by `key` folded with `_INPUT_STREAM` and `i`, the distortions with
  `_DISTORT_STREAM`, augmentation by `key` folded with `_AUGMENT_STREAM` and `i`. The totals
  count the task's correct answers (`task.correct`)."""
  idx = jax.lax.dynamic_index_in_dim(batches, i, keepdims=False)
  x, y = data.images[idx], data.labels[idx]
  x = task.train_images(x, jax.random.fold_in(jax.random.fold_in(key, _INPUT_STREAM), i))
  if options.distort:
    distort_key = jax.random.fold_in(jax.random.fold_in(key, _DISTORT_STREAM), i)
    x = augment.distort(model_input(x), distort_key, **dict(options.distort))
  if options.augment:
    augment_key = jax.random.fold_in(jax.random.fold_in(key, _AUGMENT_STREAM), i)
    x = augment.augment(model_input(x), augment_key, **dict(options.augment))
  grad_fn = jax.value_and_grad(
      functools.partial(loss_and_logits, graphdef, train=True, key=jax.random.fold_in(key, i),
                        label_smoothing=options.label_smoothing, task=task),
      has_aux=True,
  )
  (loss, (logits, batch_stats)), grads = grad_fn(state.params, state.batch_stats, x, y)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  ema = state.ema
  if options.ema_decay:
    ema = recipes.ema_update(ema, params, options.ema_decay, recipes.step_count(state.opt_state))
  n = y.shape[0]
  loss_sum = totals.loss + loss * n
  totals = Totals(
      loss=loss_sum,
      correct=totals.correct + task.correct(logits, y),
      count=totals.count + n,
      # Losses are never negative, so once the sum is NaN or infinite it stays so: this counts
      # the steps before the first bad one.
      finite_steps=totals.finite_steps + jnp.isfinite(loss_sum),
  )
  return TrainState(params, batch_stats, opt_state, ema), totals


def scan_epoch(graphdef, tx: optax.GradientTransformation, options: StepOptions,
               state: TrainState, totals: Totals, data: Split, batches: jax.Array,
               key: jax.Array, *, task: Task) -> tuple[TrainState, Totals]:
  """`train_step` over every row of `batches` in one `lax.scan`: the same steps, one dispatch."""
  def body(carry, i):
    return train_step(graphdef, tx, options, *carry, data, batches, i, key, task=task), None

  (state, totals), _ = jax.lax.scan(body, (state, totals), jnp.arange(batches.shape[0]))
  return state, totals


def logits(graphdef, params, batch_stats, images: jax.Array) -> jax.Array:
  """Inference-mode logits (N, outputs) of `images` (see `model_input`)."""
  return nnx.merge(graphdef, params, batch_stats)(model_input(images), train=False)
