"""The distortions for whole numbers (augment.warp_matrix, warp, gaussian_blur, distort) against
cases small enough to compute by hand and against the RandAugment ops they extend, then by key:
per-image draws, determinism, ranges."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from svhn_jax import augment

distort = jax.jit(augment.distort, static_argnames=augment.DISTORTIONS)
warp = jax.jit(augment.warp)
blur = jax.jit(augment.gaussian_blur)


def ramp(axis: int, size: int = 5) -> np.ndarray:
  """A (size, size, 1) image whose value is the column (axis 1) or row (axis 0) index / (size-1)."""
  values = np.arange(size, dtype=np.float32) / (size - 1)
  image = np.broadcast_to(values[None, :] if axis == 1 else values[:, None], (size, size))
  return np.ascontiguousarray(image)[..., None]


def test_scale_two_magnifies_about_the_centre():
  # Output column x reads input column 2 + (x - 2) / 2; on a linear ramp bilinear is exact.
  out = warp(ramp(1), augment.warp_matrix(2.0, 1.0, 0.0, 0.0))
  np.testing.assert_allclose(out[0, :, 0], [0.25, 0.375, 0.5, 0.625, 0.75], atol=1e-6)
  # The aspect stretches columns only: rows of a row ramp do not move.
  np.testing.assert_allclose(warp(ramp(0), augment.warp_matrix(1.0, 2.0, 0.0, 0.0)), ramp(0),
                             atol=1e-6)
  # Scale 1/2 shrinks: column x reads 2 + 2 (x - 2), edges repeated past the image.
  out = warp(ramp(1), augment.warp_matrix(0.5, 1.0, 0.0, 0.0))
  np.testing.assert_allclose(out[0, :, 0], [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)
  # Scale 1 and aspect 1/2: only columns shrink, as a scale of 1/2 does to them.
  np.testing.assert_allclose(warp(ramp(1), augment.warp_matrix(1.0, 0.5, 0.0, 0.0)), out,
                             atol=1e-6)


def test_rotation_and_shear_are_the_randaugment_ops():
  x = jnp.asarray(np.random.default_rng(0).uniform(0, 1, (2, 9, 11, 3)), jnp.float32)
  np.testing.assert_allclose(warp(x, augment.warp_matrix(1.0, 1.0, 12.0, 0.0)),
                             augment.rotate(x, 4.0), atol=1e-5)
  # shear_x's output reads input x + s y: content moving left below the centre, -s here.
  np.testing.assert_allclose(warp(x, augment.warp_matrix(1.0, 1.0, 0.0, 0.15)),
                             augment.shear_x(x, -5.0), atol=1e-5)
  # 90 degrees counter-clockwise of a square image is numpy's rot90.
  square = np.asarray(x[0, :9, :9])
  np.testing.assert_allclose(warp(square, augment.warp_matrix(1.0, 1.0, 90.0, 0.0)),
                             np.rot90(square), atol=1e-5)


def test_warp_matrix_inverts_the_forward_map():
  s, a, degrees, shear = 1.3, 0.8, 7.0, 0.2
  c, n = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
  forward = np.array([[c, -n], [n, c]]) @ np.array([[1, 0], [shear, 1]]) @ np.diag([s, s * a])
  inverse = np.asarray(augment.warp_matrix(s, a, degrees, shear))
  np.testing.assert_allclose(inverse[:, :2] @ forward, np.eye(2), atol=1e-6)
  np.testing.assert_array_equal(inverse[:, 2], [0.0, 0.0])


def test_gaussian_blur_of_an_impulse_is_the_normalized_kernel():
  image = np.zeros((11, 11, 1), np.float32)
  image[5, 5, 0] = 1.0
  k = np.arange(-4, 5)
  weights = np.exp(-k ** 2 / 2.0)
  weights /= weights.sum()  # sigma 1 by hand: 0.054, 0.242, 0.399, 0.242, 0.054 and tails
  out = np.asarray(blur(image, 1.0))[..., 0]
  np.testing.assert_allclose(out[1:10, 1:10], np.outer(weights, weights), atol=1e-6)
  assert abs(out.sum() - 1.0) < 1e-5
  # Sigma 0 is the image itself; a constant image stays constant (edges repeated).
  np.testing.assert_array_equal(blur(image, 0.0), image)
  np.testing.assert_allclose(blur(np.full((6, 7, 3), 0.3, np.float32), 1.7), 0.3, atol=1e-6)
  # One sigma per image.
  both = np.asarray(blur(np.stack([image, image]), jnp.asarray([0.0, 1.0])))
  np.testing.assert_array_equal(both[0], image)
  np.testing.assert_allclose(both[1, 1:10, 1:10, 0], np.outer(weights, weights), atol=1e-6)


def batch(shape=(6, 20, 24, 3), seed=0) -> jax.Array:
  return jnp.asarray(np.random.default_rng(seed).uniform(0, 1, shape), jnp.float32)


RANGES = dict(scale=0.15, aspect=0.15, rotation=5.0, shear=0.15, contrast=0.4, blur=1.0,
              color=0.5)


def test_distort_is_the_key_and_each_image_draws_its_own():
  x = batch()
  key = jax.random.key(3)
  out = distort(x, key, **RANGES)
  assert out.shape == x.shape and out.dtype == x.dtype
  assert 0 <= float(out.min()) and float(out.max()) <= 1
  np.testing.assert_array_equal(out, distort(x, key, **RANGES))
  assert not np.array_equal(out, distort(x, jax.random.key(4), **RANGES))
  # The same image twice in a batch is distorted two ways.
  same = jnp.stack([x[0], x[0]])
  twice = distort(same, key, **RANGES)
  assert not np.array_equal(twice[0], twice[1])
  # All off: the images come back as they were.
  np.testing.assert_array_equal(distort(x, key), x)


def test_each_distortion_is_its_op_at_the_drawn_amount():
  """The draws are seven uniforms per image in [-1, 1] (DISTORTIONS' order), whatever is on."""
  x = batch()
  key = jax.random.key(5)
  u = np.asarray(jax.vmap(lambda k: jax.random.uniform(k, (7,), jnp.float32, -1.0, 1.0))(
      jax.random.split(key, 6)))
  matrices = augment.warp_matrix(np.exp(u[:, 0] * np.log1p(0.2)), 1.0, u[:, 2] * 6.0, 0.0)
  np.testing.assert_allclose(distort(x, key, scale=0.2, rotation=6.0), warp(x, matrices),
                             atol=1e-5)
  np.testing.assert_allclose(distort(x, key, blur=1.5), blur(x, jnp.asarray((u[:, 5] + 1) / 2 * 1.5)),
                             atol=1e-6)
  # Contrast (a blend with the mean luma), then colour (a blend with each pixel's luma).
  luma = np.array([0.299, 0.587, 0.114], np.float32)
  mean = (np.asarray(x) @ luma).mean(axis=(1, 2)).reshape(-1, 1, 1, 1)
  factor = (1 + u[:, 4] * 0.3).reshape(-1, 1, 1, 1)
  contrasted = np.clip(mean + factor * (np.asarray(x) - mean), 0, 1)
  grey = (contrasted @ luma)[..., None]
  factor = (1 + u[:, 6] * 0.4).reshape(-1, 1, 1, 1)
  np.testing.assert_allclose(distort(x, key, contrast=0.3, color=0.4),
                             np.clip(grey + factor * (contrasted - grey), 0, 1), atol=1e-6)
  # Colour leaves grey images as they are.
  g = x[..., :1]
  np.testing.assert_array_equal(distort(g, key, color=0.5), g)


def test_the_geometry_stays_within_its_ranges():
  # A lone bright dot right of the centre moves by no more than the ranges allow.
  image = np.zeros((8, 41, 41, 1), np.float32)
  image[:, 20, 30] = 1.0
  out = np.asarray(distort(jnp.asarray(image), jax.random.key(0), scale=0.1, rotation=5.0))
  for one in out[..., 0]:
    y, x = np.unravel_index(np.argmax(one), one.shape)
    radius = math.hypot(y - 20, x - 20)
    assert 10 / 1.1 - 1 <= radius <= 10 * 1.1 + 1
    assert abs(math.degrees(math.atan2(20 - y, x - 20))) <= 5 + 6  # and a pixel's rounding


@pytest.mark.parametrize("name, value", [("scale", -0.1), ("contrast", 1.0), ("color", 1.5),
                                         ("blur", math.nan)])
def test_bad_amounts_are_refused(name, value):
  with pytest.raises(ValueError, match=f"distort: {name}="):
    augment.distort(batch((1, 4, 4, 1)), jax.random.key(0), **{name: value})
