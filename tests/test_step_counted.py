"""Runs counted in steps (config.train.total_steps, warmup_steps, eval_every_steps): one of epochs
and steps, the batches they walk, the schedule's rates and the validation cadence on scripted
runs against hand-computed values, and compute_dtype's auto per backend. Resuming between
validations is in test_interruptions.py."""

from __future__ import annotations

import json
import math

import jax
import numpy as np
import pytest

from configs import default, study, wrn
from support import metrics_rows, read_json, tiny_config
from svhn_jax import config as config_lib, input_pipeline, recipes, train
from svhn_jax.errors import ConfigError


def run_config(**fields):
  config = default.get_config()
  config.update_from_flattened_dict(fields)
  return config


@pytest.mark.parametrize("fields, line", [
    ({"train.total_steps": 100},
     "config.train.epochs=30 and config.train.total_steps=100: expected exactly one of them (the "
     "run's length in epochs or in steps), the other none"),
    ({"train.epochs": None},
     "config.train.epochs=None and config.train.total_steps=None: expected exactly one of them "
     "(the run's length in epochs or in steps), the other none"),
    ({"train.epochs": None, "train.total_steps": 100, "train.schedule": "cosine",
      "train.warmup_epochs": 1.0, "train.warmup_steps": 10},
     "config.train.warmup_steps=10 and config.train.warmup_epochs=1.0: expected the warm-up in "
     "one of them, the other none (steps) or 0 (epochs)"),
    ({"train.epochs": None, "train.total_steps": 100, "train.schedule": "cosine",
      "train.warmup_steps": 100},
     "config.train.warmup_steps=100: expected fewer warm-up steps than "
     "config.train.total_steps=100"),
    ({"train.eval_every_steps": 10},
     "config.train.eval_every_steps=10: only read with config.train.total_steps other than None "
     "(this run has config.train.total_steps=None); remove it or set config.train.total_steps "
     "other than None"),
])
def test_length_and_warmup_in_epochs_or_steps_one_line_for_both_or_neither(fields, line):
  with pytest.raises(ConfigError) as e:
    config_lib.validate(run_config(**fields))
  assert str(e.value) == line


def test_none_on_the_command_line_and_old_configs_read_as_epoch_counted():
  rest, values = config_lib.split_overrides(
      ["prog", "--config.train.epochs=none", "--config.train.total_steps", "3000"],
      config_lib.RUN_SCHEMA)
  assert rest == ["prog"] and values == {"train.epochs": None, "train.total_steps": 3000}
  config = default.get_config()
  config_lib.apply_overrides(config, values)
  config_lib.validate(config)
  with pytest.raises(ConfigError, match=r"^config\.train\.total_steps='many': expected none or "):
    config_lib.split_overrides(["--config.train.total_steps=many"], config_lib.RUN_SCHEMA)
  # A config.json written before steps existed: counted in epochs, as it was.
  saved = config_lib.to_dict(default.get_config())
  for name in ("total_steps", "warmup_steps", "eval_every_steps"):
    del saved["train"][name]
  loaded = config_lib.from_dict(saved)
  assert (loaded.train.epochs, loaded.train.total_steps) == (30, None)
  assert config_lib.resume_conflicts(saved, config_lib.to_dict(default.get_config())) == []


def test_a_run_cannot_switch_between_epochs_and_steps_on_resume():
  saved = config_lib.to_dict(default.get_config())
  new = run_config(**{"train.epochs": None, "train.total_steps": 900})
  assert config_lib.resume_conflicts(saved, config_lib.to_dict(new)) == [
      "train.total_steps: None -> 900"]
  # A plateau run may ask for more steps, as for more epochs; a scheduled one may not.
  longer = run_config(**{"train.epochs": None, "train.total_steps": 1000})
  assert config_lib.resume_conflicts(config_lib.to_dict(new), config_lib.to_dict(longer)) == []
  for config in (new, longer):
    config.train.schedule = "cosine"
  assert config_lib.resume_conflicts(config_lib.to_dict(new), config_lib.to_dict(longer)) == [
      "train.total_steps: 900 -> 1000"]


def test_steps_per_epoch_counts_full_batches_only_when_counted_in_steps():
  epochs = run_config(**{"train.batch_size": 40}).train
  by_steps = run_config(**{"train.batch_size": 40, "train.epochs": None,
                           "train.total_steps": 7}).train
  assert recipes.steps_per_epoch(epochs, 192) == 5  # 4 batches of 40 and one of 32
  assert recipes.steps_per_epoch(by_steps, 192) == 4  # the 32 left over are dropped
  assert recipes.total_steps(by_steps, 4) == 7 and recipes.total_steps(epochs, 5) == 150
  assert recipes.eval_every(by_steps, 4) == 4 and recipes.eval_every(epochs, 5) == 5
  by_steps.eval_every_steps = 3
  assert recipes.eval_every(by_steps, 4) == 3
  with pytest.raises(ConfigError, match=r"^config\.train\.batch_size=40: a step-counted run "):
    recipes.steps_per_epoch(by_steps, 39)


def test_steps_walk_each_epochs_order_across_its_boundary():
  # 4 full batches an epoch: steps 2..9 are batches 2, 3 of epoch 0, all of epoch 1, 0, 1 of 2.
  assert input_pipeline.epoch_segments(2, 10, 4) == [(0, 2, 4), (1, 0, 4), (2, 0, 2)]
  assert input_pipeline.epoch_segments(4, 5, 4) == [(1, 0, 1)]
  assert input_pipeline.epoch_segments(5, 5, 4) == []


def test_a_warmup_in_steps_sets_the_schedules_rates():
  # 10 steps, 2 of warm-up from 0 to the peak 0.1, then cosine: whatever an epoch's size.
  cfg = run_config(**{"train.epochs": None, "train.total_steps": 10, "train.schedule": "cosine",
                      "train.warmup_steps": 2, "train.optimizer": "sgd",
                      "train.learning_rate": 0.1}).train
  want = [0.0, 0.05] + [0.1 * 0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(8)]
  for per_epoch in (3, 50):
    schedule = recipes.learning_rate_schedule(cfg, per_epoch)
    np.testing.assert_allclose([float(schedule(k)) for k in range(10)], want, rtol=1e-5,
                               atol=1e-7)
  # warmup_epochs in a step-counted run: epochs of full batches, rounded to steps.
  cfg.warmup_steps, cfg.warmup_epochs = None, 0.5
  assert recipes.warmup_steps(cfg, 4) == 2
  cfg.warmup_epochs = 3.0
  with pytest.raises(ConfigError, match=r"^config\.train\.warmup_epochs=3\.0: a warm-up of 12 "
                     r"steps; expected fewer than the run's 10 \(config\.train\.total_steps=10\)"):
    recipes.learning_rate_schedule(cfg, 4)


def test_a_step_counted_run_of_whole_epochs_of_full_batches_is_the_epoch_counted_one(
    finished_run, tiny_h5, tmp_path):
  """192 samples are 6 batches of 32: 12 steps are the 2 epochs of `finished_run`, the same
  batches, keys and rates; only the epoch column is the epochs walked, a float."""
  train.train_and_evaluate(tiny_config("ann2", tiny_h5, epochs=None, total_steps=12), tmp_path)
  rows, epochs = metrics_rows(tmp_path), metrics_rows(finished_run("ann2"))
  assert [row["step"] for row in epochs] == [6, 12]
  # The step loop and the epoch loop are two code paths: equal to float rounding on any CPU.
  assert [sorted(row) for row in rows] == [sorted(row) for row in epochs]
  assert rows == [{k: pytest.approx(v, rel=1e-5, abs=1e-6) for k, v in row.items()}
                  for row in epochs]
  assert [type(row["epoch"]) for row in rows] == [float, float]


def test_a_scripted_step_counted_run_validates_on_its_cadence_at_its_rates(tiny_h5, tmp_path):
  """ANN2, batches of 40 (4 full ones an epoch, 32 crops dropped), 14 steps validated every 5
  and after the last, SGD under a cosine schedule warmed up over 3 steps: the rows are at steps
  5, 10 and 14 (a period across an epoch's end), each with its last step's rate."""
  config = tiny_config("ann2", tiny_h5, epochs=None, total_steps=14, eval_every_steps=5,
                       batch_size=40, optimizer="sgd", learning_rate=0.05, schedule="cosine",
                       warmup_steps=3, scan_epoch=False)
  config.train.early_stopping.enabled = False
  report = train.train_and_evaluate(config, tmp_path)
  rows = metrics_rows(tmp_path)
  assert [(r["step"], r["epoch"]) for r in rows] == [(5, 1.25), (10, 2.5), (14, 3.5)]
  # The rate of step k (from 0): warm-up 0.05 k / 3, then 0.05 (1 + cos(pi (k - 3) / 11)) / 2.
  want = [0.05 * 0.5 * (1 + math.cos(math.pi * (k - 3) / 11)) for k in (4, 9, 13)]
  np.testing.assert_allclose([r["lr"] for r in rows], want, rtol=1e-5, atol=1e-9)
  assert {k: report[k] for k in ("best_epoch", "epochs_run", "best_step", "steps_run")} == {
      "best_epoch": 3.5, "epochs_run": 3.5, "best_step": 14, "steps_run": 14}
  # Checkpoints are keyed by validations; the step is in the checkpoint's progress.
  latest = tmp_path / "checkpoints" / "latest"
  assert sorted(p.name for p in latest.glob("[0-9]*")) == ["3"]
  assert json.loads((latest / "3" / "meta" / "metadata").read_text())["step"] == 14


def test_the_study_configs_keep_keras_epochs_early_stopping_and_plateau():
  for name, epochs in (("ann1", 20), ("ann2", 30), ("cnn1", 20), ("cnn2", 30)):
    config = study.run_config(study.get_config(), name)
    tc = config.train
    assert (tc.epochs, tc.total_steps, tc.schedule) == (epochs, None, "plateau")
    assert tc.early_stopping.enabled and recipes.eval_every(tc, 7) == 7
    assert recipes.steps_per_epoch(tc, 1000) == math.ceil(1000 / tc.batch_size)


def test_an_experiments_epochs_make_a_step_counted_run_config_epoch_counted(monkeypatch):
  original = wrn.get_config

  def stepped():
    config = original()
    config.train.epochs, config.train.total_steps, config.train.warmup_epochs = None, 500, 0.0
    config.train.warmup_steps, config.train.eval_every_steps = 50, 100
    return config

  monkeypatch.setattr(wrn, "get_config", stepped)
  assert study.run_config(study.get_config(), "wrn").train.total_steps == 500
  shared = study.get_config()
  shared.train.epochs = 3
  tc = study.run_config(shared, "wrn").train
  assert (tc.epochs, tc.total_steps, tc.warmup_steps, tc.eval_every_steps) == (3, None, None, None)
  # And the experiment's steps make an epoch-counted one step-counted.
  shared = study.get_config()
  shared.train.total_steps = 200
  tc = study.run_config(shared, "cnn2").train
  assert (tc.epochs, tc.total_steps) == (None, 200)
  config_lib.validate(study.run_config(shared, "cnn2"))


@pytest.mark.parametrize("backend, want", [("cpu", "float32"), ("gpu", "bfloat16"),
                                           ("tpu", "bfloat16")])
def test_compute_dtype_auto_per_backend(backend, want, monkeypatch, tmp_path):
  monkeypatch.setattr(jax, "default_backend", lambda: backend)
  config = wrn.get_config()
  assert config.train.compute_dtype == "auto"
  assert recipes.compute_dtype(config.train) == want
  config.train.compute_dtype = "float32"
  assert recipes.compute_dtype(config.train) == "float32"
  # Resolved into the run's config where its model reads it (the WRN), and there only.
  config.train.compute_dtype = "auto"
  assert train.resolved_dtype(config, [tmp_path]).train.compute_dtype == want
  study_model = default.get_config()
  assert train.resolved_dtype(study_model, [tmp_path]) is study_model
  # A resumed run keeps the dtype its config.json holds, and auto is no conflict with it.
  other = "float32" if want == "bfloat16" else "bfloat16"
  saved = config_lib.to_dict(wrn.get_config())
  saved["train"]["compute_dtype"] = other
  (tmp_path / "config.json").write_text(json.dumps(saved))
  assert train.resolved_dtype(config, [tmp_path]).train.compute_dtype == other
  assert config_lib.resume_conflicts(saved, config_lib.to_dict(config)) == []
  config.train.compute_dtype = want
  assert config_lib.resume_conflicts(saved, config_lib.to_dict(config)) == [
      f"train.compute_dtype: {other!r} -> {want!r}"]


def test_the_resolved_dtype_is_saved_in_config_json(tiny_h5, tmp_path, monkeypatch):
  """A WRN on the CPU: auto is float32 there, and the run's config.json (written before its
  first step; the training itself is left out here) says so."""
  config = tiny_config("wrn_cpu", tiny_h5)
  config.model.wrn.depth, config.train.compute_dtype = 10, "auto"

  def stop(*args):
    raise InterruptedError

  monkeypatch.setattr(train, "fit", stop)
  with pytest.raises(InterruptedError):
    train.train_and_evaluate(config, tmp_path)
  assert read_json(tmp_path / "config.json")["train"]["compute_dtype"] == "float32"
