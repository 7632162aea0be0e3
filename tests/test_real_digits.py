"""The real-digit development set (benchmarks/real_digits.py): its crops, the split by source
digit, determinism, and its files read by the project's own loaders."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from benchmarks import real_digits
from svhn_jax.datasets import cropped, study_h5
from svhn_jax.transforms import luma


@pytest.fixture(scope="module")
def small():
  return real_digits.build(40, 20, 20, seed=0)


def test_crops_have_the_layout_and_labels(small):
  for name, n in zip(real_digits.SPLITS, (40, 20, 20)):
    crops = small[name]
    assert crops.colour.shape == (n, 32, 32, 3) and crops.colour.dtype == np.uint8
    assert crops.grey.shape == (n, 32, 32) and crops.grey.dtype == np.float32
    assert crops.labels.shape == (n,) and crops.labels.dtype == np.uint8
    assert 0 <= crops.labels.min() and crops.labels.max() <= 9
    np.testing.assert_array_equal(crops.grey, luma(crops.colour))
    _, source_labels = real_digits.load_sources()
    np.testing.assert_array_equal(crops.labels, source_labels[crops.sources])
    assert crops.colour.std() > 20  # not blank


def test_split_by_source_digit():
  _, labels = real_digits.load_sources()
  parts = real_digits.split_sources(labels, seed=0)
  together = np.concatenate(parts)
  assert len(together) == len(set(together.tolist())) == len(labels) == 1797
  assert [len(p) for p in parts] == [1078, 360, 359]
  for part in parts:
    assert set(labels[part].tolist()) == set(range(10))
  assert not np.array_equal(parts[0], real_digits.split_sources(labels, seed=1)[0])
  with pytest.raises(ValueError, match="sum to 1"):
    real_digits.split_sources(labels, seed=0, shares=(0.5, 0.2, 0.2))


def test_no_source_digit_in_two_splits(small):
  sources = [set(small[name].sources.tolist()) for name in real_digits.SPLITS]
  assert not (sources[0] & sources[1] or sources[0] & sources[2] or sources[1] & sources[2])
  # A split of more crops than source digits takes further variants of the same digits.
  images, labels = real_digits.load_sources()
  pool = real_digits.split_sources(labels, seed=0)[1][:5]
  crops = real_digits.make_split(images, labels, pool, 12, seed=0)
  assert set(crops.sources.tolist()) == set(pool.tolist())
  np.testing.assert_array_equal(crops.variants, np.arange(12) // 5)


def test_a_smaller_size_is_the_start_of_a_bigger_one(small):
  fewer = real_digits.build(15, 20, 20, seed=0)
  for field in real_digits.Crops._fields:
    np.testing.assert_array_equal(getattr(fewer["train"], field),
                                  getattr(small["train"], field)[:15])
  np.testing.assert_array_equal(fewer["test"].colour, small["test"].colour)


def _bytes(folder, seed):
  real_digits.write(folder, [20], 10, 10, seed)
  # The files' names hold the seed: key them by their place in the sorted listing.
  return [p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()]


def test_same_seed_same_bytes_other_seed_other_crops(tmp_path):
  first = _bytes(tmp_path / "a", 0)
  assert len(first) == 3  # one HDF5 file, two .mat files
  assert first == _bytes(tmp_path / "b", 0)
  other = _bytes(tmp_path / "c", 1)
  assert all(a != b for a, b in zip(first, other))


def test_written_files_load_through_the_project_loaders(tmp_path, small):
  paths = real_digits.write(tmp_path, [25, 40], 20, 20, seed=0)
  names = [p.name for p in paths]
  assert names == ["real_digits_v1_25_20_20_seed0.h5", "real_digits_v1_25_20_20_seed0",
                   "real_digits_v1_40_20_20_seed0.h5", "real_digits_v1_40_20_20_seed0"]
  loaded = study_h5.load(paths[2])
  for name, split in zip(real_digits.SPLITS, loaded):
    np.testing.assert_array_equal(split.images, small[name].grey)
    np.testing.assert_array_equal(split.labels, small[name].labels)
  assert len(study_h5.load(paths[0]).train.labels) == 25
  images, labels = cropped.load_cropped(paths[3] / "train_32x32.mat", tmp_path / "cache")
  np.testing.assert_array_equal(images, np.concatenate([small["train"].colour,
                                                        small["val"].colour]))
  np.testing.assert_array_equal(labels, np.concatenate([small["train"].labels,
                                                        small["val"].labels]))
  images, labels = cropped.load_cropped(paths[3] / "test_32x32.mat", tmp_path / "cache")
  np.testing.assert_array_equal(images, small["test"].colour)
  np.testing.assert_array_equal(labels, small["test"].labels)


@pytest.mark.parametrize("argv, said", [
    (["--train=0"], "--train: expected whole numbers of at least 1"),
    (["--train=3000,x"], "--train: expected whole numbers of at least 1"),
    (["--val=-1"], "--val: expected a whole number of at least 1"),
])
def test_bad_arguments_are_one_line(tmp_path, capsys, argv, said):
  with pytest.raises(SystemExit) as exit_:
    real_digits.main([f"--out={tmp_path}", *argv])
  assert exit_.value.code == 2
  err = capsys.readouterr().err.strip()
  assert "\n" not in err and said in err


def test_ink_places_a_digit_anywhere_on_any_canvas():
  images, _ = real_digits.load_sources()
  mask = real_digits.ink(images[0], (40, 100), centre=(20.0, 70.0), height=24.0)
  assert mask.shape == (40, 100) and mask.dtype == np.float32
  assert 0.0 <= mask.min() and mask.max() <= 1.0
  rows, columns = np.nonzero(mask > 0.05)
  assert 8 - 1 <= rows.min() and rows.max() <= 32 and 55 <= columns.min() and columns.max() <= 85
  y, x = ndimage.center_of_mass(mask)
  assert abs(y - 19.5) < 3 and abs(x - 69.5) < 3



def test_neighbours_come_from_the_same_split(monkeypatch):
  images, labels = real_digits.load_sources()
  parts = real_digits.split_sources(labels, seed=0)
  drawn = []
  warp = real_digits.ink

  def recording(image, *args, **kwargs):
    drawn.append((image.__array_interface__["data"][0] - images.__array_interface__["data"][0])
                 // images[0].nbytes)
    return warp(image, *args, **kwargs)

  monkeypatch.setattr(real_digits, "ink", recording)
  style = real_digits.Style(neighbour=1.0)
  for part in parts:
    drawn.clear()
    crops = real_digits.make_split(images, labels, part, 20, seed=0, style=style)
    assert len(drawn) == 3 * 20  # the digit and a neighbour at each side
    assert set(drawn) <= set(part.tolist())
    assert set(crops.sources.tolist()) <= set(drawn)


def test_paint_makes_a_seeded_photo_of_any_shape():
  images, _ = real_digits.load_sources()
  counts = np.maximum(real_digits.ink(images[0], (40, 100), (20.0, 35.0), 30.0),
                      real_digits.ink(images[1], (40, 100), (20.0, 60.0), 30.0))
  photo = real_digits.paint(counts, np.random.default_rng(3))
  assert photo.shape == (40, 100, 3) and photo.dtype == np.uint8
  np.testing.assert_array_equal(photo, real_digits.paint(counts, np.random.default_rng(3)))
  assert not np.array_equal(photo, real_digits.paint(counts, np.random.default_rng(4)))
