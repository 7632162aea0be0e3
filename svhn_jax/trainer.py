"""One Trainer: the compiled train step (or scanned epoch), its donation and shardings, and an
optional seed axis that trains several seeds of a run in one program through `jax.vmap`.

Without a seed axis, the state is one run's `steps.TrainState`; with `num_seeds`, every leaf has
a leading axis of seeds, each seed with its own parameters, optimizer and BatchNorm state,
dropout keys and data order, while the dataset on the device is shared. Either way the step is
`steps.train_step`, and an epoch's sample order and keys are derived the same way, so a seed
trains vmapped as it trains alone (to float rounding: vmapped layers may reorder sums).

An epoch-counted run calls `train_epoch` (every batch of the epoch, the last one partial); a
step-counted one `train_steps` (a validation period's full batches, which may span epochs:
`input_pipeline.epoch_segments`). With `scan`, `train_epoch` runs the epoch's full batches in one
`steps.scan_epoch`, and `train_steps` each piece of a period within one epoch in one `scan_steps`
(one compile per distinct piece length, a few in a run).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from svhn_jax import inference, input_pipeline, parallel, steps, xla_flags
from svhn_jax.data import Split
from svhn_jax.tasks.base import Task
from svhn_jax.errors import TrainingDiverged

DIVERGED_ADVICE = ("That epoch was not saved: the workdir keeps the last good epoch's "
                   "checkpoint, if any. Try a lower config.train.learning_rate in a new --workdir.")
# A step-counted run's (`Trainer.train_steps`).
DIVERGED_STEPS_ADVICE = ("Those steps were not saved: the workdir keeps the last good "
                         "validation's checkpoint, if any. Try a lower "
                         "config.train.learning_rate in a new --workdir.")


class Trainer:
  """Compiled steps for one model, optimizer and task (`svhn_jax.tasks`: its training inputs,
  loss, counts and validation metrics), data-parallel over `mesh`.

  The dataset and state must be replicated on the mesh (`parallel.replicate`). `num_seeds`:
  None for one run, or the size of the state's leading seed axis.
  """

  def __init__(self, graphdef, tx: optax.GradientTransformation, *, batch_size: int,
               eval_batch_size: int, mesh: jax.sharding.Mesh, scan: bool = False,
               num_seeds: int | None = None, options: steps.StepOptions = steps.StepOptions(),
               task: Task):
    self.graphdef = graphdef
    self.batch_size = batch_size
    self.mesh = mesh
    self.num_seeds = num_seeds
    parallel.check_batch_size(batch_size, mesh)
    if num_seeds:
      # Seeds share each chunk's memory, so a chunk holds as many activations as one run's.
      eval_batch_size = max(1, eval_batch_size // num_seeds)
    self.eval_batch_size = parallel.rounded_to_devices(eval_batch_size, mesh)
    step = functools.partial(steps.train_step, graphdef, tx, options, task=task)
    epoch = functools.partial(steps.scan_epoch, graphdef, tx, options, task=task)
    scanned = functools.partial(scan_steps, graphdef, tx, options, task=task)
    if num_seeds:
      # (state, totals, data, batches, i, key): the data is shared, the step index too.
      step = jax.vmap(step, in_axes=(0, 0, None, 0, None, 0))
      epoch = jax.vmap(epoch, in_axes=(0, 0, None, 0, 0))
      scanned = jax.vmap(scanned, in_axes=(0, 0, None, 0, None, 0))
    jit = functools.partial(jax.jit, donate_argnums=(0, 1),
                            out_shardings=parallel.replicated(mesh),
                            compiler_options=xla_flags.model_options())
    # The state and totals stay replicated; the batch split follows from the sharded indices.
    self._step = jit(step)
    self._epoch = jit(epoch) if scan else None
    self._scanned = jit(scanned) if scan else None
    self._compiled_full_step = None
    metrics = jax.vmap(task.metrics, in_axes=(0, None)) if num_seeds else task.metrics
    self._metrics = jax.jit(metrics)

  def _keys(self, keys: jax.Array, fn: Callable) -> jax.Array:
    return jax.vmap(fn)(keys) if self.num_seeds else fn(keys)

  def _orders(self, keys: jax.Array, epoch: int, n: int) -> tuple[jax.Array, jax.Array]:
    orders = lambda k: input_pipeline.epoch_batches(k, epoch, n, self.batch_size)
    return jax.vmap(orders)(keys) if self.num_seeds else orders(keys)

  def planned_step_bytes(self, state: steps.TrainState, data: Split, keys: jax.Array) -> int:
    """Device memory XLA plans for one step on full batches: arguments, outputs, temporaries.

    Compiles that step ahead of time, and `train_epoch` then runs the compiled program, so
    asking costs no second compile. 0 where the backend does not say.
    """
    full, _ = self._orders(keys, 0, data.labels.shape[0])
    full = parallel.batch_indices(np.asarray(full), self.mesh)
    totals = self._zero_totals()
    self._compiled_full_step = self._step.lower(state, totals, data, full, 0, keys).compile()
    stats = self._compiled_full_step.memory_analysis()
    if stats is None:
      return 0
    return (stats.argument_size_in_bytes + stats.output_size_in_bytes
            + stats.temp_size_in_bytes - stats.alias_size_in_bytes)

  def _zero_totals(self) -> steps.Totals:
    return steps.Totals.zeros((self.num_seeds,) if self.num_seeds else ())

  def train_epoch(self, state: steps.TrainState, data: Split, keys: jax.Array, epoch: int,
                  progress: Callable[[int], None] = lambda _: None,
                  active: list[bool] | None = None) -> tuple[steps.TrainState, list[dict]]:
    """One epoch over `data` for the run (or each seed): `keys` is the run's key (or one per
    seed, (seeds,)). Returns the new state and each run's {'loss', 'accuracy'}, as Keras
    reports them. Raises TrainingDiverged if a step's loss was NaN or infinite in a run that
    `active` (default: all) marks as still training."""
    n = data.labels.shape[0]
    full, tail = (parallel.batch_indices(np.asarray(b), self.mesh)
                  for b in self._orders(keys, epoch, n))
    step_keys = self._keys(keys, lambda k: jax.random.fold_in(jax.random.fold_in(k, epoch), 1))
    num_full, tail_size = full.shape[-2], tail.shape[-1]
    # Fresh leaves (zero totals, a new learning rate) placed like the step's own outputs: the
    # same input types, so the step compiles once.
    state, totals = jax.device_put((state, self._zero_totals()), parallel.replicated(self.mesh))
    # Keras sees every sample each epoch: the remainder is one smaller batch (a second compile,
    # once), not padding, so BatchNorm statistics match.
    if self._epoch is None:
      full_step = self._compiled_full_step or self._step
      for i in range(num_full):
        state, totals = full_step(state, totals, data, full, i, step_keys)
        progress(1)
    elif num_full:
      state, totals = self._epoch(state, totals, data, full, step_keys)
      progress(num_full)
    if tail_size:
      tail_keys = self._keys(step_keys, lambda k: jax.random.fold_in(k, num_full))
      state, totals = self._step(state, totals, data, tail, 0, tail_keys)
      progress(1)
    totals = jax.tree.map(np.atleast_1d, jax.device_get(totals))
    for seed_index, finite in enumerate(totals.finite_steps):
      if active is None or active[seed_index]:
          check_finite_steps(int(finite), num_full + (tail_size > 0), epoch,
                           seed_index if self.num_seeds else None)
    return state, [{"loss": float(loss / count), "accuracy": float(correct / count)}
                   for loss, correct, count in zip(totals.loss, totals.correct, totals.count)]

  def train_steps(self, state: steps.TrainState, data: Split, keys: jax.Array, start: int,
                  stop: int, progress: Callable[[int], None] = lambda _: None,
                  active: list[bool] | None = None) -> tuple[steps.TrainState, list[dict]]:
    """Global steps `start`..`stop - 1` of a step-counted run (a validation period), for the
    run or each seed: step s is full batch s % k of epoch s // k's order (k = n // batch_size;
    each epoch's last partial batch is dropped), with the keys `train_epoch` gives that batch,
    so a run of whole epochs of full batches takes the same steps either way. Returns the new
    state and each run's {'loss', 'accuracy'} over these steps. Raises TrainingDiverged as
    `train_epoch` does."""
    n = data.labels.shape[0]
    per_epoch = n // self.batch_size
    state, totals = jax.device_put((state, self._zero_totals()), parallel.replicated(self.mesh))
    for epoch, first, end in input_pipeline.epoch_segments(start, stop, per_epoch):
      full, _ = self._orders(keys, epoch, n)
      full = parallel.batch_indices(np.asarray(full), self.mesh)
      step_keys = self._keys(keys, lambda k: jax.random.fold_in(jax.random.fold_in(k, epoch), 1))
      if self._scanned is None:
        full_step = self._compiled_full_step or self._step
        for i in range(first, end):
          state, totals = full_step(state, totals, data, full, i, step_keys)
          progress(1)
      else:
        state, totals = self._scanned(state, totals, data, full,
                                      jnp.arange(first, end, dtype=jnp.int32), step_keys)
        progress(end - first)
    totals = jax.tree.map(np.atleast_1d, jax.device_get(totals))
    for seed_index, finite in enumerate(totals.finite_steps):
      if (active is None or active[seed_index]) and int(finite) < stop - start:
        which = "" if self.num_seeds is None else f" (seed index {seed_index})"
        raise TrainingDiverged(
            f"the training loss became NaN or infinite at step {start + int(finite) + 1} of "
            f"steps {start + 1}-{stop}{which}. {DIVERGED_STEPS_ADVICE}")
    return state, [{"loss": float(loss / count), "accuracy": float(correct / count)}
                   for loss, correct, count in zip(totals.loss, totals.correct, totals.count)]

  def logits(self, state: steps.TrainState, images: jax.Array) -> jax.Array:
    """Inference-mode logits of `images` under the weights evaluated (`steps.eval_params`)."""
    return inference.predict_logits(self.graphdef, steps.eval_params(state), state.batch_stats,
                                    images,
                                    batch_size=self.eval_batch_size, mesh=self.mesh,
                                    seed_axis=bool(self.num_seeds))

  def evaluate(self, state: steps.TrainState, split: Split) -> list[dict]:
    """Each run's (or seed's) {'loss', 'accuracy'} on `split`, as the task measures them
    (for numbers, 'accuracy' is sequence accuracy)."""
    logits = self.logits(state, split.images)
    values = jax.tree.map(np.atleast_1d, jax.device_get(self._metrics(logits, split.labels)))
    return [{k: float(v[i]) for k, v in values.items()} for i in range(len(values["loss"]))]


def check_finite_steps(finite_steps: int, num_steps: int, epoch: int,
                       seed_index: int | None = None) -> None:
  """Raises TrainingDiverged if fewer than `num_steps` steps of `epoch` kept a finite loss."""
  if finite_steps < num_steps:
    which = "" if seed_index is None else f" (seed index {seed_index})"
    raise TrainingDiverged(
        f"the training loss became NaN or infinite at epoch {epoch + 1}, step "
        f"{finite_steps + 1} of {num_steps}{which}. {DIVERGED_ADVICE}")


def scan_steps(graphdef, tx: optax.GradientTransformation, options: steps.StepOptions,
               state: steps.TrainState, totals: steps.Totals, data: Split, batches: jax.Array,
               indices: jax.Array, key: jax.Array, *, task: Task
               ) -> tuple[steps.TrainState, steps.Totals]:
  """`steps.train_step` over the rows `indices` (int32 (m,)) of one epoch's `batches` in one
  `lax.scan`: what a step-counted run's period takes of that epoch, the step loop's steps."""
  def body(carry, i):
    return steps.train_step(graphdef, tx, options, *carry, data, batches, i, key, task=task), None

  (state, totals), _ = jax.lax.scan(body, (state, totals), indices)
  return state, totals
