"""The real-number development set (benchmarks/real_numbers.py): its photos and boxes, the
length-stratified test split, the split by source digit, determinism, and its folders read by the
format-1 loader; its scene style (issue 31's whole photos): the number at most a quarter of the
photo's width, letters off it, and the default style's photos unchanged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from benchmarks import real_digits, real_numbers
from svhn_jax.datasets import photos as full_photos


@pytest.fixture(scope="module")
def made():
  return {split: list(real_numbers.generate(split, n, seed=0))
          for split, n in (("train", 12), ("test", 10))}


def test_photos_have_the_layout_and_labels(made):
  _, source_labels = real_digits.load_sources()
  for split, photos in made.items():
    for i, made_photo in enumerate(photos):
      photo, image, sources = made_photo
      k = len(photo.labels)
      assert photo.name == f"{i + 1}.png" and 1 <= k <= 5
      assert photo.labels.dtype == np.int32 and photo.boxes.shape == (k, 4)
      assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
      np.testing.assert_array_equal(photo.labels, source_labels[sources])
      if k > 1:
        assert photo.labels[0] != 0  # house numbers do not start with a zero
      left, top, width, height = photo.boxes.T
      assert (left >= 0).all() and (top >= 0).all() and (width > 0).all() and (height > 0).all()
      assert ((left + width <= image.shape[1]) & (top + height <= image.shape[0])).all()
      assert (np.diff(left) > 0).all()  # in reading order, left to right
      assert image.std() > 5


def test_the_test_split_is_stratified_by_length(made):
  assert [len(p.photo.labels) for p in made["test"]] == [1, 2, 3, 4, 5] * 2
  np.testing.assert_array_equal(real_numbers.lengths_of("test", 1500, seed=0),
                                np.tile(np.arange(1, 6), 300))
  lengths = real_numbers.lengths_of("train", 4000, seed=0)
  counts = np.bincount(lengths, minlength=6)[1:] / 4000
  np.testing.assert_allclose(counts, real_numbers.STYLE.lengths, atol=0.02)


def test_training_and_test_digits_come_from_disjoint_source_digits(made):
  _, labels = real_digits.load_sources()
  train_part, test_part = real_digits.split_sources(labels, 0, real_numbers.SHARES)
  train = set(np.concatenate([p.sources for p in made["train"]]).tolist())
  test = set(np.concatenate([p.sources for p in made["test"]]).tolist())
  assert train <= set(train_part.tolist()) and test <= set(test_part.tolist())
  assert not train & test


def test_the_boxes_hold_the_ink():
  # Flat background, no clutter or noise: every pixel off the background lies in a box (+2 px).
  plain = real_digits.Style(gradient=0.0, chroma=(0.0, 0.0), noise=(0.0, 0.0), blur=(0.3, 0.3))
  style = dataclasses.replace(real_numbers.STYLE, lines=0.0, digits=plain)
  for made_photo in real_numbers.generate("test", 5, seed=3, style=style):
    image = made_photo.image.astype(int)
    inside = np.zeros(image.shape[:2], bool)
    for left, top, width, height in made_photo.photo.boxes.astype(int).tolist():
      inside[max(0, top - 2):top + height + 2, max(0, left - 2):left + width + 2] = True
    background = np.median(image[~inside], axis=0)
    off = np.abs(image - background).max(axis=2) > 8
    assert off.any() and not (off & ~inside).any()


def test_photo_i_is_the_same_whatever_the_count_and_seeds_differ(made):
  fewer = list(real_numbers.generate("train", 5, seed=0))
  for a, b in zip(fewer, made["train"]):
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.photo.boxes, b.photo.boxes)
  other = next(real_numbers.generate("train", 1, seed=1))
  assert other.image.shape != fewer[0].image.shape or (other.image != fewer[0].image).any()


def _files(folder):
  real_numbers.write(folder, n_train=4, per_length=1, seed=0)
  return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_arguments_same_bytes_and_the_loader_reads_them(tmp_path, made):
  first = _files(tmp_path / "a")
  assert len(first) == 4 + 1 + 5 + 1  # PNGs and a digitStruct.mat per split
  assert first == _files(tmp_path / "b")
  for split, count in (("train", 4), ("test", 5)):
    opened = full_photos.open_full(tmp_path / "a" / split)
    assert len(opened) == count
    for i in range(count):
      want = made[split][i]
      np.testing.assert_array_equal(opened.photos[i].labels, want.photo.labels)
      np.testing.assert_array_equal(opened.photos[i].boxes, want.photo.boxes)
      np.testing.assert_array_equal(opened.image(i), want.image)


@pytest.mark.parametrize("argv, said", [
    (["--train=0"], "--train: expected a whole number of at least 1"),
    (["--test-per-length=x"], "--test-per-length: expected a whole number of at least 1"),
    (["--layout=zip"], "--layout: invalid choice"),
    (["--style=street"], "--style: invalid choice"),
])
def test_bad_arguments_are_one_line(tmp_path, capsys, argv, said):
  with pytest.raises(SystemExit) as exit_:
    real_numbers.main([f"--out={tmp_path}", *argv])
  assert exit_.value.code == 2
  err = capsys.readouterr().err.strip()
  assert "\n" not in err and said in err


@pytest.mark.parametrize("existing, layout", [("train", "folder"), ("test.tar.gz", "tar"),
                                              ("train", "tar"), ("train.tar.gz", "folder")])
def test_an_existing_split_in_either_layout_is_one_line_and_left_as_it_was(tmp_path, capsys,
                                                                          existing, layout):
  kept = tmp_path / existing
  kept.mkdir() if "." not in existing else kept.write_bytes(b"earlier archive")
  with pytest.raises(SystemExit) as exit_:
    real_numbers.main([f"--out={tmp_path}", "--train=2", "--test-per-length=1",
                       f"--layout={layout}"])
  assert exit_.value.code != 0
  err = capsys.readouterr().err.strip()
  assert "\n" not in err and f"{existing} already exists" in err
  assert sorted(p.name for p in tmp_path.iterdir()) == [existing]
  assert kept.is_dir() or kept.read_bytes() == b"earlier archive"


def test_an_out_that_is_a_file_is_one_line(tmp_path, capsys):
  (tmp_path / "afile").write_text("x")
  with pytest.raises(SystemExit):
    real_numbers.main([f"--out={tmp_path / 'afile'}", "--train=2", "--test-per-length=1"])
  err = capsys.readouterr().err.strip()
  assert "\n" not in err and "a file, not a folder" in err


# ---------------------------------------------------------------------------------------------
# The styles: number (the default, unchanged) and scene (issue 31's whole-photo development set)

def test_the_number_style_makes_the_photos_it_made_before_styles(made, monkeypatch):
  # The number style's photos are seeded as before styles existed (commit 4ebd942: (seed, 2,
  # split, index, VERSION)) and draw no letters, so they stay byte for byte those photos. Checked
  # by structure, not by digests of pixels, which another CPU's float functions could round
  # otherwise.
  for split in real_numbers.SPLITS:
    old = np.random.default_rng(np.random.SeedSequence(
        [0, 2, real_numbers.SPLITS.index(split), 3, real_numbers.VERSION]))
    assert np.array_equal(real_numbers.photo_rng(0, split, 3).integers(0, 2**31, 8),
                          old.integers(0, 2**31, 8))
  from svhn_jax.datasets import synthetic_photos

  def refuse(*args, **kwargs):
    raise AssertionError("the number style drew text distractors")

  monkeypatch.setattr(synthetic_photos, "text_distractors", refuse)
  assert len(list(real_numbers.generate("test", 5, 0))) == 5
  assert real_numbers.STYLES["number"] is real_numbers.STYLE and real_numbers.STYLE.text == 0


@pytest.fixture(scope="module")
def scenes():
  """Test photos of the scene style: 50 of each length 1-5."""
  return list(real_numbers.generate("test", 250, seed=0, style=real_numbers.SCENE_STYLE))


def _union(photo):
  left, top, width, height = photo.boxes.T
  return left.min(), top.min(), (left + width).max(), (top + height).max()


def test_a_scene_number_covers_at_most_a_quarter_of_the_photos_width(scenes):
  assert [len(p.photo.labels) for p in scenes] == [1, 2, 3, 4, 5] * 50  # stratified, exact
  widths, heights = [], []
  for made_photo in scenes:
    rows, columns = made_photo.image.shape[:2]
    x0, y0, x1, y1 = _union(made_photo.photo)
    assert x0 >= 0 and y0 >= 0 and x1 <= columns and y1 <= rows
    assert max(rows, columns) <= real_numbers.SCENE_STYLE.max_side
    widths.append((x1 - x0) / columns)
    heights.append((y1 - y0) / rows)
  assert max(widths) <= 0.25 and max(heights) <= 0.45
  assert min(widths) < 0.12 and np.median(widths) < 0.2  # small numbers, not all at the cap


def test_scene_digits_come_from_the_test_part_and_differ_from_the_number_styles(scenes, made):
  _, labels = real_digits.load_sources()
  _, test_part = real_digits.split_sources(labels, 0, real_numbers.SHARES)
  assert set(np.concatenate([p.sources for p in scenes]).tolist()) <= set(test_part.tolist())
  # The style's name seeds its photos: scene i is no copy of number photo i.
  assert any(not np.array_equal(a.sources, b.sources) for a, b in zip(scenes, made["test"]))


def test_the_letters_of_a_scene_stay_off_its_number():
  # The letters are the last thing drawn: without them the same photo, so the difference is the
  # letters alone (blurred), which must be nil over the number's boxes (drawn half a digit
  # height off, the blur's sigma under a seventeenth of a digit height).
  bare = dataclasses.replace(real_numbers.SCENE_STYLE, text=0.0)
  lettered = drawn = 0
  for with_text, without in zip(
      real_numbers.generate("train", 12, seed=0, style=real_numbers.SCENE_STYLE),
      real_numbers.generate("train", 12, seed=0, style=bare)):
    np.testing.assert_array_equal(with_text.photo.boxes, without.photo.boxes)
    text = with_text.image.astype(int) - without.image
    x0, y0, x1, y1 = (int(v) for v in _union(with_text.photo))
    assert not text[y0:y1, x0:x1].any()
    lettered += bool(text.any())
    drawn += 1
  assert lettered >= drawn // 2


def test_scene_photos_are_the_same_for_the_same_arguments(tmp_path):
  def files(folder):
    real_numbers.main([f"--out={folder}", "--train=3", "--test-per-length=1", "--style=scene"])
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}

  first = files(tmp_path / "a")
  assert len(first) == 3 + 1 + 5 + 1 and first == files(tmp_path / "b")
  opened = full_photos.open_full(tmp_path / "a" / "test")
  again = list(real_numbers.generate("test", 5, seed=0, style=real_numbers.SCENE_STYLE))
  for i, want in enumerate(again):
    np.testing.assert_array_equal(opened.image(i), want.image)
    np.testing.assert_array_equal(opened.photos[i].boxes, want.photo.boxes)
