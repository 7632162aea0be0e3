"""The four models against the Keras study: the registry, parameter counts, init, train/eval
behaviour, the summary."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from svhn_jax import config as config_lib
from svhn_jax import models
from svhn_jax.errors import ConfigError

NAMES = tuple(models.REGISTRY)
WITH_BATCHNORM = ("ann2", "cnn2")
WITH_DROPOUT = ("ann2", "cnn2")

# (total, trainable, non-trainable) from the Keras study's model summaries.
KERAS_COUNTS = {
    "ann1": (68_010, 68_010, 0),
    "ann2": (310_250, 310_186, 64),
    "cnn1": (267_306, 267_306, 0),
    "cnn2": (164_362, 164_170, 192),
}


def images(n: int = 4, seed: int = 0) -> jax.Array:
  return jnp.asarray(np.random.default_rng(seed).uniform(0, 1, (n, 32, 32, 1)), jnp.float32)


def dropout_rngs(seed: int) -> nnx.Rngs:
  return nnx.Rngs(dropout=jax.random.key(seed))


def batch_stats(model: nnx.Module) -> list[np.ndarray]:
  return [np.asarray(leaf) for leaf in jax.tree.leaves(nnx.state(model, nnx.BatchStat))]


def test_the_registry_holds_the_models_the_config_names():
  assert tuple(models.REGISTRY) == config_lib.MODEL_NAMES
  assert {name: spec.convolutional for name, spec in models.REGISTRY.items()} == {
      "ann1": False, "ann2": False, "cnn1": True, "cnn2": True}


@pytest.mark.parametrize("name", NAMES)
def test_param_counts_match_keras(name):
  assert models.param_counts(models.create_model(name, seed=0)) == KERAS_COUNTS[name]


@pytest.mark.parametrize("name", NAMES)
def test_logits_shape_at_train_and_eval(name):
  model = models.create_model(name, seed=0)
  assert model(images(3)).shape == (3, 10)
  assert model(images(3), train=True, rngs=dropout_rngs(0)).shape == (3, 10)


@pytest.mark.parametrize("name", WITH_BATCHNORM)
def test_only_training_updates_batchnorm_stats(name):
  model = models.create_model(name, seed=0)
  before = batch_stats(model)
  model(images(), train=False)
  for old, new in zip(before, batch_stats(model)):
    np.testing.assert_array_equal(old, new)
  model(images(), train=True, rngs=dropout_rngs(0))
  assert all(not np.array_equal(old, new) for old, new in zip(before, batch_stats(model)))


@pytest.mark.parametrize("name", WITH_DROPOUT)
def test_dropout_follows_the_key_in_training_and_is_off_in_eval(name):
  model = models.create_model(name, seed=0)
  x = images()
  first = model(x, train=True, rngs=dropout_rngs(0))
  np.testing.assert_array_equal(first, model(x, train=True, rngs=dropout_rngs(0)))
  assert not np.allclose(first, model(x, train=True, rngs=dropout_rngs(1)))
  np.testing.assert_array_equal(model(x), model(x, rngs=dropout_rngs(1)))


@pytest.mark.parametrize("name", ("ann1", "cnn1"))
def test_models_without_batchnorm_or_dropout_ignore_train(name):
  model = models.create_model(name, seed=0)
  np.testing.assert_array_equal(model(images()), model(images(), train=True))


@pytest.mark.parametrize("name", NAMES)
def test_init_is_glorot_uniform_kernels_and_zero_biases(name):
  model = models.create_model(name, seed=0)
  kernels = 0
  for layer in model.keras_layers():
    if isinstance(layer, (nnx.Linear, nnx.Conv)):
      kernels += 1
      kernel = np.asarray(layer.kernel[...])
      receptive = math.prod(kernel.shape[:-2])
      bound = math.sqrt(6 / (receptive * (kernel.shape[-2] + kernel.shape[-1])))
      assert np.abs(kernel).max() <= bound
      # Uniform on [-bound, bound]: reaches near the bound, std bound/sqrt(3). Keras-unlike
      # inits (flax's default lecun-normal) stay well inside it.
      assert np.abs(kernel).max() > 0.9 * bound
      np.testing.assert_allclose(kernel.std(), bound / math.sqrt(3), rtol=0.15)
      np.testing.assert_array_equal(layer.bias[...], 0.0)
    if isinstance(layer, nnx.BatchNorm):
      np.testing.assert_array_equal(layer.scale[...], 1.0)
      np.testing.assert_array_equal(layer.bias[...], 0.0)
      assert (layer.epsilon, layer.momentum) == (1e-3, 0.99)
  assert kernels >= 3


@pytest.mark.parametrize("name", NAMES)
def test_split_param_and_batchstat_captures_all_state(name):
  model = models.create_model(name, seed=0)
  graphdef, params, stats, rest = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
  assert not jax.tree.leaves(rest)
  if name not in WITH_BATCHNORM:
    assert not jax.tree.leaves(stats)
  graphdef, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  np.testing.assert_array_equal(nnx.merge(graphdef, params, stats)(images()), model(images()))


def test_summary_lists_layers_and_keras_totals():
  model = models.create_model("cnn2", seed=0)
  text = models.summary(model, "cnn2-study")
  assert 'Model: "cnn2-study"' in text
  for expected in ("Total params: 164,362", "Trainable params: 164,170",
                   "Non-trainable params: 192"):
    assert expected in text
  rows = [line for line in text.splitlines() if line.startswith(" ") and "(" in line]
  # The header, then one row per Keras layer: a ConvBlock is its Conv2D, LeakyReLU and pool.
  assert [row.split()[0] for row in rows] == [
      "Layer", "conv2d", "leaky_re_lu", "conv2d_1", "leaky_re_lu_1", "max_pooling2d",
      "batch_normalization", "conv2d_2", "leaky_re_lu_2", "conv2d_3", "leaky_re_lu_3",
      "max_pooling2d_1", "batch_normalization_1", "flatten", "dense", "leaky_re_lu_4", "dropout",
      "dense_1"]
  assert rows[1].split() == ["conv2d", "(Conv2D)", "(None,", "32,", "32,", "16)", "160"]
  assert rows[5].split() == ["max_pooling2d", "(MaxPooling2D)", "(None,", "16,", "16,", "32)",
                             "0"]
  assert rows[-1].split() == ["dense_1", "(Dense)", "(None,", "10)", "330"]
  # Unnamed, as Keras names a Sequential model.
  assert models.summary(models.create_model("ann1", seed=0)).startswith('Model: "sequential"')


def test_create_model_is_case_insensitive_and_seeded():
  upper, lower = models.create_model("CNN1", seed=0), models.create_model("cnn1", seed=0)
  np.testing.assert_array_equal(upper.layers[0].conv.kernel[...], lower.layers[0].conv.kernel[...])
  assert models.spec("CNN1") is models.REGISTRY["cnn1"]
  a, b = (models.create_model("ann1", seed=jax.random.key(s)) for s in (1, 2))
  assert not np.array_equal(a.layers[1].kernel[...], b.layers[1].kernel[...])


def test_unknown_model_name_raises_config_error_with_choices():
  with pytest.raises(ConfigError, match=r"config\.model\.name.*'resnet'.*ann1, ann2, cnn1, cnn2"):
    models.create_model("resnet", seed=0)


def test_unknown_pool_and_impl_raise_config_errors():
  with pytest.raises(ConfigError, match=r"^pool='avg': expected one of reshape, reduce_window$"):
    models.create_model("cnn1", seed=0, pool="avg")
  with pytest.raises(ConfigError, match=r"^config\.model\.impl='cuda': expected one of auto, fast"):
    models.create_model("cnn2", seed=0, impl="cuda")
