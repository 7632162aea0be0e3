"""Box arithmetic (svhn_jax/boxes.py) against hand-computed cases: the union of format 1's digit
boxes, letterboxing (scale, padding, offsets) and mapping boxes there and back, IoU and GIoU in
numpy and JAX."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from svhn_jax import boxes


def test_the_union_of_digit_boxes_holds_them_all():
  # Two digits: (10, 20) 8x16 and (19, 18) 9x17 -> x 10..28, y 18..36.
  np.testing.assert_array_equal(boxes.union_box([[10, 20, 8, 16], [19, 18, 9, 17]]),
                                [10, 18, 28, 36])
  # A box reaching past the photo's left edge stays as it is; clipping is a separate step.
  union = boxes.union_box([[-3, 5, 10, 10]])
  np.testing.assert_array_equal(union, [-3, 5, 7, 15])
  np.testing.assert_array_equal(boxes.clip_corners(union, (6, 12)), [0, 5, 6, 12])
  for bad in ([], [[1, 2, 3]], [[0, 0, -1, 4]], [[np.nan, 0, 1, 1]]):
    with pytest.raises(ValueError, match="union_box"):
      boxes.union_box(np.asarray(bad, float).reshape(-1, 4) if bad == [] else bad)


def test_spellings_convert_both_ways():
  ltwh = np.array([[10, 18, 18, 18], [0.5, 1, 2, 3]])
  np.testing.assert_array_equal(boxes.corners(ltwh), [[10, 18, 28, 36], [0.5, 1, 2.5, 4]])
  np.testing.assert_array_equal(boxes.ltwh(boxes.corners(ltwh)), ltwh)


def test_letterbox_geometry_keeps_the_aspect_and_centres_the_photo():
  # 200x100 into 64: scale 0.32, resized 64x32, 16 rows of padding above and below.
  assert boxes.letterbox_geometry((200, 100), 64) == boxes.Letterbox(64, 0.32, 0.32, 0, 16)
  # 100x300 into 54: 18x54, 18 columns each side.
  assert boxes.letterbox_geometry((100, 300), 54) == boxes.Letterbox(54, 0.18, 0.18, 18, 0)
  # 131x37 into 54: 54 x round(15.25) = 15 rows, per-axis scales, (54 - 15) // 2 = 19 above.
  geometry = boxes.letterbox_geometry((131, 37), 54)
  assert (geometry.offset_x, geometry.offset_y) == (0, 19)
  assert geometry.scale_x == 54 / 131 and geometry.scale_y == 15 / 37
  # A photo one pixel high still keeps a row.
  assert boxes.letterbox_geometry((500, 1), 10) == boxes.Letterbox(10, 0.02, 1.0, 0, 4)
  for size, photo in ((0, (10, 10)), (10, (0, 10)), (10, (2.5, 3))):
    with pytest.raises(ValueError, match="letterbox_geometry"):
      boxes.letterbox_geometry(photo, size)


def test_letterbox_pads_with_the_photos_mean_and_maps_boxes_there_and_back():
  photo = np.zeros((10, 20, 3), np.uint8)
  photo[:, :10] = 200  # left half bright
  image, geometry = boxes.letterbox(photo, 8, "rgb")
  assert image.shape == (8, 8, 3) and image.dtype == np.uint8
  assert geometry == boxes.Letterbox(8, 0.4, 0.4, 0, 2)
  # Rows 0-1 and 6-7 pad with the mean (100), rows 2-5 hold the photo: bright left, dark right.
  assert (image[:2] == 100).all() and (image[6:] == 100).all()
  assert (image[2:6, :3] == 200).all() and (image[2:6, 5:] == 0).all()
  grey, _ = boxes.letterbox(photo, 8, "grey")
  assert grey.shape == (8, 8) and grey[3, 0] == round(200 * (0.299 + 0.587 + 0.114))
  # The photo's box (5, 0)-(15, 10) is x 2..6 of 8, y 2..6 of 8 in the letterbox.
  np.testing.assert_allclose(boxes.to_letterbox([5, 0, 15, 10], geometry),
                             [0.25, 0.25, 0.75, 0.75])
  np.testing.assert_allclose(boxes.from_letterbox([0.25, 0.25, 0.75, 0.75], geometry),
                             [5, 0, 15, 10])
  many = np.random.default_rng(0).uniform(0, 20, (5, 4))
  np.testing.assert_allclose(boxes.from_letterbox(boxes.to_letterbox(many, geometry), geometry),
                             many)
  with pytest.raises(ValueError, match="rgb"):
    boxes.letterbox(photo[..., 0], 8, "rgb")
  with pytest.raises(ValueError, match="uint8"):
    boxes.letterbox(photo.astype(np.float32), 8)


def test_iou_and_giou_of_hand_computed_pairs_in_numpy_and_jax():
  a = np.array([[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 1, 1], [0, 0, 0, 0]], float)
  b = np.array([[1, 1, 3, 3], [0, 0, 2, 2], [3, 0, 4, 1], [0, 0, 2, 2], [0, 0, 0, 0]], float)
  # Overlap 1 of union 7 in a hull of 9; identical; apart: hull 4x2 = 8, union 5; nested 1/4;
  # both empty.
  want_iou = [1 / 7, 1.0, 0.0, 0.25, 0.0]
  want_giou = [1 / 7 - 2 / 9, 1.0, 0.0 - 3 / 8, 0.25, 0.0]
  np.testing.assert_allclose(boxes.iou(a, b), want_iou)
  np.testing.assert_allclose(boxes.giou(a, b), want_giou)
  assert isinstance(boxes.iou(a, b), np.ndarray)
  jitted = jax.jit(lambda x, y: (boxes.iou(x, y), boxes.giou(x, y)))
  got_iou, got_giou = jitted(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))
  assert isinstance(got_iou, jax.Array) and got_iou.dtype == jnp.float32
  np.testing.assert_allclose(got_iou, want_iou, rtol=1e-6)
  np.testing.assert_allclose(got_giou, want_giou, rtol=1e-6)
  # Broadcast: one box against many; IoU is symmetric.
  np.testing.assert_allclose(boxes.iou(a[0], b), boxes.iou(b, a[0]))
  # Gradients are finite, also where a box is empty.
  grads = jax.grad(lambda x: jnp.sum(boxes.giou(x, jnp.asarray(b))))(jnp.asarray(a))
  assert bool(jnp.isfinite(grads).all())
