"""Each augmentation against a case small enough to compute by hand, then the random policies:
per-image draws, determinism by key, ranges, jit and vmap."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from svhn_jax import augment


@functools.partial(jax.jit, static_argnums=0)
def apply(name: str, images, magnitude=0.0) -> jax.Array:
  """augment.OPS[name] compiled as one program: op-by-op dispatch costs seconds per test."""
  return augment.OPS[name](images, magnitude)


rand_augment = jax.jit(augment.rand_augment, static_argnames=("num_ops", "magnitude", "ops"))
random_translate = jax.jit(augment.random_translate, static_argnums=2)
cutout = jax.jit(augment.cutout, static_argnums=2)


def levels(*values) -> np.ndarray:
  """8-bit levels as [0, 1] floats, the way the ops see them."""
  return np.asarray(values, np.float32) / 255


def column(values) -> np.ndarray:
  """A (len, 1, 1) image: one grey pixel per row."""
  return np.asarray(values, np.float32).reshape(-1, 1, 1)


def random_batch(shape=(8, 32, 32, 3), seed=0) -> jax.Array:
  return jnp.asarray(np.random.default_rng(seed).uniform(0, 1, shape), jnp.float32)


def test_invert_is_one_minus_x():
  x = column([0.0, 0.25, 0.5, 1.0])
  np.testing.assert_array_equal(apply("invert", x), 1 - x)


def test_solarize_inverts_levels_at_or_above_the_threshold():
  x = column(levels(0, 100, 127, 128, 200, 255))
  # Magnitude 5: threshold 256 - 128 = 128, PIL's `i >= threshold` side inverted.
  np.testing.assert_allclose(apply("solarize", x, 5.0), column(levels(0, 100, 127, 127, 55, 0)),
                             atol=1e-6)
  np.testing.assert_array_equal(apply("solarize", x, 0.0), x)
  np.testing.assert_allclose(apply("solarize", x, 10.0), 1 - x, atol=1e-7)


def test_posterize_keeps_the_top_bits_of_8bit_levels():
  x = column(levels(0, 37, 128, 200, 255))
  # Magnitude 10 keeps 4 bits (mask 0xF0), magnitude 5 keeps 6 (mask 0xFC).
  np.testing.assert_allclose(apply("posterize", x, 10.0), column(levels(0, 32, 128, 192, 240)),
                             atol=1e-7)
  np.testing.assert_allclose(apply("posterize", x, 5.0), column(levels(0, 36, 128, 200, 252)),
                             atol=1e-7)
  off_grid = column([0.1234, 0.5678])
  np.testing.assert_array_equal(apply("posterize", off_grid, 0.0), off_grid)


def test_autocontrast_stretches_each_channel_and_leaves_a_constant_one():
  x = np.stack([[[0.2, 0.3], [0.4, 0.6]], np.full((2, 2), 0.7), [[0.1, 0.1], [0.3, 0.3]]],
               -1).astype(np.float32)
  out = np.asarray(apply("autocontrast", x))
  np.testing.assert_allclose(out[..., 0], [[0.0, 0.25], [0.5, 1.0]], atol=1e-6)
  np.testing.assert_array_equal(out[..., 1], x[..., 1])
  np.testing.assert_allclose(out[..., 2], [[0.0, 0.0], [1.0, 1.0]], atol=1e-6)


def test_equalize_on_a_known_histogram():
  # Channel 0: 256 pixels at each of the levels 10, 20, 30, 40. PIL: step = (1024 - 256) // 255
  # = 3, and level v maps to (3 // 2 + pixels below v) // 3 = 0, 257 // 3, 513 // 3, 769 // 3.
  four_levels = np.repeat(levels(10, 20, 30, 40), 256).reshape(32, 32)
  # Channel 2: only 24 pixels below the top level, so step = 0 and PIL leaves it unchanged.
  sparse = np.where(np.arange(1024) < 24, 50 / 255, 200 / 255).reshape(32, 32)
  x = np.stack([four_levels, np.full((32, 32), 0.5), sparse], -1).astype(np.float32)
  out = np.asarray(apply("equalize", x))
  expected = np.repeat(levels(0, 85, 171, 255), 256).reshape(32, 32)
  np.testing.assert_allclose(out[..., 0], expected, atol=1e-7)
  np.testing.assert_array_equal(out[..., 1:], x[..., 1:])


def test_brightness_scales_by_the_blend_factor_and_clips():
  x = column([0.2, 0.8])
  # Factor 1 + 0.09 * magnitude.
  np.testing.assert_allclose(apply("brightness", x, 5.0), column([0.29, 1.0]), atol=1e-6)
  np.testing.assert_allclose(apply("brightness", x, -10.0), column([0.02, 0.08]), atol=1e-6)


def test_contrast_blends_with_the_mean_luma():
  x = column([0.2, 0.4, 0.6, 0.8])  # mean 0.5
  np.testing.assert_allclose(apply("contrast", x, 10.0), column([0.0, 0.31, 0.69, 1.0]),
                             atol=1e-6)
  np.testing.assert_allclose(apply("contrast", x, -10.0), column([0.47, 0.49, 0.51, 0.53]),
                             atol=1e-6)
  # Colour: the mean is of the luma 0.299 R + 0.587 G + 0.114 B, here (0.299 + 0.114) / 2.
  rgb = np.array([[[1, 0, 0], [0, 0, 1]]], np.float32)
  mean = (0.299 + 0.114) / 2
  np.testing.assert_allclose(apply("contrast", rgb, -10.0), mean + 0.1 * (rgb - mean), atol=1e-6)


def test_color_blends_with_grey_and_leaves_grey_images():
  red = np.array([[[1, 0, 0]]], np.float32)
  np.testing.assert_allclose(apply("color", red, -10.0),
                             [[[0.299 + 0.1 * 0.701, 0.9 * 0.299, 0.9 * 0.299]]], atol=1e-6)
  grey = column([0.1, 0.7])
  np.testing.assert_allclose(apply("color", grey, 10.0), grey, atol=1e-7)


def test_sharpness_blends_with_the_smooth_filter_inside_the_border():
  constant = np.full((5, 5, 3), 0.3, np.float32)
  for magnitude in (-10.0, 10.0):
    np.testing.assert_allclose(apply("sharpness", constant, magnitude), constant, atol=1e-6)
  impulse = np.zeros((5, 5, 1), np.float32)
  impulse[2, 2] = 1
  # SMOOTH ([[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13) gives the centre 5/13 and its interior
  # neighbours 1/13; the border ring stays 0. Magnitude -10 blends with factor 0.1.
  expected = np.zeros((5, 5), np.float32)
  expected[1:4, 1:4] = 1 / 13 - 0.1 / 13
  expected[2, 2] = 5 / 13 + 0.1 * 8 / 13
  np.testing.assert_allclose(apply("sharpness", impulse, -10.0)[..., 0], expected, atol=1e-6)


def test_rotate_by_90_degrees_is_rot90():
  x = np.arange(25, dtype=np.float32).reshape(5, 5, 1) / 24
  # 3 degrees per magnitude unit: 30 is 90 degrees, counter-clockwise as PIL's Image.rotate.
  np.testing.assert_allclose(apply("rotate", x, 30.0), np.rot90(x), atol=1e-5)
  np.testing.assert_allclose(apply("rotate", x, -30.0), np.rot90(x, -1), atol=1e-5)


def test_shear_moves_a_known_pixel_by_shear_times_its_distance_from_the_centre():
  x = np.zeros((5, 5, 1), np.float32)
  x[4, 3] = 1
  # Magnitude 10: shear 0.3. Row 4 is 2 below the centre, so its output pixel (4, c) reads the
  # input at (4, c + 0.6): the bright pixel lands 0.6 on column 2 and 0.4 on column 3.
  expected = np.zeros((5, 5), np.float32)
  expected[4, 2], expected[4, 3] = 0.6, 0.4
  np.testing.assert_allclose(apply("shear_x", x, 10.0)[..., 0], expected, atol=1e-6)
  flipped = np.zeros((5, 5), np.float32)
  flipped[4, 3], flipped[4, 4] = 0.4, 0.6
  np.testing.assert_allclose(apply("shear_x", x, -10.0)[..., 0], flipped, atol=1e-6)
  np.testing.assert_allclose(apply("shear_y", x.transpose(1, 0, 2), 10.0)[..., 0], expected.T,
                             atol=1e-6)


def test_translate_is_bilinear_with_edge_pixels_repeated():
  x = np.tile(np.arange(10, dtype=np.float32) / 9, (4, 1))[..., None]
  cols = np.arange(10)
  # Magnitude 10: 0.45 * 10 = 4.5 pixels; output column c reads the input at c + 4.5, clamped.
  left = (np.minimum(cols + 4, 9) + np.minimum(cols + 5, 9)) / 18
  right = (np.maximum(cols - 5, 0) + np.maximum(cols - 4, 0)) / 18
  np.testing.assert_allclose(apply("translate_x", x, 10.0)[..., 0], np.tile(left, (4, 1)),
                             atol=1e-6)
  np.testing.assert_allclose(apply("translate_x", x, -10.0)[..., 0], np.tile(right, (4, 1)),
                             atol=1e-6)
  np.testing.assert_allclose(apply("translate_y", x.transpose(1, 0, 2), 10.0)[..., 0],
                             np.tile(left, (4, 1)).T, atol=1e-6)


def test_magnitude_zero_is_the_identity_for_every_op_with_a_magnitude():
  x = random_batch((2, 8, 8, 3))
  names = [n for n in augment.ALL_OPS if n not in ("invert", "autocontrast", "equalize")]
  outs = jax.jit(lambda x: [augment.OPS[name](x, 0.0) for name in names])(x)
  for name, out in zip(names, outs, strict=True):
    np.testing.assert_allclose(out, x, atol=1e-6, err_msg=name)


def test_ops_take_one_magnitude_per_image():
  x = np.arange(25, dtype=np.float32).reshape(1, 5, 5, 1) / 24
  batch = np.concatenate([x, x])
  out = apply("rotate", batch, jnp.array([30.0, -30.0]))
  np.testing.assert_allclose(out[0], np.rot90(x[0]), atol=1e-5)
  np.testing.assert_allclose(out[1], np.rot90(x[0], -1), atol=1e-5)
  out = apply("brightness", batch, jnp.array([0.0, -10.0]))
  np.testing.assert_allclose(out, [x[0], 0.1 * x[0]], atol=1e-6)
  with pytest.raises(ValueError, match="one per image"):
    apply("brightness", batch, jnp.zeros(3))


def test_shift_moves_content_by_whole_pixels_repeating_edges():
  x = np.arange(1, 10, dtype=np.float32).reshape(3, 3, 1)
  # Down 1, left 1: output (y, x) is input (clip(y - 1), clip(x + 1)).
  np.testing.assert_array_equal(augment.shift(x, 1, -1)[..., 0],
                                [[2, 3, 3], [2, 3, 3], [5, 6, 6]])


def test_random_translate_is_an_edge_pad_and_crop_at_a_per_image_offset():
  image = np.arange(25, dtype=np.float32).reshape(5, 5, 1) / 24
  padded = np.pad(image, ((1, 1), (1, 1), (0, 0)), mode="edge")
  crops = {(i, j): padded[i:i + 5, j:j + 5] for i in range(3) for j in range(3)}
  out = np.asarray(random_translate(np.stack([image] * 64), jax.random.key(0), 1))
  seen = set()
  for o in out:
    (offset,) = [k for k, crop in crops.items() if np.array_equal(o, crop)]
    seen.add(offset)
  assert seen == set(crops)
  np.testing.assert_array_equal(random_translate(out, jax.random.key(0), 0), out)


def test_erase_square_zeroes_a_clipped_square_around_a_fixed_centre():
  ones = np.ones((2, 6, 6, 3), np.float32)
  out = np.asarray(augment.erase_square(ones, jnp.array([3, 1]), jnp.array([3, 4]), 3))
  expected = np.ones((2, 6, 6), np.float32)
  expected[0, 2:5, 2:5] = 0  # size 3 around (3, 3)
  expected[1, 0:3, 3:6] = 0  # rows 0..2, columns 3..5 around (1, 4)
  np.testing.assert_array_equal(out, np.repeat(expected[..., None], 3, -1))
  out = np.asarray(augment.erase_square(ones[0], 1, 4, 4))[..., 0]
  expected = np.ones((6, 6), np.float32)
  expected[0:3, 2:6] = 0  # rows -1..2 and columns 2..5, clipped at the top
  np.testing.assert_array_equal(out, expected)


def test_cutout_erases_one_square_per_image_with_uniform_centres():
  ones = np.ones((32, 10, 10, 3), np.float32)
  out = np.asarray(cutout(ones, jax.random.key(1), 4))
  squares = {}
  for cy in range(10):
    for cx in range(10):
      square = np.ones((10, 10, 3), np.float32)
      square[max(cy - 2, 0):cy + 2, max(cx - 2, 0):cx + 2] = 0
      squares[cy, cx] = square
  centres = []
  for o in out:
    (centre,) = [c for c, square in squares.items() if np.array_equal(o, square)]
    centres.append(centre)
  zeroed = (out[..., 0] == 0).sum(axis=(1, 2))
  assert len(set(centres)) > 20
  assert 16 in zeroed and zeroed.min() < 16  # whole squares and squares clipped at a border


def test_validate_ops_names_the_unknown_op_and_lists_the_known_ones():
  assert augment.validate_ops(["rotate", "invert"]) == ("rotate", "invert")
  with pytest.raises(ValueError, match="unknown augmentation op 'flip_x'.*known ops: identity, "
                                       "autocontrast"):
    augment.validate_ops(("rotate", "flip_x"))
  with pytest.raises(ValueError, match="listed twice"):
    augment.validate_ops(("rotate", "rotate"))
  with pytest.raises(ValueError, match="not the string"):
    augment.validate_ops("rotate")


def test_rand_augment_draws_an_op_per_image():
  x = random_batch((1, 6, 6, 1)).repeat(32, axis=0)
  out = np.asarray(rand_augment(x, jax.random.key(0), num_ops=1, magnitude=0,
                                ops=("identity", "invert")))
  inverted = [np.allclose(o, 1 - x[0]) for o in out]
  assert all(inv or np.array_equal(o, x[0]) for o, inv in zip(out, inverted))
  assert 0 < sum(inverted) < 32
  np.testing.assert_array_equal(rand_augment(x, jax.random.key(0), num_ops=0, magnitude=10), x)


def test_rand_augment_draws_signs_and_picks_each_images_geometric_matrix():
  x = random_batch((1, 5, 5, 1)).repeat(24, axis=0)
  out = np.asarray(rand_augment(x, jax.random.key(3), num_ops=1, magnitude=10,
                                ops=("rotate", "shear_x", "brightness")))
  candidates = {(op, m): np.asarray(apply(op, x[0], m))
                for op in ("rotate", "shear_x", "brightness") for m in (10.0, -10.0)}
  seen = set()
  for o in out:
    (match,) = [k for k, c in candidates.items() if np.allclose(o, c, atol=1e-6)]
    seen.add(match)
  assert seen == set(candidates)


@jax.jit
def full_augment(images, key):
  return augment.augment(images, key, translate=2, cutout=8, rand_augment_ops=2,
                         rand_augment_magnitude=9)


def test_augment_under_jit_is_deterministic_by_key_and_stays_in_range():
  x = random_batch()
  a = np.asarray(full_augment(x, jax.random.key(0)))
  assert a.shape == x.shape and a.dtype == np.float32
  assert a.min() >= 0 and a.max() <= 1
  np.testing.assert_array_equal(a, full_augment(x, jax.random.key(0)))
  assert not np.array_equal(a, full_augment(x, jax.random.key(1)))
  assert not np.array_equal(a, x)
  grey = np.asarray(full_augment(x[..., :1], jax.random.key(0)))
  assert grey.shape == (8, 32, 32, 1) and grey.min() >= 0 and grey.max() <= 1


def test_augment_gives_identical_images_different_augmentations():
  x = random_batch((1, 32, 32, 3)).repeat(8, axis=0)
  out = np.asarray(full_augment(x, jax.random.key(0)))
  assert len({o.tobytes() for o in out}) == 8


def test_augment_with_everything_off_is_the_identity():
  x = np.random.default_rng(0).uniform(0, 1, (4, 32, 32, 3)).astype(np.float32)
  np.testing.assert_array_equal(augment.augment(x, jax.random.key(0)), x)
  np.testing.assert_array_equal(
      augment.augment(x, jax.random.key(0), rand_augment_magnitude=10, ops=("rotate",)), x)


def test_augment_vmaps_over_a_leading_axis():
  x = random_batch((2, 4, 32, 32, 3))
  keys = jax.random.split(jax.random.key(0), 2)
  run = functools.partial(augment.augment, translate=1, cutout=4, rand_augment_ops=1,
                          rand_augment_magnitude=5, ops=("equalize", "rotate"))
  stacked = jax.jit(jax.vmap(run))(x, keys)
  for i in range(2):
    np.testing.assert_allclose(stacked[i], jax.jit(run)(x[i], keys[i]), atol=1e-6)


def test_bad_settings_raise_value_errors():
  x = random_batch((2, 8, 8, 1))
  key = jax.random.key(0)
  with pytest.raises(ValueError, match=r"magnitude must be in \[0, 10\]"):
    augment.augment(x, key, rand_augment_ops=1, rand_augment_magnitude=11)
  with pytest.raises(ValueError, match="translate must be >= 0"):
    augment.augment(x, key, translate=-1)
  with pytest.raises(ValueError, match="unknown augmentation op 'hflip'"):
    augment.augment(x, key, ops=("hflip",))
  with pytest.raises(ValueError, match="`ops` is empty"):
    augment.rand_augment(x, key, num_ops=1, magnitude=5, ops=())
  with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
    augment.cutout(x[0], key, 4)
  with pytest.raises(ValueError, match="floating"):
    apply("invert", np.zeros((8, 8, 1), np.uint8))
