"""Where `config.data` points: the data file a run reads, downloaded or generated once.

This module names the sources and dispatches to their modules (`data` for the study's file,
`synthetic` for the offline generator, `svhn_official` for SVHN's own formats 1 and 2); none of those
imports another.
"""

from __future__ import annotations

import logging
from pathlib import Path

import ml_collections

import numpy as np

from svhn_jax import (data, fileio, input_pipeline, number_data, svhn_official, synthetic,
                      transforms)
from svhn_jax.config import DATA_SOURCES
from svhn_jax.errors import ConfigError, DataError


def dataset_path(data_cfg: ml_collections.ConfigDict) -> Path:
  """The HDF5 file that `config.data` asks for: `path` if set (it must exist); else the study's
  file, downloaded once into the cache (source 'svhn'), or the generated file of the configured
  sizes and seed, made once into the cache (source 'synthetic'). Raises ConfigError for an
  unknown source and DataError for a missing file or a failed download."""
  if data_cfg.source not in DATA_SOURCES:
    raise ConfigError(f"config.data.source={data_cfg.source!r}: expected one of "
                      f"{', '.join(DATA_SOURCES)}")
  if data_cfg.path:
    path = Path(data_cfg.path).expanduser()
    if not path.is_file():
      raise DataError(f"config.data.path={data_cfg.path!r}: no such file")
    return path
  if data_cfg.source == "svhn":
    return data.fetch(data_cfg.cache_dir)
  return synthetic_path(data_cfg)


def synthetic_path(data_cfg: ml_collections.ConfigDict) -> Path:
  """The cached synthetic file of `config.data.synthetic`'s sizes, seed and generator version,
  generated if absent; named by all four, so that another version never reuses the file. A
  config without `version` (written before version 2) means version 1."""
  sizes = data_cfg.synthetic
  version = sizes.get("version", 1)
  path = fileio.default_cache_dir(data_cfg.cache_dir) / (
      f"synthetic_v{version}_{sizes.train}_{sizes.val}_{sizes.test}_seed{sizes.seed}.h5")
  if not path.exists():
    logging.info("Generating synthetic SVHN-like data (generator version %d) into %s", version,
                 path)
    synthetic.write(path, train=sizes.train, val=sizes.val, test=sizes.test, seed=sizes.seed,
                    version=version)
  return path


# Crops copied per step when a split is gathered from the memory-mapped files: 64 MB of colour.
_GATHER_CHUNK = 1 << 16


def _gather(parts, indices: np.ndarray | None, colour) -> np.ndarray:
  """`colour(images[indices])` over the concatenation of `parts` ((images, labels) memmaps),
  filled chunk by chunk into one array: the 1.8 GB of train + extra is never concatenated, and
  never held twice (peak: the result plus one chunk)."""
  sizes = [len(images) for images, _ in parts]
  indices = np.arange(sum(sizes)) if indices is None else indices
  starts = np.cumsum([0] + sizes)
  shape = colour(parts[0][0][:1]).shape[1:]
  out = np.empty((len(indices), *shape), np.uint8)
  for begin in range(0, len(indices), _GATHER_CHUNK):
    chunk = indices[begin:begin + _GATHER_CHUNK]
    source = np.searchsorted(starts, chunk, side="right") - 1
    for p, (images, _) in enumerate(parts):
      picked = source == p
      if picked.any():
        out[begin:begin + len(chunk)][picked] = colour(images[chunk[picked] - starts[p]])
  return out


CROPPED_FILES = ("train_32x32.mat", "test_32x32.mat", "extra_32x32.mat")
FULL_FILES = ("train.tar.gz", "test.tar.gz", "extra.tar.gz")


class Loaded:
  """Splits as `load` returns them, their file and `data.fingerprint`, handed from preflight to
  training once: `take` empties the holder, so that no caller's frame keeps the host arrays
  alive after training has moved them to the devices (for all of format 2, 1.8 GB)."""

  def __init__(self, dataset: data.Dataset, path: Path, fingerprint: str):
    self._contents = (dataset, path, fingerprint)
    self.fingerprint = fingerprint

  def take(self) -> tuple[data.Dataset, Path, str]:
    contents, self._contents = self._contents, None
    if contents is None:
      raise RuntimeError("the loaded data was already taken")
    return contents


def load_checked(loaded: tuple[data.Dataset, Path]) -> Loaded:
  """(splits, where from) as a task's `load` gives them (`svhn_jax.tasks`), fingerprinted:
  what preflight checks and training then uses, read once."""
  dataset, path = loaded
  return Loaded(dataset, path, data.fingerprint(dataset))


def load(data_cfg: ml_collections.ConfigDict) -> tuple[data.Dataset, Path]:
  """The validated 32x32 digit crops `config.data` asks for (labels int32 (N,) 0..9), in
  `config.data.color`, and where they came from (the digit task's data; `load_numbers` gives
  the number task's). Raises ConfigError for a colour the source cannot give and DataError for
  bad files."""
  if data_cfg.source in ("svhn_cropped", "svhn_full"):
    return load_official(data_cfg)
  if data_cfg.color != "grey":
    raise ConfigError(f"config.data.color={data_cfg.color!r}: the {data_cfg.source} data is "
                      "greyscale; colour needs config.data.source=svhn_cropped or svhn_full")
  path = dataset_path(data_cfg)
  dataset = data.load(path)
  if data_cfg.train_on_val:
    dataset = pooled(dataset, data_cfg.val_size, data_cfg.split_seed)
  return dataset, path


def pooled(dataset: data.Dataset, val_size: int, split_seed: int) -> data.Dataset:
  """`dataset` with its training and validation splits pooled and a validation split of
  `val_size` (at most a fifth) carved again from them by `input_pipeline.carve_validation`,
  stratified and seeded by `split_seed`: config.data.train_on_val. The study's file holds 60,000
  validation crops beside 42,000 training ones; this trains on 96,000 and keeps 6,000 for early
  stopping and model choice. The test split is left alone."""
  train, val, test = dataset
  images = np.concatenate([train.images, val.images])
  labels = np.concatenate([train.labels, val.labels])
  train_idx, val_idx = input_pipeline.carve_validation(labels, val_size, split_seed)
  logging.info("Training on the training and validation splits: %d crops, %d held out for "
               "validation", len(train_idx), len(val_idx))
  return data.Dataset(data.Split(images[train_idx], labels[train_idx]),
                      data.Split(images[val_idx], labels[val_idx]), test)


def official_file(data_cfg: ml_collections.ConfigDict, name: str) -> Path:
  """One official file: from the folder `config.data.path` (for format 1, `train.tar.gz` or the
  extracted `train/`), else downloaded (verified) into the cache."""
  if data_cfg.path:
    folder = Path(data_cfg.path).expanduser()
    files = CROPPED_FILES if data_cfg.source == "svhn_cropped" else FULL_FILES
    if not folder.is_dir():
      raise DataError(f"config.data.path={data_cfg.path!r}: no such folder; expected a folder "
                      f"holding {', '.join(files)} (SVHN format "
                      f"{2 if data_cfg.source == 'svhn_cropped' else 1})")
    path = folder / name
    extracted = folder / name.removesuffix(".tar.gz")
    if not path.is_file() and name.endswith(".tar.gz") and extracted.is_dir():
      return extracted
    if not path.is_file():
      raise DataError(f"{path}: no such file; the folder config.data.path must hold {name}")
    return path
  return svhn_official.fetch(name, fileio.default_cache_dir(data_cfg.cache_dir))


def _official_parts(data_cfg: ml_collections.ConfigDict, split: str):
  """(images uint8 (N, 32, 32, 3), labels int32 (N,)) of one official split: format 2's crops,
  or the centred digit crops cut from format 1's photos."""
  cache = fileio.default_cache_dir(data_cfg.cache_dir)
  if data_cfg.source == "svhn_cropped":
    return svhn_official.load_cropped(official_file(data_cfg, f"{split}_32x32.mat"), cache)
  full = svhn_official.open_full(official_file(data_cfg, f"{split}.tar.gz"), cache)
  return svhn_official.digit_crops(full)


def load_official(data_cfg: ml_collections.ConfigDict) -> tuple[data.Dataset, Path]:
  """SVHN's own data as train / validation / test: the train split (plus extra with
  `use_extra`) less `val_size` crops carved by `input_pipeline.carve_validation`, and the test
  split; format 2's crops (svhn_cropped) or digits cut from format 1's photos (svhn_full).
  Images stay uint8: (N, 32, 32, 3) for colour, (N, 32, 32) grey by luma. These sources have
  no validation split of their own, so `train_on_val` changes nothing: they train on all the
  training (and extra) crops but the carved ones already."""
  parts = [_official_parts(data_cfg, "train")]
  if data_cfg.use_extra:
    parts.append(_official_parts(data_cfg, "extra"))
  labels = np.concatenate([part_labels for _, part_labels in parts])
  train_idx, val_idx = input_pipeline.carve_validation(labels, data_cfg.val_size,
                                                        data_cfg.split_seed)
  test_images, test_labels = _official_parts(data_cfg, "test")
  colour = (lambda x: x) if data_cfg.color == "rgb" else transforms.luma
  splits = [data.Split(_gather(parts, idx, colour), labels[idx]) for idx in (train_idx, val_idx)]
  splits.append(data.Split(_gather([(test_images, test_labels)], None, colour),
                           np.asarray(test_labels)))
  return data.Dataset(*splits), Path(data_cfg.path or fileio.default_cache_dir(data_cfg.cache_dir))


def _photos(data_cfg: ml_collections.ConfigDict, split: str) -> Path:
  """A format-1 split of photos for config.task=number: from the folder `config.data.path`
  (`<split>.tar.gz` or the extracted `<split>/`); else, for source synthetic, made once into the
  cache (`number_data.synthetic_folder`), and for svhn_full downloaded (verified)."""
  if data_cfg.source == "synthetic" and not data_cfg.path:
    return number_data.synthetic_folder(data_cfg) / f"{split}.tar.gz"
  return official_file(data_cfg, f"{split}.tar.gz")


def load_numbers(data_cfg: ml_collections.ConfigDict) -> tuple[data.Dataset, Path]:
  """The house numbers of format-1 photos as train / validation / test (`number_data.load`):
  uint8 (N, 64, 64) grey or (N, 64, 64, 3) colour crops, int32 (N, 6) labels; and the folder the
  photos came from. Raises DataError for missing or unusable photo files."""
  train = [_photos(data_cfg, "train")]
  if data_cfg.use_extra:
    train.append(_photos(data_cfg, "extra"))
  test = _photos(data_cfg, "test")
  return number_data.load(data_cfg, train, test), test.parent


def number_test_at_margin(data_cfg: ml_collections.ConfigDict, margin: float) -> data.Split:
  """The test photos' house numbers cropped with `margin` per side (`number_data.test_at_margin`);
  made once, then read from the cache."""
  return number_data.test_at_margin(data_cfg, _photos(data_cfg, "test"), margin)
