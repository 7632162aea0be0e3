"""Training a run: `fit` (the loop of validation periods with Keras's callbacks, checkpoints and
interrupts) and `train_and_evaluate` (data, model, fit, test scores, figures), over one run or
several seeds.

A run is counted in epochs (`config.train.epochs`: a period is an epoch, every batch of it, the
last one partial, as Keras) or in steps (`config.train.total_steps`: a period is
`config.train.eval_every_steps` full batches, by default an epoch's, walking the epochs' seeded
orders across their boundaries; svhn_jax/config.py says when to use which). After each period
the run validates, updates early stopping and the plateau controller (their patience counts
validations), appends a row to metrics.jsonl (with `epoch`, the epochs walked, and `step`, the
global step count) and saves its checkpoint; a run killed in a period resumes from the last one
exactly as if it had not stopped. Ctrl-C or SIGTERM lets the period finish and be saved first.

With `train_seeds`, the seeds of one config train in one vmapped program (`trainer.Trainer`'s
seed axis) through the same `fit`: each seed keeps its own workdir, callbacks, checkpoints and
metrics exactly as a run of its own, and is evaluated the same way. A seed that stops early is
carried along by the program, but its later epochs are neither recorded nor saved.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
import shutil
import signal
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from svhn_jax import (callbacks, checkpoint, cli, data, fileio, inference, input_pipeline,
                      interrupts, models, parallel, plots, recipes, runlock, steps,
                      tasks)
from svhn_jax import config as config_lib
from svhn_jax.datasets import sources
from svhn_jax.tasks import base
from svhn_jax.errors import Interrupted, TrainingDiverged
from svhn_jax.models import study
from svhn_jax.trainer import DIVERGED_ADVICE, Trainer

# What a workdir holds besides its checkpoints; `clear_workdir` removes exactly these.
# Training images a data-initialized model sees at build time (`models.build`'s sample).
MODEL_SAMPLE = 10_000
RUN_FILES = ("config.json", "data.json", "metrics.jsonl", "model_summary.txt", "mask.npy",
             "test_metrics.json", "figures", "checkpoints")


def use_scan(setting: bool | None, model_name: str) -> bool:
  """Whether to run whole epochs under `lax.scan` (in a step-counted run, each validation
  period's steps within one epoch: `trainer.scan_steps`): `setting` if given; None (auto): yes on
  accelerators, and on the CPU only for models without convolutions, since XLA:CPU runs
  convolutions inside loops ~30x slower."""
  if setting is not None:
    return setting
  return jax.default_backend() != "cpu" or not models.spec(model_name).convolutional


@dataclasses.dataclass
class TrainingRun:
  """One run's place in `fit`: its config (with its own seed), workdir, checkpoints, progress,
  and, with early stopping, its best state if the best validation ran in this process (else it
  is in the best checkpoint)."""

  config: ml_collections.ConfigDict
  workdir: Path
  ckpts: checkpoint.Checkpoints | None
  progress: checkpoint.Progress
  best: steps.TrainState | None = None

  @property
  def active(self) -> bool:
    tc = self.config.train
    more = (self.progress.step < tc.total_steps if recipes.counts_steps(tc)
            else self.progress.epoch < tc.epochs)
    return more and not self.progress.early_stopping.stop


def seed_config(config: ml_collections.ConfigDict, seed: int) -> ml_collections.ConfigDict:
  seeded = ml_collections.ConfigDict(config.to_dict())
  seeded.seed = int(seed)
  return seeded


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike, *,
                       loaded: sources.Loaded | None = None) -> dict:
  """Trains the configured model in `workdir`, resuming from its latest checkpoint, and
  evaluates the best weights on the test split. Returns the test metrics."""
  return _train_and_evaluate(config, [config.seed], [Path(workdir)], seed_axis=False,
                             loaded=loaded)[0]


def train_seeds(config: ml_collections.ConfigDict, seeds: Sequence[int],
                workdirs: Sequence[str | os.PathLike], *, check_memory=None) -> list[dict]:
  """Trains `config` once per seed, all seeds in one vmapped program, each into its workdir as
  `train_and_evaluate` would; returns each seed's test metrics. Seeds must be fresh or at the
  same epoch. `check_memory(bytes)` may refuse the planned step before training starts."""
  return _train_and_evaluate(config, [int(s) for s in seeds], [Path(w) for w in workdirs],
                             seed_axis=True, check_memory=check_memory)


def _train_and_evaluate(config, seeds: list[int], workdirs: list[Path], *, seed_axis: bool,
                        check_memory=None, loaded: sources.Loaded | None = None) -> list[dict]:
  # Every entry point (main, the experiments, a script) gets the same one-line refusal of a bad
  # value before anything is written, rather than a ZeroDivisionError mid-run.
  config_lib.validate(config)
  config = resolved_dtype(config, workdirs)
  configs = [seed_config(config, s) for s in seeds]
  with contextlib.ExitStack() as held:
    if parallel.is_primary():
      for workdir in workdirs:
        held.enter_context(runlock.hold(workdir))
    mesh = parallel.make_mesh(config.mesh.devices)
    # Before the data is read or anything written: the device count is known only now.
    parallel.check_batch_size(config.train.batch_size, mesh)
    logging.info("JAX: %s", parallel.describe(mesh))
    task = tasks.get(config)
    dataset, path, fingerprint = (loaded or sources.Loaded(*task.load(config))).take()
    (train, val, test), mask = input_pipeline.prepare(dataset, config.data.preprocess)
    del dataset
    # Validation and test hold the task's evaluation input (a numbers run's centre crops).
    val, test = (data.Split(task.eval_images(s.images), s.labels) for s in (val, test))
    train, val, test = (input_pipeline.to_device(s, mesh) for s in (train, val, test))
    channels = 1 if train.images.ndim == 3 else train.images.shape[-1]

    name = config.model.name
    dtype = jnp.dtype(recipes.compute_dtype(config.train))
    # What a model that initializes from the data's statistics sees (`models.build`'s sample):
    # the model input of the first training images; other models ignore it.
    sample = steps.model_input(task.eval_images(train.images[:MODEL_SAMPLE]))
    seed_models = [task.build_model(config.model, seed=s, channels=channels, dtype=dtype,
                                    sample=sample) for s in seeds]
    del sample
    summary = study.summary(seed_models[0], name, image_size=models.spec(name).image_size)
    logging.info("Model:\n%s", summary)
    tx = recipes.optimizer(config.train,
                           recipes.steps_per_epoch(config.train, train.labels.shape[0]))
    inits = [steps.init_state(model, tx, ema=config.train.ema_decay > 0) for model in seed_models]
    graphdef = inits[0][0]
    runs, states = [], []
    for run_config, workdir, (_, state) in zip(configs, workdirs, inits):
      run, state = _resumed(run_config, workdir, parallel.replicate(state, mesh))
      runs.append(run)
      states.append(state)
    # Written once every workdir's checkpoints are known good: a refused resume leaves the
    # workdir as it was.
    for run in runs:
      _write_run_files(run, summary, mask, path, fingerprint)
    state = _stack(states) if seed_axis else states[0]
    keys = [jax.random.fold_in(jax.random.key(s), 1) for s in seeds]
    keys = jnp.stack(keys) if seed_axis else keys[0]
    trainer = Trainer(graphdef, tx, batch_size=config.train.batch_size,
                      eval_batch_size=inference.inference_chunk(config.train.eval_batch_size, name),
                      mesh=mesh, scan=use_scan(config.train.scan_epoch, name),
                      num_seeds=len(seeds) if seed_axis else None,
                      options=steps.StepOptions.from_config(config.train), task=task)
    if check_memory is not None:
      check_memory(trainer.planned_step_bytes(state, train, keys))
    state = fit(trainer, state, train, validation_slice(val, config.train.val_examples), keys,
                runs)
    return [_evaluate(run, _final(state, i, seed_axis), graphdef, test, mesh, task)
            for i, run in enumerate(runs)]


def resolved_dtype(config: ml_collections.ConfigDict, workdirs: Sequence[Path]
                   ) -> ml_collections.ConfigDict:
  """`config` with `train.compute_dtype` auto resolved where the model reads it (wrn,
  airbench): to the dtype a workdir's saved config.json holds, so that a resumed run keeps the
  one it started with, else to this backend's (`recipes.compute_dtype`). The run's config.json
  then holds the resolved dtype, which `svhn_jax.inference` builds the model with."""
  flat = config_lib.flat(config.to_dict())
  if (config.train.compute_dtype != "auto"
      or not config_lib.applies(config_lib.RUN_SCHEMA["train.compute_dtype"], flat)):
    return config
  resolved = recipes.compute_dtype(config.train)
  for workdir in workdirs:
    try:
      saved = json.loads((workdir / "config.json").read_text())["train"]["compute_dtype"]
    except (OSError, ValueError, KeyError, TypeError):
      continue
    if saved in config_lib.COMPUTE_DTYPES and saved != "auto":
      resolved = saved
      break
  config = ml_collections.ConfigDict(config.to_dict())
  config.train.compute_dtype = resolved
  logging.info("config.train.compute_dtype=auto: %s", resolved)
  return config


def validation_slice(val: data.Split, examples: int) -> data.Split:
  """The first `examples` crops of the validation split (all of them for 0), for epochs that
  validate on a fixed part of a large split (`config.train.val_examples`)."""
  if not examples or examples >= val.labels.shape[0]:
    return val
  return data.Split(val.images[:examples], val.labels[:examples])


def _write_run_files(run: TrainingRun, summary: str, mask, path: Path, fingerprint: str) -> None:
  # Only process 0 writes the run's files (checkpoints are orbax's, which every process must
  # save together); the config is written now that the data, model and checkpoints are known
  # good. Rows of epochs lost since the last checkpoint go; the checkpoint's history stays.
  if not parallel.is_primary():
    return
  workdir = run.workdir
  fileio.write_jsonl(workdir / "metrics.jsonl", run.progress.history)
  fileio.write_json(workdir / "config.json", config_lib.to_dict(run.config))
  fileio.write_json(workdir / "data.json", {"fingerprint": fingerprint, "path": str(path)})
  fileio.write_text(workdir / "model_summary.txt", summary + "\n")
  if mask is not None:
    with fileio.atomic_path(workdir / "mask.npy") as tmp, open(tmp, "wb") as f:
      np.save(f, mask)


def _resumed(config, workdir: Path, state: steps.TrainState
             ) -> tuple[TrainingRun, steps.TrainState]:
  progress = checkpoint.Progress.start(config.train.learning_rate)
  ckpts = checkpoint.Checkpoints(workdir) if config.checkpoint.enabled else None
  restored = (ckpts.restore_latest(state, config.model.name) if ckpts is not None
              else None)
  if restored is not None:
    state, progress = restored
    if recipes.counts_steps(config.train):
      logging.info("Resuming %s after step %d", workdir, progress.step)
    else:
      logging.info("Resuming %s after epoch %d", workdir, progress.epoch)
  return TrainingRun(config, workdir, ckpts, progress), state


def _stack(trees):
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def _final(state: steps.TrainState, i: int, seed_axis: bool) -> steps.TrainState:
  return jax.tree.map(lambda leaf: leaf[i], state) if seed_axis else state


def fit(trainer: Trainer, state: steps.TrainState, train: data.Split, val: data.Split,
        keys: jax.Array, runs: list[TrainingRun]) -> steps.TrainState:
  """The training loop: train a validation period (an epoch; in a step-counted run the steps up
  to the next multiple of `recipes.eval_every` or the run's last step), validate, feed each
  run's callbacks, log, checkpoint.

  `runs` holds one run, or one per seed of `trainer`'s seed axis; the active ones must have
  finished the same number of epochs (steps, when counted in steps). Returns the final state.
  Raises TrainingDiverged when a loss stops being finite, and Interrupted after Ctrl-C or
  SIGTERM once the period is saved.
  """
  tc = runs[0].config.train
  by_steps = recipes.counts_steps(tc)
  n = train.labels.shape[0]
  per_epoch = recipes.steps_per_epoch(tc, n)
  started = {run.progress.step if by_steps else run.progress.epoch for run in runs if run.active}
  if len(started) > 1:
    raise ValueError(f"runs at different {'steps' if by_steps else 'epochs'} {sorted(started)} "
                     "cannot share a program")
  # The steps (epochs, when counted in epochs) finished.
  position = started.pop() if started else 0
  seeded = trainer.num_seeds is not None
  if by_steps:
    total = max(run.config.train.total_steps for run in runs)
    every = recipes.eval_every(tc, per_epoch)
    logging.info("Training %d run(s) from step %d of %d: %d images, %d full batches an epoch, "
                 "validating every %d steps", len(runs), position, total, n, per_epoch, every)
  else:
    epochs = max(run.config.train.epochs for run in runs)
    logging.info("Training %d run(s) from epoch %d: %d images, %d steps per epoch", len(runs),
                 position + 1, n, per_epoch)
  while any(run.active for run in runs) and not interrupts.requested():
    start = time.perf_counter()
    scheduled = recipes.scheduled(tc)
    if not scheduled:
      # The plateau controller's rate, set between validations; a schedule sets its own every
      # step.
      rates = [run.progress.plateau.lr for run in runs]
      state = steps.with_learning_rate(state, rates if seeded else rates[0])
    active = [run.active for run in runs]
    if by_steps:
      stop = min(total, (position // every + 1) * every)
      with cli.progress_bar(stop - position, f"steps {position + 1}-{stop}/{total}") as bar:
        state, train_metrics = trainer.train_steps(state, train, keys, position, stop,
                                                   bar.update, active=active)
      step, epoch_value, position = stop, round(stop / per_epoch, 4), stop
    else:
      with cli.progress_bar(per_epoch, f"epoch {position + 1}/{epochs}") as bar:
        state, train_metrics = trainer.train_epoch(state, train, keys, position, bar.update,
                                                   active=active)
      step, epoch_value, position = (position + 1) * per_epoch, position + 1, position + 1
    val_metrics = trainer.evaluate(state, val)
    seconds = time.perf_counter() - start
    last_rates = np.atleast_1d(np.asarray(jax.device_get(recipes.learning_rate(state.opt_state)),
                                          np.float64))
    for i, run in enumerate(runs):
      if run.active:
        rate = float(last_rates[i]) if scheduled else run.progress.plateau.lr
        _record_validation(
            run, _final(state, i, seeded),
            {**train_metrics[i], **{f"val_{k}": v for k, v in val_metrics[i].items()}},
            seconds, label=f"seed {run.config.seed}: " if seeded else "", lr=rate,
            epoch=epoch_value, step=step)
  for run in runs:
    if run.ckpts is not None:
      run.ckpts.close()
  if interrupts.requested():
    raise _interrupted(interrupts.requested(), runs)
  return state


def _record_validation(run: TrainingRun, state: steps.TrainState, metrics: dict, seconds: float,
                       label: str, lr: float, epoch: int | float, step: int) -> None:
  """Feeds one validation to the run's callbacks, metrics.jsonl and checkpoints. `epoch`: the
  row's epoch (the epoch's number, or in a step-counted run the epochs walked, step / steps an
  epoch); `step`: the global steps taken."""
  tc = run.config.train
  by_steps = recipes.counts_steps(tc)
  # Validations before this one: the callbacks count them (epochs, when counted in epochs).
  index = run.progress.epoch
  if not math.isfinite(metrics["val_loss"]):
    where = f"step {step}" if by_steps else f"epoch {index + 1}"
    raise TrainingDiverged(f"{label}the validation loss became {metrics['val_loss']} after "
                           f"{where}: the weights are no longer finite. {DIVERGED_ADVICE}")
  row = {"epoch": epoch, "step": step, **metrics, "lr": lr, "seconds": seconds}
  es = run.progress.early_stopping
  if tc.early_stopping.enabled:
    es = callbacks.early_stopping_update(
        es, row["val_accuracy"], index,
        patience=tc.early_stopping.patience, min_delta=tc.early_stopping.min_delta)
  else:
    # Without early stopping the run keeps its last weights, as Keras's fit does: each
    # validation's are the ones to evaluate, whatever its accuracy.
    es = callbacks.EarlyStopping(best=row["val_accuracy"], best_epoch=index)
  plateau = run.progress.plateau
  if not recipes.scheduled(tc):
    plateau = callbacks.plateau_update(plateau, row["val_loss"], **tc.plateau)
  history = run.progress.history + [row]
  run.progress = checkpoint.Progress(index + 1, es, plateau, history, step)
  where = (f"step {step}/{tc.total_steps} (epoch {epoch:.2f})" if by_steps
           else f"epoch {index + 1}/{tc.epochs}")
  logging.info(
      "%s%s  loss %.4f  accuracy %.4f  val_loss %.4f  val_accuracy %.4f  lr %.2e  %.1fs",
      label, where, row["loss"], row["accuracy"], row["val_loss"], row["val_accuracy"],
      row["lr"], row["seconds"])
  if parallel.is_primary():
    fileio.append_jsonl(run.workdir / "metrics.jsonl", row)
  # Without early stopping the run keeps its last weights, so the final state and the latest
  # checkpoint are the best: no copy, and one save a validation instead of two (each a host copy
  # and a synchronous write of the whole state; on one GPU, a WRN epoch's validation, saves and
  # logging took as long as its training, benchmarks/NOTES.md).
  improved = tc.early_stopping.enabled and es.best_epoch == index
  if improved:
    # A copy: the next step donates the state's buffers.
    run.best = jax.tree.map(jnp.copy, state)
  if run.ckpts is not None:
    run.ckpts.save(state, run.progress, run.config.model.name, best=improved)
  if es.stop:
    if by_steps:
      logging.info("%sEarly stopping after step %d: val_accuracy has not improved since step %d",
                   label, step, history[es.best_epoch]["step"])
    else:
      logging.info("%sEarly stopping after epoch %d: val_accuracy has not improved since epoch "
                   "%d", label, index + 1, es.best_epoch + 1)


def _interrupted(signum: int, runs: list[TrainingRun]) -> Interrupted:
  saved = all(run.ckpts is not None for run in runs)
  epoch = min(run.progress.epoch for run in runs)
  tc = runs[0].config.train
  if not saved:
    outcome = "Checkpoints are off (config.checkpoint.enabled), so nothing was saved."
  elif epoch == 0:
    outcome = ("No validation period had finished, so there was nothing to save."
               if recipes.counts_steps(tc) else "No epoch had finished, so there was nothing to save.")
  elif recipes.counts_steps(tc):
    step = min(run.progress.step for run in runs)
    outcome = (f"Its checkpoint after step {step} of {tc.total_steps} is saved: run the same "
               "command to resume.")
  else:
    outcome = (f"Its checkpoint after epoch {epoch} of {tc.epochs} is saved: run the same "
               "command to resume.")
  return Interrupted(f"{signal.Signals(signum).name} stopped the run. {outcome}", signum)


def _best_weights(run: TrainingRun, final: steps.TrainState) -> dict:
  """The weights of the best validation epoch, as Keras's restore_best_weights leaves them;
  without early stopping, the last epoch's."""
  if not run.config.train.early_stopping.enabled:
    return checkpoint.weights_of(final)
  if run.best is not None:
    return checkpoint.weights_of(run.best)
  if run.config.checkpoint.enabled:
    ckpts = checkpoint.Checkpoints(run.workdir)
    try:
      weights = ckpts.restore_weights(checkpoint.weights_of(final))
    finally:
      ckpts.close()
    if weights is not None:
      return weights
  return checkpoint.weights_of(final)


def _evaluate(run: TrainingRun, final: steps.TrainState, graphdef, test: data.Split,
              mesh: jax.sharding.Mesh, task: base.Task) -> dict:
  """Scores the run's best weights on the test split as the task does (`task.test_report`);
  writes test_metrics.json, the training curves and the task's figures."""
  weights = checkpoint.evaluated(_best_weights(run, final))
  chunk = parallel.rounded_to_devices(
      inference.inference_chunk(run.config.train.eval_batch_size, run.config.model.name), mesh)
  predict = functools.partial(inference.predict_logits, graphdef, weights["params"],
                              weights["batch_stats"], batch_size=chunk, mesh=mesh,
                              tta=run.config.train.tta)
  report, logits = task.test_report(predict, test, task.extra_tests(run.config))
  history, best = run.progress.history, run.progress.early_stopping.best_epoch
  if recipes.counts_steps(run.config.train) and history:
    # Epochs walked (fractional) at the best validation and at the end, and their steps.
    report["best_epoch"] = history[best]["epoch"]
    report["epochs_run"] = history[-1]["epoch"]
    report["best_step"] = history[best]["step"]
    report["steps_run"] = run.progress.step
  else:
    report["best_epoch"] = best + 1
    report["epochs_run"] = run.progress.epoch
  logging.info("Test accuracy %.4f (best epoch %d)\n%s", report["accuracy"],
               report["best_epoch"], task.report_text(report))
  if parallel.is_primary():
    fileio.write_json(run.workdir / "test_metrics.json", report)
    plots.training_curves(run.progress.history, run.workdir / "figures" / "curves.png")
    task.write_figures(run.workdir / "figures", report, logits, test)
  return report


def clear_workdir(workdir: str | os.PathLike) -> None:
  """Removes a previous run's files from `workdir` (`RUN_FILES`), for `--restart`."""
  workdir = Path(workdir)
  for name in RUN_FILES:
    path = workdir / name
    if path.is_dir():
      shutil.rmtree(path)
    else:
      path.unlink(missing_ok=True)
