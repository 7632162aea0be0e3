"""What a data source is (`Source`), and the pieces its loaders share: the registry look-up, the
pooling of train_on_val, and the carving and gathering of SVHN's own splits.

A source is an object, one per `config.data.source` name (`svhn_jax.datasets.REGISTRY`), that
gives digit crops as `data.Dataset` splits (`digits`) and, where it has whole photos, the
format-1 split folders the number task reads (`photos`). No task name is compared here: each
task calls the loader of its own data (`sources.load` for digits, `sources.load_numbers` for
numbers).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

import ml_collections
import numpy as np

from svhn_jax import data, fileio, input_pipeline, transforms
from svhn_jax.datasets import REGISTRY
from svhn_jax.errors import ConfigError, DataError

Parts = tuple[np.ndarray, np.ndarray]  # (images uint8 (N, 32, 32, 3), labels int32 (N,))


class Source:
  """A data source. Subclasses override `digits` (and `photos` where they have whole photos).

  `name` is the config's (`config.data.source`). What it declares, which decides the
  config.data fields a run of it reads (`svhn_jax.config.Declares`): `colors`, the
  `config.data.color` values its digit crops come in (config.data.color is read where it holds
  'rgb'); `official_splits`, True for SVHN's own train / test / extra files, whose validation
  split is carved from train (config.data.val_size, split_seed) and whose extra split
  config.data.use_extra adds; `has_photos`, True where `photos` gives whole photos (the number
  task's data).
  """

  name: str = ""
  colors: tuple[str, ...] = ("grey",)
  official_splits: bool = False
  has_photos: bool = False

  def digits(self, data_cfg: ml_collections.ConfigDict) -> tuple[data.Dataset, Path]:
    """The validated train / validation / test digit crops `config.data` asks for, in
    `config.data.color`: uint8 (N, 32, 32) grey or (N, 32, 32, 3) colour (float32 only where a
    given file holds values that are not whole numbers), labels int32 (N,) 0..9; and the file or
    folder they came from. Raises ConfigError for settings it cannot give and DataError for bad
    files."""
    raise ConfigError(f"config.data.source={data_cfg.source!r} gives no digit crops")

  def photos(self, data_cfg: ml_collections.ConfigDict, split: str) -> Path:
    """A format-1 split of whole photos (`<split>.tar.gz` or the extracted `<split>/`) for the
    number task; `split` is 'train', 'test' or 'extra'. Raises ConfigError where the source has
    none and DataError for a missing file."""
    with_photos = " or ".join(name for name in REGISTRY.names() if REGISTRY.get(name).has_photos)
    raise ConfigError(f"config.data.source={data_cfg.source!r}: this source has no photos of "
                      f"whole house numbers; the number task needs {with_photos}")

  def extraction_folder(self, data_cfg: ml_collections.ConfigDict, archive: Path) -> Path:
    """Where an archive of its photos is extracted once: the data cache."""
    del archive
    return fileio.cache_dir(data_cfg)


def get(data_cfg: ml_collections.ConfigDict) -> Source:
  """The source `config.data.source` names (a registered name or a 'module:attribute' spec);
  raises ConfigError for an unknown one."""
  return REGISTRY.get(data_cfg.source)


def progress(what: str, count: int) -> Callable[[int], None]:
  """A progress callback for work on `count` items that logs `what: done/count`."""
  def report(done: int) -> None:
    logging.info("%s: %d/%d", what, done, count)

  return report


def refuse_colour(data_cfg: ml_collections.ConfigDict, source: Source) -> None:
  """Raises ConfigError unless `source` gives its digit crops in `config.data.color`."""
  if data_cfg.color not in source.colors:
    givers = " or ".join(name for name in REGISTRY.names()
                         if data_cfg.color in getattr(REGISTRY.get(name), "colors", ()))
    raise ConfigError(f"config.data.color={data_cfg.color!r}: the {data_cfg.source} data comes "
                      f"in {', '.join(source.colors)} only; {data_cfg.color} needs "
                      f"config.data.source={givers or 'a source that gives it'}")


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


def carved(data_cfg: ml_collections.ConfigDict, parts_of: Callable[[str], Parts]) -> data.Dataset:
  """SVHN's own splits as train / validation / test: the train split (plus extra with
  `use_extra`) less `val_size` crops carved by `input_pipeline.carve_validation`, and the test
  split; `parts_of(split)` gives a split's colour crops and labels. Images stay uint8:
  (N, 32, 32, 3) for colour, (N, 32, 32) grey by luma. These sources have no validation split of
  their own, so `train_on_val` changes nothing: they train on all the training (and extra) crops
  but the carved ones already."""
  parts = [parts_of("train")]
  if data_cfg.use_extra:
    parts.append(parts_of("extra"))
  labels = np.concatenate([part_labels for _, part_labels in parts])
  train_idx, val_idx = input_pipeline.carve_validation(labels, data_cfg.val_size,
                                                        data_cfg.split_seed)
  test_images, test_labels = parts_of("test")
  colour = (lambda x: x) if data_cfg.color == "rgb" else transforms.luma
  splits = [data.Split(_gather(parts, idx, colour), labels[idx]) for idx in (train_idx, val_idx)]
  splits.append(data.Split(_gather([(test_images, test_labels)], None, colour),
                           np.asarray(test_labels)))
  return data.Dataset(*splits)


def given_file(data_cfg: ml_collections.ConfigDict) -> Path | None:
  """`config.data.path` as a file that must exist, or None when no path is given. Raises
  DataError for a missing file."""
  if not data_cfg.path:
    return None
  path = Path(data_cfg.path).expanduser()
  if not path.is_file():
    raise DataError(f"config.data.path={data_cfg.path!r}: no such file")
  return path
