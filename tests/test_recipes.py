"""Recipes: each optimizer and schedule's rates on a scripted run, label smoothing and the EMA
against hand-computed values, test-time augmentation, train_on_val, and a recipe run end to end."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from configs import default, wrn
from svhn_jax import config as config_lib, inference, recipes, steps, train
from svhn_jax.data import Dataset, Split
from svhn_jax.datasets import base, study_h5
from svhn_jax.errors import ConfigError
from tests.support import metrics_rows, read_json, tiny_config


def train_cfg(**fields) -> ml_collections.ConfigDict:
  config = default.get_config().train
  for key, value in fields.items():
    config[key] = value
  return config


def rates(tx: optax.GradientTransformation, n: int) -> list[float]:
  """The rate each of `n` steps used, on a one-parameter problem."""
  params = {"w": jnp.ones(3)}
  state = tx.init(params)
  out = []
  for _ in range(n):
    _, state = tx.update({"w": jnp.ones(3)}, state, params)
    out.append(float(recipes.learning_rate(state)))
  return out


def test_plateau_recipe_is_the_studys_adam_and_keeps_its_rate():
  tx = recipes.optimizer(train_cfg(learning_rate=1e-3), steps_per_epoch=10)
  study = recipes.adam(1e-3, 1e-7)
  params = {"w": jnp.arange(3.0)}
  a, b = tx.init(params), study.init(params)
  assert jax.tree.structure(a) == jax.tree.structure(b)
  assert rates(tx, 4) == pytest.approx([1e-3] * 4)


def test_cosine_schedule_warms_up_linearly_then_decays_to_zero():
  # 2 epochs of 5 steps, 0.4 epochs (2 steps) of warm-up from 0 to the peak 0.1.
  tx = recipes.optimizer(train_cfg(optimizer="sgd", learning_rate=0.1, schedule="cosine",
                                   warmup_epochs=0.4, epochs=2), steps_per_epoch=5)
  got = rates(tx, 10)
  want = [0.0, 0.05] + [0.1 * 0.5 * (1 + math.cos(math.pi * k / 8)) for k in range(8)]
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_onecycle_schedule_is_a_triangle():
  tx = recipes.optimizer(train_cfg(optimizer="adamw", learning_rate=0.2, schedule="onecycle",
                                   warmup_epochs=1, epochs=3), steps_per_epoch=2)
  # Up over 2 steps, down over 4: 0, 0.1, 0.2, 0.15, 0.1, 0.05.
  np.testing.assert_allclose(rates(tx, 6), [0.0, 0.1, 0.2, 0.15, 0.1, 0.05], rtol=1e-5,
                             atol=1e-7)


def test_warmup_must_be_shorter_than_the_run():
  with pytest.raises(ConfigError, match="config.train.warmup_epochs"):
    recipes.optimizer(train_cfg(schedule="cosine", warmup_epochs=3, epochs=3), 10)


def one_update(tx, w, g):
  params = {"w": jnp.asarray(w, jnp.float32)}
  updates, _ = tx.update({"w": jnp.asarray(g, jnp.float32)}, tx.init(params), params)
  return np.asarray(optax.apply_updates(params, updates)["w"])


def test_sgd_is_nesterov_momentum_after_an_l2_gradient():
  tx = recipes.optimizer(train_cfg(optimizer="sgd", learning_rate=0.1, momentum=0.9,
                                   weight_decay=0.5), 1)
  w, g = np.array([2.0, -1.0]), np.array([0.4, 0.2])
  grad = g + 0.5 * w  # the L2 term's gradient
  velocity = grad  # first step: momentum buffer = gradient
  nesterov = grad + 0.9 * velocity
  np.testing.assert_allclose(one_update(tx, w, g), w - 0.1 * nesterov, rtol=1e-6)


def test_adamw_decays_decoupled_and_adam_with_decay_adds_l2():
  w, g = np.array([2.0, -1.0]), np.array([0.4, -0.2])
  lr, wd = 0.01, 0.1
  # First Adam step: m/(sqrt(v)+eps) with bias correction is sign(g) up to eps.
  adam_step = g / (np.abs(g) + 1e-7)
  adamw = recipes.optimizer(train_cfg(optimizer="adamw", learning_rate=lr, weight_decay=wd), 1)
  np.testing.assert_allclose(one_update(adamw, w, g), w - lr * (adam_step + wd * w), rtol=1e-5)
  adam = recipes.optimizer(train_cfg(optimizer="adam", learning_rate=lr, weight_decay=wd), 1)
  l2 = g + wd * w
  np.testing.assert_allclose(one_update(adam, w, g), w - lr * l2 / (np.abs(l2) + 1e-7),
                             rtol=1e-5)


def test_label_smoothing_against_hand_computation():
  logits = jnp.array([[2.0, 0.0, -1.0]])
  labels = jnp.array([0])
  log_p = np.log(np.exp([2.0, 0.0, -1.0]) / np.exp([2.0, 0.0, -1.0]).sum())
  targets = np.array([1 - 0.3 + 0.1, 0.1, 0.1])  # (1 - a) one-hot + a / 3
  want = -(targets * log_p).sum()
  assert float(recipes.cross_entropy(logits, labels, 0.3)) == pytest.approx(want, rel=1e-6)
  assert float(recipes.cross_entropy(logits, labels)) == pytest.approx(-log_p[0], rel=1e-6)


def test_ema_decay_warms_up_then_holds():
  np.testing.assert_allclose([float(recipes.ema_decay(0.999, t)) for t in (0, 1, 90, 10**6)],
                             [1 / 10, 2 / 11, 91 / 100, 0.999], rtol=1e-6)


def test_ema_update_against_hand_computation():
  ema = {"w": jnp.array([0.0, 10.0])}
  params = {"w": jnp.array([1.0, 0.0])}
  # Step 1000: decay min(0.9, 1001/1010) = 0.9.
  got = recipes.ema_update(ema, params, 0.9, 1000)["w"]
  np.testing.assert_allclose(got, [0.1, 9.0], rtol=1e-6)


def test_step_options_from_config():
  assert steps.StepOptions.from_config(train_cfg()) == steps.StepOptions()
  config = train_cfg(label_smoothing=0.1, ema_decay=0.99)
  config.augment.translate = 2
  config.augment.num_ops = 1
  config.augment.magnitude = 5.0
  config.augment.ops = ["rotate", "contrast"]
  options = steps.StepOptions.from_config(config)
  assert options.label_smoothing == 0.1 and options.ema_decay == 0.99
  assert dict(options.augment) == {"translate": 2, "cutout": 0, "rand_augment_ops": 1,
                                   "rand_augment_magnitude": 5.0, "ops": ("rotate", "contrast")}
  hash(options)  # static: compiled into the step


def test_tta_views_and_a_shift_invariant_model():
  assert inference.tta_shifts(0) == ((0, 0),)
  views = inference.tta_shifts(2)
  assert len(views) == 9 and views[0] == (0, 0) and (-2, 2) in views
  # A model that only sees the mean pixel of an image of one grey level is blind to shifts, so
  # TTA returns its log-softmax.
  from svhn_jax import models
  from flax import nnx
  model = models.create_model("ann1", seed=0)
  graphdef, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  images = np.full((4, 32, 32), 77, np.uint8)
  plain = inference.predict_logits(graphdef, params, stats, images, batch_size=4)
  tta = inference.predict_logits(graphdef, params, stats, images, batch_size=4, tta=2)
  np.testing.assert_allclose(tta, jax.nn.log_softmax(plain), atol=1e-5)


def test_train_on_val_pools_and_recarves():
  rng = np.random.default_rng(0)
  split = lambda n: Split(rng.integers(0, 255, (n, 32, 32)).astype(np.uint8),
                          np.arange(n) % 10)
  dataset = Dataset(split(100), split(150), split(30))
  pooled = base.pooled(dataset, val_size=40, split_seed=0)
  assert pooled.train.labels.shape == (210,) and pooled.val.labels.shape == (40,)
  assert pooled.test is dataset.test
  assert np.bincount(pooled.val.labels).tolist() == [4] * 10  # stratified
  again = base.pooled(dataset, val_size=40, split_seed=0)
  np.testing.assert_array_equal(again.val.images, pooled.val.images)


def test_experiments_keep_each_recipes_train_on_val_unless_told():
  from configs import calibrate, mask_ablation, study
  for experiment in (study, calibrate, mask_ablation):
    config = experiment.get_config()
    config_lib.validate(config, config_lib.STUDY_SCHEMA)
    assert study.run_config(config, "wrn_cpu").data.train_on_val is True
    assert study.run_config(config, "cnn2").data.train_on_val is False
  config = study.get_config()
  _, values = config_lib.split_overrides(["--config.data.train_on_val=false"],
                                         config_lib.STUDY_SCHEMA)
  config_lib.apply_overrides(config, values)
  assert study.run_config(config, "wrn_cpu").data.train_on_val is False


def test_combinations_refused_in_one_line():
  config = default.get_config()
  config.train.compute_dtype = "bfloat16"
  with pytest.raises(ConfigError, match="compute_dtype"):
    config_lib.validate(config)
  config = default.get_config()
  config.model.name, config.model.wrn.depth = "wrn", 12
  with pytest.raises(ConfigError, match="6n\\+4"):
    config_lib.validate(config)
  config = default.get_config()
  config.model.wrn.standardize = True
  with pytest.raises(ConfigError, match=r"^config\.model\.wrn\.standardize=True: only read with "
                     r"config\.model\.name=wrn \(this run has config\.model\.name=cnn2\)"):
    config_lib.validate(config)
  config.model.name = "wrn"
  config_lib.validate(config)


def test_a_run_cannot_switch_per_image_standardization_on_resume():
  # It changes the model's function, so a resume that flips it is refused; a config.json
  # written before the field existed reads as False.
  saved = config_lib.to_dict(wrn.get_config())
  new = wrn.get_config()
  new.model.wrn.standardize = True
  assert config_lib.resume_conflicts(saved, config_lib.to_dict(new)) == [
      "model.wrn.standardize: False -> True"]
  del saved["model"]["wrn"]["standardize"]
  assert config_lib.resume_conflicts(saved, config_lib.to_dict(wrn.get_config())) == []


def test_a_scheduled_run_cannot_change_its_length_on_resume():
  saved = config_lib.to_dict(default.get_config())
  new = default.get_config()
  new.train.epochs = 40
  assert config_lib.resume_conflicts(saved, config_lib.to_dict(new)) == []
  saved["train"]["schedule"] = new.train.schedule = "cosine"
  assert config_lib.resume_conflicts(saved, config_lib.to_dict(new)) == ["train.epochs: 30 -> 40"]


def test_recipe_run_end_to_end(tiny_h5, tmp_path):
  """SGD, a cosine schedule with warm-up, label smoothing, EMA, augmentation and TTA on CNN1,
  without early stopping: the rates follow the schedule, the EMA is saved and predicted with."""
  config = tiny_config("cnn1", tiny_h5, epochs=3, optimizer="sgd", learning_rate=0.05,
                       schedule="cosine", warmup_epochs=1.0, label_smoothing=0.1,
                       ema_decay=0.9, weight_decay=5e-4, tta=1, val_examples=32)
  config.train.early_stopping.enabled = False
  config.train.augment.translate = 2
  config.train.augment.cutout = 8
  config.train.augment.num_ops = 1
  config.train.augment.magnitude = 3.0
  report = train.train_and_evaluate(config, tmp_path)
  rows = metrics_rows(tmp_path)
  assert [r["epoch"] for r in rows] == [1, 2, 3]
  schedule = recipes.learning_rate_schedule(config.train, steps_per_epoch=6)
  # Each row's rate is its epoch's last step's: steps 5, 11, 17.
  np.testing.assert_allclose([r["lr"] for r in rows], [float(schedule(k)) for k in (5, 11, 17)],
                             rtol=1e-5, atol=1e-9)
  assert report["best_epoch"] == 3 and report["epochs_run"] == 3
  assert read_json(tmp_path / "test_metrics.json")["accuracy"] == report["accuracy"]
  # Without early stopping the latest checkpoint is the result: one save an epoch, no best/.
  ckpts = tmp_path / "checkpoints"
  assert not any((ckpts / "best").glob("[0-9]*"))
  assert sorted(p.name for p in (ckpts / "latest").glob("[0-9]*"))[-1] == "3"
  run = inference.load_run(tmp_path)
  assert "ema" in run.weights
  ema, params = run.weights["ema"], run.weights["params"]
  assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(ema), jax.tree.leaves(params)))
  # predict's path (EMA weights, TTA) gives the accuracy the run reported.
  test = study_h5.load(tiny_h5).test
  probs = inference.predict_probs(run, test.images)
  assert np.mean(probs.argmax(-1) == test.labels) == pytest.approx(report["accuracy"])


def test_step_options_take_the_distortions_that_are_on():
  config = train_cfg()
  assert steps.StepOptions.from_config(config).distort == ()
  config.augment.distort.scale, config.augment.distort.blur = 0.1, 0.5
  assert steps.StepOptions.from_config(config).distort == (("scale", 0.1), ("blur", 0.5))
  # A config.json written before the distortions existed: none.
  del config.augment["distort"]
  assert steps.StepOptions.from_config(config) == steps.StepOptions()
