"""End-to-end runs: every model trains and writes its workdir, a run resumes bit for bit, a seed
decides a run, and a model learns real digits."""

import jax
import numpy as np
import pytest

from configs import cnn1
from support import metrics_rows, read_json, snapshot, tiny_config, tiny_dataset
from svhn_jax import checkpoint, data, models, recipes, steps, train, transforms
from svhn_jax import config as config_lib
from svhn_jax.datasets import study_h5
from svhn_jax.errors import CheckpointError, ConfigError
from svhn_jax.models import study

PNG = b"\x89PNG\r\n\x1a\n"


def saved_epochs(workdir, which: str) -> list[int]:
  """The epochs of the checkpoints in workdir/checkpoints/<which>."""
  return sorted(int(p.name) for p in (workdir / "checkpoints" / which).iterdir()
                if p.name.isdigit())


@pytest.mark.parametrize("name", ["ann1", "ann2", "cnn1", "cnn2"])
def test_a_run_writes_its_workdir(name, finished_run, tiny_h5):
  workdir = finished_run(name)
  rows = metrics_rows(workdir)
  assert [row["epoch"] for row in rows] == [1, 2]
  # The global step count at each validation: 192 crops are 6 batches of 32 an epoch.
  assert [row["step"] for row in rows] == [6, 12]
  assert set(rows[0]) == {"epoch", "step", "loss", "accuracy", "val_loss", "val_accuracy", "lr"}
  config = tiny_config(name, tiny_h5)
  assert rows[0]["lr"] == config.train.learning_rate
  assert read_json(workdir / "config.json") == config_lib.to_dict(config)
  dataset = study_h5.load(tiny_h5)
  assert read_json(workdir / "data.json") == {"fingerprint": data.fingerprint(dataset),
                                              "path": str(tiny_h5)}
  assert (workdir / "model_summary.txt").read_text() == study.summary(
      models.create_model(name, seed=0), name) + "\n"

  report = read_json(workdir / "test_metrics.json")
  confusion = np.asarray(report["confusion_matrix"])
  np.testing.assert_array_equal(confusion.sum(axis=1), np.bincount(dataset.test.labels,
                                                                   minlength=10))
  assert report["num_examples"] == 64
  assert report["accuracy"] == np.trace(confusion) / 64
  # Keras's restore_best_weights: the first epoch of the highest validation accuracy.
  val = [row["val_accuracy"] for row in rows]
  assert report["best_epoch"] == val.index(max(val)) + 1 and report["epochs_run"] == 2
  assert saved_epochs(workdir, "latest") == [2]
  assert saved_epochs(workdir, "best")[-1] == report["best_epoch"]
  for figure in ("curves.png", "confusion_matrix.png"):
    assert (workdir / "figures" / figure).read_bytes()[:8] == PNG
  assert not (workdir / "mask.npy").exists()


def test_a_masked_run_keeps_the_mask_of_its_training_split(finished_run):
  workdir = finished_run("ann1", "mask")
  want = transforms.data_driven_mask(tiny_dataset().train.images)
  np.testing.assert_array_equal(np.load(workdir / "mask.npy"), want)
  assert read_json(workdir / "config.json")["data"]["preprocess"] == "mask"


def fresh_state(name):
  return steps.init_state(models.create_model(name, seed=0), recipes.adam(1e-3, 1e-7))[1]


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tiny_h5, tmp_path):
  """CNN2 (fused layers, BatchNorm, dropout): 3 epochs at once, and 1 epoch then resumed to 3,
  are the same run bit for bit."""
  whole, split = tmp_path / "whole", tmp_path / "split"
  train.train_and_evaluate(tiny_config("cnn2", tiny_h5, epochs=3), whole)
  train.train_and_evaluate(tiny_config("cnn2", tiny_h5, epochs=1), split)
  assert [row["epoch"] for row in metrics_rows(split)] == [1]
  train.train_and_evaluate(tiny_config("cnn2", tiny_h5, epochs=3), split)
  assert metrics_rows(split) == metrics_rows(whole)
  restored = []
  for workdir in (whole, split):
    ckpts = checkpoint.Checkpoints(workdir)
    state, progress = ckpts.restore_latest(fresh_state("cnn2"), "cnn2")
    ckpts.close()
    for row in progress.history:
      row.pop("seconds")
    restored.append((state, progress))
  (a, progress_a), (b, progress_b) = restored
  assert progress_a == progress_b and progress_a.epoch == 3
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert read_json(whole / "test_metrics.json") == read_json(split / "test_metrics.json")


def test_the_seed_decides_the_run(finished_run, tiny_h5, tmp_path):
  again, other = tiny_config("ann2", tiny_h5), tiny_config("ann2", tiny_h5)
  other.seed = 1
  train.train_and_evaluate(again, tmp_path / "again")
  train.train_and_evaluate(other, tmp_path / "other")
  assert metrics_rows(tmp_path / "again") == metrics_rows(finished_run("ann2"))
  assert metrics_rows(tmp_path / "other")[0]["loss"] != metrics_rows(finished_run("ann2"))[0]["loss"]


def test_a_finished_run_is_not_trained_again(copied_run, tiny_h5):
  workdir = copied_run("ann1")
  before = snapshot(workdir)
  report = train.train_and_evaluate(tiny_config("ann1", tiny_h5), workdir)
  assert report == read_json(workdir / "test_metrics.json")
  after = snapshot(workdir)
  # The figures are drawn again; every file of the run itself is as it was.
  for name in before:
    if not name.startswith(("figures/", ".lock")):
      assert after[name] == before[name], name


def test_cnn1_with_the_study_settings_learns_real_digits(digits_h5, tmp_path):
  """scikit-learn's real digits, 1200/300/297: the study's Keras CNN1 reached 98.7% here, and
  seeds 0 to 3 of ours 97.3% to 99.0% (seed 0 the lowest, 289 of 297)."""
  config = cnn1.get_config()
  config.data.path = str(digits_h5)
  config.checkpoint.enabled = False
  report = train.train_and_evaluate(config, tmp_path)
  assert report["accuracy"] >= 0.97


@pytest.mark.parametrize("setting, name, expected", [
    (None, "ann1", True), (None, "ann2", True), (None, "cnn1", False), (None, "cnn2", False),
    (True, "cnn1", True), (False, "ann1", False)])
def test_whole_epochs_are_scanned_on_the_cpu_for_dense_models_unless_set(setting, name, expected):
  assert jax.default_backend() == "cpu"
  assert train.use_scan(setting, name) is expected


def test_restart_clears_exactly_the_runs_files(copied_run):
  workdir = copied_run("ann1", "mask")
  (workdir / "notes.txt").write_text("mine")
  train.clear_workdir(workdir)
  assert sorted(p.name for p in workdir.iterdir()) == [".lock", ".lock.owner", "notes.txt"]


def test_a_bad_config_is_refused_before_anything_is_written(tiny_h5, tmp_path):
  config = tiny_config("ann1", tiny_h5)
  config.train.batch_size = 0
  with pytest.raises(ConfigError, match=r"^config\.train\.batch_size=0: expected"):
    train.train_and_evaluate(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_checkpoints_this_run_cannot_read_are_refused_before_its_files_are_written(tiny_h5,
                                                                                   tmp_path):
  """A workdir holding only another model's checkpoints: the run stops, and its config.json is
  not left beside them to claim the workdir for the refused config."""
  ckpts = checkpoint.Checkpoints(tmp_path)
  ckpts.save(fresh_state("ann2"), checkpoint.Progress.start(1e-3)._replace(epoch=1), "ann2",
             best=False)
  ckpts.close()
  with pytest.raises(CheckpointError, match=r"holds checkpoints of model .ann2., but config"):
    train.train_and_evaluate(tiny_config("ann1", tiny_h5), tmp_path)
  assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", ".lock.owner", "checkpoints"]
