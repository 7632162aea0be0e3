"""Tests for svhn_jax.datasets.synthetic_photos: made house-number photos, their recorded boxes, and the
files in format 1's layout read back by datasets.photos' own loader; the scene style's strings of
letters (text_distractors) off the number, and the number style's photos unchanged by them."""

from __future__ import annotations

import dataclasses
import gzip
import tarfile

import h5py
import numpy as np
import pytest

from svhn_jax import boxes
from svhn_jax import house_numbers as hn
from svhn_jax.datasets import digit_struct, photos
from svhn_jax.datasets import synthetic_photos as sp
from svhn_jax.errors import DataError

# No shading, texture, plate, clutter, blur, noise or colour, and upright digits: every pixel is
# the background's grey but where ink is, so the ink's extent can be measured.
CLEAN = dataclasses.replace(sp.STYLE, gradient=0.0, edge=0.0, texture=0.0, plate=0.0, lines=0.0,
                            blur=(0.0, 0.0), noise=(0.0, 0.0), chroma=0.0, cut_off=0.0,
                            rotation=0.0, shear=0.0)


def _same_photos(got: list[digit_struct.Photo], want: list[digit_struct.Photo]) -> None:
  assert [p.name for p in got] == [p.name for p in want]
  for g, w in zip(got, want):
    np.testing.assert_array_equal(g.labels, w.labels)
    np.testing.assert_array_equal(g.boxes, w.boxes)


def test_photos_are_deterministic_and_independent_of_the_count():
  five = list(sp.generate(5, seed=1))
  again = list(sp.generate(5, seed=1))
  third = list(sp.generate(1, seed=1, start=2))
  for (photo, image), (same, same_image) in zip(five, again):
    np.testing.assert_array_equal(image, same_image)
    _same_photos([photo], [same])
  assert third[0][0].name == "3.png"
  np.testing.assert_array_equal(third[0][1], five[2][1])
  other = list(sp.generate(5, seed=2))
  assert any(a.shape != b.shape or not np.array_equal(a, b)
             for (_, a), (_, b) in zip(five, other))
  test = next(sp.generate(1, seed=1, split="test"))[1]
  assert test.shape != five[0][1].shape or not np.array_equal(test, five[0][1])


def test_photos_vary_in_size_length_and_hold_whole_pixel_boxes():
  photos = list(sp.generate(60, seed=0))
  sizes = np.array([image.shape[:2] for _, image in photos])
  assert all(image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
             for _, image in photos)
  assert len(set(map(tuple, sizes))) > 50
  aspect = sizes[:, 1] / sizes[:, 0]
  assert aspect.min() < 1.2 and aspect.max() > 3
  lengths = [len(photo.labels) for photo, _ in photos]
  assert {1, 2, 3, 4} <= set(lengths) and max(lengths) <= 6
  for photo, _ in photos:
    assert photo.labels.dtype == np.int32 and photo.boxes.dtype == np.float32
    assert photo.boxes.shape == (len(photo.labels), 4)
    assert ((0 <= photo.labels) & (photo.labels <= 9)).all()
    np.testing.assert_array_equal(photo.boxes, np.round(photo.boxes))
    assert (photo.boxes[:, 2:] > 0).all()
    # Reading order: each digit starts right of the previous one's start.
    assert (np.diff(photo.boxes[:, 0]) > 0).all()


def test_boxes_hug_the_ink_of_each_digit():
  for i in range(12):
    photo, image = next(sp.generate(1, seed=3, style=CLEAN, start=i))
    grey = image.astype(int).mean(axis=2)
    background = np.median(grey[0])
    ink = np.abs(grey - background) > 8
    height, width = grey.shape
    inside = np.zeros_like(ink)
    for left, top, box_w, box_h in photo.boxes.astype(int):
      assert 0 <= left and 0 <= top and left + box_w <= width and top + box_h <= height
      inside[top:top + box_h, left:left + box_w] = True
      rows, cols = np.nonzero(ink[top:top + box_h, left:left + box_w])
      # The ink reaches within 2 px of each side of its box (edges are anti-aliased).
      assert rows.min() <= 2 and cols.min() <= 2, (i, photo.boxes)
      assert rows.max() >= box_h - 3 and cols.max() >= box_w - 3, (i, photo.boxes)
    assert not (ink & ~inside).any(), i  # no ink outside the boxes


def test_style_forces_six_digits_and_cut_off_numbers():
  six = dataclasses.replace(sp.STYLE, lengths=(0, 0, 0, 0, 0, 1), cut_off=1.0)
  for photo, image in sp.generate(8, seed=4, style=six):
    assert len(photo.labels) == 6
    left, top, width, height = photo.boxes.T
    outside = (left < 0) | (top < 0) | (left + width > image.shape[1]) | \
        (top + height > image.shape[0])
    assert outside.any()
    # Still inside enough to crop.
    box = hn.number_box(photo.boxes, 0.15, (image.shape[1], image.shape[0]))
    assert box[2] >= 1 and box[3] >= 1
    assert hn.number_labels(photo.labels)[0] == 6


def test_tar_round_trip_through_the_official_loader(tmp_path):
  done = []
  archive = sp.write_split(tmp_path, "train", 25, seed=5, progress=done.append)
  assert archive == tmp_path / "train.tar.gz" and done == [25]
  split = photos.open_full(archive, cache_dir=tmp_path / "cache")
  made = list(sp.generate(25, seed=5))
  _same_photos(split.photos, [photo for photo, _ in made])
  for i, (_, image) in enumerate(made):
    np.testing.assert_array_equal(split.image(i), image)
  numbers = hn.number_arrays(split)
  want = [hn.number_labels(photo.labels) for photo, _ in made]
  assert numbers.lengths.tolist() == [length for length, _ in want]


def test_tar_layout_matches_the_official_archive(tmp_path):
  style = dataclasses.replace(sp.STYLE, lengths=(0.5, 0.5))
  archive = sp.write_split(tmp_path, "test", 6, seed=6, style=style)
  with tarfile.open(archive) as tar:
    names = tar.getnames()
    mat = tar.extractfile("test/digitStruct.mat").read()
    members = tar.getmembers()
  assert names == ["test"] + [f"test/{i}.png" for i in range(1, 7)] + ["test/digitStruct.mat"]
  assert members[0].isdir() and all(m.isfile() for m in members[1:])
  with gzip.open(archive) as f:
    assert f.read(512)[257:262] == b"ustar"
  assert mat[:19] == b"MATLAB 7.3 MAT-file" and mat[512:520] == b"\x89HDF\r\n\x1a\n"
  path = tmp_path / "digitStruct.mat"
  path.write_bytes(mat)
  photos = digit_struct.read_digit_struct(path)
  _same_photos(photos, [photo for photo, _ in sp.generate(6, seed=6, split="test", style=style)])
  with h5py.File(path, "r") as f:
    assert f["digitStruct/name"].shape == f["digitStruct/bbox"].shape == (6, 1)
    for row, photo in enumerate(photos):
      label = f[f["digitStruct/bbox"][row, 0]]["label"]
      if len(photo.labels) == 1:
        assert label.shape == (1, 1) and label.dtype == np.float64
      else:
        assert label.shape == (len(photo.labels), 1) and label.dtype == h5py.ref_dtype


def test_files_are_byte_identical_by_seed_and_worker_count(tmp_path, monkeypatch):
  first = sp.write_split(tmp_path / "a", "train", 20, seed=7).read_bytes()
  assert sp.write_split(tmp_path / "b", "train", 20, seed=7).read_bytes() == first
  assert sp.write_split(tmp_path / "c", "train", 20, seed=8).read_bytes() != first
  monkeypatch.setattr(sp, "_CHUNK", 5)  # 4 tasks for 2 processes
  pooled = sp.write_split(tmp_path / "d", "train", 20, seed=7, workers=2)
  assert pooled.read_bytes() == first


def test_folder_layout_round_trip_and_refusals(tmp_path):
  folder = sp.write_split(tmp_path, "train", 7, seed=9, layout="folder")
  assert folder == tmp_path / "train"
  assert sorted(p.name for p in folder.iterdir()) == sorted(
      [f"{i}.png" for i in range(1, 8)] + ["digitStruct.mat"])
  assert [p.name for p in tmp_path.iterdir()] == ["train"]  # no temporary folder left
  _same_photos(photos.open_full(tmp_path).photos, [photo for photo, _ in sp.generate(7, seed=9)])
  with pytest.raises(DataError, match="train already exists"):
    sp.write_split(tmp_path, "train", 3, layout="folder")
  for kwargs in ({"layout": "zip"}, {"split": "val"}, {"count": -1}, {"workers": 0}):
    arguments = {"split": "train", "count": 2, **kwargs}
    with pytest.raises(ValueError, match="write_split"):
      sp.write_split(tmp_path / "x", **arguments)


def test_cli_writes_both_splits_and_a_preview(tmp_path, caplog):
  caplog.set_level("INFO")
  sp.main(["--out", str(tmp_path / "out"), "--train", "8", "--test", "3", "--seed", "2",
           "--workers", "1", "--preview", str(tmp_path / "grid.png")])
  assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["test.tar.gz", "train.tar.gz"]
  assert len(photos.open_full(tmp_path / "out" / "test.tar.gz", tmp_path / "cache")) == 3
  assert (tmp_path / "grid.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert "synthetic photos train: 8/8" in caplog.text
  with pytest.raises(SystemExit):
    sp.main(["--out", str(tmp_path), "--train", "-1", "--test", "1"])


def test_cli_reports_an_existing_folder_in_one_line(tmp_path, capsys):
  (tmp_path / "train").mkdir()
  with pytest.raises(SystemExit) as info:
    sp.main(["--out", str(tmp_path), "--train", "2", "--test", "1", "--layout", "folder",
             "--workers", "1"])
  assert info.value.code == 1
  error = capsys.readouterr().err.strip()
  assert "\n" not in error and "train already exists" in error


def test_write_photos_writes_photos_made_elsewhere_as_write_split_does(tmp_path):
  made = sp.write_split(tmp_path / "a", "test", 3, seed=0)
  given = sp.write_photos(tmp_path / "b", "test", sp.generate(3, seed=0, split="test"))
  assert made.name == given.name == "test.tar.gz" and made.read_bytes() == given.read_bytes()
  folder = sp.write_photos(tmp_path / "c", "test", sp.generate(3, seed=0, split="test"),
                           layout="folder")
  assert sorted(p.name for p in folder.iterdir()) == ["1.png", "2.png", "3.png", "digitStruct.mat"]
  with pytest.raises(ValueError, match="layout='zip'"):
    sp.write_photos(tmp_path / "d", "test", [], layout="zip")


def test_the_number_styles_photos_draw_no_letters_and_spend_no_random_number_on_them(
    monkeypatch):
  # PhotoStyle.text is 0 in the default style: generate_photo never reaches text_distractors
  # (whose draws would shift every later one), so its photos are those made before the field
  # existed. Checked by structure, not by digests of pixels, which AVX-512's float functions
  # could round otherwise than this machine's.
  def refuse(*args, **kwargs):
    raise AssertionError("the number style drew text distractors")

  monkeypatch.setattr(sp, "text_distractors", refuse)
  assert len(list(sp.generate(4, seed=0))) == 4
  assert sp.STYLE.text == 0 and sp.SCENE_STYLE.text > 0
  assert set(sp.STYLE_VERSIONS) == set(sp.STYLES) and sp.STYLE_VERSIONS["number"] == sp.VERSION


def test_text_distractors_keep_off_the_number_and_are_the_same_for_the_same_generator():
  rng = np.random.default_rng(0)
  drawn = 0
  for _ in range(30):
    rows, columns = (int(v) for v in rng.integers(40, 400, size=2))
    digit_height = float(rng.uniform(10, 60))
    x0, y0 = rng.uniform(0, columns * 0.7), rng.uniform(0, rows * 0.7)
    keep_off = (x0, y0, x0 + 3 * digit_height, y0 + digit_height)
    seed = int(rng.integers(1000))
    layer = sp.text_distractors((rows, columns), keep_off, digit_height,
                                np.random.default_rng(seed), 4.0)
    assert layer.shape == (rows, columns, 3) and layer.dtype == np.float32
    np.testing.assert_array_equal(layer, sp.text_distractors(
        (rows, columns), keep_off, digit_height, np.random.default_rng(seed), 4.0))
    margin = 0.5 * digit_height
    top, left = max(0, int(np.ceil(y0 - margin)) + 1), max(0, int(np.ceil(x0 - margin)) + 1)
    bottom, right = int(keep_off[3] + margin), int(keep_off[2] + margin)
    assert not layer[top:bottom, left:right].any()
    drawn += bool(layer.any())
    # One string's step and colour at most: strings do not overlap.
    assert np.abs(layer).max() <= 110 + 60 + 1e-3
  assert drawn >= 20


def test_the_scene_styles_letters_stay_off_its_number():
  # Without noise (its draw is then multiplied by 0) and blur, the letters are all that differs
  # between a clean scene with them and one without.
  clean = dataclasses.replace(CLEAN, fill_width=sp.SCENE_STYLE.fill_width,
                              fill_height=sp.SCENE_STYLE.fill_height)
  lettered = 0
  for (photo, with_text), (same, without) in zip(
      sp.generate(12, seed=0, style=dataclasses.replace(clean, text=3.0)),
      sp.generate(12, seed=0, style=clean)):
    _same_photos([photo], [same])
    text = with_text.astype(int) - without
    x0, y0, x1, y1 = boxes.union_box(photo.boxes)
    assert not text[max(0, int(y0)):int(y1), max(0, int(x0)):int(x1)].any()
    lettered += bool(text.any())
  assert lettered >= 6
