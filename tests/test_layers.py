"""The Keras layers and their two paths: the fused layers of svhn_jax/fast_layers.py against the
plain Flax ones (same outputs, gradients and statistics), the pools, and who chooses the path."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from svhn_jax import fast_layers, layers, models, xla_flags
from svhn_jax.errors import ConfigError


def images(n: int = 8, seed: int = 0) -> jax.Array:
  return jnp.asarray(np.random.default_rng(seed).uniform(0, 1, (n, 32, 32, 1)), jnp.float32)


def assert_trees_close(a, b, atol):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(x, y, atol=atol, rtol=1e-4)


def step_outputs(name: str, train: bool, x: jax.Array, **model_args):
  """Logits, parameter gradients and BatchNorm statistics after one forward/backward pass."""
  graphdef, params, stats = nnx.split(models.create_model(name, seed=0, **model_args),
                                      nnx.Param, nnx.BatchStat)
  labels = jnp.arange(x.shape[0]) % 10

  @jax.jit
  def step(params, stats, x):
    def loss(params):
      # copy=True: merge otherwise reuses the jit-level BatchStat variables, which training
      # would then mutate from inside jax.grad's trace (a TraceContextError).
      model = nnx.merge(graphdef, params, stats, copy=True)
      logits = model(x, train=train, rngs=nnx.Rngs(dropout=jax.random.key(1)))
      ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
      return ce, (logits, nnx.state(model, nnx.BatchStat))
    return jax.grad(loss, has_aux=True)(params)

  grads, (logits, new_stats) = step(params, stats, x)
  return logits, grads, new_stats


def test_the_impl_setting_chooses_the_path():
  assert layers.use_fused("fast") and not layers.use_fused("flax")
  assert layers.use_fused("auto") == (jax.default_backend() == "cpu")
  with pytest.raises(ConfigError, match=r"^config\.model\.impl='cuda': expected one of auto"):
    layers.use_fused("cuda")
  fused = models.create_model("cnn2", seed=0, impl="fast")
  plain = models.create_model("cnn2", seed=0, impl="flax")
  paths = lambda model: [layer.fused for layer in model.layers if hasattr(layer, "fused")]
  assert paths(fused) == [True] * 6 and paths(plain) == [False] * 6


# ANN1 has no fused layer; ANN2's BatchNorm is fused in training only.
@pytest.mark.parametrize("name, train", [("ann2", True), ("cnn1", False), ("cnn1", True),
                                         ("cnn2", False), ("cnn2", True)])
def test_the_fused_path_matches_the_flax_layers(name, train):
  fast = step_outputs(name, train, images(), impl="fast")
  ref = step_outputs(name, train, images(), impl="flax")
  np.testing.assert_allclose(fast[0], ref[0], atol=1e-5)
  # BatchNorm's batch statistics put gradients of size ~5 on CNN2's first convs; float32
  # rounding in a different summation order reaches ~1e-5 there.
  assert_trees_close(fast[1], ref[1], atol=2e-5)
  assert_trees_close(fast[2], ref[2], atol=1e-6)


def test_leaky_relu_slope_is_keras_0_1():
  out = layers.LeakyReLU()(jnp.array([-2.0, 3.0]))
  np.testing.assert_allclose(out, [-0.2, 3.0], rtol=1e-6)


def test_reshape_pool_is_bitwise_reduce_window_max_pool():
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  weights = jnp.arange(3.0)

  def pooled_sum(pool: str):
    return jax.jit(jax.value_and_grad(lambda x: (layers.MaxPooling2D(pool)(x) * weights).sum()))

  (value, grad), (ref_value, ref_grad) = pooled_sum("reshape")(x), pooled_sum("reduce_window")(x)
  np.testing.assert_array_equal(value, ref_value)
  np.testing.assert_array_equal(grad, ref_grad)


def test_reshape_pool_matches_reduce_window_in_a_training_model():
  logits, grads, _ = step_outputs("cnn1", True, images(4), impl="flax", pool="reshape")
  ref_logits, ref_grads, _ = step_outputs("cnn1", True, images(4), impl="flax",
                                          pool="reduce_window")
  np.testing.assert_allclose(logits, ref_logits, atol=1e-6)
  assert_trees_close(grads, ref_grads, atol=1e-6)


def test_pools_other_than_the_two_are_refused_and_the_fused_block_pools_by_reshape_only():
  with pytest.raises(ConfigError, match=r"^pool='avg': expected one of reshape, reduce_window$"):
    layers.MaxPooling2D("avg")
  with pytest.raises(ConfigError, match=r"pool='reduce_window' runs only on the plain layers"):
    layers.ConvBlock(1, 4, pool="reduce_window", fused=True, rngs=nnx.Rngs(0))
  with pytest.raises(ConfigError, match=r"pool='reduce_window' runs only on the plain layers"):
    models.create_model("cnn1", seed=0, impl="fast", pool="reduce_window")


def param_grads(name: str, x: jax.Array, **model_args):
  graphdef, params, stats = nnx.split(models.create_model(name, seed=0, **model_args),
                                      nnx.Param, nnx.BatchStat)
  labels = jnp.arange(x.shape[0]) % 10

  def loss(params):
    logits = nnx.merge(graphdef, params, stats, copy=True)(x, train=True)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return jax.jit(jax.grad(loss))(params)


def test_pool_ties_route_the_gradient_to_the_first_maximum_as_reduce_window_does():
  # All-zero images make every conv output 0 plus bias: every pool window is a four-way tie.
  x = jnp.zeros((4, 32, 32, 1)).at[0, 5:20, 3:9].set(1.0)
  assert_trees_close(param_grads("cnn1", x, impl="fast", pool="reshape"),
                     param_grads("cnn1", x, impl="flax", pool="reduce_window"), atol=1e-6)


def test_conv_block_gradients_match_autodiff():
  key = jax.random.key(0)
  x = jax.random.normal(key, (2, 8, 8, 3))
  kernel = jax.random.normal(jax.random.fold_in(key, 1), (3, 3, 3, 4))
  bias = jax.random.normal(jax.random.fold_in(key, 2), (4,))
  weights = jax.random.normal(jax.random.fold_in(key, 3), (2, 4, 4, 4))

  def fused(x, kernel, bias):
    return (fast_layers.conv_block(x, kernel, bias, 0.1, True) * weights).sum()

  def plain(x, kernel, bias):
    y = jax.nn.leaky_relu(fast_layers.conv(x, kernel) + bias, 0.1)
    return (nnx.max_pool(y, (2, 2), strides=(2, 2)) * weights).sum()

  got = jax.grad(fused, argnums=(0, 1, 2))(x, kernel, bias)
  want = jax.grad(plain, argnums=(0, 1, 2))(x, kernel, bias)
  assert_trees_close(got, want, atol=1e-5)


def test_channel_sum_matches_sum_for_any_row_count():
  for shape in ((128, 16, 16, 32), (3, 5, 7)):
    x = jax.random.normal(jax.random.key(0), shape)
    np.testing.assert_allclose(fast_layers.channel_sum(x), x.reshape(-1, shape[-1]).sum(0),
                               rtol=1e-5, atol=1e-4)


def test_model_computations_keep_convolutions_in_xla_unless_the_user_chose(monkeypatch):
  options = xla_flags.model_options()[xla_flags.YNN_FLAG]
  assert "INDIVIDUAL_CONVOLUTION" not in options and "ELTWISE" not in options
  monkeypatch.setenv("XLA_FLAGS", f"--{xla_flags.YNN_FLAG}=-dot")
  assert xla_flags.model_options() is None
