"""The airbench-class recipe (configs/speedrun.py): the patch-whitening first layer against a
hand-computed case, Muon's Newton-Schulz iteration against its quintic computed by hand, the
filter normalization, Lookahead's slow and fast weights on a scripted sequence, the config's
checks, and a tiny end-to-end run."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import default, speedrun
from svhn_jax import config as config_lib, inference, input_pipeline, recipes, steps, train
from svhn_jax.datasets import study_h5
from svhn_jax.errors import ConfigError
from svhn_jax.models import airbench
from tests.support import read_json, tiny_config

NS = (3.4445, -4.7750, 2.0315)


def test_whitening_filters_match_a_hand_computed_case():
  # Four 2x2 images, each a single 2x2 patch along one axis: the patches' second-moment matrix
  # is diag(2^2, 1, 3^2, 0.5^2) / 4 = diag(1, 0.25, 2.25, 0.0625), in (row, column) order.
  images = np.zeros((4, 2, 2, 1), np.float32)
  images[0, 0, 0], images[1, 0, 1], images[2, 1, 0], images[3, 1, 1] = 2, 1, 3, 0.5
  kernel = airbench.whitening_filters(images, 2, eps=0.0)
  assert kernel.shape == (2, 2, 1, 8) and kernel.dtype == np.float32
  # Eigenvalues ascending: 0.0625 (pixel (1,1)), 0.25 ((0,1)), 1 ((0,0)), 2.25 ((1,0)); each
  # filter the unit vector over sqrt(eigenvalue), then the four negated.
  expected = np.zeros((2, 2, 1, 8), np.float32)
  for i, ((row, col), value) in enumerate(
      [((1, 1), 1 / 0.25), ((0, 1), 1 / 0.5), ((0, 0), 1.0), ((1, 0), 1 / 1.5)]):
    expected[row, col, 0, i], expected[row, col, 0, 4 + i] = value, -value
  np.testing.assert_allclose(kernel, expected, rtol=1e-6, atol=1e-7)
  # eps adds to each eigenvalue under the root.
  np.testing.assert_allclose(airbench.whitening_filters(images, 2, eps=0.75)[0, 0, 0, 2],
                             1 / np.sqrt(1.75), rtol=1e-6)


def test_the_whitening_layer_whitens_its_sample():
  rng = np.random.default_rng(0)
  base = rng.uniform(0, 1, (40, 9, 9, 1))
  images = (base + np.roll(base, 1, axis=2)).astype(np.float32)  # neighbouring pixels correlated
  layer = airbench.PatchWhitening(1, 2, sample=images, eps=1e-9)
  out = np.asarray(layer(jnp.asarray(images)), np.float64).reshape(-1, 8)[:, :4]
  np.testing.assert_allclose(out.T @ out / len(out), np.eye(4), atol=1e-4)
  np.testing.assert_allclose(np.asarray(layer(jnp.asarray(images)))[..., 4:],
                             -np.asarray(layer(jnp.asarray(images)))[..., :4], rtol=1e-6)


def quintic(s: float, steps: int) -> float:
  for _ in range(steps):
    s = NS[0] * s + NS[1] * s ** 3 + NS[2] * s ** 5
  return s


def test_muon_takes_a_conv_kernel_through_the_quintic_newton_schulz_iteration():
  # A (1, 1, 3, 2) kernel's gradient is the 3 x 2 matrix [[3, 0], [0, 4], [0, 0]]: singular
  # values 3 and 4, 0.6 and 0.8 at unit Frobenius norm. Muon's first step (its momentum then a
  # multiple of the gradient) maps each through the quintic ns_steps times, not to 1.
  grad = np.zeros((1, 1, 3, 2), np.float32)
  grad[0, 0, 0, 0], grad[0, 0, 1, 1] = 3, 4
  params = {"conv": {"kernel": jnp.ones((1, 1, 3, 2))}, "norm": {"bias": jnp.full((2,), 2.0)},
            "head": {"kernel": jnp.ones((2, 2))}}
  grads = {"conv": {"kernel": jnp.asarray(grad)}, "norm": {"bias": jnp.asarray([1.0, -1.0])},
           "head": {"kernel": jnp.full((2, 2), 0.5)}}
  tx = recipes.muon_sgd(0.1, muon_learning_rate=0.25, momentum=0.5, muon_momentum=0.6,
                        ns_steps=3, normalize=False, weight_decay=0.01, bias_lr_multiplier=4.0)
  updates, _ = tx.update(grads, tx.init(params), params)
  expected = np.zeros((1, 1, 3, 2))
  expected[0, 0, 0, 0], expected[0, 0, 1, 1] = quintic(0.6, 3), quintic(0.8, 3)
  assert abs(quintic(0.6, 3) - 1) > 0.05  # the iterate is not the orthogonal factor
  np.testing.assert_allclose(updates["conv"]["kernel"], -0.25 * expected, rtol=1e-5, atol=1e-6)
  # SGD's first Nesterov step is (1 + momentum) times the gradient with its L2 term: the biases
  # at 4x the rate with a quarter of the decay, the rest at the rate.
  np.testing.assert_allclose(updates["norm"]["bias"],
                             -0.4 * 1.5 * (np.array([1.0, -1.0]) + 0.0025 * 2), rtol=1e-6)
  np.testing.assert_allclose(updates["head"]["kernel"], -0.1 * 1.5 * (0.5 + 0.01), rtol=1e-6)


def test_normalize_filters_rescales_each_kernel_to_norm_sqrt_out():
  params = {"kernel": jnp.full((3, 3, 2, 4), 0.5)}
  updates = {"kernel": jnp.full((3, 3, 2, 4), 0.01)}
  new = optax.apply_updates(params, recipes.normalize_filters().update(updates, None, params)[0])
  # ||p|| = 0.5 * sqrt(72) = 3 sqrt(2); scaled to norm sqrt(4) = 2.
  np.testing.assert_allclose(new["kernel"], 0.5 * 2 / (3 * np.sqrt(2)) + 0.01, rtol=1e-6)


def test_lookahead_moves_slow_and_fast_weights_as_scripted():
  # The inner optimizer moves the fast weight by +1 a step; a sync every 2 steps, decay 0.5 over
  # a 4-step run: d = 0.5 * (t / 4)^3 at step 2, and 1 at the last step (the slow weight kept).
  tx = recipes.lookahead(optax.sgd(1.0), every=2, decay=0.5, total=4)
  params = {"w": jnp.zeros(())}
  state = tx.init(params)
  seen = []
  for _ in range(4):
    updates, state = tx.update({"w": jnp.float32(-1.0)}, state, params)
    params = optax.apply_updates(params, updates)
    seen += [float(params["w"]), float(state.slow["w"])]
  d = 0.5 * (2 / 4) ** 3
  slow = (1 - d) * 2.0
  # (fast, slow) after each step: 1.0, 0.0 | 1.875, 1.875 | 2.875, 1.875 | 1.875, 1.875
  assert seen == pytest.approx([1.0, 0.0, slow, slow, slow + 1, slow, slow, slow])


def test_lookahead_inside_the_configured_optimizer_keeps_its_rate_and_count():
  cfg = default.get_config().train
  cfg.optimizer, cfg.schedule, cfg.epochs = "sgd", "onecycle", 2
  cfg.lookahead.every = 3
  tx = recipes.optimizer(cfg, steps_per_epoch=5)
  params = {"w": jnp.ones(2)}
  state = tx.init(params)
  for _ in range(3):
    updates, state = tx.update({"w": jnp.ones(2)}, state, params)
    params = optax.apply_updates(params, updates)
  assert int(recipes.step_count(state)) == 3
  assert float(recipes.learning_rate(state)) == pytest.approx(1e-3 * 8 / 10)


def test_the_speedrun_config_resolves_and_refuses_nonsense_in_one_line():
  config = speedrun.get_config()
  config_lib.validate(config)
  assert config.train.early_stopping.enabled is False and config.train.epochs == 3
  assert config.train.learning_rate == pytest.approx(0.67 * config.train.batch_size)
  config.update_from_flattened_dict(speedrun.AIRBENCH_WIDTHS)
  config_lib.validate(config)
  assert (config.model.airbench.block2, config.train.batch_size, config.train.epochs) == (
      256, 2000, 8)
  assert config.train.learning_rate == pytest.approx(0.67 * config.train.batch_size)
  bad = [("train.bias_lr_multiplier", 0.0), ("train.muon.ns_steps", 0),
         ("model.airbench.bn_momentum", 1.0), ("model.airbench.block2", 0),
         ("train.lookahead.decay", 0.5)]  # decay without lookahead: not read
  for dotted, value in bad:
    config = speedrun.get_config()
    *parents, name = dotted.split(".")
    node = config
    for parent in parents:
      node = node[parent]
    node[name] = value
    with pytest.raises(ConfigError, match=f"config.{dotted}=") as error:
      config_lib.validate(config)
    assert "\n" not in str(error.value)
  cnn2 = default.get_config()
  cnn2.train.muon.learning_rate = 0.1
  with pytest.raises(ConfigError, match="only read with config.train.optimizer=muon"):
    config_lib.validate(cnn2)


def test_airbench_refuses_options_it_cannot_build():
  with pytest.raises(ConfigError, match="whiten_kernel=30"):
    airbench.airbench(rngs=None, whiten_kernel=30)
  with pytest.raises(ConfigError, match="compute_dtype"):
    airbench.airbench(rngs=None, dtype="float16")


def test_speedrun_trains_end_to_end_with_its_first_layer_from_the_data(tiny_h5, tmp_path):
  config = tiny_config("speedrun", tiny_h5, epochs=1, tta=0)
  config.model.airbench.block1 = 4
  config.model.airbench.block2 = config.model.airbench.block3 = 8
  report = train.train_and_evaluate(config, tmp_path / "run")
  assert 0 <= report["accuracy"] <= 1 and report["epochs_run"] == 1
  saved = read_json(tmp_path / "run" / "config.json")
  assert saved["train"]["compute_dtype"] == "float32"  # auto, on the CPU
  # The run's checkpoint holds the whitening filters of its training images (the model input of
  # the first ones), and a model built without data (svhn_jax.inference) restores them.
  train_images = study_h5.load(tiny_h5).train.images
  inputs = input_pipeline.prepare_images(train_images[:train.MODEL_SAMPLE])
  expected = airbench.whitening_filters(steps.model_input(jnp.asarray(inputs)), 2, 5e-4)
  run = inference.load_run(tmp_path / "run")
  kernel = jax.tree.leaves(run.weights["batch_stats"]["layers"][0]["kernel"])[0]
  np.testing.assert_allclose(np.asarray(kernel), expected, rtol=1e-6)
  assert inference.run_logits(run, train_images[:3]).shape == (3, 10)
