"""Orbax checkpoints of a run: the latest (to resume) and the best by val_accuracy (to evaluate).

Each lives under its own manager in `workdir/checkpoints/{latest,best}`, keyed by the number of
finished epochs. Orbax writes into a temporary directory and renames it on completion, so a run
killed mid-write leaves an incomplete directory that is never listed as a step and is cleaned up
on the next start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from svhn_jax.errors import CheckpointError


def _manager(directory: Path) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      directory.absolute(),
      options=ocp.CheckpointManagerOptions(
          max_to_keep=1,
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
    self._best = _manager(self.directory / "best")

  def save(self, epoch: int, tree: Any, meta: dict, *, best: bool) -> None:
    """Saves `tree` and `meta` after `epoch` finished epochs, as the latest and, if `best`, best."""
    managers = (self._latest, self._best) if best else (self._latest,)
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
        f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else e!r}). "
        "Use a new --workdir, or delete the old checkpoints to start over."
    ) from e
  return restored.state, dict(restored.meta)
