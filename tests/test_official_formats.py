"""Tests for svhn_jax.datasets' readers of SVHN's own files: formats 1 and 2 of the official SVHN files, on small files
written in the exact official layouts (tests/official_files.py), a few real SVHN photos, and
downloads from a local HTTP server."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import io
import json
import os
import shutil
import subprocess
import tarfile
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from svhn_jax import images
from svhn_jax.datasets import (_hdf5_fast, content_cache, cropped, describe, digit_struct,
                               download, photos)
from svhn_jax.errors import DataError
import official_files as files
from support import SHARED_DATA

FILE_LABELS = np.array([10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 3], np.uint8)  # as stored: 10 is zero
DIGITS = np.where(FILE_LABELS == 10, 0, FILE_LABELS).astype(np.int32)


def one_line_error(call, *fragments: str) -> str:
  """Runs `call`, expecting a one-line DataError holding every fragment; returns its text."""
  with pytest.raises(DataError) as info:
    call()
  message = str(info.value)
  assert "\n" not in message
  for fragment in fragments:
    assert fragment in message, (fragment, message)
  return message


@pytest.fixture
def crops() -> np.ndarray:
  return files.drawn_crops(DIGITS, seed=1)


@pytest.fixture
def user_cache(tmp_path, monkeypatch) -> Path:
  folder = tmp_path / "user_cache"
  monkeypatch.setenv("SVHN_JAX_CACHE", str(folder))
  return folder


# ---------------------------------------------------------------------------------------------
# Format 2

@pytest.mark.parametrize("compress", [True, False])
def test_load_cropped_returns_nhwc_uint8_and_maps_10_to_zero(tmp_path, crops, compress):
  path = files.write_cropped_mat(tmp_path / "train_32x32.mat", crops, FILE_LABELS,
                                 compress=compress)
  stored = scipy.io.loadmat(path)
  assert stored["X"].shape == (32, 32, 3, 12) and stored["X"].dtype == np.uint8
  assert stored["y"].shape == (12, 1)

  images, labels = cropped.load_cropped(path)

  assert images.shape == (12, 32, 32, 3) and images.dtype == np.uint8
  assert labels.shape == (12,) and labels.dtype == np.int32
  np.testing.assert_array_equal(images, crops)
  np.testing.assert_array_equal(labels, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 3])
  assert isinstance(images, np.memmap) and not images.flags.writeable


def test_load_cropped_reuses_its_cache_without_reading_the_mat(tmp_path, crops, monkeypatch):
  path = files.write_cropped_mat(tmp_path / "test_32x32.mat", crops, FILE_LABELS)
  cropped.load_cropped(path)
  cached = sorted(p.name for p in tmp_path.iterdir())
  [images_npy] = tmp_path.glob("test_32x32.*.images.npy")
  [labels_npy] = tmp_path.glob("test_32x32.*.labels.npy")
  assert len(cached) == 3
  inodes = images_npy.stat().st_ino, labels_npy.stat().st_ino  # an atomic rewrite makes new ones

  def refuse(*args, **kwargs):
    raise AssertionError("the .mat was read again")

  monkeypatch.setattr(scipy.io, "loadmat", refuse)
  monkeypatch.setattr(scipy.io, "whosmat", refuse)
  images, labels = cropped.load_cropped(path)
  np.testing.assert_array_equal(images, crops)
  np.testing.assert_array_equal(labels, DIGITS)
  assert (images_npy.stat().st_ino, labels_npy.stat().st_ino) == inodes
  assert sorted(p.name for p in tmp_path.iterdir()) == cached


def same_name_size_and_mtime(first: Path, second: Path) -> None:
  """Gives `second` the modification time of `first`, as `cp -p` or `rsync -a` would."""
  assert first.name == second.name and first.stat().st_size == second.stat().st_size
  os.utime(second, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns))


def test_a_file_rewritten_with_its_size_and_mtime_is_converted_again(tmp_path, crops):
  path = files.write_cropped_mat(tmp_path / "train_32x32.mat", crops, FILE_LABELS, compress=False)
  was = path.stat()
  cropped.load_cropped(path)
  files.write_cropped_mat(path, 255 - crops, FILE_LABELS[::-1].copy(), compress=False)
  os.utime(path, ns=(was.st_atime_ns, was.st_mtime_ns))
  assert (path.stat().st_size, path.stat().st_mtime_ns) == (was.st_size, was.st_mtime_ns)

  images, labels = cropped.load_cropped(path)

  np.testing.assert_array_equal(images, 255 - crops)
  np.testing.assert_array_equal(labels, DIGITS[::-1])
  # The first contents' pair is kept: the file may be put back.
  assert len(list(tmp_path.glob("*.images.npy"))) == 2


def test_same_named_files_in_two_folders_keep_their_own_crops_and_caches(tmp_path, crops,
                                                                         monkeypatch):
  """Issue 26's example: same name, size and mtime, other labels, one cache folder; alternating
  between the folders converts each file once and never deletes the other's cache."""
  paths = []
  for folder, labels in (("a", FILE_LABELS), ("b", FILE_LABELS[::-1].copy())):
    (tmp_path / folder).mkdir()
    paths.append(files.write_cropped_mat(tmp_path / folder / "train_32x32.mat", crops, labels,
                                         compress=False))
  same_name_size_and_mtime(*paths)
  converted = []
  convert = cropped._convert
  monkeypatch.setattr(cropped, "_convert", lambda path, pair: (converted.append(path),
                                                          convert(path, pair)))
  cache = tmp_path / "cache"
  inodes = None
  for _ in range(3):
    for path, digits in zip(paths, (DIGITS, DIGITS[::-1])):
      _, labels = cropped.load_cropped(path, cache)
      np.testing.assert_array_equal(labels, digits)
    entries = sorted(cache.glob("train_32x32.*.npy"))
    assert len(entries) == 4
    inodes = inodes or [entry.stat().st_ino for entry in entries]
    assert [entry.stat().st_ino for entry in entries] == inodes
  assert converted == paths


def test_at_most_keep_per_name_contents_are_cached_the_least_recently_used_go(tmp_path, crops):
  cache = tmp_path / "cache"
  paths = []
  for n in range(content_cache.KEEP_PER_NAME + 1):
    (tmp_path / str(n)).mkdir()
    paths.append(files.write_cropped_mat(tmp_path / str(n) / "test_32x32.mat", crops,
                                         np.roll(FILE_LABELS, n)))
  keys = []
  for n, path in enumerate(paths[:-1]):
    images, _ = cropped.load_cropped(path, cache)
    keys.append(Path(images.filename).name.split(".")[1])
    time.sleep(0.01)  # distinct times of use, whatever the filesystem's clock
  cropped.load_cropped(paths[0], cache)  # used again: now the newest
  time.sleep(0.01)
  images, labels = cropped.load_cropped(paths[-1], cache)

  np.testing.assert_array_equal(labels, np.roll(DIGITS, len(paths) - 1))
  kept = {entry.name.split(".")[1] for entry in cache.glob("test_32x32.*.npy")}
  assert kept == {keys[0], *keys[2:], Path(images.filename).name.split(".")[1]}
  assert len(list(cache.glob("test_32x32.*.npy"))) == 2 * content_cache.KEEP_PER_NAME


def test_cache_goes_to_cache_dir_when_given(tmp_path, crops):
  source = tmp_path / "data"
  source.mkdir()
  path = files.write_cropped_mat(source / "train_32x32.mat", crops, FILE_LABELS)
  images, _ = cropped.load_cropped(path, cache_dir=tmp_path / "cache")
  assert [p.name for p in source.iterdir()] == ["train_32x32.mat"]
  assert Path(images.filename).parent == tmp_path / "cache"


@contextlib.contextmanager
def read_only(folder: Path):
  """Makes `folder` read-only for the duration, even for root (chattr +i)."""
  if os.geteuid() != 0:
    folder.chmod(0o555)
    try:
      yield
    finally:
      folder.chmod(0o755)
    return
  if shutil.which("chattr") is None or subprocess.run(
      ["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
    pytest.skip("root cannot make a folder read-only here (no chattr +i)")
  try:
    yield
  finally:
    subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_read_only_source_folder_caches_in_the_user_cache(tmp_path, crops, user_cache):
  folder = tmp_path / "ro"
  folder.mkdir()
  path = files.write_cropped_mat(folder / "extra_32x32.mat", crops, FILE_LABELS)
  with read_only(folder):
    images, labels = cropped.load_cropped(path)
    assert [p.name for p in folder.iterdir()] == ["extra_32x32.mat"]
  assert Path(images.filename).parent == user_cache
  np.testing.assert_array_equal(images, crops)
  np.testing.assert_array_equal(labels, DIGITS)


def test_a_truncated_cache_is_converted_again(tmp_path, crops):
  path = files.write_cropped_mat(tmp_path / "train_32x32.mat", crops, FILE_LABELS)
  images, _ = cropped.load_cropped(path)
  cache = Path(images.filename)
  del images
  cache.write_bytes(cache.read_bytes()[:1000])
  images, _ = cropped.load_cropped(path)
  np.testing.assert_array_equal(images, crops)


def test_double_x_of_whole_numbers_is_accepted(tmp_path, crops):
  path = tmp_path / "d.mat"
  scipy.io.savemat(path, {"X": np.transpose(crops, (1, 2, 3, 0)).astype(np.float64),
                          "y": FILE_LABELS.reshape(-1, 1).astype(np.float64)})
  images, labels = cropped.load_cropped(path)
  np.testing.assert_array_equal(images, crops)
  np.testing.assert_array_equal(labels, DIGITS)


def _savemat(path: Path, **variables) -> Path:
  scipy.io.savemat(path, variables)
  return path


def test_bad_format2_files_raise_one_line_errors(tmp_path, crops):
  x, y = np.transpose(crops, (1, 2, 3, 0)), FILE_LABELS.reshape(-1, 1)
  cases = {
      "no_x.mat": (_savemat(tmp_path / "no_x.mat", y=y), ["no variable X"]),
      "no_y.mat": (_savemat(tmp_path / "no_y.mat", X=x), ["no variable y"]),
      "nhwc.mat": (_savemat(tmp_path / "nhwc.mat", X=crops, y=y),
                   ["X has shape (12, 32, 32, 3)", "np.transpose(X, (1, 2, 3, 0))",
                    "permute(X, [2 3 4 1])"]),
      "chw.mat": (_savemat(tmp_path / "chw.mat", X=np.transpose(crops, (3, 1, 2, 0)), y=y),
                  ["X has shape (3, 32, 32, 12)", "np.transpose(X, (1, 2, 0, 3))"]),
      "grey.mat": (_savemat(tmp_path / "grey.mat", X=x[:, :, 0], y=y),
                   ["X has shape (32, 32, 12)", "(32, 32, 3, N)"]),
      "fractions.mat": (_savemat(tmp_path / "fractions.mat", X=x / 3.0, y=y),
                        ["X (MATLAB float64)", "not whole numbers 0..255"]),
      "too_big.mat": (_savemat(tmp_path / "too_big.mat", X=x * 2.0, y=y),
                      ["not whole numbers 0..255"]),
      "text.mat": (_savemat(tmp_path / "text.mat", X=np.array(["abc"]), y=y),
                   ["X has shape (1,)"]),
      "label_0.mat": (_savemat(tmp_path / "label_0.mat", X=x, y=np.where(y == 10, 0, y)),
                      ["y holds labels [0] outside 1..10"]),
      "label_11.mat": (_savemat(tmp_path / "label_11.mat", X=x, y=y + 1),
                       ["y holds labels [11] outside 1..10"]),
      "count.mat": (_savemat(tmp_path / "count.mat", X=x, y=y[:5]),
                    ["X holds 12 images but y has shape (5, 1)", "(12, 1)"]),
  }
  for name, (path, fragments) in cases.items():
    one_line_error(lambda: cropped.load_cropped(path), name, *fragments)
  assert not list(tmp_path.glob("*.npy")), "a failed conversion left a cache behind"


def test_unreadable_files_raise_one_line_errors(tmp_path, crops):
  good = files.write_cropped_mat(tmp_path / "good.mat", crops, FILE_LABELS).read_bytes()
  html = tmp_path / "html.mat"
  html.write_text("<!DOCTYPE html><html><body>Quota exceeded</body></html>")
  empty = tmp_path / "empty.mat"
  empty.write_bytes(b"")
  truncated = tmp_path / "truncated.mat"
  truncated.write_bytes(good[:len(good) // 2])
  header_only = tmp_path / "header_only.mat"
  header_only.write_bytes(good[:60])
  v73 = files.write_digit_struct(tmp_path / "v73.mat", [digit_struct.Photo("1.png", DIGITS[:1],
                                                                 np.ones((1, 4), np.float32))])
  one_line_error(lambda: cropped.load_cropped(html), "html.mat", "HTML")
  one_line_error(lambda: cropped.load_cropped(empty), "empty.mat", "empty (0 bytes)")
  one_line_error(lambda: cropped.load_cropped(truncated), "truncated.mat", "truncated",
                 "bytes past its end")
  one_line_error(lambda: cropped.load_cropped(header_only), "header_only.mat", "not a MATLAB v5")
  one_line_error(lambda: cropped.load_cropped(v73), "v73.mat", "MATLAB v7.3 (HDF5)", "'-v7'")
  one_line_error(lambda: cropped.load_cropped(tmp_path / "absent.mat"), "absent.mat", "no such file")
  assert not list(tmp_path.glob("*.npy"))


def test_describe_cropped_reports_counts_shapes_and_classes(tmp_path, crops):
  path = files.write_cropped_mat(tmp_path / "test_32x32.mat", crops, FILE_LABELS)
  text = describe.describe(path)
  assert "format 2" in text and "12 crops" in text
  assert "X  (32, 32, 3, 12) uint8" in text and "uint8 (12, 32, 32, 3)" in text
  assert "labels 1..10" in text and "int32 0..9" in text
  assert "0: 2  1: 1  2: 1  3: 2  4: 1" in text and "max/min 2.00" in text


# ---------------------------------------------------------------------------------------------
# Format 1: digitStruct.mat

def _photos() -> list[digit_struct.Photo]:
  """One digit (inline fields), two and three digits (references), a zero, boxes outside."""
  return [
      digit_struct.Photo("1.png", np.array([0], np.int32), np.array([[3, 4, 10, 20]], np.float32)),
      digit_struct.Photo("2.png", np.array([1, 9], np.int32),
               np.array([[-5, 2, 12, 30], [7, -1.5, 12, 30]], np.float32)),
      digit_struct.Photo("3.png", np.array([4, 0, 7], np.int32),
               np.array([[40, 8, 9, 21], [49, 8, 9, 21], [58, 8, 90, 21]], np.float32)),
  ]


def _assert_same(got: list[digit_struct.Photo], want: list[digit_struct.Photo]) -> None:
  assert [p.name for p in got] == [p.name for p in want]
  for g, w in zip(got, want):
    assert g.labels.dtype == np.int32 and g.boxes.dtype == np.float32
    assert g.boxes.shape == (len(w.labels), 4)
    np.testing.assert_array_equal(g.labels, w.labels)
    np.testing.assert_array_equal(g.boxes, w.boxes)


def test_written_digit_struct_has_matlab_layout(tmp_path):
  path = files.write_digit_struct(tmp_path / "digitStruct.mat", _photos())
  assert path.read_bytes()[:19] == b"MATLAB 7.3 MAT-file"
  assert path.read_bytes()[512:520] == b"\x89HDF\r\n\x1a\n"
  with h5py.File(path, "r") as f:
    assert f.id.get_create_plist().get_userblock() == 512
    assert f["digitStruct"].attrs["MATLAB_class"] == b"struct"
    names, boxes = f["digitStruct/name"], f["digitStruct/bbox"]
    assert names.shape == boxes.shape == (3, 1) and names.dtype == h5py.ref_dtype
    name = f[names[0, 0]]
    assert name.dtype == np.uint16 and name.shape == (5, 1)
    assert name.attrs["MATLAB_class"] == b"char" and name.attrs["MATLAB_int_decode"] == 2
    assert name.parent.name == "/#refs#"
    one, three = f[boxes[0, 0]], f[boxes[2, 0]]
    assert one.attrs["MATLAB_class"] == b"struct"
    assert one["label"].shape == (1, 1) and one["label"][0, 0] == 10.0
    assert three["label"].shape == (3, 1) and three["label"].dtype == h5py.ref_dtype
    assert [f[r][0, 0] for r in three["label"][:, 0]] == [4.0, 10.0, 7.0]
    assert f[three["width"][2, 0]].attrs["MATLAB_class"] == b"double"


def test_read_digit_struct_reads_inline_and_referenced_boxes(tmp_path):
  path = files.write_digit_struct(tmp_path / "digitStruct.mat", _photos())
  _assert_same(digit_struct.read_digit_struct(path), _photos())


def test_fast_reader_agrees_with_h5py_and_newer_formats_fall_back(tmp_path, monkeypatch):
  photos = [photo for photo, _ in files.sample_photos(40, seed=3)]
  earliest = files.write_digit_struct(tmp_path / "earliest.mat", photos)
  latest = files.write_digit_struct(tmp_path / "latest.mat", photos, libver="latest")
  with h5py.File(earliest, "r") as f:
    fast = _hdf5_fast.FastReader(f, earliest)
    slow = digit_struct._H5pyReader(f, earliest)
    for i in range(len(photos)):
      assert fast.name(i) == slow.name(i)
      assert fast.fields(i) == slow.fields(i)
    fast.close()
  with h5py.File(latest, "r") as f:
    with pytest.raises(_hdf5_fast.NotSimple):
      _hdf5_fast.FastReader(f, latest).name(0)
  _assert_same(digit_struct.read_digit_struct(earliest), photos)
  _assert_same(digit_struct.read_digit_struct(latest), photos)


def _point_reference(path: Path, field: str, row: int, address: int) -> None:
  """Overwrites the stored object address of /digitStruct/<field>[row]."""
  with h5py.File(path, "r+") as f:
    dataset = f["digitStruct"][field]
    addresses = _hdf5_fast.raw_addresses(dataset).reshape(dataset.shape)
    addresses[row, 0] = address
    dataset.id.write(h5py.h5s.ALL, h5py.h5s.ALL, addresses, mtype=h5py.h5t.STD_REF_OBJ)


def test_bad_references_raise_one_line_errors(tmp_path):
  null = files.write_digit_struct(tmp_path / "null.mat", _photos())
  _point_reference(null, "name", 1, 0)
  one_line_error(lambda: digit_struct.read_digit_struct(null), "null.mat", "digitStruct(2).name",
                 "null reference")
  dangling = files.write_digit_struct(tmp_path / "dangling.mat", _photos())
  _point_reference(dangling, "name", 2, dangling.stat().st_size + 4096)
  one_line_error(lambda: digit_struct.read_digit_struct(dangling), "dangling.mat", "digitStruct(3).name",
                 "refers to nothing")
  box = files.write_digit_struct(tmp_path / "box.mat", _photos())
  _point_reference(box, "bbox", 0, box.stat().st_size + 4096)
  one_line_error(lambda: digit_struct.read_digit_struct(box), "box.mat", "digitStruct(1).bbox",
                 "refers to nothing")


def _repoint(dataset: h5py.Dataset, row: int, target: h5py.HLObject) -> None:
  """Makes reference `row` of a (k, 1) reference dataset point to `target`."""
  refs = dataset[()]
  refs[row, 0] = target.ref
  dataset[...] = refs


def _new(f: h5py.File, **kwargs) -> h5py.Dataset:
  return f["#refs#"].create_dataset("zz", **kwargs)


def _char(text: str) -> np.ndarray:
  return np.frombuffer(text.encode("utf-16-le"), np.uint16).reshape(-1, 1)


def _third_label(f: h5py.File) -> h5py.Dataset:
  """3.png's label field: (3, 1) references to (1, 1) doubles."""
  return f[f["digitStruct/bbox"][2, 0]]["label"]


def _first_label_is(f: h5py.File, value) -> None:
  """Replaces 1.png's inline (1, 1) label field by `value`: an array, an object, a link."""
  box = f[f["digitStruct/bbox"][0, 0]]
  del box["label"]
  box["label"] = value


def _named_datatype(f: h5py.File) -> h5py.Datatype:
  f["#refs#/tt"] = np.dtype("f8")
  return f["#refs#/tt"]


def _region_references(f: h5py.File) -> None:
  del f["digitStruct/name"]
  f["digitStruct"].create_dataset("name", (3, 1), h5py.regionref_dtype)


# Valid HDF5, invalid digitStruct: (change, fragments of the one-line error).
MALFORMED = {
    "label reference to a group": (
        lambda f: _repoint(_third_label(f), 1, f[f["digitStruct/bbox"][0, 0]]),
        ["digitStruct(3).bbox.label (digit 2) is a group; expected a (1, 1) double"]),
    "label reference to a char array": (
        lambda f: _repoint(_third_label(f), 0, f[f["digitStruct/name"][0, 0]]),
        ["digitStruct(3).bbox.label (digit 1) is a dataset of uint16, shape (5, 1)",
         "expected a (1, 1) double"]),
    "label reference to two doubles": (
        lambda f: _repoint(_third_label(f), 2, _new(f, data=np.array([[7.0], [8.0]]))),
        ["digitStruct(3).bbox.label (digit 3) is a dataset of float64, shape (2, 1)"]),
    "label reference to a string": (
        lambda f: _repoint(_third_label(f), 1, _new(f, data="7", dtype=h5py.string_dtype())),
        ["digitStruct(3).bbox.label (digit 2) is a dataset of strings"]),
    "label reference to a named datatype": (
        lambda f: _repoint(_third_label(f), 1, _named_datatype(f)),
        ["digitStruct(3).bbox.label (digit 2) is a named datatype"]),
    "inline label of strings": (
        lambda f: _first_label_is(f, np.array([[b"3"]])),
        ["digitStruct(1).bbox.label is a dataset of strings, shape (1, 1); expected one double "
         "per digit"]),
    "inline complex label": (
        lambda f: _first_label_is(f, np.array([[3 + 1j]])),
        ["digitStruct(1).bbox.label is a dataset of complex128"]),
    "inline empty label": (
        lambda f: _first_label_is(f, h5py.Empty("f8")),
        ["digitStruct(1).bbox.label is an empty dataset (null dataspace)"]),
    "label a group": (
        lambda f: _first_label_is(f, f["#refs#"].create_group("zz")),
        ["digitStruct(1).bbox.label is a group; expected one double per digit"]),
    "label a dangling soft link": (
        lambda f: _first_label_is(f, h5py.SoftLink("/nowhere")),
        ["digitStruct(1).bbox.label is a dangling link"]),
    "name reference to a group": (
        lambda f: _repoint(f["digitStruct/name"], 1, f[f["digitStruct/bbox"][0, 0]]),
        ["digitStruct(2).name is a group; expected a MATLAB char array (uint16)"]),
    "name of doubles": (
        lambda f: _repoint(f["digitStruct/name"], 2, _new(f, data=np.zeros((5, 1)))),
        ["digitStruct(3).name is a dataset of float64, shape (5, 1)"]),
    "name a null dataspace": (
        lambda f: _repoint(f["digitStruct/name"], 2, _new(f, data=h5py.Empty("u2"))),
        ["digitStruct(3).name is an empty dataset (null dataspace)"]),
    "name not UTF-16": (
        lambda f: _repoint(f["digitStruct/name"], 2, _new(f, data=np.array([[0xD800]], np.uint16))),
        ["digitStruct(3).name is not valid UTF-16"]),
    "name empty": (
        lambda f: _repoint(f["digitStruct/name"], 2, _new(f, data=np.zeros((0, 1), np.uint16))),
        ["digitStruct(3).name is ''; expected a file name such as 1.png"]),
    "name a path": (
        lambda f: _repoint(f["digitStruct/name"], 0, _new(f, data=_char("../1.png"))),
        ["digitStruct(1).name is '../1.png'; expected a file name"]),
    "bbox reference to a char array": (
        lambda f: _repoint(f["digitStruct/bbox"], 1, f[f["digitStruct/name"][0, 0]]),
        ["digitStruct(2).bbox is a dataset of uint16, shape (5, 1); expected a MATLAB struct "
         "with fields left, top, width, height, label"]),
    "region references": (
        _region_references,
        ["/digitStruct/name is missing or not a dataset of object references"]),
}


@pytest.mark.parametrize("libver", ["earliest", "latest"])  # the fast reader first, h5py only
@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_digit_struct_raises_one_line_errors(tmp_path, case, libver):
  change, fragments = MALFORMED[case]
  path = files.write_digit_struct(tmp_path / "digitStruct.mat", _photos(), libver=libver)
  with h5py.File(path, "r+") as f:
    change(f)
  one_line_error(lambda: digit_struct.read_digit_struct(path), "digitStruct.mat", *fragments)


def test_fields_beyond_the_five_are_not_read(tmp_path):
  path = files.write_digit_struct(tmp_path / "digitStruct.mat", _photos())
  with h5py.File(path, "r+") as f:
    for row in range(3):
      f[f["digitStruct/bbox"][row, 0]].create_group("note")
  _assert_same(digit_struct.read_digit_struct(path), _photos())


@pytest.mark.parametrize("row", [0, 2])  # an inline field and a field of references
def test_missing_box_field_raises(tmp_path, row):
  path = files.write_digit_struct(tmp_path / "digitStruct.mat", _photos())
  with h5py.File(path, "r+") as f:
    del f[f["digitStruct/bbox"][row, 0]]["width"]
  one_line_error(lambda: digit_struct.read_digit_struct(path), "digitStruct.mat",
                 f"digitStruct({row + 1}).bbox ({row + 1}.png) has no field width")


def test_labels_outside_1_to_10_raise(tmp_path):
  photos = _photos()
  photos[2] = photos[2]._replace(labels=np.array([4, 11, 7], np.int32))
  path = files.write_digit_struct(tmp_path / "digitStruct.mat", photos)
  one_line_error(lambda: digit_struct.read_digit_struct(path), "digitStruct(3).bbox (3.png)",
                 "labels [4.0, 11.0, 7.0]", "expected 1..10")


@pytest.mark.parametrize("row, digit, field, value", [
    (1, 1, "width", -5),  # the example, a field of references
    (0, 0, "height", 0),  # an inline field
    (2, 2, "width", 1e-50),  # > 0 as a double, 0 as float32
    (2, 0, "left", np.nan),
    (1, 0, "top", -np.inf),
    (0, 0, "width", 1e300),  # finite as a double, infinite as float32
])
def test_bad_box_geometry_raises_like_bad_labels(tmp_path, row, digit, field, value):
  photos = _photos()
  boxes = photos[row].boxes.astype(np.float64)
  boxes[digit, digit_struct.BOX_FIELDS.index(field)] = value
  photos[row] = photos[row]._replace(boxes=boxes)
  path = files.write_digit_struct(tmp_path / "digitStruct.mat", photos)
  stored = boxes[:, digit_struct.BOX_FIELDS.index(field)].tolist()
  one_line_error(lambda: digit_struct.read_digit_struct(path), "digitStruct.mat",
                 f"digitStruct({row + 1}).bbox ({row + 1}.png) has {field} {stored}; expected "
                 "finite pixel")


def test_wrong_files_for_digit_struct_raise(tmp_path, crops):
  v5 = files.write_cropped_mat(tmp_path / "v5.mat", crops, FILE_LABELS)
  one_line_error(lambda: digit_struct.read_digit_struct(v5), "v5.mat", "MATLAB v5 file", "v7.3")
  html = tmp_path / "digitStruct.mat"
  html.write_text("<html><body>404</body></html>")
  one_line_error(lambda: digit_struct.read_digit_struct(html), "HTML")
  plain = tmp_path / "plain.h5"
  with h5py.File(plain, "w") as f:
    f["X_train"] = np.zeros(3)
  one_line_error(lambda: digit_struct.read_digit_struct(plain), "plain.h5", "no group /digitStruct",
                 "X_train")
  whole = files.write_digit_struct(tmp_path / "whole.mat", _photos()).read_bytes()
  cut = tmp_path / "cut.mat"
  cut.write_bytes(whole[:2000])
  one_line_error(lambda: digit_struct.read_digit_struct(cut), "cut.mat", "not a readable HDF5 file")


def test_describe_digit_struct(tmp_path):
  path = files.write_digit_struct(tmp_path / "digitStruct.mat", _photos())
  text = describe.describe(path)
  assert "3 photos, 6 digits" in text
  assert "digits per photo: 1: 1  2: 1  3: 1" in text
  assert "per class: 0: 2  1: 1  2: 0  3: 0  4: 1" in text
  assert "boxes starting left of or above their photo: 2" in text


# ---------------------------------------------------------------------------------------------
# Format 1: archives, photos, crops

@pytest.fixture
def photos_with_images() -> list[tuple[digit_struct.Photo, np.ndarray]]:
  return files.sample_photos(4, seed=5)


def test_open_full_extracts_once_and_reads_photos(tmp_path, photos_with_images, monkeypatch):
  archive = files.write_full_tar(tmp_path / "train.tar.gz", "train", photos_with_images)
  split = photos.open_full(archive)

  assert len(split) == 4 and split.folder.name == "train"
  assert split.folder.parent.parent == tmp_path
  _assert_same(split.photos, [photo for photo, _ in photos_with_images])
  for i, (_, image) in enumerate(photos_with_images):
    got = split.image(i)
    assert got.dtype == np.uint8 and got.shape == image.shape
    np.testing.assert_array_equal(got, image)

  monkeypatch.setattr(photos, "_extract_all", lambda *args: pytest.fail("extracted twice"))
  again = photos.open_full(archive)
  assert again.folder == split.folder
  assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def uncompressed(archive: Path) -> Path:
  """Rewrites a .tar.gz as a plain tar under the same name (tarfile reads either): a plain tar's
  size follows its members' sizes alone, so two archives can differ in bytes but not in size."""
  with tarfile.open(archive) as tar:
    members = [(member, tar.extractfile(member).read()) for member in tar]
  with tarfile.open(archive, "w") as tar:
    for member, payload in members:
      tar.addfile(member, io.BytesIO(payload))
  return archive


def test_same_named_archives_in_two_folders_are_extracted_once_each(tmp_path, photos_with_images,
                                                                    monkeypatch):
  relabelled = [(digit_struct.Photo(photo.name, (photo.labels + 1) % 10, photo.boxes), image)
                for photo, image in photos_with_images]
  archives = []
  for folder, pairs in (("a", photos_with_images), ("b", relabelled)):
    (tmp_path / folder).mkdir()
    archives.append(uncompressed(files.write_full_tar(tmp_path / folder / "train.tar.gz", "train",
                                                      pairs)))
  same_name_size_and_mtime(*archives)
  extracted = []
  extract = photos._extract_all
  monkeypatch.setattr(photos, "_extract_all", lambda archive, target: (extracted.append(archive),
                                                                   extract(archive, target)))
  for _ in range(2):
    for archive, pairs in zip(archives, (photos_with_images, relabelled)):
      split = photos.open_full(archive, tmp_path / "cache")
      _assert_same(split.photos, [photo for photo, _ in pairs])
  assert extracted == archives
  assert len(list((tmp_path / "cache").glob("train.*"))) == 2


def test_open_full_accepts_the_extracted_folder(tmp_path, photos_with_images):
  archive = files.write_full_tar(tmp_path / "test.tar.gz", "test", photos_with_images)
  with tarfile.open(archive) as tar:
    tar.extractall(tmp_path / "x", filter="data")
  split = photos.open_full(tmp_path / "x" / "test")
  assert split.folder == tmp_path / "x" / "test"
  assert photos.open_full(tmp_path / "x").folder == split.folder
  assert not [p for p in tmp_path.iterdir() if ".tar" not in p.name and p.name != "x"]
  np.testing.assert_array_equal(split.image(3), photos_with_images[3][1])


def test_broken_archives_raise_and_leave_nothing(tmp_path, photos_with_images):
  for name in "abc":
    (tmp_path / name).mkdir()
  no_struct = files.write_full_tar(tmp_path / "a" / "train.tar.gz", "train", photos_with_images,
                                   digit_struct=False)
  one_line_error(lambda: photos.open_full(no_struct), "train.tar.gz", "has no digitStruct.mat")
  assert [p.name for p in no_struct.parent.iterdir()] == ["train.tar.gz"]

  missing = [(photo, None if i == 2 else image)
             for i, (photo, image) in enumerate(photos_with_images)]
  archive = files.write_full_tar(tmp_path / "b" / "test.tar.gz", "test", missing)
  one_line_error(lambda: photos.open_full(archive), "test.tar.gz", "1 photos listed in digitStruct.mat",
                 "missing, e.g. 3.png")
  assert [p.name for p in archive.parent.iterdir()] == ["test.tar.gz"]

  whole = files.write_full_tar(tmp_path / "c" / "w.tar.gz", "w", photos_with_images).read_bytes()
  cut = tmp_path / "c" / "extra.tar.gz"
  cut.write_bytes(whole[:len(whole) // 2])
  one_line_error(lambda: photos.open_full(cut), "extra.tar.gz", "not a readable .tar.gz")
  assert sorted(p.name for p in cut.parent.iterdir()) == ["extra.tar.gz", "w.tar.gz"]


def test_square_crops_geometry_by_hand():
  # Pixel (y, x) holds (x, y, 7): a crop's pixels say where in the photo they came from.
  ys, xs = np.mgrid[0:40, 0:60]
  photo = np.stack([xs, ys, np.full_like(xs, 7)], axis=-1).astype(np.uint8)
  boxes = np.array([
      [20, 4, 10, 32],  # inside: side 32, left edge 20 + 5 - 16 = 9, top 4
      [2, 0, 10, 32],  # near the left edge: columns -9..22, the first 9 repeat column 0
      [50, 30, 8, 32],  # past the right and bottom edges: columns 38..69, rows 30..61
  ], np.float32)
  crops = photos.square_crops(photo, boxes)
  assert crops.shape == (3, 32, 32, 3) and crops.dtype == np.uint8
  np.testing.assert_array_equal(crops[0, :, :, 0], np.tile(np.arange(9, 41), (32, 1)))
  np.testing.assert_array_equal(crops[0, :, :, 1], np.tile(np.arange(4, 36)[:, None], (1, 32)))
  np.testing.assert_array_equal(crops[1, 0, :, 0], np.clip(np.arange(-9, 23), 0, None))
  np.testing.assert_array_equal(crops[2, 0, :, 0], np.clip(np.arange(38, 70), None, 59))
  np.testing.assert_array_equal(crops[2, :, 0, 1], np.clip(np.arange(30, 62), None, 39))
  assert (crops[..., 2] == 7).all()


def test_square_crops_resize_a_64_pixel_square_to_32():
  photo = np.zeros((80, 100, 3), np.uint8)
  photo[:, 50:] = 200  # a vertical edge through the middle of the box's square
  crop = photos.square_crops(photo, np.array([[34, 8, 32, 64]], np.float32))[0]
  # The square spans columns 18..81 (side 64 about x = 50): the edge falls at crop column 16.
  assert (crop[:, :15] == 0).all() and (crop[:, 17:] == 200).all()


def test_square_crops_of_huge_boxes_repeat_the_edge_without_filling_memory():
  photo = np.zeros((30, 40, 3), np.uint8)
  photo[:, 20:] = 200
  # Valid boxes (finite, width and height > 0): one 1e30 pixels wide, one 1e12 pixels away.
  boxes = np.array([[5, 5, 1e30, 10], [-1e12, 3, 8, 8]], np.float32)
  crops = photos.square_crops(photo, boxes)
  assert crops.shape == (2, 32, 32, 3)
  assert (crops[0] == 200).all()  # centred far right of the photo: its right edge
  assert (crops[1] == 0).all()  # far left: its left edge


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="the shared SVHN samples are not here")
def test_digit_crops_of_real_svhn_photos_match_the_shipped_crops(tmp_path):
  """The 4 real photos of SVHN train/1..4.png, as a format-1 archive, give crops close to the
  8 crops cut from them for svhn_crops_12.npz with the same recipe (rounding may differ)."""
  from PIL import Image

  meta = json.loads((SHARED_DATA / "house_numbers" / "labels.json").read_text())
  pairs = []
  for entry in meta:
    boxes = np.array([[b["left"], b["top"], b["width"], b["height"]] for b in entry["boxes"]],
                     np.float32)
    image = np.asarray(Image.open(SHARED_DATA / "house_numbers" / entry["filename"]).convert("RGB"))
    pairs.append((digit_struct.Photo(entry["filename"], np.array(entry["digits"], np.int32), boxes), image))
  split = photos.open_full(files.write_full_tar(tmp_path / "train.tar.gz", "train", pairs))

  crops, labels = photos.digit_crops(split)

  shipped = np.load(SHARED_DATA / "svhn_crops_12.npz")
  assert crops.shape == (8, 32, 32, 3) and crops.dtype == np.uint8 and labels.dtype == np.int32
  np.testing.assert_array_equal(labels, shipped["y"][4:])
  difference = np.abs(crops.astype(int) - shipped["X_rgb"][4:].astype(int)).mean(axis=(1, 2, 3))
  assert (difference < 12).all(), difference
  assert (difference == 0).sum() >= 4
  only_second, second_labels = photos.digit_crops(split, [1])
  np.testing.assert_array_equal(only_second, crops[2:4])
  np.testing.assert_array_equal(second_labels, [2, 3])


def test_describe_archive_and_folder(tmp_path):
  records = _photos()
  sizes = [(30, 30), (40, 32), (100, 40)]
  pairs = [(photo, np.zeros((h, w, 3), np.uint8)) for photo, (w, h) in zip(records, sizes)]
  archive = files.write_full_tar(tmp_path / "test.tar.gz", "test", pairs)
  text = describe.describe(archive)
  assert "3 photos, 6 digits" in text and "digits per photo: 1: 1  2: 1  3: 1" in text
  # Outside: 2.png's first box (left -5) and second (top -1.5), 3.png's last (58 + 90 > 100).
  assert "boxes reaching outside their photo: 3" in text
  assert "photo size 30..100 x 30..40 px" in text
  folder = photos.open_full(archive).folder
  assert describe.describe(folder).splitlines()[1:] == text.splitlines()[1:]
  html = tmp_path / "page.bin"
  html.write_text("<!doctype html><p>moved</p>")
  one_line_error(lambda: describe.describe(html), "page.bin", "HTML")


def _same_pixels(got: np.ndarray, expected: np.ndarray, lossy: bool) -> None:
  assert got.dtype == np.uint8 and got.shape == expected.shape
  if lossy:  # JPEG: near, not equal
    assert np.abs(got.astype(int) - expected).mean() < 4
  else:
    np.testing.assert_array_equal(got, expected)


@pytest.fixture(scope="module")
def plain_on_white(tmp_path_factory):
  """Photos of digits on white, as 8-bit RGB PNGs: (pairs, split, digit crops) of the grey and
  the colour ones."""
  folder = tmp_path_factory.mktemp("plain")
  pairs = files.photos_on_white(3, seed=5)
  out = {}
  for name, pictures in (("colour", [image for _, image in pairs]),
                         ("grey", [files.grey_of(image) for _, image in pairs])):
    plain = [(photo, image) for (photo, _), image in zip(pairs, pictures)]
    split = photos.open_full(files.write_full_tar(folder / f"{name}.tar.gz", "train", plain))
    out[name] = plain, photos.digit_crops(split)[0]
  return pairs, out


@pytest.mark.parametrize("how", files.PHOTO_FILES)
def test_photos_of_every_mode_train_as_read_reads_them(tmp_path, plain_on_white, how):
  """The issue's example (RGBA on transparent, EXIF-rotated JPEG) and the other modes: training's
  digit crops, its photos and inspect follow svhn_jax.images' rules, as `read` does."""
  pairs, plain = plain_on_white
  renamed = [(photo._replace(name=photo.name.replace(".png", ".jpg" if "jpeg" in how else ".png")),
              files.photo_file(image, how)) for photo, image in pairs]
  archive = files.write_full_tar(tmp_path / "train.tar.gz", "train", renamed)
  split = photos.open_full(archive)
  expected_photos, expected_crops = plain["grey" if how in files.GREY else "colour"]
  for i, (photo, expected) in enumerate(expected_photos):
    got = split.image(i)
    _same_pixels(got, expected, how in files.LOSSY)
    _same_pixels(got, images.read_photo(split.folder / renamed[i][0].name), False)
  _same_pixels(photos.digit_crops(split)[0], expected_crops, how in files.LOSSY)

  text = describe.describe(archive)
  kind = images.reading(split.folder / renamed[0][0].name)
  assert f"photo files: {kind.kind}: 3" in text
  for rule in kind.rules:
    assert f"{rule}: 3" in text, (rule, text)
  widths, heights = [image.shape[1] for _, image in pairs], [image.shape[0] for _, image in pairs]
  # Upright, as loaded, EXIF orientation or not.
  assert f"photo size {min(widths)}..{max(widths)} x {min(heights)}..{max(heights)} px" in text


def test_inspect_says_photos_are_read_as_stored(tmp_path, plain_on_white):
  pairs, _ = plain_on_white
  text = describe.describe(files.write_full_tar(tmp_path / "test.tar.gz", "test", pairs))
  assert "photo files: PNG RGB: 3" in text
  assert "read as stored: 8-bit RGB, no EXIF orientation, no transparency" in text


def _deeper(tmp_path, photos_with_images, split="SVHN/train") -> Path:
  return files.write_full_tar(tmp_path / "train.tar.gz", split, photos_with_images)


def test_a_split_one_folder_deeper_is_inspected_and_loaded_alike(tmp_path, photos_with_images):
  """The issue's example: SVHN/train/digitStruct.mat in train.tar.gz, then the same extracted."""
  archive = _deeper(tmp_path, photos_with_images)
  split = photos.open_full(archive)
  assert split.folder.relative_to(tmp_path).parts[1:] == ("SVHN", "train")
  _assert_same(split.photos, [photo for photo, _ in photos_with_images])
  np.testing.assert_array_equal(split.image(2), photos_with_images[2][1])
  text = describe.describe(archive)
  assert "4 photos" in text and "photo files: PNG RGB: 4" in text

  with tarfile.open(archive) as tar:
    tar.extractall(tmp_path / "x" / "deeper", filter="data")
  for folder in (tmp_path / "x", tmp_path / "x" / "deeper", tmp_path / "x" / "deeper" / "SVHN"):
    assert photos.open_full(folder).folder == tmp_path / "x" / "deeper" / "SVHN" / "train"
    assert describe.describe(folder).splitlines()[1:] == text.splitlines()[1:]


def _two_splits(path: Path, photos_with_images) -> Path:
  """An archive of two splits: train/ and test/, each with its digitStruct.mat."""
  parts = [files.write_full_tar(path.with_name(f"{split}.part.tar.gz"), split, photos_with_images)
           for split in ("train", "test")]
  with tarfile.open(path, "w:gz") as out:
    for part in parts:
      with tarfile.open(part) as tar:
        for member in tar:
          out.addfile(member, tar.extractfile(member))
  return path


def test_several_digit_structs_in_one_split_are_refused_alike(tmp_path, photos_with_images):
  archive = _two_splits(tmp_path / "both.tar.gz", photos_with_images)
  for call in (photos.open_full, describe.describe):
    one_line_error(lambda: call(archive), "both.tar.gz holds 2 digitStruct.mat files",
                   "test/digitStruct.mat, train/digitStruct.mat", "one per split")
  assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # no extraction left behind
  with tarfile.open(archive) as tar:
    tar.extractall(tmp_path / "x", filter="data")
  for call in (photos.open_full, describe.describe):
    one_line_error(lambda: call(tmp_path / "x"), "holds 2 digitStruct.mat files",
                   "test/digitStruct.mat, train/digitStruct.mat")
  assert photos.open_full(tmp_path / "x" / "test").folder == tmp_path / "x" / "test"


def test_inspect_refuses_what_training_refuses(tmp_path, photos_with_images):
  no_struct = files.write_full_tar(tmp_path / "a.tar.gz", "train", photos_with_images,
                                   digit_struct=False)
  missing = files.write_full_tar(tmp_path / "b.tar.gz", "train", [
      (photo, None if i == 2 else image) for i, (photo, image) in enumerate(photos_with_images)])
  broken = files.write_full_tar(tmp_path / "c.tar.gz", "train", [
      (photo, b"not a photo" if i == 1 else image)
      for i, (photo, image) in enumerate(photos_with_images)])
  linked = tmp_path / "d.tar.gz"
  with tarfile.open(linked, "w:gz") as out, tarfile.open(missing) as tar:
    for member in tar:
      out.addfile(member, tar.extractfile(member))
    link = tarfile.TarInfo("train/3.png")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/hostname"
    out.addfile(link)
  for archive, fragments in ((no_struct, ["has no digitStruct.mat", "at any depth"]),
                             (missing, ["1 photos listed in digitStruct.mat are missing",
                                        "e.g. 3.png"]),
                             (broken, ["2.png is not an image that Pillow can read"]),
                             (linked, ["not a readable .tar.gz", "train/3.png' is a link"])):
    one_line_error(lambda: describe.describe(archive), archive.name, *fragments)
    with pytest.raises(DataError) as loading:
      photos.digit_crops(photos.open_full(archive, tmp_path / "cache"))
    assert all(fragment in str(loading.value) for fragment in fragments), str(loading.value)


# ---------------------------------------------------------------------------------------------
# Download

class _Quiet(http.server.SimpleHTTPRequestHandler):
  requests: list[str] = []

  def log_message(self, *args):
    pass

  def do_GET(self):
    _Quiet.requests.append(self.path)
    super().do_GET()


@pytest.fixture
def server(tmp_path, monkeypatch):
  """Serves tmp_path/served on 127.0.0.1; yields (base_url, folder)."""
  monkeypatch.setenv("NO_PROXY", "127.0.0.1")
  folder = tmp_path / "served"
  folder.mkdir()
  _Quiet.requests = []
  httpd = http.server.ThreadingHTTPServer(
      ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
  thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
  thread.start()
  yield f"http://127.0.0.1:{httpd.server_address[1]}/", folder
  httpd.shutdown()
  httpd.server_close()


def _entry(payload: bytes) -> download.OfficialFile:
  return download.OfficialFile(len(payload), hashlib.md5(payload).hexdigest())


PAYLOAD = bytes(range(256)) * 40


def test_fetch_downloads_verifies_and_reuses(tmp_path, server):
  base_url, served = server
  (served / "train_32x32.mat").write_bytes(PAYLOAD)
  registry = {"train_32x32.mat": _entry(PAYLOAD)}
  cache = tmp_path / "cache"

  path = download.fetch("train_32x32.mat", cache, base_url=base_url, registry=registry)

  assert path == cache / "train_32x32.mat" and path.read_bytes() == PAYLOAD
  assert os.listdir(cache) == ["train_32x32.mat"]
  assert _Quiet.requests == ["/train_32x32.mat"]
  assert download.fetch("train_32x32.mat", cache, base_url=base_url, registry=registry) == path
  assert _Quiet.requests == ["/train_32x32.mat"]
  path.write_bytes(PAYLOAD[::-1])  # a corrupted copy at the final name is downloaded again
  download.fetch("train_32x32.mat", cache, base_url=base_url, registry=registry)
  assert path.read_bytes() == PAYLOAD and len(_Quiet.requests) == 2


def test_fetch_refuses_truncated_and_corrupted_downloads(tmp_path, server):
  base_url, served = server
  (served / "test.tar.gz").write_bytes(PAYLOAD[:3000])
  (served / "extra.tar.gz").write_bytes(PAYLOAD[::-1])
  registry = {"test.tar.gz": _entry(PAYLOAD), "extra.tar.gz": _entry(PAYLOAD)}
  cache = tmp_path / "cache"
  one_line_error(lambda: download.fetch("test.tar.gz", cache, base_url=base_url, registry=registry),
                 "test.tar.gz", "is 3,000 bytes, expected 10,240", "discarded")
  one_line_error(lambda: download.fetch("extra.tar.gz", cache, base_url=base_url, registry=registry),
                 "extra.tar.gz", f"MD5 {registry['extra.tar.gz'].md5}", "discarded")
  assert os.listdir(cache) == []


def test_fetch_network_failures_say_how_to_work_offline(tmp_path, server):
  base_url, _ = server
  registry = {"test_32x32.mat": _entry(PAYLOAD)}
  one_line_error(lambda: download.fetch("test_32x32.mat", tmp_path, base_url=base_url,
                                  registry=registry),
                 "test_32x32.mat", "404", "config.data.path")
  one_line_error(lambda: download.fetch("test_32x32.mat", tmp_path, base_url="http://127.0.0.1:9/",
                                  registry=registry),
                 "Could not download test_32x32.mat", "config.data.path")
  one_line_error(lambda: download.fetch("nope.mat", tmp_path), "nope.mat", "train_32x32.mat")
  assert not list(tmp_path.glob("test_32x32.mat*"))


def test_registry_holds_the_six_official_files():
  assert sorted(download.REGISTRY) == ["extra.tar.gz", "extra_32x32.mat", "test.tar.gz",
                                 "test_32x32.mat", "train.tar.gz", "train_32x32.mat"]
  assert download.REGISTRY["extra_32x32.mat"] == (1_329_278_602, "a93ce644f1a588dc4d68dda5feec44a7")
