"""Checkpoints: what is saved comes back exactly, the best apart from the latest, and a checkpoint
this version cannot read is refused in one line."""

import shutil

import jax
import numpy as np
import pytest

from svhn_jax import callbacks, checkpoint, models, recipes, steps
from svhn_jax.errors import CheckpointError


def state_of(name: str, shift: float = 0.0) -> steps.TrainState:
  """A fresh state of `name` with `shift` added to every parameter, to tell states apart."""
  state = steps.init_state(models.create_model(name, seed=0), recipes.adam(1e-3, 1e-7))[1]
  return state._replace(params=jax.tree.map(lambda p: p + shift, state.params))


def progress_after(epoch: int) -> checkpoint.Progress:
  history = [{"epoch": e, "loss": 1.0 / e, "val_accuracy": 0.1 * e} for e in range(1, epoch + 1)]
  return checkpoint.Progress(epoch, callbacks.EarlyStopping(0.5, epoch - 1, 0, False),
                             callbacks.Plateau(5e-4, 0.25, 1, 0), history)


def assert_same_tree(a, b):
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_the_latest_state_and_progress_come_back_exactly(tmp_path):
  ckpts = checkpoint.Checkpoints(tmp_path)
  assert ckpts.restore_latest(state_of("ann2"), "ann2") is None and ckpts.latest_epoch() is None
  ckpts.save(state_of("ann2", 1.0), progress_after(1), "ann2", best=True)
  ckpts.save(state_of("ann2", 2.0), progress_after(2), "ann2", best=False)
  ckpts.close()
  ckpts = checkpoint.Checkpoints(tmp_path)
  state, progress = ckpts.restore_latest(state_of("ann2"), "ann2")
  assert ckpts.latest_epoch() == 2 and progress == progress_after(2)
  assert_same_tree(state, state_of("ann2", 2.0))
  # Inference reads the weights alone: the best epoch's, else the latest's.
  like = checkpoint.weights_of(state_of("ann2"))
  assert_same_tree(ckpts.restore_weights(like), checkpoint.weights_of(state_of("ann2", 1.0)))
  assert_same_tree(ckpts.restore_weights(like, best=False),
                   checkpoint.weights_of(state_of("ann2", 2.0)))
  ckpts.close()


def test_nothing_saved_means_no_weights(tmp_path):
  ckpts = checkpoint.Checkpoints(tmp_path)
  assert ckpts.restore_weights(checkpoint.weights_of(state_of("ann1"))) is None
  ckpts.close()


def test_a_best_checkpoint_ahead_of_the_latest_is_dropped(tmp_path):
  """A run killed between an epoch's best and latest saves trains that epoch again, and must be
  able to save it again."""
  latest = tmp_path / "checkpoints" / "latest"
  ckpts = checkpoint.Checkpoints(tmp_path)
  ckpts.save(state_of("ann1", 1), progress_after(1), "ann1", best=True)
  shutil.copytree(latest / "1", tmp_path / "latest_1")
  ckpts.save(state_of("ann1", 2), progress_after(2), "ann1", best=True)
  ckpts.close()
  # As if killed before the latest checkpoint of epoch 2 was written: the latest is epoch 1's.
  shutil.rmtree(latest / "2")
  shutil.move(tmp_path / "latest_1", latest / "1")
  ckpts = checkpoint.Checkpoints(tmp_path)
  assert sorted(p.name for p in (tmp_path / "checkpoints" / "best").iterdir()) == ["1"]
  ckpts.save(state_of("ann1", 2.5), progress_after(2), "ann1", best=True)
  assert_same_tree(ckpts.restore_weights(checkpoint.weights_of(state_of("ann1"))),
                   checkpoint.weights_of(state_of("ann1", 2.5)))
  ckpts.close()


def test_a_checkpoint_of_another_model_is_one_line_naming_it(tmp_path):
  ckpts = checkpoint.Checkpoints(tmp_path)
  ckpts.save(state_of("ann2"), progress_after(1), "ann2", best=False)
  ckpts.close()
  ckpts = checkpoint.Checkpoints(tmp_path)
  with pytest.raises(CheckpointError) as e:
    ckpts.restore_latest(state_of("ann1"), "ann1")
  message = str(e.value)
  assert "\n" not in message
  assert message.startswith(f"{tmp_path / 'checkpoints'} holds checkpoints of model 'ann2', but "
                            "config.model.name is 'ann1'")
  # Arrays that do not fit the model, whatever the meta says: one line too.
  with pytest.raises(CheckpointError) as e:
    ckpts.restore_latest(state_of("ann1"), "ann2")
  ckpts.close()
  message = str(e.value)
  assert "\n" not in message
  assert message.startswith(f"{tmp_path / 'checkpoints' / 'latest'}/1: the checkpoint does not "
                            "match this run's model and optimizer (")
  assert message.endswith("Use a new --workdir, or rerun with --restart to train this one from "
                          "scratch.")


def legacy_workdir(tmp_path):
  """A workdir as svhn_jax up to commit 1393f4a left it: one 'state' item per checkpoint."""
  (tmp_path / "checkpoints" / "latest" / "3" / "state").mkdir(parents=True)
  return tmp_path


def test_a_legacy_checkpoint_is_refused_in_one_line(tmp_path):
  workdir = legacy_workdir(tmp_path)
  assert checkpoint.legacy_step(workdir) == workdir / "checkpoints" / "latest" / "3"
  with pytest.raises(CheckpointError) as e:
    checkpoint.Checkpoints(workdir)
  assert str(e.value) == (
      f"{workdir}/checkpoints/latest/3 was written by an older svhn_jax (one 'state' item); "
      "checkpoints now keep the weights apart from the optimizer and cannot read it. Retrain "
      "in a new --workdir (or with --restart), or read it with svhn_jax at commit 1393f4a.")


def test_this_versions_checkpoints_are_not_legacy(tmp_path):
  ckpts = checkpoint.Checkpoints(tmp_path)
  ckpts.save(state_of("ann1"), progress_after(1), "ann1", best=True)
  ckpts.close()
  assert checkpoint.legacy_step(tmp_path) is None
  assert checkpoint.legacy_step(tmp_path / "elsewhere") is None


def test_progress_round_trips_through_json():
  meta = progress_after(3).to_json("cnn2")
  assert (meta["schema"], meta["model"]) == (checkpoint.SCHEMA, "cnn2")
  assert checkpoint.Progress.from_json(meta) == progress_after(3)
