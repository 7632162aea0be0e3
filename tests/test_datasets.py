"""Where config.data points, through the source registry: the file a run reads, found,
downloaded or generated once, and the splits each source gives."""

import os
import tarfile
from pathlib import Path

import ml_collections
import numpy as np
import pytest

import configs.default
import official_files
from support import good_arrays, write_h5
from svhn_jax import config as config_lib
from svhn_jax import data, transforms
from svhn_jax.datasets import base, content_cache, sources, study_h5, synthetic
from svhn_jax.errors import ConfigError, DataError


def data_config(tmp_path: Path, **fields) -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict(dict(
      source="svhn", path="", cache_dir=str(tmp_path), color="grey", train_on_val=False,
      synthetic=dict(train=6, val=4, test=5, seed=3)))
  cfg.update(fields)
  return cfg


def file_of(cfg: ml_collections.ConfigDict) -> Path:
  """The HDF5 file of an HDF5 source (svhn, synthetic)."""
  return base.get(cfg).file(cfg)


def test_a_given_path_is_read_as_it_is(tmp_path):
  path = write_h5(tmp_path / "d.h5", good_arrays())
  assert file_of(data_config(tmp_path, path=str(path))) == path
  dataset, where = sources.load(data_config(tmp_path, path=str(path)))
  assert where == path
  np.testing.assert_array_equal(dataset.test.images, good_arrays()["X_test"])


def test_a_missing_path_is_named(tmp_path):
  with pytest.raises(DataError, match=r"^config\.data\.path='.*nope\.h5': no such file$"):
    file_of(data_config(tmp_path, path=str(tmp_path / "nope.h5")))


def test_an_unknown_source_is_refused(tmp_path):
  with pytest.raises(ConfigError, match=r"^config\.data\.source='mnist': expected one of svhn, "
                                        r"synthetic, svhn_cropped, svhn_full, or a 'module:attribute' spec$"):
    file_of(data_config(tmp_path, source="mnist"))


def test_colour_is_refused_for_the_greyscale_sources(tmp_path):
  path = write_h5(tmp_path / "d.h5", good_arrays())
  with pytest.raises(ConfigError, match=r"^config\.data\.color='rgb': the svhn data comes in "
                                        r"grey only; rgb needs config\.data\.source=svhn_cropped "
                                        r"or svhn_full$"):
    sources.load(data_config(tmp_path, path=str(path), color="rgb"))


def test_synthetic_data_is_generated_once_and_named_by_its_settings(tmp_path, monkeypatch):
  calls = []

  def write(path, *, train, val, test, seed, version):
    calls.append((train, val, test, seed, version))
    arrays = good_arrays(seed)
    study_h5.save_h5(path, data.Dataset(*(data.Split(arrays[f"X_{s}"], arrays[f"y_{s}"])
                                      for s in data.SPLITS)))

  monkeypatch.setattr(synthetic, "write", write)
  cfg = data_config(tmp_path, source="synthetic")
  cfg.synthetic.version = 2
  path = file_of(cfg)
  assert path == tmp_path / "synthetic_v2_6_4_5_seed3.h5"
  assert file_of(cfg) == path and calls == [(6, 4, 5, 3, 2)]
  assert len(study_h5.load(path).val.labels) == 4
  # A config written before version 2 existed has no version: it meant version 1.
  old = data_config(tmp_path, source="synthetic")
  assert file_of(old) == tmp_path / "synthetic_v1_6_4_5_seed3.h5"
  assert calls[1:] == [(6, 4, 5, 3, 1)]


def official_folder(tmp_path: Path) -> Path:
  """Format-2 files of drawn colour digits: 200 train, 60 extra, 50 test (labels 1..10)."""
  folder = tmp_path / "svhn"
  folder.mkdir()
  for name, count, seed in (("train", 200, 1), ("extra", 60, 2), ("test", 50, 3)):
    labels = np.arange(count) % 10
    official_files.write_cropped_mat(folder / f"{name}_32x32.mat",
                                     official_files.drawn_crops(labels, seed=seed),
                                     np.where(labels == 0, 10, labels))
  return folder


@pytest.mark.parametrize("color", ["grey", "rgb"])
def test_svhn_cropped_gives_carved_splits_in_the_asked_colour(tmp_path, color):
  folder = official_folder(tmp_path)
  cfg = data_config(tmp_path, source="svhn_cropped", path=str(folder), color=color,
                    use_extra=True, val_size=20, split_seed=0)
  dataset, where = sources.load(cfg)
  assert where == folder
  shape = (32, 32, 3) if color == "rgb" else (32, 32)
  assert [s.images.shape for s in dataset] == [(240, *shape), (20, *shape), (50, *shape)]
  assert all(s.images.dtype == np.uint8 for s in dataset)
  assert set(np.unique(dataset.test.labels)) == set(range(10))  # 10 read as the digit zero
  colour = official_files.drawn_crops(np.arange(50) % 10, seed=3)
  expected = colour if color == "rgb" else transforms.luma(colour)
  np.testing.assert_array_equal(dataset.test.images, expected)


def test_svhn_cropped_folders_of_same_named_same_sized_files_load_their_own_labels(tmp_path):
  """Issue 26's example: two folders whose .mat files share name, size and mtime (as `cp -p`
  leaves them) but not labels, through one cache: each load gets its own labels."""
  folders = [tmp_path / "a", tmp_path / "b"]
  for folder, shift in zip(folders, (0, 3)):
    folder.mkdir()
    for name, count, seed in (("train", 100, 1), ("test", 50, 3)):
      digits = (np.arange(count) + shift) % 10
      official_files.write_cropped_mat(folder / f"{name}_32x32.mat",
                                       official_files.drawn_crops(np.arange(count) % 10, seed),
                                       np.where(digits == 0, 10, digits), compress=False)
  for name in ("train_32x32.mat", "test_32x32.mat"):
    first, second = (folder / name for folder in folders)
    assert first.stat().st_size == second.stat().st_size
    os.utime(second, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns))
  for folder, shift in [*zip(folders, (0, 3))] * 2:
    dataset, _ = sources.load(data_config(tmp_path / "cache", source="svhn_cropped",
                                          path=str(folder), use_extra=False, val_size=10,
                                          split_seed=0))
    np.testing.assert_array_equal(dataset.test.labels, (np.arange(50) + shift) % 10)


def test_svhn_cropped_names_a_missing_official_file(tmp_path):
  folder = official_folder(tmp_path)
  (folder / "test_32x32.mat").unlink()
  with pytest.raises(DataError, match=r"test_32x32\.mat: no such file"):
    sources.load(data_config(tmp_path, source="svhn_cropped", path=str(folder), use_extra=False,
                             val_size=20, split_seed=0))


def test_svhn_full_cuts_each_digit_of_the_photos(tmp_path):
  folder = tmp_path / "full"
  folder.mkdir()
  train, test = official_files.sample_photos(30, seed=1), official_files.sample_photos(8, seed=2)
  official_files.write_full_tar(folder / "train.tar.gz", "train", train)
  official_files.write_full_tar(folder / "test.tar.gz", "test", test)
  cfg = data_config(tmp_path, source="svhn_full", path=str(folder), use_extra=False,
                    val_size=5, split_seed=0)
  dataset, _ = sources.load(cfg)
  digits = sum(len(photo.labels) for photo, _ in train)
  assert len(dataset.train.labels) + len(dataset.val.labels) == digits
  assert len(dataset.val.labels) == 5
  assert dataset.test.images.shape == (sum(len(p.labels) for p, _ in test), 32, 32)
  np.testing.assert_array_equal(dataset.test.labels,
                                np.concatenate([photo.labels for photo, _ in test]))


@pytest.mark.parametrize("load", [sources.load, sources.load_numbers], ids=["digit", "number"])
@pytest.mark.parametrize("archived", [True, False])
def test_a_bad_box_stops_both_tasks_in_one_line_before_anything_is_written(tmp_path, load,
                                                                            archived):
  folder, cache = tmp_path / "full", tmp_path / "cache"
  folder.mkdir()
  train = official_files.sample_photos(12, seed=1, max_digits=3)
  photo, image = train[1]
  boxes = np.array(photo.boxes)
  boxes[-1, 2] = -5  # the last digit's width
  train[1] = (photo._replace(boxes=boxes), image)
  for split, pairs in (("train", train), ("test", official_files.sample_photos(4, seed=2))):
    official_files.write_full_tar(folder / f"{split}.tar.gz", split, pairs)
  if not archived:
    with tarfile.open(folder / "train.tar.gz") as tar:
      tar.extractall(folder, filter="data")
    (folder / "train.tar.gz").unlink()
  cfg = data_config(tmp_path, source="svhn_full", path=str(folder), cache_dir=str(cache),
                    use_extra=False, val_size=2, split_seed=0, color="grey",
                    numbers=configs.default.get_config().data.numbers)
  with pytest.raises(DataError) as info:
    load(cfg)
  assert "\n" not in str(info.value)
  # Named as the user knows it: not the archive's temporary extraction.
  shown = f"{folder}/train.tar.gz: train/" if archived else f"{folder}/train/"
  assert str(info.value).startswith(
      f"{shown}digitStruct.mat: digitStruct(2).bbox (2.png) has width {boxes[:, 2].tolist()}; "
      "expected finite pixel sizes > 0")
  # No crops and no extraction: only the memo of the archive's digest may be there.
  assert not [p for p in cache.rglob("*") if p.is_file() and p.name != content_cache.MEMO_FILE]


def test_a_source_outside_the_package_loads_through_its_spec(tmp_path):
  """tests/toy_source.py, named by its 'module:attribute' spec: accepted by the config schema,
  imported by the registry, and its splits loaded as any source's."""
  config = configs.default.get_config()
  config.data.source = "tests.toy_source:SOURCE"
  config_lib.validate(config)
  dataset, where = sources.load(config.data)
  assert [len(split.labels) for split in dataset] == [1000, 300, 497]
  assert all(split.images.shape[1:] == (32, 32) and split.images.dtype == np.uint8
             for split in dataset)
  assert set(np.unique(dataset.test.labels)) == set(range(10)) and where.is_file()
  with pytest.raises(ConfigError, match="this source has no photos of whole house numbers"):
    sources.load_numbers(config.data)


def test_the_config_fields_a_source_reads_follow_what_it_declares():
  """config.data.color is read by a source that declares colour (`Source.colors`), with no edit
  to config.py; refused as unread by one that does not; the number task takes a source only if
  it declares photos."""
  config = configs.default.get_config()
  config.data.source, config.data.color = "tests.toy_source:COLOUR", "rgb"
  config_lib.validate(config)
  assert sources.load(config.data)[0].train.images.shape[1:] == (32, 32, 3)
  config.data.source = "tests.toy_source:SOURCE"
  with pytest.raises(ConfigError, match=r"^config\.data\.color='rgb': only read with "):
    config_lib.validate(config)
  config.data.color = "grey"
  config.task, config.model.name = "number", "multidigit"
  with pytest.raises(ConfigError, match="config.task=number reads whole photos; expected one of "
                     "synthetic, svhn_full"):
    config_lib.validate(config)
