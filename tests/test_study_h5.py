"""Tests for svhn_jax.datasets.study_h5 (loading and validating the study's HDF5 file, fetching
it) and the inspect CLI, `python -m svhn_jax.data inspect`."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import h5py
import ml_collections
import numpy as np
import pytest

import svhn_jax
from support import SIZES, good_arrays, with_changes, write_h5
from svhn_jax import data, fileio
from svhn_jax.datasets import describe, study_h5
from svhn_jax.errors import DataError


def test_save_h5_then_load_round_trips(tmp_path):
  arrays = good_arrays()
  dataset = data.Dataset(*(data.Split(arrays[f"X_{s}"], arrays[f"y_{s}"]) for s in data.SPLITS))
  loaded = study_h5.load(study_h5.save_h5(tmp_path / "sub" / "d.h5", dataset))
  for split, want in zip(loaded, dataset):
    assert split.images.dtype == np.float32 and split.images.shape == want.images.shape
    assert split.labels.dtype == np.int32
    np.testing.assert_array_equal(split.images, want.images)
    np.testing.assert_array_equal(split.labels, want.labels)
  assert [p.name for p in (tmp_path / "sub").iterdir()] == ["d.h5"]


def test_load_maps_svhn_label_10_to_zero(tmp_path):
  labels = np.array([10, 1, 2, 9, 10, 5], np.uint8)
  loaded = study_h5.load(write_h5(tmp_path / "d.h5", with_changes(y_train=labels)))
  np.testing.assert_array_equal(loaded.train.labels, [0, 1, 2, 9, 0, 5])


def test_load_converts_uint8_pixels_and_float_labels(tmp_path):
  pixels = np.full((6, 32, 32), 255, np.uint8)
  labels = np.arange(1, 7, dtype=np.float64)
  loaded = study_h5.load(write_h5(tmp_path / "d.h5", with_changes(X_train=pixels, y_train=labels)))
  # Whole-number pixels stay uint8, a quarter of float32's memory; fractional ones float32.
  assert loaded.train.images.dtype == np.uint8 and loaded.train.images.max() == 255
  assert loaded.val.images.dtype == np.float32
  np.testing.assert_array_equal(loaded.train.labels, np.arange(1, 7))


def test_load_missing_file(tmp_path):
  with pytest.raises(DataError, match="nope.h5: no such file"):
    study_h5.load(tmp_path / "nope.h5")


def test_load_directory(tmp_path):
  with pytest.raises(DataError, match="is not a file; expected an HDF5 file"):
    study_h5.load(tmp_path)


def test_load_empty_file(tmp_path):
  (tmp_path / "d.h5").touch()
  with pytest.raises(DataError, match=r"d\.h5 is empty"):
    study_h5.load(tmp_path / "d.h5")


def test_load_not_hdf5(tmp_path):
  (tmp_path / "d.h5").write_bytes(b"just some text, not HDF5\n" * 10)
  with pytest.raises(DataError, match=r"d\.h5 is not a readable HDF5 file"):
    study_h5.load(tmp_path / "d.h5")


def test_load_truncated_hdf5(tmp_path):
  good = write_h5(tmp_path / "good.h5", good_arrays()).read_bytes()
  (tmp_path / "d.h5").write_bytes(good[: len(good) // 2])
  with pytest.raises(DataError, match=r"d\.h5 (is not a readable HDF5|could not be read)"):
    study_h5.load(tmp_path / "d.h5")


def test_load_html_page(tmp_path):
  (tmp_path / "d.h5").write_text("\n<!DOCTYPE html><html><title>Google Drive - Virus scan "
                                 "warning</title></html>")
  with pytest.raises(DataError, match=r"d\.h5 looks like an HTML page.*Google Drive"):
    study_h5.load(tmp_path / "d.h5")


def test_load_missing_keys_lists_what_is_there(tmp_path):
  write_h5(tmp_path / "d.h5", with_changes(y_val=None, X_test=None))
  with pytest.raises(DataError) as e:
    study_h5.load(tmp_path / "d.h5")
  message = str(e.value)
  assert "d.h5" in message and "['y_val', 'X_test']" in message
  assert "'X_train', 'X_val', 'y_test', 'y_train'" in message


BAD_FILES = {
    "channels_first": (dict(X_val=np.full((4, 3, 32, 32), 128, np.float32)),
                       r"X_val has shape \(4, 3, 32, 32\); expected \(N, 32, 32\) greyscale "
                       r"crops.*channels first"),
    "size": (dict(X_train=np.zeros((6, 28, 28), np.float32)),
             r"X_train has shape \(6, 28, 28\); expected \(N, 32, 32\)"),
    "nan": (dict(X_test=np.where(np.arange(5)[:, None, None] == 2, np.nan,
                                 np.zeros((5, 32, 32), np.float32))),
            r"X_test has 1024 NaN or infinite pixel values"),
    "inf": (dict(X_train=np.full((6, 32, 32), np.inf, np.float32)),
            r"X_train has 6144 NaN or infinite"),
    "range": (dict(X_val=np.full((4, 32, 32), 300, np.float32)),
              r"X_val has pixel values from 300 to 300, expected grey levels 0\.\.255"),
    "negative": (dict(X_val=np.full((4, 32, 32), -1, np.float32)),
                 r"X_val has pixel values from -1 to -1"),
    "fractional_labels": (dict(y_train=np.array([0, 1, 2.5, 3, 4, 5])),
                          r"y_train holds labels that are not whole numbers"),
    "nan_labels": (dict(y_train=np.array([0, 1, np.nan, 3, 4, 5])),
                   r"y_train holds labels that are not whole numbers"),
    "label_range": (dict(y_test=np.array([0, 1, 11, 3, 4], np.int64)),
                    r"y_test has labels from 0 to 11; expected digits 0\.\.9"),
    "negative_labels": (dict(y_test=np.array([0, 1, -1, 3, 4], np.int64)),
                        r"y_test has labels from -1 to 4"),
    "string_labels": (dict(y_val=np.array([b"a", b"b", b"c", b"d"])),
                      r"y_val has dtype \|S1; expected integer"),
    "label_shape": (dict(y_val=np.zeros((4, 2), np.uint8)),
                    r"y_val has shape \(4, 2\); expected \(N,\) digit labels"),
    "lengths": (dict(y_train=np.zeros(5, np.uint8)),
                r"X_train holds 6 images but y_train holds 5 labels"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_load_rejects_bad_contents(tmp_path, case):
  changes, message = BAD_FILES[case]
  write_h5(tmp_path / "d.h5", with_changes(**changes))
  with pytest.raises(DataError, match=message) as e:
    study_h5.load(tmp_path / "d.h5")
  assert str(tmp_path / "d.h5") in str(e.value)


def test_load_rejects_group_in_place_of_dataset(tmp_path):
  path = write_h5(tmp_path / "d.h5", with_changes(X_val=None))
  with h5py.File(path, "a") as f:
    f.create_group("X_val")
  with pytest.raises(DataError, match="X_val is a group; expected a dataset"):
    study_h5.load(path)


class StandIn:
  """A gdown.download stand-in: writes `payload` to `output` (or fails as told) and counts."""

  def __init__(self, payload: bytes = b"", error: BaseException | None = None,
               returns_none: bool = False):
    self.payload, self.error, self.returns_none = payload, error, returns_none
    self.calls = 0

  def __call__(self, *, id: str, output: str, quiet: bool) -> str | None:
    self.calls += 1
    # gdown streams into a `.part` file beside `output`; a failure must not leave it behind.
    Path(output + "abc.part").write_bytes(self.payload[:10])
    if self.error is not None:
      raise self.error
    Path(output).write_bytes(self.payload)
    return None if self.returns_none else output


@pytest.fixture(scope="module")
def good_bytes(tmp_path_factory) -> bytes:
  return write_h5(tmp_path_factory.mktemp("good") / "g.h5", good_arrays()).read_bytes()


def test_fetch_downloads_once_then_uses_the_cache(tmp_path, good_bytes):
  download = StandIn(good_bytes)
  path = study_h5.fetch(tmp_path / "cache", filename="s.h5", min_bytes=100, download=download)
  assert path == tmp_path / "cache" / "s.h5" and path.read_bytes() == good_bytes
  assert study_h5.fetch(tmp_path / "cache", filename="s.h5", min_bytes=100, download=download) == path
  assert download.calls == 1
  assert [p.name for p in (tmp_path / "cache").iterdir()] == ["s.h5"]
  assert len(study_h5.load(path).train.labels) == SIZES["train"]


def test_fetch_uses_the_cache_dir_from_the_environment(tmp_path, monkeypatch, good_bytes):
  monkeypatch.setenv("SVHN_JAX_CACHE", str(tmp_path / "env"))
  path = study_h5.fetch(filename="s.h5", min_bytes=100, download=StandIn(good_bytes))
  assert path == tmp_path / "env" / "s.h5"


def test_cache_dir(tmp_path, monkeypatch):
  monkeypatch.setenv("SVHN_JAX_CACHE", str(tmp_path))
  assert fileio.cache_dir("/x/y") == Path("/x/y")
  assert fileio.cache_dir(ml_collections.ConfigDict(dict(cache_dir="/x/z"))) == Path("/x/z")
  assert fileio.cache_dir(ml_collections.ConfigDict(dict(cache_dir=""))) == tmp_path
  assert fileio.cache_dir() == tmp_path
  monkeypatch.delenv("SVHN_JAX_CACHE")
  assert fileio.cache_dir() == Path.home() / ".cache" / "svhn_jax"


def assert_failed_fetch_leaves_nothing(tmp_path: Path, download: StandIn, message: str,
                                       min_bytes: int = 100) -> DataError:
  cache = tmp_path / "cache"
  with pytest.raises(DataError, match=message) as e:
    study_h5.fetch(cache, filename="s.h5", min_bytes=min_bytes, download=download)
  assert list(cache.iterdir()) == []
  return e.value


def test_fetch_rejects_a_short_download(tmp_path, good_bytes):
  assert_failed_fetch_leaves_nothing(tmp_path, StandIn(good_bytes), r"is only [\d,]+ bytes",
                                     min_bytes=len(good_bytes) + 1)


def test_fetch_rejects_a_truncated_download(tmp_path, good_bytes):
  assert_failed_fetch_leaves_nothing(tmp_path, StandIn(good_bytes[: len(good_bytes) // 2]),
                                     "not a readable HDF5 file")


def test_fetch_rejects_an_html_page(tmp_path):
  page = b"<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title>" + (
      b"<p>can't scan this file for viruses</p>" * 10) + b"</html>"
  error = assert_failed_fetch_leaves_nothing(tmp_path, StandIn(page), "HTML page")
  assert "discarded" in str(error)


def test_fetch_rejects_a_file_without_the_six_datasets(tmp_path):
  other = write_h5(tmp_path / "other.h5", with_changes(y_test=None))
  assert_failed_fetch_leaves_nothing(tmp_path, StandIn(other.read_bytes()),
                                     r"lacks the datasets \['y_test'\]")


@pytest.mark.parametrize("download", [
    StandIn(error=ConnectionError("Failed to resolve 'drive.google.com'")),
    StandIn(returns_none=True),
], ids=["raises", "returns_none"])
def test_fetch_offline_says_how_to_go_on(tmp_path, download):
  error = assert_failed_fetch_leaves_nothing(tmp_path, download, "Could not download")
  assert "--config.data.path=FILE" in str(error)
  assert "--config.data.source=synthetic" in str(error)


def test_fetch_interrupted_leaves_nothing(tmp_path, good_bytes):
  with pytest.raises(KeyboardInterrupt):
    study_h5.fetch(tmp_path, filename="s.h5", min_bytes=100,
               download=StandIn(good_bytes, error=KeyboardInterrupt()))
  assert list(tmp_path.iterdir()) == []


def test_fetch_replaces_a_broken_cached_file(tmp_path, good_bytes, caplog):
  (tmp_path / "s.h5").write_bytes(good_bytes[:200])
  download = StandIn(good_bytes)
  with caplog.at_level(logging.WARNING):
    path = study_h5.fetch(tmp_path, filename="s.h5", min_bytes=100, download=download)
  assert download.calls == 1 and path.read_bytes() == good_bytes
  assert "downloading it again" in caplog.text and "s.h5" in caplog.text


def test_check_file(tmp_path, good_bytes):
  (tmp_path / "s.h5").write_bytes(good_bytes)
  study_h5.check_file(tmp_path / "s.h5", min_bytes=100)
  with pytest.raises(DataError, match=r"s\.h5 is only"):
    study_h5.check_file(tmp_path / "s.h5", min_bytes=len(good_bytes) + 1)
  with pytest.raises(DataError, match="no such file"):
    study_h5.check_file(tmp_path / "other.h5")


def test_inspect_lists_every_dataset_with_shape_and_dtype(tmp_path):
  path = write_h5(tmp_path / "d.h5", good_arrays())
  with h5py.File(path, "a") as f:
    f.create_dataset("extra/ids", data=np.zeros((3, 2), np.int64))
  rows = describe.inspect(path)
  assert ("X_train", (6, 32, 32), "float32") in rows
  assert ("y_test", (5,), "uint8") in rows
  assert ("extra/ids", (3, 2), "int64") in rows
  assert len(rows) == 7


def run_cli(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "svhn_jax.data", *args], capture_output=True,
                        text=True, cwd=Path(svhn_jax.__file__).parent.parent, timeout=60)


def test_cli_inspect(tmp_path):
  result = run_cli("inspect", str(write_h5(tmp_path / "d.h5", good_arrays())))
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert len(lines) == 6
  assert any(line.split() == ["X_val", "(4,", "32,", "32)", "float32"] for line in lines)


def test_cli_inspect_missing_file(tmp_path):
  result = run_cli("inspect", str(tmp_path / "nope.h5"))
  assert result.returncode == 1
  assert "nope.h5: no such file" in result.stderr
  assert "Traceback" not in result.stderr and result.stdout == ""


def test_save_h5_writes_a_file_others_can_read(tmp_path):
  old = os.umask(0o022)
  try:
    arrays = good_arrays()
    path = study_h5.save_h5(tmp_path / "d.h5", data.Dataset(
        *(data.Split(arrays[f"X_{s}"], arrays[f"y_{s}"]) for s in data.SPLITS)))
  finally:
    os.umask(old)
  assert path.stat().st_mode & 0o777 == 0o644


def test_an_empty_split_is_one_line_naming_it(tmp_path):
  path = write_h5(tmp_path / "d.h5", with_changes(X_test=np.zeros((0, 32, 32), np.float32),
                                                  y_test=np.zeros(0, np.uint8)))
  with pytest.raises(DataError, match=r"d\.h5: X_test holds no images; expected at least one"):
    study_h5.load(path)
