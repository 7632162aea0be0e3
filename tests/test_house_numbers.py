"""Tests for svhn_jax.house_numbers: the crop box, the 64x64 crop, the length and digit labels,
the 54x54 crops and whole splits, on hand-computed cases, small made photos and SVHN's real
sample photos."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from PIL import Image

from svhn_jax import house_numbers as hn
from svhn_jax.datasets import digit_struct, photos
from svhn_jax.transforms import luma
import official_files as files
from support import SHARED_DATA


# ---------------------------------------------------------------------------------------------
# Boxes

def test_number_box_widens_the_union_by_the_margin_on_each_side():
  boxes = np.array([[10, 20, 10, 30], [22, 18, 12, 30]], np.float32)
  # Union: x 10..34, y 18..50, so 24 x 32; 15% a side is 3.6 px in x and 4.8 px in y.
  np.testing.assert_allclose(hn.number_box(boxes, 0.0), [10, 18, 24, 32])
  np.testing.assert_allclose(hn.number_box(boxes), [6.4, 13.2, 31.2, 41.6])
  np.testing.assert_allclose(hn.number_box(boxes, 0.5), [-2, 2, 48, 64])
  # In a 100 x 50 photo the widened bottom (54.8) is cut to 50.
  np.testing.assert_allclose(hn.number_box(boxes, 0.15, (100, 50)), [6.4, 13.2, 31.2, 36.8])
  assert hn.number_box(boxes).dtype == np.float64


def test_min_aspect_widens_a_narrow_box_about_its_centre_before_clipping():
  digit = np.array([[40, 10, 10, 30]], np.float32)  # one digit, 10 x 30, centre x 45
  # 15% a side: 13 x 39 from x 38.5; widened to 39 wide about x 45: 25.5 .. 64.5.
  np.testing.assert_allclose(hn.number_box(digit, 0.15, min_aspect=1.0), [25.5, 5.5, 39, 39])
  np.testing.assert_allclose(hn.number_box(digit, 0.0, min_aspect=0.5), [37.5, 10, 15, 30])
  # Already wide enough: unchanged; in a 60-wide photo the widened box is cut at its right edge.
  wide = np.array([[0, 0, 50, 20]], np.float32)
  np.testing.assert_allclose(hn.number_box(wide, 0.0, min_aspect=1.0), [0, 0, 50, 20])
  np.testing.assert_allclose(hn.number_box(digit, 0.15, (60, 100), 1.0), [25.5, 5.5, 34.5, 39])
  for bad in (-1.0, float("nan")):
    with pytest.raises(ValueError, match="min_aspect"):
      hn.number_box(digit, 0.15, min_aspect=bad)


def test_number_box_of_boxes_reaching_outside_the_photo():
  # Left of and above the photo (SVHN has negative left and top): the union is taken first.
  np.testing.assert_allclose(hn.number_box(np.array([[-5, -2, 10, 30]]), 0.15, (100, 50)),
                             [0, 0, 6.5, 32.5])
  # Past the right and bottom edges: x 87..113 and y 37..63 before the cut.
  np.testing.assert_allclose(hn.number_box(np.array([[90, 40, 20, 20]]), 0.15, (100, 50)),
                             [87, 37, 13, 13])
  # Larger than the photo on every side: the whole photo.
  np.testing.assert_allclose(hn.number_box(np.array([[-10, -10, 120, 70]]), 0.0, (100, 50)),
                             [0, 0, 100, 50])


def test_zero_size_and_outside_boxes_become_one_pixel_inside_the_photo():
  zero = np.array([[10, 5, 0, 0]], np.float32)
  np.testing.assert_allclose(hn.number_box(zero, 0.15), [10, 5, 0, 0])
  np.testing.assert_allclose(hn.number_box(zero, 0.15, (100, 50)), [9.5, 4.5, 1, 1])
  # Zero width on the photo's edge: the pixel column next to the edge, height kept.
  np.testing.assert_allclose(hn.number_box(np.array([[0, 5, 0, 10]]), 0.0, (100, 50)),
                             [0, 5, 1, 10])
  np.testing.assert_allclose(hn.clip_box([100, 5, 0, 10], (100, 50)), [99, 5, 1, 10])
  # Wholly left of and below the photo: the nearest pixel column and row.
  np.testing.assert_allclose(hn.clip_box([-30, 60, 10, 10], (100, 50)), [0, 49, 1, 1])
  # Half a pixel wide inside the photo: a pixel about its centre.
  np.testing.assert_allclose(hn.clip_box([20, 10, 0.5, 8], (100, 50)), [19.75, 10, 1, 8])
  # Every such box can be cropped.
  photo = np.full((50, 100, 3), 90, np.uint8)
  for box in ([9.5, 4.5, 1, 1], [0, 49, 1, 1], [99, 5, 1, 10]):
    assert (hn.crop_number(photo, box) == 90).all()


@pytest.mark.parametrize("boxes, fragment", [
    (np.zeros((0, 4)), "k >= 1"),
    (np.zeros(4), "(k, 4)"),
    (np.array([[0, 0, -1, 5]]), "width and height >= 0"),
    (np.array([[0, np.nan, 1, 5]]), "finite"),
])
def test_number_box_refuses_bad_boxes(boxes, fragment):
  with pytest.raises(ValueError, match="number_box") as info:
    hn.number_box(boxes)
  assert fragment in str(info.value)


def test_bad_margins_and_photo_sizes_raise():
  boxes = np.array([[0, 0, 5, 5]])
  with pytest.raises(ValueError, match="margin"):
    hn.number_box(boxes, -0.1)
  with pytest.raises(ValueError, match="margin"):
    hn.number_box(boxes, float("inf"))
  for size in ((0, 10), (10.5, 10), (10,)):
    with pytest.raises(ValueError, match="photo_size"):
      hn.number_box(boxes, 0.15, size)
  with pytest.raises(ValueError, match="clip_box"):
    hn.clip_box([0, 0, -1, 1], (10, 10))


def test_real_svhn_boxes_hand_computed():
  """SVHN train/1.png (741 x 350, "19"): boxes (246, 77, 81, 219) and (323, 81, 96, 219)."""
  boxes = np.array([[246, 77, 81, 219], [323, 81, 96, 219]], np.float32)
  # Union x 246..419 (173), y 77..300 (223); widened by 25.95 and 33.45 px a side.
  np.testing.assert_allclose(hn.number_box(boxes, 0.15, (741, 350)),
                             [220.05, 43.55, 224.9, 289.9], rtol=1e-12)


# ---------------------------------------------------------------------------------------------
# Pixels

def test_crop_number_shapes_dtypes_and_grey_by_luma():
  photo = np.random.default_rng(0).integers(0, 256, (80, 200, 3), np.uint8)
  box = [50.5, 10.25, 30, 40]
  grey = hn.crop_number(photo, box)
  rgb = hn.crop_number(photo, box, color="rgb")
  assert grey.shape == (64, 64) and grey.dtype == np.uint8
  assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
  np.testing.assert_array_equal(grey, luma(rgb))
  np.testing.assert_array_equal(grey, np.asarray(Image.fromarray(rgb).convert("L")))
  assert hn.crop_number(photo, box, size=32, color="rgb").shape == (32, 32, 3)
  assert hn.crop_number(photo[..., 0], box).shape == (64, 64)


def test_crop_number_takes_the_box_and_ignores_the_aspect_ratio():
  # The left 20 columns red, the rest blue: a box inside the red part is all red.
  photo = np.zeros((40, 100, 3), np.uint8)
  photo[:, :20] = (200, 0, 0)
  photo[:, 20:] = (0, 0, 200)
  np.testing.assert_array_equal(hn.crop_number(photo, [2, 3, 15, 30], color="rgb"),
                                np.broadcast_to(np.uint8([200, 0, 0]), (64, 64, 3)))
  assert (hn.crop_number(photo, [2, 3, 15, 30]) == 60).all()  # 0.299 * 200, rounded
  # A box of the photo's own size at whole pixels is copied pixel for pixel.
  pattern = np.random.default_rng(1).integers(0, 256, (128, 128, 3), np.uint8)
  np.testing.assert_array_equal(hn.crop_number(pattern, [32, 16, 64, 64], color="rgb"),
                                pattern[16:80, 32:96])
  # A 128 x 32 box fills the 64 x 64 output: columns squeezed 2:1, rows stretched 1:2.
  ramp = np.repeat(np.repeat(np.arange(128, dtype=np.uint8)[None, :], 32, 0)[..., None], 3, -1)
  out = hn.crop_number(ramp, [0, 0, 128, 32]).astype(int)
  assert (out == out[:1]).all()  # every row the same: no padding above or below
  np.testing.assert_allclose(out[0], 2 * np.arange(64) + 0.5, atol=1)


def test_crop_number_refuses_what_it_cannot_crop():
  photo = np.zeros((40, 100, 3), np.uint8)
  cases = {
      "clip it first": lambda: hn.crop_number(photo, [-1, 0, 10, 10]),
      "(or is empty)": lambda: hn.crop_number(photo, [95, 0, 10, 10]),
      "is not inside": lambda: hn.crop_number(photo, [5, 5, 0, 10]),
      "uint8 (H, W, 3)": lambda: hn.crop_number(photo.astype(np.float32), [0, 0, 5, 5]),
      "needs an (H, W, 3)": lambda: hn.crop_number(photo[..., 0], [0, 0, 5, 5], color="rgb"),
      "expected one of": lambda: hn.crop_number(photo, [0, 0, 5, 5], color="gray"),
      "size must be": lambda: hn.crop_number(photo, [0, 0, 5, 5], size=0),
  }
  for fragment, call in cases.items():
    with pytest.raises(ValueError, match="crop_number") as info:
      call()
    assert fragment in str(info.value) and "\n" not in str(info.value)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="the shared SVHN samples are not here")
def test_real_svhn_photos_give_number_crops():
  meta = json.loads((SHARED_DATA / "house_numbers" / "labels.json").read_text())
  for entry in meta:
    photo = np.asarray(Image.open(SHARED_DATA / "house_numbers" / entry["filename"])
                       .convert("RGB"))
    boxes = np.array([[b["left"], b["top"], b["width"], b["height"]] for b in entry["boxes"]])
    box = hn.number_box(boxes, hn.GOODFELLOW_MARGIN, (photo.shape[1], photo.shape[0]))
    crop = hn.crop_number(photo, box)
    assert crop.shape == (64, 64) and crop.std() > 5, entry["filename"]
    length, digits = hn.number_labels([b["label"] for b in entry["boxes"]])
    assert length == 2 and digits.tolist() == entry["digits"] + [hn.NO_DIGIT] * 3


# ---------------------------------------------------------------------------------------------
# Labels

def test_number_labels_lengths_digits_and_zero():
  length, digits = hn.number_labels([1, 10, 3])
  assert length == 3 and digits.dtype == np.int32 and digits.tolist() == [1, 0, 3, 10, 10]
  assert hn.number_labels(np.array([10.0]))[1].tolist() == [0, 10, 10, 10, 10]
  assert hn.number_labels([1, 2, 3, 4, 5])[0] == 5
  assert hn.number_labels([1, 2, 3, 4, 5])[1].tolist() == [1, 2, 3, 4, 5]
  assert hn.number_labels([])[0] == 0 and (hn.number_labels([])[1] == hn.NO_DIGIT).all()
  assert hn.number_labels([7, 0, 2], max_digits=2)[0] == 3


def test_more_than_five_digits_is_its_own_length_class():
  length, digits = hn.number_labels([1, 2, 3, 4, 5, 6])
  assert length == 6 == hn.MAX_DIGITS + 1 and digits.tolist() == [1, 2, 3, 4, 5]
  assert hn.number_labels(list(range(9)))[0] == 6


def test_number_labels_refuses_other_labels():
  for labels in ([1, 11], [-1], [2.5]):
    with pytest.raises(ValueError, match="0..10"):
      hn.number_labels(labels)
  with pytest.raises(ValueError, match="max_digits"):
    hn.number_labels([1], max_digits=0)


# ---------------------------------------------------------------------------------------------
# 54x54 crops

def test_centre_crop_numpy_and_jax():
  images = np.arange(2 * 64 * 64 * 3, dtype=np.int32).reshape(2, 64, 64, 3)
  np.testing.assert_array_equal(hn.centre_crop(images), images[:, 5:59, 5:59])
  grey = images[..., 0]
  assert hn.centre_crop(grey, 60).shape == (2, 60, 60)
  np.testing.assert_array_equal(np.asarray(hn.centre_crop(jax.numpy.asarray(grey))),
                                grey[:, 5:59, 5:59])
  with pytest.raises(ValueError, match="does not fit"):
    hn.centre_crop(grey, 65)
  with pytest.raises(ValueError, match=r"\(N, H, W\)"):
    hn.centre_crop(grey[0])


def test_random_crop_takes_windows_at_uniform_places_deterministically():
  # Each image holds its pixel coordinates, so a crop's first pixel tells where it was cut.
  count = 900
  rows, cols = np.meshgrid(np.arange(12), np.arange(12), indexing="ij")
  images = np.broadcast_to(np.stack([rows, cols], -1), (count, 12, 12, 2)).astype(np.uint8)
  key = jax.random.key(3)
  crops = np.asarray(hn.random_crop(images, key, crop=10))
  assert crops.shape == (count, 10, 10, 2) and crops.dtype == np.uint8
  corners = crops[:, 0, 0].astype(int)
  for crop, (top, left) in zip(crops[:20], corners[:20]):
    np.testing.assert_array_equal(crop, images[0, top:top + 10, left:left + 10])
  counts = np.bincount(corners[:, 0] * 3 + corners[:, 1], minlength=9)
  assert counts.size == 9 and counts.min() > 60  # 3 x 3 places, 100 each expected
  np.testing.assert_array_equal(np.asarray(hn.random_crop(images, key, crop=10)), crops)
  assert not np.array_equal(np.asarray(hn.random_crop(images, jax.random.key(4), crop=10)), crops)
  jitted = jax.jit(hn.random_crop, static_argnames="crop")
  np.testing.assert_array_equal(np.asarray(jitted(images, key, crop=10)), crops)
  assert hn.random_crop(np.zeros((3, 64, 64), np.uint8), key).shape == (3, 54, 54)


# ---------------------------------------------------------------------------------------------
# Whole splits

def test_draw_margins_in_range_and_deterministic():
  margins = hn.draw_margins(5000, *hn.TRAIN_MARGINS, seed=7)
  assert margins.shape == (5000,) and margins.min() >= 0.15 and margins.max() <= 1.0
  assert margins.min() < 0.16 and margins.max() > 0.99  # uniform over the whole range
  np.testing.assert_array_equal(margins, hn.draw_margins(5000, 0.15, 1.0, seed=7))
  assert not np.array_equal(margins, hn.draw_margins(5000, 0.15, 1.0, seed=8))
  np.testing.assert_array_equal(hn.draw_margins(3, 0.2, 0.2, seed=0), [0.2] * 3)
  for low, high in ((0.5, 0.2), (-0.1, 0.2), (0.1, float("nan"))):
    with pytest.raises(ValueError, match="draw_margins"):
      hn.draw_margins(3, low, high, seed=0)


@pytest.fixture(scope="module")
def pairs() -> list[tuple[digit_struct.Photo, np.ndarray]]:
  """Made photos of 1 to 6 digits, one with a box reaching outside its photo."""
  made = files.sample_photos(30, seed=4, max_digits=6)
  photo, image = made[0]
  made[0] = (photo._replace(boxes=photo.boxes - np.float32([6, 8, 0, 0])), image)
  return made


def test_number_arrays_with_goodfellows_margin(pairs):
  arrays = hn.number_arrays(pairs, color="rgb")
  assert arrays.images.shape == (30, 64, 64, 3) and arrays.images.dtype == np.uint8
  assert arrays.lengths.dtype == arrays.digits.dtype == np.int32
  assert arrays.digits.shape == (30, 5) and arrays.boxes.dtype == np.float32
  for i, (photo, image) in enumerate(pairs):
    box = hn.number_box(photo.boxes, 0.15, (image.shape[1], image.shape[0]))
    np.testing.assert_array_equal(arrays.images[i], hn.crop_number(image, box, color="rgb"))
    np.testing.assert_allclose(arrays.boxes[i], box, rtol=1e-6)
    length, digits = hn.number_labels(photo.labels)
    assert arrays.lengths[i] == length and arrays.digits[i].tolist() == digits.tolist()
  assert arrays.boxes[0, 0] == 0 and arrays.boxes[0, 1] == 0  # clipped at the photo's corner
  assert set(arrays.lengths.tolist()) <= {1, 2, 3, 4, 5, 6}


def test_number_arrays_draws_margins_by_seed_and_any_worker_count(pairs):
  done = []
  arrays = hn.number_arrays(pairs, margin=hn.TRAIN_MARGINS, seed=5, progress=done.append)
  assert arrays.images.shape == (30, 64, 64) and done == [30]
  margins = hn.draw_margins(30, *hn.TRAIN_MARGINS, seed=5)
  for i, (photo, image) in enumerate(pairs):
    box = hn.number_box(photo.boxes, margins[i], (image.shape[1], image.shape[0]))
    np.testing.assert_allclose(arrays.boxes[i], box, rtol=1e-6)
  again = hn.number_arrays(pairs, margin=hn.TRAIN_MARGINS, seed=5, workers=2)
  for got, want in zip(again, arrays):
    np.testing.assert_array_equal(got, want)
  other = hn.number_arrays(pairs, margin=hn.TRAIN_MARGINS, seed=6)
  assert not np.array_equal(other.boxes, arrays.boxes)
  np.testing.assert_array_equal(other.digits, arrays.digits)


def test_number_arrays_reads_a_format_1_split(tmp_path, pairs):
  split = photos.open_full(files.write_full_tar(tmp_path / "train.tar.gz", "train", pairs))
  from_files = hn.number_arrays(split)
  from_memory = hn.number_arrays(pairs)
  for got, want in zip(from_files, from_memory):
    np.testing.assert_array_equal(got, want)


def test_number_arrays_refuses_bad_arguments(pairs):
  for kwargs, fragment in (({"margin": -1.0}, "margin"), ({"margin": (0.5, 0.1)}, "low <= high"),
                           ({"color": "bgr"}, "color"), ({"workers": 0}, "workers")):
    with pytest.raises(ValueError, match=fragment):
      hn.number_arrays(pairs[:2], **kwargs)
  empty = [(pairs[0][0]._replace(labels=np.zeros(0, np.int32), boxes=np.zeros((0, 4))),
            pairs[0][1])]
  with pytest.raises(ValueError, match="1.png has no digits"):
    hn.number_arrays(empty)
