"""The fused fast path against the plain Flax layers: same outputs, gradients and statistics."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from svhn_jax import fast_layers, models, train, xla_flags
from svhn_jax.errors import ConfigError


def images(n: int = 8, seed: int = 0) -> jax.Array:
  return jnp.asarray(np.random.default_rng(seed).uniform(0, 1, (n, 32, 32, 1)), jnp.float32)


def step_outputs(name: str, impl: str, train: bool, x: jax.Array):
  """Logits, parameter gradients and BatchNorm statistics after one forward/backward pass."""
  graphdef, params, stats = nnx.split(models.create_model(name, seed=0, impl=impl),
                                      nnx.Param, nnx.BatchStat)
  labels = jnp.arange(x.shape[0]) % 10

  @jax.jit
  def step(params, stats, x):
    def loss(params):
      model = nnx.merge(graphdef, params, stats, copy=True)
      logits = model(x, train=train, rngs=nnx.Rngs(dropout=jax.random.key(1)))
      ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
      return ce, (logits, nnx.state(model, nnx.BatchStat))
    return jax.grad(loss, has_aux=True)(params)

  grads, (logits, new_stats) = step(params, stats, x)
  return logits, grads, new_stats


def assert_trees_close(a, b, atol):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_allclose(x, y, atol=atol, rtol=1e-4)


@pytest.mark.parametrize("name", tuple(models.MODELS))
@pytest.mark.parametrize("train", (False, True))
def test_fast_path_matches_flax_layers(name, train):
  fast = step_outputs(name, "fast", train, images())
  ref = step_outputs(name, "flax", train, images())
  np.testing.assert_allclose(fast[0], ref[0], atol=1e-5)
  # BatchNorm's batch statistics put gradients of size ~5 on CNN2's first convs; float32
  # rounding in a different summation order reaches ~1e-5 there.
  assert_trees_close(fast[1], ref[1], atol=2e-5)
  assert_trees_close(fast[2], ref[2], atol=1e-6)


def test_pool_ties_route_the_gradient_to_the_first_maximum_as_reduce_window_does():
  # All-zero images make every conv output 0 plus bias: every pool window is a four-way tie.
  x = jnp.zeros((4, 32, 32, 1)).at[0, 5:20, 3:9].set(1.0)
  assert_trees_close(param_grads("cnn1", x, impl="fast", pool="reshape"),
                     param_grads("cnn1", x, impl="flax", pool="reduce_window"), atol=1e-6)


def param_grads(name: str, x: jax.Array, *, impl: str, pool: str):
  graphdef, params, stats = nnx.split(models.create_model(name, seed=0, pool=pool, impl=impl),
                                      nnx.Param, nnx.BatchStat)
  labels = jnp.arange(x.shape[0]) % 10

  def loss(params):
    logits = nnx.merge(graphdef, params, stats, copy=True)(x, train=True)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return jax.jit(jax.grad(loss))(params)


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


def test_unknown_impl_raises_config_error():
  with pytest.raises(ConfigError, match=r"config\.model\.impl.*'cuda'"):
    models.create_model("cnn2", seed=0, impl="cuda")


def test_scan_epoch_takes_the_same_steps_as_the_step_loop():
  model = models.create_model("ann2", seed=0)
  tx = train.make_optimizer(1e-3, 1e-7)
  graphdef, state = train.init_state(model, tx)
  x = images(70)
  split = train.Inputs(x, jnp.arange(70) % 10)
  results = []
  for scan in (False, True):
    trainer = train.Trainer(graphdef, tx, batch_size=32, eval_batch_size=64, scan=scan)
    results.append(trainer.train_epoch(jax.tree.map(jnp.copy, state), split, jax.random.key(0), 0))
  assert_trees_close(results[0][0], results[1][0], atol=1e-6)
  np.testing.assert_allclose(results[0][1]["loss"], results[1][1]["loss"], rtol=1e-6)


def test_model_computations_keep_convolutions_in_xla_unless_the_user_chose(monkeypatch):
  options = xla_flags.model_options()[xla_flags.YNN_FLAG]
  assert "INDIVIDUAL_CONVOLUTION" not in options and "ELTWISE" not in options
  monkeypatch.setenv("XLA_FLAGS", f"--{xla_flags.YNN_FLAG}=-dot")
  assert xla_flags.model_options() is None
