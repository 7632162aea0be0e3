"""Training: a jit-compiled step, the epoch loop with Keras's callbacks, and `train_and_evaluate`.

The hot loop is functional: the model is split once into a static graph definition and pytrees
of parameters and BatchNorm statistics, and the jitted step is a pure function of
(state, batch, rng). The dataset is moved to the devices once; each step gathers its batch there
from a permutation drawn once per epoch, so nothing crosses back to the host until an epoch ends.
With several devices the step is data parallel: see `parallel`.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from svhn_jax import (callbacks, checkpoint, data, evaluate, interrupts, models, parallel, plots,
                      transforms, xla_flags)
from svhn_jax.errors import CheckpointError, ConfigError, Interrupted, TrainingDiverged

PREPROCESS_MODES = ("raw", "mask")


class TrainState(NamedTuple):
  params: Any
  batch_stats: Any
  opt_state: Any


class Inputs(NamedTuple):
  """Model-ready arrays of one split: images (N, 32, 32, 1) in [0, 1], int32 labels."""

  images: Any
  labels: Any


def model_inputs(
    dataset: data.Dataset, preprocess: str = "raw"
) -> tuple[tuple[Inputs, Inputs, Inputs], np.ndarray | None]:
  """The three splits as model inputs and, for 'mask', the mask built from the training split."""
  if preprocess not in PREPROCESS_MODES:
    raise ConfigError(
        f"config.data.preprocess={preprocess!r}: expected one of {', '.join(PREPROCESS_MODES)}"
    )
  mask = None
  if preprocess == "mask":
    mask = transforms.data_driven_mask(dataset.train.images)
  splits = tuple(
      Inputs(prepare_images(split.images, mask), np.asarray(split.labels, np.int32))
      for split in dataset
  )
  return splits, mask


def prepare_images(images: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
  """0..255 greyscale crops -> (N, 32, 32, 1) in [0, 1]; with a mask, background-normalized first."""
  if mask is not None:
    images = transforms.apply_mask(transforms.normalize_background(images), mask)
  return transforms.add_channel(transforms.scale(images))


def make_optimizer(learning_rate: float, eps: float) -> optax.GradientTransformation:
  # The rate is a hyperparameter in the optimizer state so the plateau controller can change it
  # between epochs without recompiling the step.
  return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate, eps=eps)


def init_state(model: nnx.Module, tx: optax.GradientTransformation) -> tuple[Any, TrainState]:
  graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  return graphdef, TrainState(params, batch_stats, tx.init(params))


def set_learning_rate(state: TrainState, lr: float) -> TrainState:
  hyperparams = dict(state.opt_state.hyperparams)
  hyperparams["learning_rate"] = jnp.asarray(lr, hyperparams["learning_rate"].dtype)
  return state._replace(opt_state=state.opt_state._replace(hyperparams=hyperparams))


def learning_rate(state: TrainState) -> float:
  return float(state.opt_state.hyperparams["learning_rate"])


def loss_and_logits(graphdef, params, batch_stats, images, labels, *, train: bool, key=None):
  """Mean cross-entropy, the logits and the BatchNorm statistics after this forward pass."""
  # copy=True: BatchNorm writes its statistics into the Variables, which must belong to this
  # trace rather than to the caller's, or jax.grad sees a leaked tracer.
  model = nnx.merge(graphdef, params, batch_stats, copy=True)
  rngs = nnx.Rngs(dropout=key) if train else None
  logits = model(images, train=train, rngs=rngs)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return loss, (logits, nnx.state(model, nnx.BatchStat))


def train_step(graphdef, tx, state: TrainState, totals: dict, images, labels, batches, i, key):
  """One optimizer step on batch `i` of `batches` (rows of sample indices into the split).

  `totals` accumulates sample-weighted loss and correct counts on the device, so the host reads
  the epoch's training metrics once, as Keras reports them.
  """
  idx = jax.lax.dynamic_index_in_dim(batches, i, keepdims=False)
  x, y = images[idx], labels[idx]
  grad_fn = jax.value_and_grad(
      functools.partial(loss_and_logits, graphdef, train=True, key=jax.random.fold_in(key, i)),
      has_aux=True,
  )
  (loss, (logits, batch_stats)), grads = grad_fn(state.params, state.batch_stats, x, y)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  n = y.shape[0]
  loss_sum = totals["loss"] + loss * n
  totals = {
      "loss": loss_sum,
      "correct": totals["correct"] + jnp.sum(jnp.argmax(logits, -1) == y),
      "count": totals["count"] + n,
      # Losses are never negative, so once the sum is NaN or infinite it stays so: this counts
      # the steps before the first bad one, and the host reads it once per epoch.
      "finite_steps": totals["finite_steps"] + jnp.isfinite(loss_sum),
  }
  return TrainState(params, batch_stats, opt_state), totals


def scan_epoch(graphdef, tx, state: TrainState, totals: dict, images, labels, batches, key):
  """`train_step` over every row of `batches` in one `lax.scan`: the same steps, one dispatch."""
  def body(carry, i):
    return train_step(graphdef, tx, *carry, images, labels, batches, i, key), None

  (state, totals), _ = jax.lax.scan(body, (state, totals), jnp.arange(batches.shape[0]))
  return state, totals


SCAN_SETTINGS = {"auto": None, "true": True, "false": False}


def use_scan(setting: str | bool, model: nnx.Module) -> bool:
  """Whether to run whole epochs under `lax.scan`. 'auto': yes on accelerators; on the CPU only
  for models without convolutions, since XLA:CPU runs convolutions inside loops ~30x slower."""
  # The field is a string, so a command-line override arrives as text: 'False' must mean False.
  key = str(setting).lower()
  if key not in SCAN_SETTINGS:
    raise ConfigError(f"config.train.scan_epoch={setting!r}: expected one of "
                      f"{', '.join(SCAN_SETTINGS)}")
  if SCAN_SETTINGS[key] is not None:
    return SCAN_SETTINGS[key]
  return jax.default_backend() != "cpu" or not models.has_convolution(model)


# On XLA:CPU a CNN's activations for 128 images stay in the last-level cache: larger chunks ran
# 1.4-1.7x slower (CNN2 5,551 vs 7,934 images/s, CNN1 8,617 vs 14,589 on 2 Zen 4 cores). The
# ANNs, and accelerators, are fastest in large chunks.
CPU_CNN_INFERENCE_CHUNK = 128


def inference_chunk(requested: int, model: nnx.Module) -> int:
  """The chunk size to run inference in: `requested` (config.train.eval_batch_size), at most
  CPU_CNN_INFERENCE_CHUNK for a CNN on the CPU. Inference is per sample, so no result changes."""
  if jax.default_backend() == "cpu" and models.has_convolution(model):
    return min(requested, CPU_CNN_INFERENCE_CHUNK)
  return requested


def predict_logits(graphdef, params, batch_stats, images, *, batch_size: int,
                   mesh: jax.sharding.Mesh | None = None, seed_axis: bool = False) -> jax.Array:
  """Inference-mode logits for all images, in fixed-size chunks (one compile, any N).

  On a `mesh`, each chunk is split over its devices and its logits gathered on all of them.
  With `seed_axis`, `params` and `batch_stats` carry a leading axis of seeds (as in
  `multiseed`), every seed sees the same chunks, and the logits are (seeds, N, 10).
  """
  n = images.shape[0]
  chunks = max(1, math.ceil(n / batch_size))
  padded = _pad_to(images, chunks * batch_size)
  logits_chunk = _compiled_logits_chunk()
  logits = [
      logits_chunk(graphdef, params, batch_stats, padded, jnp.int32(c * batch_size), batch_size,
                   mesh, seed_axis)
      for c in range(chunks)
  ]
  axis = 1 if seed_axis else 0
  return jax.lax.slice_in_dim(jnp.concatenate(logits, axis), 0, n, axis=axis)


@functools.cache
def _compiled_logits_chunk():
  # Built on first use, not at import: the options depend on the backend, which must not start
  # before jax.distributed.initialize.
  return jax.jit(_logits_chunk, static_argnums=(0, 5, 6, 7),
                 compiler_options=xla_flags.model_options())


def _logits_chunk(graphdef, params, batch_stats, images, start, size, mesh, seed_axis):
  x = jax.lax.dynamic_slice_in_dim(images, start, size)

  def forward(p, b, x):
    return nnx.merge(graphdef, p, b)(x, train=False)

  if seed_axis:
    forward = jax.vmap(forward, in_axes=(0, 0, None))
  if mesh is None:
    return forward(params, batch_stats, x)
  x = jax.lax.with_sharding_constraint(x, parallel.rows(mesh, size))
  return jax.lax.with_sharding_constraint(forward(params, batch_stats, x),
                                          parallel.replicated(mesh))


def _pad_to(x: jax.Array, n: int) -> jax.Array:
  if x.shape[0] == n:
    return x
  return jnp.concatenate([x, jnp.zeros((n - x.shape[0], *x.shape[1:]), x.dtype)])


@jax.jit
def logits_metrics(logits: jax.Array, labels: jax.Array) -> dict:
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return {"loss": loss, "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels)}


def epoch_batches(key, epoch: int, n: int, batch_size: int) -> tuple[jax.Array, jax.Array]:
  """This epoch's shuffled sample order: full batches (k, B) and the last partial one (1, r)."""
  perm = jax.random.permutation(jax.random.fold_in(key, epoch), n).astype(jnp.int32)
  full = (n // batch_size) * batch_size
  return perm[:full].reshape(-1, batch_size), perm[full:].reshape(1, -1)


def zero_totals(shape: tuple[int, ...] = ()) -> dict:
  """The running sums `train_step` adds an epoch's batches into (`shape`: e.g. a seed axis)."""
  return {"loss": jnp.zeros(shape), "correct": jnp.zeros(shape, jnp.int32),
          "count": jnp.zeros(shape, jnp.int32), "finite_steps": jnp.zeros(shape, jnp.int32)}


class Trainer:
  """Compiled steps for one model and optimizer, data-parallel over `mesh` (default: all devices).

  The dataset and state must be replicated on the mesh (`parallel.replicate`).
  """

  def __init__(self, graphdef, tx, *, batch_size: int, eval_batch_size: int,
               mesh: jax.sharding.Mesh | None = None, scan: bool = False):
    self.graphdef = graphdef
    self.batch_size = batch_size
    self.mesh = parallel.make_mesh() if mesh is None else mesh
    parallel.check_batch_size(batch_size, self.mesh)
    # Rounded up so that evaluation splits over the devices too; inference is per sample, so
    # the chunk size changes no result.
    self.eval_batch_size = math.ceil(eval_batch_size / self.mesh.size) * self.mesh.size
    options = xla_flags.model_options()
    # The state and totals stay replicated; the batch split follows from the sharded indices.
    self._step = jax.jit(
        functools.partial(train_step, graphdef, tx), donate_argnums=(0, 1),
        out_shardings=parallel.replicated(self.mesh), compiler_options=options,
    )
    self._epoch = jax.jit(
        functools.partial(scan_epoch, graphdef, tx), donate_argnums=(0, 1),
        out_shardings=parallel.replicated(self.mesh), compiler_options=options,
    ) if scan else None

  def train_epoch(self, state: TrainState, train: Inputs, key, epoch: int,
                  progress: Callable[[int], None] = lambda _: None) -> tuple[TrainState, dict]:
    n = train.labels.shape[0]
    full, tail = (parallel.batch_indices(np.asarray(b), self.mesh)
                  for b in epoch_batches(key, epoch, n, self.batch_size))
    step_key = jax.random.fold_in(jax.random.fold_in(key, epoch), 1)
    totals = zero_totals()
    # Fresh leaves (zero totals, a new learning rate) placed like the step's own outputs: the
    # same input types, so the step compiles once.
    state, totals = jax.device_put((state, totals), parallel.replicated(self.mesh))
    # Keras sees every sample each epoch: the remainder is one smaller batch (a second compile,
    # once), not padding, so BatchNorm statistics match.
    if self._epoch is None:
      for i in range(full.shape[0]):
        state, totals = self._step(state, totals, train.images, train.labels, full, i, step_key)
        progress(1)
    elif full.shape[0]:
      state, totals = self._epoch(state, totals, train.images, train.labels, full, step_key)
      progress(full.shape[0])
    if tail.shape[1]:
      tail_key = jax.random.fold_in(step_key, full.shape[0])
      state, totals = self._step(state, totals, train.images, train.labels, tail, 0, tail_key)
      progress(1)
    totals = jax.device_get(totals)
    check_finite_steps(int(totals["finite_steps"]), full.shape[0] + (tail.shape[1] > 0), epoch)
    return state, {"loss": float(totals["loss"] / totals["count"]),
                   "accuracy": float(totals["correct"] / totals["count"])}

  def logits(self, state: TrainState, images) -> jax.Array:
    return predict_logits(self.graphdef, state.params, state.batch_stats, images,
                          batch_size=self.eval_batch_size, mesh=self.mesh)

  def evaluate(self, state: TrainState, split: Inputs) -> dict:
    metrics = jax.device_get(logits_metrics(self.logits(state, split.images), split.labels))
    return {k: float(v) for k, v in metrics.items()}


_DIVERGED_ADVICE = ("That epoch was not saved: the workdir keeps the last good epoch's "
                    "checkpoint, if any. Try a lower config.train.learning_rate in a new --workdir.")


def check_finite_steps(finite_steps: int, steps: int, epoch: int) -> None:
  """Raises TrainingDiverged if fewer than `steps` steps of `epoch` kept a finite loss."""
  if finite_steps < steps:
    raise TrainingDiverged(
        f"the training loss became NaN or infinite at epoch {epoch + 1}, step "
        f"{finite_steps + 1} of {steps}. {_DIVERGED_ADVICE}")


class Progress(NamedTuple):
  """What a checkpoint carries besides the arrays: enough to continue the run exactly."""

  epoch: int  # epochs finished
  early_stopping: callbacks.EarlyStopping
  plateau: callbacks.Plateau
  history: list

  def to_json(self, model_name: str) -> dict:
    return {"model": model_name, "epoch": self.epoch,
            "early_stopping": self.early_stopping._asdict(), "plateau": self.plateau._asdict(),
            "history": self.history}

  @classmethod
  def from_json(cls, meta: dict) -> "Progress":
    return cls(meta["epoch"], callbacks.EarlyStopping(**meta["early_stopping"]),
               callbacks.Plateau(**meta["plateau"]), list(meta["history"]))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict:
  """Trains the configured model in `workdir`, resuming from its latest checkpoint, and
  evaluates the best weights on the test split. Returns the test metrics."""
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  _write_json(workdir / "config.json", json.loads(config.to_json_best_effort()))
  mesh = parallel.make_mesh(config.mesh.devices)
  logging.info("JAX: %s", parallel.describe(mesh))

  dataset = data.load(data.dataset_path(config.data))
  (train, val, test), mask = model_inputs(dataset, config.data.preprocess)
  del dataset
  if mask is not None and parallel.is_primary():
    np.save(workdir / "mask.npy", mask)
  train, val, test = (Inputs(*parallel.replicate(tuple(s), mesh)) for s in (train, val, test))

  model = models.create_model(config.model.name, seed=config.seed, impl=config.model.impl)
  summary = models.summary(model, config.model.name)
  logging.info("Model:\n%s", summary)
  _atomic_write_text(workdir / "model_summary.txt", summary + "\n")

  tx = make_optimizer(config.train.learning_rate, config.train.adam_eps)
  graphdef, state = init_state(model, tx)
  state = parallel.replicate(state, mesh)
  trainer = Trainer(graphdef, tx, batch_size=config.train.batch_size,
                    eval_batch_size=inference_chunk(config.train.eval_batch_size, model),
                    mesh=mesh, scan=use_scan(config.train.scan_epoch, model))
  state, best, progress = fit(trainer, state, train, val, config, workdir)

  best = _best_state(state, best, workdir)
  logits = np.asarray(trainer.logits(best, test.images))
  report = evaluate.report(logits, np.asarray(test.labels))
  report["best_epoch"] = progress.early_stopping.best_epoch + 1
  report["epochs_run"] = progress.epoch
  _write_json(workdir / "test_metrics.json", report)
  logging.info("Test accuracy %.4f (best epoch %d)\n%s", report["accuracy"],
               report["best_epoch"], evaluate.report_text(report))
  if parallel.is_primary():
    plots.training_curves(progress.history, workdir / "figures" / "curves.png")
    plots.confusion_matrix(np.asarray(report["confusion_matrix"]),
                           workdir / "figures" / "confusion_matrix.png")
  return report


def fit(trainer: Trainer, state: TrainState, train: Inputs, val: Inputs,
        config: ml_collections.ConfigDict, workdir: Path
        ) -> tuple[TrainState, TrainState | None, Progress]:
  """The epoch loop: train, validate, feed the callbacks, log, checkpoint; resumes if it can.

  Returns the final state, the best epoch's state if that epoch ran in this process (else None:
  it is in the best checkpoint), and the progress.
  """
  tc = config.train
  progress = Progress(0, callbacks.EarlyStopping(), callbacks.Plateau(lr=tc.learning_rate), [])
  ckpts = checkpoint.Checkpoints(workdir) if config.checkpoint.enabled else None
  if ckpts is not None:
    state, progress = _resume(ckpts, state, progress, config.model.name)
  _write_metrics(workdir / "metrics.jsonl", progress.history)

  key = jax.random.fold_in(jax.random.key(config.seed), 1)
  best = None
  steps_per_epoch = math.ceil(train.labels.shape[0] / tc.batch_size)
  while (progress.epoch < tc.epochs and not progress.early_stopping.stop
         and not interrupts.requested()):
    epoch = progress.epoch
    start = time.perf_counter()
    state = set_learning_rate(state, progress.plateau.lr)
    with _progress_bar(steps_per_epoch, f"epoch {epoch + 1}/{tc.epochs}") as bar:
      state, train_metrics = trainer.train_epoch(state, train, key, epoch, bar.update)
    val_metrics = trainer.evaluate(state, val)
    if not math.isfinite(val_metrics["loss"]):
      raise TrainingDiverged(f"the validation loss became {val_metrics['loss']} after epoch "
                             f"{epoch + 1}: the weights are no longer finite. {_DIVERGED_ADVICE}")
    row = {"epoch": epoch + 1, **train_metrics,
           **{f"val_{k}": v for k, v in val_metrics.items()},
           "lr": progress.plateau.lr, "seconds": time.perf_counter() - start}
    es = callbacks.early_stopping_update(
        progress.early_stopping, row["val_accuracy"], epoch,
        patience=tc.early_stopping.patience, min_delta=tc.early_stopping.min_delta)
    plateau = callbacks.plateau_update(progress.plateau, row["val_loss"], **tc.plateau)
    progress = Progress(epoch + 1, es, plateau, progress.history + [row])
    logging.info(
        "epoch %d/%d  loss %.4f  accuracy %.4f  val_loss %.4f  val_accuracy %.4f  lr %.2e  %.1fs",
        epoch + 1, tc.epochs, row["loss"], row["accuracy"], row["val_loss"],
        row["val_accuracy"], row["lr"], row["seconds"])
    _append_metrics(workdir / "metrics.jsonl", row)
    if es.best_epoch == epoch:
      # A copy: the next step donates `state`'s buffers.
      best = jax.tree.map(jnp.copy, state)
    if ckpts is not None:
      ckpts.save(progress.epoch, state, progress.to_json(config.model.name),
                 best=es.best_epoch == epoch)
    if es.stop:
      logging.info("Early stopping after epoch %d: val_accuracy has not improved since epoch %d",
                   epoch + 1, es.best_epoch + 1)
  if ckpts is not None:
    ckpts.close()
  if interrupts.requested():
    raise _interrupted(interrupts.requested(), progress.epoch, tc.epochs, ckpts is not None)
  return state, best, progress


def _interrupted(signum: int, epoch: int, epochs: int, saved: bool) -> Interrupted:
  if not saved:
    outcome = "Checkpoints are off (config.checkpoint.enabled), so nothing was saved."
  elif epoch == 0:
    outcome = "No epoch had finished, so there was nothing to save."
  else:
    outcome = (f"Its checkpoint after epoch {epoch} of {epochs} is saved: run the same command "
               "to resume.")
  return Interrupted(f"{signal.Signals(signum).name} stopped the run. {outcome}", signum)


def _resume(ckpts: checkpoint.Checkpoints, state: TrainState, progress: Progress,
            model_name: str) -> tuple[TrainState, Progress]:
  latest = ckpts.latest_epoch()
  if latest is None:
    return state, progress
  restored = ckpts.restore_latest(state)
  tree, meta = restored
  if meta.get("model") != model_name:
    raise CheckpointError(
        f"{ckpts.directory}: checkpoints were written by model {meta.get('model')!r}, but "
        f"config.model.name is {model_name!r}. Use another --workdir for this model.")
  logging.info("Resuming from %s after epoch %d", ckpts.directory / "latest", meta["epoch"])
  return TrainState(*tree), Progress.from_json(meta)


def _best_state(state: TrainState, best: TrainState | None, workdir: Path) -> TrainState:
  """The weights of the best validation epoch, as Keras's restore_best_weights leaves them."""
  if best is not None:
    return best
  ckpts = checkpoint.Checkpoints(workdir)
  restored = ckpts.restore_best(state)
  ckpts.close()
  return TrainState(*restored[0]) if restored else state


class _progress_bar:
  """A tqdm bar on an interactive terminal; silent in logs and CI."""

  def __init__(self, total: int, desc: str):
    from tqdm import tqdm

    self._bar = tqdm(total=total, desc=desc, leave=False, disable=None, unit="step")

  def __enter__(self):
    return self._bar

  def __exit__(self, *exc):
    self._bar.close()


def _write_json(path: Path, obj: Any) -> None:
  _atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def _write_metrics(path: Path, history: list) -> None:
  """Rewrites metrics.jsonl from the checkpoint's history, dropping rows of lost epochs."""
  _atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in history))


def _append_metrics(path: Path, row: dict) -> None:
  if not parallel.is_primary():
    return
  with open(path, "a") as f:
    f.write(json.dumps(row) + "\n")


def _atomic_write_text(path: Path, text: str) -> None:
  # Every process computes the same run; only process 0 writes its files (checkpoints are
  # orbax's, which every process must save together).
  if not parallel.is_primary():
    return
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.tmp")
  tmp.write_text(text)
  os.replace(tmp, path)
