"""The four models against the Keras study, and the Wide ResNets against Zagoruyko & Komodakis
2016: the registry, parameter counts, init, train/eval behaviour, compute dtype, the summary."""

import hashlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from configs import default as default_config
from svhn_jax import config as config_lib
from svhn_jax import models, steps, tasks
from svhn_jax.models import study
from svhn_jax.models import wrn as wide
from svhn_jax.errors import ConfigError

# The Keras study's models; the Wide ResNet has its own tests below.
NAMES = ("ann1", "ann2", "cnn1", "cnn2")
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
  assert models.REGISTRY.names() == config_lib.MODEL_NAMES
  assert {name: models.spec(name).convolutional for name in models.REGISTRY.names()} == {
      "ann1": False, "ann2": False, "cnn1": True, "cnn2": True, "wrn": True, "airbench": True,
      "multidigit": True}


@pytest.mark.parametrize("name", NAMES)
def test_param_counts_match_keras(name):
  assert study.param_counts(models.create_model(name, seed=0)) == KERAS_COUNTS[name]


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
  text = study.summary(model, "cnn2-study")
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
  assert study.summary(models.create_model("ann1", seed=0)).startswith('Model: "sequential"')


def test_create_model_is_case_insensitive_and_seeded():
  upper, lower = models.create_model("CNN1", seed=0), models.create_model("cnn1", seed=0)
  np.testing.assert_array_equal(upper.layers[0].conv.kernel[...], lower.layers[0].conv.kernel[...])
  assert models.spec("CNN1") is study.CNN1
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


# --- Wide ResNets (Zagoruyko & Komodakis 2016, arXiv 1605.07146) ---


@nnx.jit(static_argnames="train")
def forward(model: nnx.Module, x: jax.Array, train: bool = False,
            rngs: nnx.Rngs | None = None) -> jax.Array:
  """`model(x, train=train, rngs=rngs)` compiled whole, BatchNorm updates included: on 2 CPU
  cores one compile costs less than the many small ones of running a Wide ResNet op by op."""
  return model(x, train=train, rngs=rngs)


def colour_images(n: int = 4, channels: int = 3, seed: int = 0) -> jax.Array:
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.uniform(0, 1, (n, 32, 32, channels)), jnp.float32)


def wrn(depth: int = 10, width: int = 1, channels: int = 1, **options) -> study.Sequential:
  return models.create_model("wrn", seed=0, channels=channels, depth=depth, width=width,
                             **options)


def abstract_wrn(depth: int, width: int, channels: int) -> study.Sequential:
  """The model's shapes without its arrays: counts WRN-28-10's 36M parameters in a blink."""
  return nnx.eval_shape(lambda: wrn(depth, width, channels))


def wrn_counts_by_hand(depth: int, width: int, channels: int) -> tuple[int, int, int]:
  """(total, trainable, non-trainable) of WRN-depth-width counted from the paper's architecture
  (Table 1 and Fig. 1c): a 3x3 conv c -> 16; three groups of n = (depth - 4) / 6 pre-activation
  blocks BN(cin) conv3x3(cin -> cout) BN(cout) conv3x3(cout -> cout), plus a 1x1 projection
  cin -> cout where the width changes; BN(64k); Dense(64k -> 10). Convolutions have no bias;
  each BatchNorm has a trainable scale and bias and a non-trainable running mean and variance."""
  n = (depth - 4) // 6
  convs, bn_channels = 3 * 3 * channels * 16, 0
  cin = 16
  for cout in (16 * width, 32 * width, 64 * width):
    for _ in range(n):
      convs += 3 * 3 * cin * cout + 3 * 3 * cout * cout + (cin * cout if cin != cout else 0)
      bn_channels += cin + cout
      cin = cout
  bn_channels += cin
  dense = cin * 10 + 10
  trainable = convs + 2 * bn_channels + dense
  return trainable + 2 * bn_channels, trainable, 2 * bn_channels


@pytest.mark.parametrize("depth, width, channels", [
    (10, 1, 1), (10, 2, 3), (16, 1, 1), (16, 4, 3), (22, 3, 1), (28, 2, 1), (28, 10, 3),
    (40, 4, 3)])
def test_wrn_param_counts_match_the_architecture_counted_by_hand(depth, width, channels):
  assert (study.param_counts(abstract_wrn(depth, width, channels))
          == wrn_counts_by_hand(depth, width, channels))


def test_wrn_param_counts_match_published_numbers():
  # Trainable parameters on colour images (CIFAR's 3 channels). Exact counts of other
  # implementations of the authors' architecture: leesc912/ResNet's CIFAR/Wide_ResNet/Readme.md
  # (all four), osmr/imgclsmob's README (WRN-16-10, WRN-28-10).
  exact = {(28, 10): 36_479_194, (22, 8): 17_158_106, (40, 2): 2_243_546, (16, 10): 17_116_634}
  for (depth, width), count in exact.items():
    assert study.param_counts(abstract_wrn(depth, width, 3))[1] == count
  # The paper's own, in millions (arXiv 1605.07146v4, the #params of its CIFAR tables; quoted
  # beside the paper's test errors in gahaalt/cifar-vs-tensorflow2's README and leesc912/ResNet's).
  paper = {(28, 10): 36.5, (16, 8): 11.0, (40, 4): 8.9, (16, 4): 2.7, (22, 8): 17.2,
           (40, 2): 2.2, (16, 10): 17.1}
  for (depth, width), millions in paper.items():
    trainable = study.param_counts(abstract_wrn(depth, width, 3))[1]
    assert round(trainable / 1e6, 1) == millions, (depth, width, trainable)


@pytest.mark.parametrize("depth", [4, 9, 12, 27, 29, 0, -2])
def test_wrn_depth_not_6n_plus_4_is_refused(depth):
  with pytest.raises(ConfigError, match=rf"^config\.model\.wrn\.depth={depth}: a Wide ResNet's "
                                        r"depth is 6n\+4 with n >= 1 "
                                        r"\(10, 16, 22, 28, 40, \.\.\.\)$"):
    models.create_model("wrn", seed=0, depth=depth)


def test_wrn_refuses_width_dropout_and_dtype_it_cannot_use():
  with pytest.raises(ConfigError, match=r"^config\.model\.wrn\.width=0: expected a whole number"):
    wrn(width=0)
  with pytest.raises(ConfigError, match=r"^config\.model\.wrn\.dropout=1\.0: expected a number in"):
    wrn(dropout=1.0)
  with pytest.raises(ConfigError, match=r"^config\.train\.compute_dtype=.*float16.*: expected "
                                        r"float32 or bfloat16$"):
    wrn(dtype=jnp.float16)


@pytest.mark.parametrize("channels", [1, 3])
def test_wrn_logits_shape_and_dtype_for_grey_and_colour(channels):
  model = wrn(channels=channels, dropout=0.3)
  x = colour_images(3, channels)
  for logits in (forward(model, x), forward(model, x, train=True, rngs=dropout_rngs(0))):
    assert logits.shape == (3, 10) and logits.dtype == jnp.float32
    assert np.all(np.isfinite(logits))
  assert model.layers[0].kernel.shape == (3, 3, channels, 16)


def test_wrn_stages_halve_the_maps_and_widen_by_k():
  model = wrn(depth=16, width=2)
  x = jax.ShapeDtypeStruct((1, 32, 32, 1), jnp.float32)
  shapes = []
  for layer in model.layers:
    x = jax.eval_shape(lambda x, layer=layer: layer(x), x)
    shapes.append(x.shape[1:])
  # stem, 2 blocks per group (n = 2), BN-ReLU, pool, Dense.
  assert shapes == [(32, 32, 16), (32, 32, 32), (32, 32, 32), (16, 16, 64), (16, 16, 64),
                    (8, 8, 128), (8, 8, 128), (8, 8, 128), (128,), (10,)]
  blocks = model.layers[1:7]
  # A projection wherever the width changes (every group's first block here, k > 1).
  assert [block.shortcut is not None for block in blocks] == [True, False] * 3
  # k = 1: the first group keeps 16 channels at stride 1, so its shortcut is the identity.
  assert wrn(depth=10, width=1).layers[1].shortcut is None


def test_wrn_stride_two_convs_pad_like_torch():
  # Torch pads a 3x3 conv 1 on every side, so at stride 2 output (0, 0) reads input rows and
  # columns -1..1; flax's 'SAME' would read 0..2.
  conv = wide.WideConv(1, 1, 3, 2, rngs=nnx.Rngs(0))
  x = colour_images(1, 1)
  y = conv(x)
  kernel = np.asarray(conv.kernel[...])[:, :, 0, 0]
  assert y.shape == (1, 16, 16, 1)
  np.testing.assert_allclose(y[0, 0, 0, 0], np.sum(kernel[1:, 1:] * np.asarray(x)[0, :2, :2, 0]),
                             rtol=1e-5)
  np.testing.assert_allclose(y[0, 1, 1, 0], np.sum(kernel * np.asarray(x)[0, 1:4, 1:4, 0]),
                             rtol=1e-5)


def test_wrn_init_follows_the_authors_code():
  model = wrn(depth=10, width=4)
  convs = [m for _, m in nnx.iter_modules(model) if isinstance(m, nnx.Conv)]
  norms = [m for _, m in nnx.iter_modules(model) if isinstance(m, nnx.BatchNorm)]
  assert len(convs) == 1 + 3 * 3 and len(norms) == 3 * 2 + 1
  for conv in convs:
    assert conv.bias is None
    kernel = np.asarray(conv.kernel[...])
    std = math.sqrt(2 / math.prod(kernel.shape[:-1]))  # He et al.: 2 / fan-in
    np.testing.assert_allclose(kernel.std(), std, rtol=0.1 if kernel.size > 2000 else 0.3)
  # Plain normal, not jax's he_normal (truncated at 2 std): 590k draws reach past 4 std.
  largest = max((np.asarray(conv.kernel[...]) for conv in convs), key=np.size)
  assert largest.shape == (3, 3, 256, 256)
  assert np.abs(largest).max() > 4 * math.sqrt(2 / (9 * 256))
  for norm in norms:
    np.testing.assert_array_equal(norm.scale[...], 1.0)
    np.testing.assert_array_equal(norm.bias[...], 0.0)
    assert (norm.momentum, norm.epsilon) == (0.9, 1e-5)
  dense = model.layers[-1]
  bound = 1 / math.sqrt(256)  # Torch's nn.Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
  kernel = np.asarray(dense.kernel[...])
  assert kernel.shape == (256, 10) and np.abs(kernel).max() <= bound
  assert np.abs(kernel).max() > 0.9 * bound
  np.testing.assert_array_equal(dense.bias[...], 0.0)


def test_wrn_batchnorm_uses_batch_stats_in_training_and_running_ones_in_eval():
  model = wrn()
  x = images(8)
  before = batch_stats(model)
  eval_logits = forward(model, x)
  for old, new in zip(before, batch_stats(model)):
    np.testing.assert_array_equal(old, new)
  stem = np.asarray(model.layers[0](x))
  train_logits = forward(model, x, train=True)
  assert not np.allclose(eval_logits, train_logits)
  assert all(not np.array_equal(old, new) for old, new in zip(before, batch_stats(model)))
  # Torch's momentum 0.1: running = 0.9 running + 0.1 batch (biased variance, as flax keeps it).
  first = model.layers[1].norm1
  np.testing.assert_allclose(first.mean[...], 0.1 * stem.mean((0, 1, 2)), rtol=1e-4, atol=1e-7)
  np.testing.assert_allclose(first.var[...], 0.9 + 0.1 * stem.var((0, 1, 2)), rtol=1e-4)
  # Training mode normalizes by the batch: the same batch gives the same logits again.
  np.testing.assert_allclose(forward(model, x, train=True), train_logits, rtol=1e-5, atol=1e-6)


def test_wrn_dropout_changes_outputs_only_in_training_with_a_key():
  model = wrn(dropout=0.3)
  x = images()
  assert sum(isinstance(m, nnx.Dropout) for _, m in nnx.iter_modules(model)) == 3
  first = forward(model, x, train=True, rngs=dropout_rngs(0))
  np.testing.assert_array_equal(first, forward(model, x, train=True, rngs=dropout_rngs(0)))
  assert not np.allclose(first, forward(model, x, train=True, rngs=dropout_rngs(1)))
  np.testing.assert_array_equal(forward(model, x), forward(model, x, rngs=dropout_rngs(1)))
  # Without dropout there is no Dropout layer, and training needs no key.
  plain = wrn()
  assert not any(isinstance(m, nnx.Dropout) for _, m in nnx.iter_modules(plain))
  np.testing.assert_array_equal(forward(plain, x, train=True),
                                forward(plain, x, train=True, rngs=dropout_rngs(5)))


def test_wrn_is_determined_by_its_seed():
  a, b = (models.create_model("wrn", seed=3, depth=10, width=1) for _ in range(2))
  c = models.create_model("wrn", seed=4, depth=10, width=1)
  for x, y in zip(jax.tree.leaves(nnx.state(a)), jax.tree.leaves(nnx.state(b)), strict=True):
    np.testing.assert_array_equal(x, y)
  np.testing.assert_array_equal(forward(a, images()), forward(b, images()))
  assert not np.array_equal(a.layers[0].kernel[...], c.layers[0].kernel[...])


def test_wrn_state_is_exactly_params_and_batch_stats():
  model = wrn(dropout=0.3)
  graphdef, params, stats, rest = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
  assert not jax.tree.leaves(rest)
  assert jax.tree.leaves(stats)
  graphdef, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  np.testing.assert_array_equal(forward(nnx.merge(graphdef, params, stats), images()),
                                forward(model, images()))


def test_wrn_bfloat16_computes_in_bfloat16_with_float32_weights_and_logits():
  x = colour_images(4)
  full = wrn(channels=3)
  half = wrn(channels=3, dtype="bfloat16")
  assert {leaf.dtype for leaf in jax.tree.leaves(nnx.state(half))} == {jnp.dtype(jnp.float32)}
  for a, b in zip(jax.tree.leaves(nnx.state(full)), jax.tree.leaves(nnx.state(half)), strict=True):
    np.testing.assert_array_equal(a, b)  # same seed, same weights
  assert jax.eval_shape(lambda x: half.layers[1](half.layers[0](x)), x).dtype == jnp.bfloat16
  assert models.create_model("wrn", seed=0, depth=10, width=1,
                             dtype=jnp.bfloat16).layers[0].dtype == jnp.bfloat16
  for train in (False, True):
    reference, logits = forward(full, x, train=train), forward(half, x, train=train)
    assert logits.dtype == jnp.float32
    # bfloat16 keeps 8 bits of mantissa: ~0.4% per rounding, a few percent after 10 layers.
    np.testing.assert_allclose(logits, reference, atol=0.03 * np.abs(reference).max())
  for a, b in zip(batch_stats(full), batch_stats(half), strict=True):
    assert b.dtype == np.float32
    np.testing.assert_allclose(a, b, rtol=0.03, atol=0.03)


def test_wrn_trains_under_jit_through_the_product_loss():
  graphdef, params, stats = nnx.split(wrn(dropout=0.1), nnx.Param, nnx.BatchStat)
  x, labels = images(16), jnp.arange(16) % 10

  @jax.jit
  def sgd_step(params, stats, key):
    (loss, (_, stats)), grads = jax.value_and_grad(
        lambda p: steps.loss_and_logits(graphdef, p, stats, x, labels, train=True, key=key,
                                        task=tasks.get("digit")),
        has_aux=True)(params)
    return jax.tree.map(lambda p, g: p - 0.1 * g, params, grads), stats, loss

  losses = []
  for i in range(6):
    params, stats, loss = sgd_step(params, stats, jax.random.key(i))
    losses.append(float(loss))
  assert all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_wrn_summary_has_a_row_per_block_and_the_totals():
  model = wrn(depth=16, width=2)
  text = study.summary(model, "wrn-16-2")
  total, trainable, non_trainable = study.param_counts(model)
  assert (total, trainable, non_trainable) == wrn_counts_by_hand(16, 2, 1)
  for expected in (f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                   f"Non-trainable params: {non_trainable:,}"):
    assert expected in text
  rows = [line.split() for line in text.splitlines()[4:-5]]
  assert [row[0] for row in rows] == [
      "wide_conv", "wide_block", "wide_block_1", "wide_block_2", "wide_block_3", "wide_block_4",
      "wide_block_5", "batch_norm_re_lu", "global_average_pooling2d", "logits"]
  assert rows[0][2:] == ["(None,", "32,", "32,", "16)", "144"]
  assert rows[3][2:6] == ["(None,", "16,", "16,", "64)"]
  assert rows[-1][2:] == ["(None,", "10)", "1,290"]
  assert sum(int(row[-1].replace(",", "")) for row in rows) == total


def assert_same_model(a: nnx.Module, b: nnx.Module) -> None:
  """Same weights, and the same structure and static attributes (fused, pool, rates, dtypes):
  the same function of its inputs, without running either."""
  for x, y in zip(jax.tree.leaves(nnx.state(a)), jax.tree.leaves(nnx.state(b)), strict=True):
    np.testing.assert_array_equal(x, y)
  assert nnx.graphdef(a) == nnx.graphdef(b)


def test_each_builder_takes_its_own_options_only():
  with pytest.raises(TypeError, match="depth"):
    models.create_model("cnn2", seed=0, depth=16)
  with pytest.raises(TypeError, match="impl"):
    models.create_model("wrn", seed=0, impl="fast")
  # config.model's other blocks reach no builder: a study model reads impl alone.
  config = default_config.get_config()
  config.model.wrn.depth, config.model.reader.size = 12, "huge"
  for name in NAMES:
    config.model.name = name
    assert_same_model(models.build(config.model, seed=0, channels=1, dtype="bfloat16"),
                      models.create_model(name, seed=0))


def test_build_builds_config_model():
  config = default_config.get_config()
  config.model.name, config.model.wrn.depth, config.model.wrn.width = "wrn", 10, 2
  config.model.wrn.dropout = 0.2
  built = models.build(config.model, seed=1, channels=3, dtype="bfloat16")
  assert study.param_counts(built) == wrn_counts_by_hand(10, 2, 3)
  assert_same_model(built, models.create_model("wrn", seed=1, channels=3, depth=10, width=2,
                                               dropout=0.2, dtype=jnp.bfloat16))
  assert not nnx.graphdef(built) == nnx.graphdef(
      models.create_model("wrn", seed=1, channels=3, depth=10, width=2, dropout=0.2))
  config.model.name = "cnn2"
  assert_same_model(models.build(config.model, seed=0, channels=1),
                    models.create_model("cnn2", seed=0))
  config.model.name, config.model.wrn.depth = "wrn", 12
  with pytest.raises(ConfigError, match=r"^config\.model\.wrn\.depth=12"):
    models.build(config.model, seed=0, channels=1)


def test_per_image_standardization_matches_tensorflows_formula_by_hand():
  # Image 0: values 0, 2, 4, 6 (mean 3, population std sqrt(5)); image 1 is flat, so its std
  # (0) is floored at 1 / sqrt(4) = 0.5 and it maps to zeros.
  x = jnp.asarray([[0.0, 2.0, 4.0, 6.0], [0.75, 0.75, 0.75, 0.75]], jnp.float32).reshape(2, 2, 2, 1)
  out = wide.PerImageStandardization()(x)
  assert out.shape == (2, 2, 2, 1) and out.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(out[0]).ravel(), np.array([-3, -1, 1, 3]) / math.sqrt(5),
                             rtol=1e-6)
  np.testing.assert_array_equal(np.asarray(out[1]), np.zeros((2, 2, 1), np.float32))


def test_wrn_standardize_makes_logits_blind_to_each_crops_contrast_and_level():
  config = default_config.get_config()
  config.model.name, config.model.wrn.depth, config.model.wrn.width = "wrn", 10, 1
  config.model.wrn.standardize = True
  model = models.build(config.model, seed=0, channels=1)
  plain = models.create_model("wrn", seed=0, depth=10, width=1)
  assert isinstance(model.layers[0], wide.PerImageStandardization)
  assert study.param_counts(model) == study.param_counts(plain)  # no parameters of its own
  x = images(3)
  # Each crop rescaled about a level of its own: a faint and a stark version of one crop.
  scaled = x * jnp.asarray([0.2, 1.0, 3.0]).reshape(3, 1, 1, 1) + jnp.asarray(
      [0.4, -0.1, 0.05]).reshape(3, 1, 1, 1)
  np.testing.assert_allclose(np.asarray(model(scaled)), np.asarray(model(x)), rtol=2e-4,
                             atol=2e-5)
  assert not np.allclose(np.asarray(plain(scaled)), np.asarray(plain(x)), atol=1e-3)


# --- The package's interface: checkpoint layout, outputs, a model added from outside ---

# The parameter and BatchNorm-statistic key paths of each model as main's models.py and
# number_models.py built them before the models package (commit ebb8d3d; built at tiny size with
# nnx.eval_shape): sha256 of the paths joined by newlines, and their count. Equal paths are what
# lets a checkpoint written before the move restore.
MAIN_TREE_PATHS = {
    "ann1": ("176564b8ca8657b9", 6),
    "ann2": ("7d3f3d5aed2df3a4", 16),
    "cnn1": ("4de3fda4bcdd9ef8", 8),
    "cnn2": ("dbc36c34ea1351fc", 20),
    "wrn-10-1": ("afe4b52160cc93e2", 39),
    "multidigit-small": ("75896f955827b006", 34),
    "multidigit-paper": ("ea282ef9db653dbc", 56),
}


def tree_paths(model: nnx.Module) -> list[str]:
  _, params, stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  return [jax.tree_util.keystr(path) for tree in (params, stats)
          for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


TREE_CONFIGS = {
    "ann1": {}, "ann2": {}, "cnn1": {}, "cnn2": {},
    "wrn-10-1": {"name": "wrn", "wrn": {"depth": 10, "width": 1, "dropout": 0.3,
                                        "standardize": True}},
    "multidigit-small": {"name": "multidigit", "reader": {"size": "small", "dropout": 0.2}},
    "multidigit-paper": {"name": "multidigit", "reader": {"size": "paper", "dropout": 0.0}},
}


def tree_model_cfg(key: str) -> dict:
  return {"name": key, "impl": "auto", **TREE_CONFIGS[key]}


@pytest.mark.parametrize("key", list(TREE_CONFIGS))
def test_state_tree_paths_are_mains(key):
  paths = tree_paths(nnx.eval_shape(lambda: models.build(tree_model_cfg(key), seed=0, channels=1)))
  digest = hashlib.sha256("\n".join(paths).encode()).hexdigest()[:16]
  assert (digest, len(paths)) == MAIN_TREE_PATHS[key], paths


@pytest.mark.parametrize("name, size", [("ann1", 32), ("cnn2", 32), ("wrn", 32),
                                        ("multidigit", 54)])
def test_outputs_gives_a_task_its_logits_and_defaults_to_the_models_own(name, size):
  model_cfg = {"name": name, "impl": "auto",
               "wrn": {"depth": 10, "width": 1, "dropout": 0.0, "standardize": False},
               "reader": {"size": "small", "dropout": 0.0}}
  default = models.build(model_cfg, seed=0, channels=1)
  assert_same_model(default, models.build(model_cfg, seed=0, channels=1,
                                          outputs=models.spec(name).outputs))
  two = models.build(model_cfg, seed=0, channels=1, outputs=2)
  x = jnp.zeros((3, size, size, 1), jnp.float32)
  assert two(x).shape == (3, 2)
  assert default(x).shape == (3, 57 if name == "multidigit" else 10)


def test_a_model_outside_the_package_builds_from_its_spec():
  """tests/toy_model.py: one module, named by a 'module:attribute' spec; the config accepts it
  and `models.build` passes a sample of the data through."""
  config = default_config.get_config()
  config.model.name = "tests.toy_model:MODEL"
  config_lib.validate(config)
  sample = jnp.zeros((4, 32, 32, 1), jnp.float32)
  model = models.build(config.model, seed=0, channels=1, outputs=2, sample=sample)
  assert model(sample).shape == (4, 2)
  assert study.param_counts(model)[0] == 32 * 32 * 8 + 8 + 8 * 2 + 2
  assert not models.spec("tests.toy_model:MODEL").convolutional


def test_a_model_outside_the_package_trains_through_the_trainer(tiny_h5, tmp_path):
  from support import metrics_rows, tiny_config
  from svhn_jax import train

  config = tiny_config("ann1", tiny_h5, epochs=1)
  config.model.name = "tests.toy_model:MODEL"
  train.train_and_evaluate(config, tmp_path / "run")
  assert [row["epoch"] for row in metrics_rows(tmp_path / "run")] == [1]
  assert (tmp_path / "run" / "model_summary.txt").read_text().startswith('Model: "tests.')


def test_unknown_specs_and_non_models_are_one_line_errors():
  with pytest.raises(ConfigError, match=r"^config\.model\.name='tests\.nowhere:MODEL': cannot "
                                        "import"):
    models.spec("tests.nowhere:MODEL")
  with pytest.raises(ConfigError, match=r"^config\.model\.name='tests\.toy_model:HIDDEN': "
                                        r"tests\.toy_model:HIDDEN is of type int; expected an "
                                        r"instance of svhn_jax\.models\.ModelSpec$"):
    models.spec("tests.toy_model:HIDDEN")



def test_a_model_outside_the_package_reads_its_own_block_and_a_resume_compares_it():
  """tests/toy_model.py:SIZED takes its width from config.model.toy_mlp, a block its config
  adds; validation accepts the block, the builder checks it, and a resume refuses a change."""
  import ml_collections
  from configs import ann1
  from svhn_jax import config as config_lib
  config = ann1.get_config()
  config.model.name = "tests.toy_model:SIZED"
  with config.unlocked():
    config.model.toy_mlp = ml_collections.ConfigDict({"hidden": 5})
  config_lib.validate(config)
  model = models.build(config.model, seed=0, channels=1)
  assert study.param_counts(model)[0] == 1024 * 5 + 5 + 5 * 10 + 10
  saved = config_lib.to_dict(config)
  config.model.toy_mlp.hidden = 6
  assert config_lib.resume_conflicts(saved, config_lib.to_dict(config)) == [
      "model.toy_mlp.hidden: 5 -> 6"]
  config.model.toy_mlp.hidden = 0
  with pytest.raises(ConfigError, match=r"^config\.model\.toy_mlp\.hidden=0: expected a whole "):
    models.build(config.model, seed=0, channels=1)
