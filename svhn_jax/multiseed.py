"""Several seeds of one run config, trained together: `jax.vmap` over a seed axis, or a loop.

Vmapped, every seed has its own parameters, optimizer and BatchNorm state, dropout keys, data
order, early stopping and plateau schedule, while the dataset on the device is shared; one
compiled step advances all seeds. A seed that stops early is carried along (its later epochs are
not recorded) and its latest and best states are kept as they were when it stopped. Each seed
then gets a workdir exactly like `train.train_and_evaluate`'s: the vmapped states are written as
its checkpoints and `train_and_evaluate` itself, finding the run finished, evaluates the best
weights and writes the metrics and figures. Seeds give the same metrics vmapped as looped, to
float tolerance (vmapped layers reorder some sums).

The loop is `train_and_evaluate` per seed. It is used where the seeds do not fit in memory
together, where a seed has a half-finished workdir (the loop resumes it exactly), and by 'auto'
for convolutional models on the CPU: XLA:CPU turns a vmapped convolution into a grouped one
that it runs as a dense convolution over all groups, about 3x slower than the loop for 3 seeds
(measured, CNN2, batch 128); on GPUs grouped convolutions are native.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from svhn_jax import callbacks, checkpoint, data, models, train, xla_flags
from svhn_jax.errors import ConfigError

MODES = ("auto", "vmap", "loop")
TIMING_FILE = "multiseed.json"
# Share of free memory the vmapped step may plan to use: XLA's estimate leaves out the dataset
# and the copies of the best and latest states.
MEMORY_SHARE = 0.7


class NoRoom(Exception):
  """The seeds' vmapped step needs more memory than is free."""


def seed_config(config: ml_collections.ConfigDict, seed: int) -> ml_collections.ConfigDict:
  seeded = ml_collections.ConfigDict(config.to_dict())
  seeded.seed = int(seed)
  return seeded


def seed_workdir(group_dir: str | os.PathLike, seed: int) -> Path:
  return Path(group_dir) / f"seed_{seed}"


def group_dir(runs_dir: str | os.PathLike, config: ml_collections.ConfigDict) -> Path:
  """Where the seeds of `config` live: named by model and preprocessing, so that experiments
  sharing a runs folder share runs (a settings mismatch is caught by `check_reusable`)."""
  suffix = "" if config.data.preprocess == "raw" else f"_{config.data.preprocess}"
  return Path(runs_dir) / f"{config.model.name}{suffix}"


def read_timing(group: str | os.PathLike) -> dict | None:
  """What `train_seeds` recorded about the last training in `group`: mode, seeds, seconds."""
  path = Path(group) / TIMING_FILE
  return json.loads(path.read_text()) if path.exists() else None


def train_seeds(config: ml_collections.ConfigDict, seeds: Sequence[int],
                group_dir: str | os.PathLike, *, mode: str = "auto") -> list[dict]:
  """Trains `config` once per seed into `group_dir/seed_<s>`, reusing finished workdirs.

  Returns the seeds' test metrics in order. When any seed was trained, `group_dir/multiseed.json`
  records how (vmap or loop), which seeds and the seconds it took.
  """
  if mode not in MODES:
    raise ConfigError(f"multi-seed mode {mode!r}: expected one of {', '.join(MODES)}")
  seeds = [int(s) for s in seeds]
  if not seeds or len(set(seeds)) != len(seeds):
    raise ConfigError(f"seeds {seeds}: expected distinct seeds, at least one")
  workdirs = {s: seed_workdir(group_dir, s) for s in seeds}
  for s in seeds:
    check_reusable(workdirs[s], seed_config(config, s))
  pending = [s for s in seeds if not (workdirs[s] / "test_metrics.json").exists()]
  started = [s for s in pending if _has_checkpoint(workdirs[s])]
  fresh = [s for s in pending if s not in started]
  if pending:
    start = time.perf_counter()
    used = _train(config, fresh, started, workdirs, mode)
    _write_timing(Path(group_dir), used, pending, time.perf_counter() - start)
  return [json.loads((workdirs[s] / "test_metrics.json").read_text()) for s in seeds]


def _train(config, fresh: list[int], started: list[int], workdirs: dict[int, Path],
           mode: str) -> str:
  """Trains the pending seeds; returns the mode that trained the fresh ones."""
  used = chosen_mode(mode, config, len(fresh)) if fresh else "loop"
  if used == "vmap":
    try:
      train_vmapped(config, fresh, [workdirs[s] for s in fresh])
    except (NoRoom, jax.errors.JaxRuntimeError) as e:
      if not isinstance(e, NoRoom) and "RESOURCE_EXHAUSTED" not in str(e):
        raise
      logging.warning("Training seeds %s one at a time: %s", fresh, e)
      used = "loop"
  loop = started + (fresh if used == "loop" else [])
  for s in sorted(loop):
    train.train_and_evaluate(seed_config(config, s), workdirs[s])
  return used


def chosen_mode(mode: str, config: ml_collections.ConfigDict, num_seeds: int) -> str:
  """'vmap' or 'loop' for `num_seeds` fresh seeds of `config`."""
  if mode == "loop":
    return "loop"
  if not config.checkpoint.enabled:
    # The hand-over to train_and_evaluate goes through the checkpoints.
    if mode == "vmap":
      raise ConfigError("vmapped seeds need config.checkpoint.enabled=True")
    return "loop"
  if mode == "vmap":
    return "vmap"
  if num_seeds < 2:
    return "loop"
  if jax.default_backend() == "cpu" and has_convolutions(config.model.name):
    return "loop"
  return "vmap"


def has_convolutions(model_name: str) -> bool:
  return models.has_convolution(models.create_model(model_name, seed=0))


def check_reusable(workdir: Path, config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError if `workdir` holds a run made with settings other than `config`."""
  saved = workdir / "config.json"
  if not saved.exists():
    return
  want = json.loads(config.to_json_best_effort())
  have = json.loads(saved.read_text())
  if have != want:
    fields = sorted(k for k in set(_flat(want)) | set(_flat(have))
                    if _flat(want).get(k) != _flat(have).get(k))
    raise ConfigError(f"{workdir} holds a run made with other settings ({', '.join(fields)}). "
                      "Use another --results_dir, or delete that workdir to train it again.")


def _flat(tree: dict, prefix: str = "") -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flat(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def _has_checkpoint(workdir: Path) -> bool:
  return (workdir / "checkpoints" / "latest").is_dir() and any(
      p.name.isdigit() for p in (workdir / "checkpoints" / "latest").iterdir())


def _write_timing(group_dir: Path, mode: str, seeds: list[int], seconds: float) -> None:
  group_dir.mkdir(parents=True, exist_ok=True)
  (group_dir / TIMING_FILE).write_text(
      json.dumps({"mode": mode, "seeds": seeds, "seconds": seconds}, indent=2) + "\n")


def stack(trees: Sequence[Any]) -> Any:
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def unstack(tree: Any, index: int) -> Any:
  return jax.tree.map(lambda leaf: leaf[index], tree)


def where_seeds(mask: Sequence[bool], new: Any, old: Any) -> Any:
  """Per seed, the `new` state where `mask` holds and the `old` one elsewhere."""
  mask = jnp.asarray(np.asarray(mask, bool))
  return jax.tree.map(
      lambda n, o: jnp.where(mask.reshape((-1,) + (1,) * (n.ndim - 1)), n, o), new, old)


def with_learning_rates(state: train.TrainState, rates: Sequence[float]) -> train.TrainState:
  hyperparams = dict(state.opt_state.hyperparams)
  hyperparams["learning_rate"] = jnp.asarray(
      np.asarray(rates, np.float64), hyperparams["learning_rate"].dtype)
  return state._replace(opt_state=state.opt_state._replace(hyperparams=hyperparams))


class SeedTrainer:
  """`train.Trainer` over a leading seed axis of the state, keys and batch orders."""

  def __init__(self, graphdef, tx, num_seeds: int, *, batch_size: int, eval_batch_size: int):
    self.graphdef = graphdef
    self.num_seeds = num_seeds
    self.batch_size = batch_size
    # Seeds share each chunk's memory, so a chunk holds as many activations as one run's.
    self.eval_batch_size = max(1, eval_batch_size // num_seeds)
    step = functools.partial(train.train_step, graphdef, tx)
    # The same compiler options as train.Trainer's step: a seed trains as it would alone.
    self._step = jax.jit(jax.vmap(step, in_axes=(0, 0, None, None, 0, None, 0)),
                         donate_argnums=(0, 1), compiler_options=xla_flags.model_options())
    self._full_step = None

  def full_step_bytes(self, state: train.TrainState, split: train.Inputs, keys) -> int:
    """Memory XLA plans for one vmapped step on full batches: arguments, outputs, temporaries.

    Compiles that step ahead of time; `train_epoch` then runs the compiled program, so asking
    costs no second compile.
    """
    full, _ = self._orders(keys, 0, split.labels.shape[0])
    self._full_step = self._step.lower(state, train.zero_totals((self.num_seeds,)), split.images,
                                       split.labels, full, 0, keys).compile()
    stats = self._full_step.memory_analysis()
    if stats is None:
      return 0
    return (stats.argument_size_in_bytes + stats.output_size_in_bytes
            + stats.temp_size_in_bytes - stats.alias_size_in_bytes)

  def _orders(self, keys, epoch: int, n: int):
    return jax.vmap(lambda k: train.epoch_batches(k, epoch, n, self.batch_size))(keys)

  def train_epoch(self, state: train.TrainState, split: train.Inputs, keys, epoch: int
                  ) -> tuple[train.TrainState, dict]:
    """One epoch for every seed; the metrics are (seeds,) arrays, as `Trainer.train_epoch`'s."""
    full, tail = self._orders(keys, epoch, split.labels.shape[0])
    step_keys = jax.vmap(lambda k: jax.random.fold_in(jax.random.fold_in(k, epoch), 1))(keys)
    totals = train.zero_totals((self.num_seeds,))
    full_step = self._full_step or self._step
    for i in range(full.shape[1]):
      state, totals = full_step(state, totals, split.images, split.labels, full, i, step_keys)
    if tail.shape[2]:
      tail_keys = jax.vmap(lambda k: jax.random.fold_in(k, full.shape[1]))(step_keys)
      state, totals = self._step(state, totals, split.images, split.labels, tail, 0, tail_keys)
    totals = jax.device_get(totals)
    train.check_finite_steps(int(totals["finite_steps"].min()),
                             full.shape[1] + (tail.shape[2] > 0), epoch)
    return state, {"loss": totals["loss"] / totals["count"],
                   "accuracy": totals["correct"] / totals["count"]}

  def evaluate(self, state: train.TrainState, split: train.Inputs) -> dict:
    logits = train.predict_logits(self.graphdef, state.params, state.batch_stats, split.images,
                                  batch_size=self.eval_batch_size, seed_axis=True)
    metrics = jax.device_get(jax.vmap(train.logits_metrics, in_axes=(0, None))(
        logits, split.labels))
    return {k: np.asarray(v, np.float64) for k, v in metrics.items()}


def train_vmapped(config: ml_collections.ConfigDict, seeds: Sequence[int],
                  workdirs: Sequence[Path]) -> None:
  """Trains all `seeds` of `config` in one vmapped program and writes their checkpoints.

  Raises NoRoom, before training, if the vmapped step would not fit in free memory.
  """
  dataset = data.load(data.dataset_path(config.data))
  (train_split, val_split, _), _ = train.model_inputs(dataset, config.data.preprocess)
  del dataset
  train_split, val_split = (train.Inputs(*jax.device_put(tuple(s)))
                            for s in (train_split, val_split))
  tx = train.make_optimizer(config.train.learning_rate, config.train.adam_eps)
  seed_models = [models.create_model(config.model.name, seed=s, impl=config.model.impl)
                 for s in seeds]
  inits = [train.init_state(model, tx) for model in seed_models]
  graphdef, state = inits[0][0], stack([s for _, s in inits])
  keys = jnp.stack([jax.random.fold_in(jax.random.key(s), 1) for s in seeds])
  trainer = SeedTrainer(
      graphdef, tx, len(seeds), batch_size=config.train.batch_size,
      eval_batch_size=train.inference_chunk(config.train.eval_batch_size, seed_models[0]))
  _check_room(trainer.full_step_bytes(state, train_split, keys))
  latest, best, progress, best_progress = fit_seeds(
      trainer, state, train_split, val_split, keys, config)
  for i, (seed, workdir) in enumerate(zip(seeds, workdirs)):
    _save_seed(workdir, seed_config(config, seed), unstack(latest, i), progress[i],
               unstack(best, i), best_progress[i])


def _check_room(needed: int) -> None:
  free = free_memory()
  if free is not None and needed > MEMORY_SHARE * free:
    raise NoRoom(f"the vmapped step needs {needed / 2**30:.2f} GiB, and only "
                 f"{free / 2**30:.2f} GiB of device memory is free")


def free_memory() -> int | None:
  """Bytes free on the default device: the accelerator's own memory, or the host's for the CPU."""
  stats = jax.devices()[0].memory_stats()
  if stats and "bytes_limit" in stats:
    return stats["bytes_limit"] - stats.get("bytes_in_use", 0)
  try:
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  except (ValueError, OSError, AttributeError):
    return None


def fit_seeds(trainer: SeedTrainer, state: train.TrainState, train_split: train.Inputs,
              val_split: train.Inputs, keys, config: ml_collections.ConfigDict):
  """`train.fit`'s epoch loop for all seeds at once, each with its own callbacks.

  Returns the stacked latest and best states (each seed's as of its last and best recorded
  epoch) and, per seed, the progress after its last epoch and as of its best one.
  """
  tc = config.train
  num_seeds = trainer.num_seeds
  progress = [train.Progress(0, callbacks.EarlyStopping(),
                             callbacks.Plateau(lr=tc.learning_rate), [])] * num_seeds
  best_progress = list(progress)
  latest = best = jax.tree.map(jnp.copy, state)
  epoch = 0
  while epoch < tc.epochs and not all(p.early_stopping.stop for p in progress):
    start = time.perf_counter()
    state = with_learning_rates(state, [p.plateau.lr for p in progress])
    state, train_metrics = trainer.train_epoch(state, train_split, keys, epoch)
    val_metrics = trainer.evaluate(state, val_split)
    seconds = time.perf_counter() - start
    active = [not p.early_stopping.stop for p in progress]
    improved = [False] * num_seeds
    for i in (i for i in range(num_seeds) if active[i]):
      row = {"epoch": epoch + 1,
             **{k: float(v[i]) for k, v in train_metrics.items()},
             **{f"val_{k}": float(v[i]) for k, v in val_metrics.items()},
             "lr": progress[i].plateau.lr, "seconds": seconds}
      progress[i] = _next_progress(progress[i], row, epoch, tc)
      improved[i] = progress[i].early_stopping.best_epoch == epoch
      if improved[i]:
        best_progress[i] = progress[i]
    latest = where_seeds(active, state, latest)
    best = where_seeds(improved, state, best)
    logging.info("epoch %d/%d, %d seeds training: val_accuracy %s  %.1fs", epoch + 1, tc.epochs,
                 sum(active), np.round(val_metrics["accuracy"], 4).tolist(), seconds)
    epoch += 1
  return latest, best, progress, best_progress


def _next_progress(progress: train.Progress, row: dict, epoch: int,
                   tc: ml_collections.ConfigDict) -> train.Progress:
  es = callbacks.early_stopping_update(
      progress.early_stopping, row["val_accuracy"], epoch,
      patience=tc.early_stopping.patience, min_delta=tc.early_stopping.min_delta)
  plateau = callbacks.plateau_update(progress.plateau, row["val_loss"], **tc.plateau)
  return train.Progress(epoch + 1, es, plateau, progress.history + [row])


def _save_seed(workdir: Path, config: ml_collections.ConfigDict, latest, progress, best,
               best_progress) -> None:
  """Writes one seed's best and latest checkpoints, then lets `train_and_evaluate`, which finds
  the run finished, evaluate it and write the rest of its workdir."""
  ckpts = checkpoint.Checkpoints(workdir)
  ckpts.save(best_progress.epoch, best, best_progress.to_json(config.model.name), best=True)
  if progress.epoch > best_progress.epoch:  # else the best checkpoint is the latest one too
    ckpts.save(progress.epoch, latest, progress.to_json(config.model.name), best=False)
  ckpts.close()
  train.train_and_evaluate(config, workdir)
