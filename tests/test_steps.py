"""The compiled pieces of a run: model input, the train step and scanned epoch, the learning-rate
setter, the metrics, and the Trainer with and without a seed axis."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from svhn_jax import models, parallel, recipes, steps, tasks

DIGIT = tasks.get("digit")
from svhn_jax.data import Split
from svhn_jax.trainer import Trainer


def fresh(name: str, seed: int = 0, impl: str = "auto"):
  tx = recipes.adam(1e-3, 1e-7)
  graphdef, state = steps.init_state(models.create_model(name, seed=seed, impl=impl), tx)
  return graphdef, tx, state


def pixels(n: int, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (n, 32, 32), dtype=np.uint8)


def assert_trees_close(a, b, rtol, atol=0.0):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)


def test_uint8_pixels_become_exactly_what_numpy_divides_by_255():
  """All 256 values, jitted as in a step: XLA turns x / 255 into x * (1 / 255), which rounds a
  third of them differently from the study's host-side division."""
  x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
  got = np.asarray(jax.jit(steps.model_input)(x))
  want = (x.astype(np.float32) / np.float32(255))[..., None]
  assert got.dtype == np.float32 and got.shape == (1, 16, 16, 1)
  np.testing.assert_array_equal(got, want)


def test_float_images_pass_through_and_keep_their_channels():
  x = np.random.default_rng(0).uniform(0, 1, (2, 32, 32, 3)).astype(np.float32)
  np.testing.assert_array_equal(steps.model_input(x), x)
  np.testing.assert_array_equal(steps.model_input(x[..., 0]), x[..., :1])


def test_with_learning_rate_sets_the_rate_a_step_uses():
  _, _, state = fresh("ann1")
  assert float(steps.with_learning_rate(state, 2.5e-4).opt_state.hyperparams["learning_rate"]) \
      == np.float32(2.5e-4)
  stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), state, state)
  rates = steps.with_learning_rate(stacked, [1e-3, 5e-4]).opt_state.hyperparams["learning_rate"]
  np.testing.assert_array_equal(rates, np.float32([1e-3, 5e-4]))


def test_metrics_are_mean_cross_entropy_and_accuracy():
  logits = jnp.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0]])
  labels = jnp.array([0, 1, 1, 1])
  got = DIGIT.metrics(logits, labels)
  log_probs = logits - jax.scipy.special.logsumexp(logits, axis=-1, keepdims=True)
  want = -np.mean(np.asarray(log_probs)[np.arange(4), np.asarray(labels)])
  np.testing.assert_allclose(got["loss"], want, rtol=1e-6)
  assert float(got["accuracy"]) == 0.5


def one_epoch(trainer, state, data, key):
  return trainer.train_epoch(jax.tree.map(jnp.copy, state), data, key, 0)


@pytest.fixture(scope="module")
def epoch_data():
  """70 samples: two full batches of 32 and a last batch of 6."""
  mesh = parallel.make_mesh()
  split = Split(pixels(70), (np.arange(70) % 10).astype(np.int32))
  return mesh, Split(*parallel.replicate(tuple(split), mesh))


def test_scan_epoch_takes_the_same_steps_as_the_step_loop(epoch_data):
  mesh, data = epoch_data
  graphdef, tx, state = fresh("ann2")
  results = [one_epoch(Trainer(graphdef, tx, batch_size=32, eval_batch_size=64, mesh=mesh,
                               scan=scan, task=DIGIT), state, data, jax.random.key(0))
             for scan in (False, True)]
  assert_trees_close(results[0][0], results[1][0], rtol=1e-5, atol=1e-6)
  (loop_metrics,), (scan_metrics,) = results[0][1], results[1][1]
  # Two code paths: XLA may fuse a scanned step differently, so losses agree to a tolerance and
  # accuracies to at most one of the 70 samples, on any x86 CPU.
  np.testing.assert_allclose(loop_metrics["loss"], scan_metrics["loss"], rtol=1e-5)
  assert abs(loop_metrics["accuracy"] - scan_metrics["accuracy"]) <= 1 / 70 + 1e-9


def test_an_epoch_takes_a_step_on_the_batch_left_over(epoch_data):
  """Keras sees every sample each epoch: the batch of 6 left over is a third step, and the
  epoch's accuracy counts all 70 samples."""
  mesh, data = epoch_data
  graphdef, tx, state = fresh("ann1")
  trainer = Trainer(graphdef, tx, batch_size=32, eval_batch_size=64, mesh=mesh, task=DIGIT)
  seen = []
  new_state, (metrics,) = trainer.train_epoch(jax.tree.map(jnp.copy, state), data,
                                              jax.random.key(0), 0, seen.append)
  assert seen == [1, 1, 1]
  assert int(new_state.opt_state.inner_state[0].count) == 3
  assert metrics["accuracy"] * 70 == pytest.approx(round(metrics["accuracy"] * 70), abs=1e-9)


def test_train_steps_take_full_batches_across_an_epochs_end(epoch_data):
  """A step-counted run's steps 0..4 on 70 samples in batches of 32: the two full batches of
  epoch 0, then of epoch 1 (the 6 left over dropped), then one of epoch 2; split into periods
  anywhere, the same steps, and scanned, the same to rounding."""
  mesh, data = epoch_data
  graphdef, tx, state = fresh("ann2")
  loop = Trainer(graphdef, tx, batch_size=32, eval_batch_size=64, mesh=mesh, task=DIGIT)
  key = jax.random.key(0)
  seen = []
  whole, (metrics,) = loop.train_steps(jax.tree.map(jnp.copy, state), data, key, 0, 5,
                                       seen.append)
  assert seen == [1] * 5 and int(whole.opt_state.inner_state[0].count) == 5
  part, _ = loop.train_steps(jax.tree.map(jnp.copy, state), data, key, 0, 3)
  part, _ = loop.train_steps(part, data, key, 3, 5)
  jax.tree.map(np.testing.assert_array_equal, part, whole)
  scanned = Trainer(graphdef, tx, batch_size=32, eval_batch_size=64, mesh=mesh, scan=True,
                    task=DIGIT)
  seen.clear()
  scan_state, (scan_metrics,) = scanned.train_steps(jax.tree.map(jnp.copy, state), data, key, 0,
                                                    5, seen.append)
  assert seen == [2, 2, 1]
  assert_trees_close(whole, scan_state, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(metrics["loss"], scan_metrics["loss"], rtol=1e-5)


def test_evaluation_equals_the_metrics_of_the_logits(epoch_data):
  mesh, data = epoch_data
  graphdef, tx, state = fresh("cnn1")
  trainer = Trainer(graphdef, tx, batch_size=32, eval_batch_size=64, mesh=mesh, task=DIGIT)
  (scores,) = trainer.evaluate(state, data)
  logits = steps.logits(graphdef, state.params, state.batch_stats, data.images)
  want = DIGIT.metrics(logits, data.labels)
  np.testing.assert_allclose(scores["loss"], want["loss"], rtol=1e-5)
  assert scores["accuracy"] == float(want["accuracy"])


def test_a_seed_axis_trains_and_evaluates_each_seed_as_alone(epoch_data):
  """Two ANN2 seeds (BatchNorm, dropout) in one vmapped program: evaluated, then after an epoch,
  each as on its own (tests/test_multiseed.py compares whole runs)."""
  mesh, data = epoch_data
  inits = [fresh("ann2", seed=s, impl="flax") for s in (3, 4)]
  graphdef, tx = inits[0][:2]
  keys = [jax.random.key(s) for s in (3, 4)]
  single = Trainer(graphdef, tx, batch_size=32, eval_batch_size=64, mesh=mesh, task=DIGIT)
  vmapped = Trainer(graphdef, tx, batch_size=32, eval_batch_size=64, mesh=mesh, num_seeds=2,
                    task=DIGIT)
  stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *(state for _, _, state in inits))
  scores = vmapped.evaluate(stacked, data)
  _, metrics = one_epoch(vmapped, stacked, data, jnp.stack(keys))
  for i, ((_, _, state), key) in enumerate(zip(inits, keys)):
    (want_scores,) = single.evaluate(state, data)
    np.testing.assert_allclose(scores[i]["loss"], want_scores["loss"], rtol=1e-5)
    # A sample whose top two logits tie to float precision may flip: allow one of 70.
    assert abs(scores[i]["accuracy"] - want_scores["accuracy"]) <= 1 / 70 + 1e-9
    _, (want_metrics,) = one_epoch(single, state, data, key)
    np.testing.assert_allclose(metrics[i]["loss"], want_metrics["loss"], rtol=1e-4)
  assert metrics[0]["loss"] != metrics[1]["loss"] and scores[0] != scores[1]
