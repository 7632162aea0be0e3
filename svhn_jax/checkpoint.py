"""Orbax checkpoints of a run: the latest (to resume) and the best by val_accuracy (to evaluate).

Each lives under its own manager in `workdir/checkpoints/{latest,best}`, keyed by the number of
finished epochs. Orbax writes into a temporary directory and renames it on completion, so a run
killed mid-write leaves an incomplete directory that is never listed as a step and is cleaned up
on the next start. An epoch's best checkpoint is written before its latest one, so a complete
latest checkpoint always has the best one it implies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from svhn_jax.errors import CheckpointError


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


class Checkpoints:
  """The latest and best checkpoints of one workdir: a pytree of arrays plus JSON metadata."""

  def __init__(self, workdir: str | Path):
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

  def save(self, epoch: int, tree: Any, meta: dict, *, best: bool) -> None:
    """Saves `tree` and `meta` after `epoch` finished epochs, as the best if `best`, and latest."""
    managers = (self._best, self._latest) if best else (self._latest,)
    for manager in managers:
      manager.save(
          epoch,
          args=ocp.args.Composite(
              state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta)
          ),
          force=True,
      )
      manager.wait_until_finished()

  def latest_epoch(self) -> int | None:
    return self._latest.latest_step()

  def latest_meta(self) -> dict | None:
    """The latest checkpoint's metadata, read without its arrays; None on a fresh workdir."""
    step = self._latest.latest_step()
    if step is None:
      return None
    try:
      restored = self._latest.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    except (OSError, ValueError, KeyError) as e:
      raise CheckpointError(
          f"{self.directory / 'latest' / str(step)} cannot be read ({type(e).__name__}: "
          f"{_first_line(e)}). Use a new --workdir, or delete the old checkpoints to start over."
      ) from e
    return dict(restored.meta)

  def restore_latest(self, like: Any) -> tuple[Any, dict] | None:
    """The latest (tree, meta), shaped like `like`; None on a fresh workdir."""
    return _restore(self._latest, like, self.directory / "latest")

  def restore_best(self, like: Any) -> tuple[Any, dict] | None:
    return _restore(self._best, like, self.directory / "best")

  def close(self) -> None:
    self._latest.close()
    self._best.close()


def _restore(manager: ocp.CheckpointManager, like: Any, where: Path) -> tuple[Any, dict] | None:
  step = manager.latest_step()
  if step is None:
    return None
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
  try:
    restored = manager.restore(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
        ),
    )
  except (ValueError, KeyError, TypeError) as e:
    raise CheckpointError(
        f"{where}/{step}: the checkpoint does not match this run's model and optimizer "
        f"({type(e).__name__}: {_first_line(e)}). "
        "Use a new --workdir, or delete the old checkpoints to start over."
    ) from e
  return restored.state, dict(restored.meta)


def _first_line(e: BaseException) -> str:
  return str(e).splitlines()[0] if str(e) else repr(e)


def saved_model_name(workdir: str | Path) -> str | None:
  """The model that wrote `workdir`'s latest checkpoint; None where it has none (nothing created)."""
  if not (Path(workdir) / "checkpoints" / "latest").is_dir():
    return None
  ckpts = Checkpoints(workdir)
  try:
    meta = ckpts.latest_meta()
  finally:
    ckpts.close()
  return None if meta is None else meta.get("model")
