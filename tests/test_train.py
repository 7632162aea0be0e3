"""End-to-end runs: every model trains, writes its workdir, resumes exactly, and learns real data."""

import json

import jax
import numpy as np
import pytest

from configs import ann1, ann2, cnn1, cnn2
from svhn_jax import checkpoint, models, train

CONFIGS = {"ann1": ann1, "ann2": ann2, "cnn1": cnn1, "cnn2": cnn2}


def tiny_config(name, path, **train_overrides):
  config = CONFIGS[name].get_config()
  config.data.path = str(path)
  config.train.epochs = 2
  config.train.batch_size = 32
  config.train.eval_batch_size = 50
  for key, value in train_overrides.items():
    setattr(config.train, key, value)
  return config


def latest_tree(workdir):
  ckpts = checkpoint.Checkpoints(workdir)
  step = ckpts.latest_epoch()
  ckpts.close()
  return step


def metrics_rows(workdir):
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  for row in rows:
    row.pop("seconds")
  return rows


@pytest.mark.parametrize("name", ["ann1", "ann2", "cnn1", "cnn2"])
def test_tiny_run_writes_the_workdir(name, tiny_h5, tmp_path):
  report = train.train_and_evaluate(tiny_config(name, tiny_h5), tmp_path)
  assert 0.0 <= report["accuracy"] <= 1.0
  assert report["num_examples"] == 64
  saved = json.loads((tmp_path / "test_metrics.json").read_text())
  assert saved["accuracy"] == report["accuracy"]
  assert np.asarray(saved["confusion_matrix"]).sum() == 64
  assert json.loads((tmp_path / "config.json").read_text())["model"]["name"] == name
  rows = metrics_rows(tmp_path)
  assert [row["epoch"] for row in rows] == [1, 2]
  assert set(rows[0]) == {"epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"}
  assert "Total params" in (tmp_path / "model_summary.txt").read_text()
  assert (tmp_path / "figures" / "curves.png").stat().st_size > 0
  assert (tmp_path / "figures" / "confusion_matrix.png").stat().st_size > 0
  assert latest_tree(tmp_path) == 2


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tiny_h5, tmp_path):
  whole, split = tmp_path / "whole", tmp_path / "split"
  train.train_and_evaluate(tiny_config("cnn2", tiny_h5, epochs=3), whole)
  train.train_and_evaluate(tiny_config("cnn2", tiny_h5, epochs=1), split)
  train.train_and_evaluate(tiny_config("cnn2", tiny_h5, epochs=3), split)
  assert metrics_rows(split) == metrics_rows(whole)
  like = _fresh_state("cnn2")
  a, meta_a = checkpoint.Checkpoints(whole).restore_latest(like)
  b, meta_b = checkpoint.Checkpoints(split).restore_latest(like)
  for meta in (meta_a, meta_b):
    for row in meta["history"]:
      row.pop("seconds")
  assert meta_a == meta_b
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert (json.loads((whole / "test_metrics.json").read_text())
          == json.loads((split / "test_metrics.json").read_text()))


def test_same_seed_same_metrics_and_other_seed_differs(tiny_h5, tmp_path):
  for run, seed in (("a", 3), ("b", 3), ("c", 4)):
    config = tiny_config("ann2", tiny_h5)
    config.seed = seed
    train.train_and_evaluate(config, tmp_path / run)
  assert metrics_rows(tmp_path / "a") == metrics_rows(tmp_path / "b")
  assert metrics_rows(tmp_path / "a") != metrics_rows(tmp_path / "c")


def test_finished_run_is_not_trained_again(tiny_h5, tmp_path):
  config = tiny_config("ann1", tiny_h5)
  first = train.train_and_evaluate(config, tmp_path)
  before = (tmp_path / "metrics.jsonl").read_text()
  second = train.train_and_evaluate(config, tmp_path)
  assert (tmp_path / "metrics.jsonl").read_text() == before
  assert second == first


def test_cnn1_with_the_study_settings_learns_real_digits(digits_h5, tmp_path):
  """scikit-learn's real digits, 1200/300/297: the study's Keras CNN1 reached 98.7% here."""
  config = cnn1.get_config()
  config.data.path = str(digits_h5)
  config.checkpoint.enabled = False
  report = train.train_and_evaluate(config, tmp_path)
  assert report["accuracy"] >= 0.97


def _fresh_state(name):
  from svhn_jax import models

  tx = train.make_optimizer(1e-3, 1e-7)
  return train.init_state(models.create_model(name, seed=0), tx)[1]


@pytest.mark.parametrize("setting, expected", [("auto", False), ("false", False), ("False", False),
                                               ("true", True), (True, True)])
def test_scan_epoch_setting_reads_command_line_text(setting, expected):
  from svhn_jax import models

  assert train.use_scan(setting, models.create_model("cnn1", seed=0)) is expected


def test_scan_epoch_setting_rejects_other_values():
  from svhn_jax import models
  from svhn_jax.errors import ConfigError

  with pytest.raises(ConfigError, match="config.train.scan_epoch"):
    train.use_scan("sometimes", models.create_model("ann1", seed=0))


def test_inference_chunk_size_changes_no_logit():
  model = models.create_model("cnn2", seed=0)
  graphdef, state = train.init_state(model, train.make_optimizer(1e-3, 1e-7))
  images = jax.random.uniform(jax.random.key(1), (70, 32, 32, 1))
  by_size = [train.predict_logits(graphdef, state.params, state.batch_stats, images, batch_size=b)
             for b in (16, 70, 128)]
  for logits in by_size[1:]:
    np.testing.assert_allclose(logits, by_size[0], rtol=1e-5, atol=1e-5)


def test_cnns_infer_in_cache_sized_chunks_on_the_cpu():
  cnn = models.create_model("cnn1", seed=0)
  ann = models.create_model("ann1", seed=0)
  assert train.inference_chunk(2048, cnn) == train.CPU_CNN_INFERENCE_CHUNK
  assert train.inference_chunk(50, cnn) == 50
  assert train.inference_chunk(2048, ann) == 2048
