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

from svhn_jax import data, fileio, input_pipeline, svhn_official, synthetic, transforms
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
  """The cached synthetic file of `config.data.synthetic`'s sizes and seed, generated if absent;
  named by the generator's version, so a changed generator never reuses stale data."""
  sizes = data_cfg.synthetic
  path = fileio.default_cache_dir(data_cfg.cache_dir) / (
      f"synthetic_v{synthetic.VERSION}_{sizes.train}_{sizes.val}_{sizes.test}_seed{sizes.seed}.h5")
  if not path.exists():
    logging.info("Generating synthetic SVHN-like data into %s", path)
    synthetic.write(path, train=sizes.train, val=sizes.val, test=sizes.test, seed=sizes.seed)
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


def load_checked(data_cfg: ml_collections.ConfigDict) -> Loaded:
  """`load`, fingerprinted: what preflight checks and training then uses, read once."""
  dataset, path = load(data_cfg)
  return Loaded(dataset, path, data.fingerprint(dataset))


def load(data_cfg: ml_collections.ConfigDict) -> tuple[data.Dataset, Path]:
  """The validated splits `config.data` asks for, in `config.data.color`, and where they came
  from. Raises ConfigError for a colour the source cannot give and DataError for bad files."""
  if data_cfg.source in ("svhn_cropped", "svhn_full"):
    return load_official(data_cfg)
  if data_cfg.color != "grey":
    raise ConfigError(f"config.data.color={data_cfg.color!r}: the {data_cfg.source} data is "
                      "greyscale; colour needs config.data.source=svhn_cropped or svhn_full")
  path = dataset_path(data_cfg)
  return data.load(path), path


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
  Images stay uint8: (N, 32, 32, 3) for colour, (N, 32, 32) grey by luma."""
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
