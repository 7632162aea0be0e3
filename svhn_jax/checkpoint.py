"""What a checkpoint holds, and the orbax managers that write it: the latest (to resume) and the
best by val_accuracy (to evaluate and predict).

A checkpoint is three items, so that inference restores the weights alone:
- `weights`: {'params', 'batch_stats'}, the model's whole state, and 'ema', the moving average
  of the params, in runs whose recipe keeps one (`config.train.ema_decay`);
- `optimizer`: the optimizer's state (Adam's moments, its step count and the current rate);
- `meta`: JSON, a `Progress` (validations finished, the callbacks' states, the metrics history,
  steps taken) plus the model's name and `SCHEMA`, the layout's version.

Each manager lives in `workdir/checkpoints/{latest,best}`, keyed by the number of finished
validations: epochs in an epoch-counted run (one validation an epoch), validation periods in a
step-counted one (`config.train.eval_every_steps`; the step is in `meta`). Orbax writes into a temporary directory and renames it on completion, so a run killed
mid-write leaves an incomplete directory that is never listed as a step and is cleaned up on the
next start. An epoch's best checkpoint is written before its latest one, so a complete latest
checkpoint always has the best one it implies.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import jax
import orbax.checkpoint as ocp

from svhn_jax import callbacks
from svhn_jax.errors import CheckpointError, one_line

# Version 1 (svhn_jax up to commit 1393f4a) saved one `state` item: (params, batch_stats,
# opt_state). Version 2 saves the weights apart from the optimizer.
SCHEMA = 2
LEGACY_ITEM = "state"
_START_OVER = "Use a new --workdir, or rerun with --restart to train this one from scratch."


class Progress(NamedTuple):
  """What a checkpoint carries besides the arrays: enough to continue the run exactly."""

  # Validations finished: epochs in an epoch-counted run, validation periods in a step-counted
  # one; the callbacks count them too.
  epoch: int
  early_stopping: callbacks.EarlyStopping
  plateau: callbacks.Plateau
  history: list
  # Optimizer steps taken (global). Checkpoints written before it existed hold 0: an
  # epoch-counted run derives its step from its epochs.
  step: int = 0

  @classmethod
  def start(cls, learning_rate: float) -> "Progress":
    return cls(0, callbacks.EarlyStopping(), callbacks.Plateau(lr=learning_rate), [])

  def to_json(self, model_name: str) -> dict:
    return {"schema": SCHEMA, "model": model_name, "epoch": self.epoch,
            "early_stopping": self.early_stopping._asdict(), "plateau": self.plateau._asdict(),
            "history": self.history, "step": self.step}

  @classmethod
  def from_json(cls, meta: dict) -> "Progress":
    return cls(meta["epoch"], callbacks.EarlyStopping(**meta["early_stopping"]),
               callbacks.Plateau(**meta["plateau"]), list(meta["history"]), meta.get("step", 0))


def weights_of(state) -> dict:
  """The `weights` item of a `steps.TrainState`: {'params', 'batch_stats'}, and 'ema', the
  moving average of the params, where the recipe keeps one."""
  weights = {"params": state.params, "batch_stats": state.batch_stats}
  if state.ema is not None:
    weights["ema"] = state.ema
  return weights


def evaluated(weights: dict) -> dict:
  """{'params', 'batch_stats'} to evaluate from a `weights` item: the moving average of the
  params where there is one (with the trained BatchNorm statistics), else the params."""
  return {"params": weights.get("ema", weights["params"]), "batch_stats": weights["batch_stats"]}


def _manager(directory: Path, max_to_keep: int = 1) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      directory.absolute(),
      options=ocp.CheckpointManagerOptions(
          max_to_keep=max_to_keep,
          create=True,
          cleanup_tmp_directories=True,
          # The models are small: a synchronous save costs little and keeps "saved" meaning saved.
          enable_async_checkpointing=False,
      ),
  )


def legacy_step(workdir: str | Path) -> Path | None:
  """A checkpoint of the version-1 layout in `workdir`, found without JAX; None if none."""
  for which in ("latest", "best"):
    folder = Path(workdir) / "checkpoints" / which
    if folder.is_dir():
      for step in folder.iterdir():
        if step.name.isdigit() and (step / LEGACY_ITEM).is_dir() and not (step / "weights").exists():
          return step
  return None


def refuse_legacy(workdir: str | Path) -> None:
  """Raises CheckpointError if `workdir` holds version-1 checkpoints, naming what changed."""
  step = legacy_step(workdir)
  if step is not None:
    raise CheckpointError(
        f"{step} was written by an older svhn_jax (one '{LEGACY_ITEM}' item); checkpoints now "
        "keep the weights apart from the optimizer and cannot read it. Retrain in a new "
        "--workdir (or with --restart), or read it with svhn_jax at commit 1393f4a.")


def saved_model_name(workdir: str | Path) -> str | None:
  """The model named in the newest complete latest checkpoint of `workdir`, read without JAX
  from the `meta` item's JSON (orbax's JsonSave writes it to `<step>/meta/metadata`); None if
  there is none or it cannot be read, for the restore to report."""
  folder = Path(workdir) / "checkpoints" / "latest"
  steps = sorted((int(p.name) for p in folder.iterdir() if p.name.isdigit()), reverse=True) \
      if folder.is_dir() else []
  for step in steps:
    try:
      return json.loads((folder / str(step) / "meta" / "metadata").read_text()).get("model")
    except (OSError, ValueError, AttributeError):
      continue
  return None


def refuse_other_model(workdir: str | Path, model_name: str) -> None:
  """Raises CheckpointError if another model than `model_name` wrote `workdir`'s checkpoints."""
  saved = saved_model_name(workdir)
  if saved is not None and saved != model_name:
    raise CheckpointError(
        f"{Path(workdir) / 'checkpoints'} holds checkpoints of model {saved!r}, but "
        f"config.model.name is {model_name!r}: resuming them cannot work. Use another --workdir "
        f"for {model_name!r}, or rerun with --config.model.name={saved} to resume that run.")


class Checkpoints:
  """The latest and best checkpoints of one workdir."""

  def __init__(self, workdir: str | Path):
    refuse_legacy(workdir)
    self.directory = Path(workdir) / "checkpoints"
    self._latest = _manager(self.directory / "latest")
    # Two: if the newest best is dropped below, the one before it is still there.
    self._best = _manager(self.directory / "best", max_to_keep=2)
    self._drop_best_ahead_of_latest()

  def _drop_best_ahead_of_latest(self) -> None:
    # A run killed between an epoch's two saves leaves a best checkpoint of an epoch that the
    # resumed run trains again: it would save it again, and orbax refuses to overwrite a step.
    latest = self._latest.latest_step() or 0
    for step in self._best.all_steps():
      if step > latest:
        self._best.delete(step)

  def save(self, state, progress: Progress, model_name: str, *, best: bool) -> None:
    """Saves a `steps.TrainState` and its progress after `progress.epoch` validations, as the
    best if `best`, and as the latest."""
    args = ocp.args.Composite(
        weights=ocp.args.StandardSave(weights_of(state)),
        optimizer=ocp.args.StandardSave(state.opt_state),
        meta=ocp.args.JsonSave(progress.to_json(model_name)))
    for manager in (self._best, self._latest) if best else (self._latest,):
      try:
        manager.save(progress.epoch, args=args, force=True)
        manager.wait_until_finished()
      except Exception as e:  # orbax and tensorstore report a failed write in their own types
        raise _save_failed(e, manager.directory, progress.epoch) from e

  def latest_epoch(self) -> int | None:
    return self._latest.latest_step()

  def restore_latest(self, like, model_name: str) -> tuple[Any, Progress] | None:
    """The latest (TrainState shaped like `like`, Progress); None on a fresh workdir. Raises
    CheckpointError if another model than `model_name` wrote it."""
    refuse_other_model(self.directory.parent, model_name)
    restored = _restore(self._latest, self.directory / "latest",
                        weights=weights_of(like), optimizer=like.opt_state)
    if restored is None:
      return None
    state = like._replace(params=restored["weights"]["params"],
                          batch_stats=restored["weights"]["batch_stats"],
                          opt_state=restored["optimizer"], ema=restored["weights"].get("ema"))
    return state, Progress.from_json(restored["meta"])

  def restore_weights(self, like: dict, *, best: bool = True) -> dict | None:
    """The best (else the latest) checkpoint's weights, shaped like `like` ({'params',
    'batch_stats'}); the optimizer's state is not read. None where nothing was saved."""
    for manager, name in ((self._best, "best"), (self._latest, "latest"))[0 if best else 1:]:
      restored = _restore(manager, self.directory / name, weights=like)
      if restored is not None:
        return restored["weights"]
    return None

  def close(self) -> None:
    self._latest.close()
    self._best.close()


def _restore(manager: ocp.CheckpointManager, where: Path, **items) -> dict | None:
  step = manager.latest_step()
  if step is None:
    return None
  args = {name: ocp.args.StandardRestore(jax.tree.map(ocp.utils.to_shape_dtype_struct, like))
          for name, like in items.items()}
  try:
    restored = manager.restore(step, args=ocp.args.Composite(**args,
                                                             meta=ocp.args.JsonRestore()))
  except (ValueError, KeyError, TypeError) as e:
    raise CheckpointError(
        f"{where}/{step}: the checkpoint does not match this run's model and optimizer "
        f"({type(e).__name__}: {one_line(e, first=True)}). {_START_OVER}") from e
  return {name: restored[name] for name in (*items, "meta")}


# How tensorstore and the OS word a write that could not be made.
_WRITE_FAILURES = {"No space left": "the disk is full", "RESOURCE_EXHAUSTED": "the disk is full",
                   "Read-only file system": "the filesystem is read-only",
                   "Permission denied": "permission was denied"}


def _save_failed(e: Exception, directory, epoch: int) -> CheckpointError | Exception:
  """A one-line CheckpointError for a save that failed for want of space or permission; other
  errors are returned as they are."""
  text = str(e)
  reason = next((why for sign, why in _WRITE_FAILURES.items() if sign in text), None)
  if reason is None and not isinstance(e, OSError):
    return e
  return CheckpointError(
      f"could not save the checkpoint of epoch {epoch} in {directory}: "
      f"{reason or one_line(e, first=True)}. "
      "Nothing earlier was lost: free space (or fix the permissions) and run the same command "
      "to resume from the last saved epoch.")
