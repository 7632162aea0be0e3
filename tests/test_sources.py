"""Where config.data points: the file a run reads, found, downloaded or generated once."""

from pathlib import Path

import ml_collections
import numpy as np
import pytest

from support import good_arrays, write_h5
from svhn_jax import data, sources
from svhn_jax.errors import ConfigError, DataError


def data_config(tmp_path: Path, **fields) -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict(dict(
      source="svhn", path="", cache_dir=str(tmp_path), color="grey",
      synthetic=dict(train=6, val=4, test=5, seed=3)))
  cfg.update(fields)
  return cfg


def test_a_given_path_is_read_as_it_is(tmp_path):
  path = write_h5(tmp_path / "d.h5", good_arrays())
  assert sources.dataset_path(data_config(tmp_path, path=str(path))) == path
  dataset, where = sources.load(data_config(tmp_path, path=str(path)))
  assert where == path
  np.testing.assert_array_equal(dataset.test.images, good_arrays()["X_test"])


def test_a_missing_path_is_named(tmp_path):
  with pytest.raises(DataError, match=r"^config\.data\.path='.*nope\.h5': no such file$"):
    sources.dataset_path(data_config(tmp_path, path=str(tmp_path / "nope.h5")))


def test_an_unknown_source_is_refused(tmp_path):
  with pytest.raises(ConfigError, match=r"^config\.data\.source='mnist': expected one of svhn, "
                                        r"synthetic, svhn_cropped$"):
    sources.dataset_path(data_config(tmp_path, source="mnist"))


def test_colour_is_refused_for_the_greyscale_sources(tmp_path):
  path = write_h5(tmp_path / "d.h5", good_arrays())
  with pytest.raises(ConfigError, match=r"^config\.data\.color='rgb': the svhn data is "
                                        r"greyscale; colour needs"):
    sources.load(data_config(tmp_path, path=str(path), color="rgb"))


def test_synthetic_data_is_generated_once_and_named_by_its_settings(tmp_path, monkeypatch):
  calls = []

  def write(path, *, train, val, test, seed):
    calls.append((train, val, test, seed))
    arrays = good_arrays(seed)
    data.save_h5(path, data.Dataset(*(data.Split(arrays[f"X_{s}"], arrays[f"y_{s}"])
                                      for s in data.SPLITS)))

  monkeypatch.setattr(sources.synthetic, "write", write)
  monkeypatch.setattr(sources.synthetic, "VERSION", 7)
  cfg = data_config(tmp_path, source="synthetic")
  path = sources.dataset_path(cfg)
  assert path == tmp_path / "synthetic_v7_6_4_5_seed3.h5"
  assert sources.dataset_path(cfg) == path and calls == [(6, 4, 5, 3)]
  assert len(data.load(path).val.labels) == 4
