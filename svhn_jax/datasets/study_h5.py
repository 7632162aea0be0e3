"""The study's HDF5 file (source 'svhn'): fetch it, check it, load and validate its splits.

The file holds X_train/y_train, X_val/y_val, X_test/y_test: greyscale 32x32 crops with pixel
values 0-255, and digit labels (0-9, or SVHN's own 1-10 where 10 is the digit zero). Any file in
that layout loads (`config.data.path`); the generated ones (`datasets.synthetic`) are written by
`save_h5`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import h5py
import ml_collections
import numpy as np

from absl import logging

from svhn_jax import fileio
from svhn_jax.data import IMAGE_SHAPE, SPLITS, Dataset, Split
from svhn_jax.datasets import base, sniff
from svhn_jax.datasets import download as download_lib
from svhn_jax.errors import DataError
from svhn_jax.transforms import NUM_CLASSES, luma, remap_labels

KEYS = tuple(f"{kind}_{split}" for split in SPLITS for kind in "Xy")

GDRIVE_FILE_ID = "1YoTWTdShWdI55SmBp4Ie2IkaI_E3Gmp0"
FILENAME = "SVHN_single_grey1.h5"
# The real file is ~492 MB (120,000 float32 crops); anything far smaller is a cut-off download.
MIN_BYTES = 400_000_000
_EXPECTED = "an HDF5 file"

_HTML = ("looks like an HTML page, not HDF5 (a failed Google Drive download: its virus-scan "
         "warning or quota page)")
_OFFLINE_ADVICE = ("To go on without the download, pass a local copy of the file with "
                   "--config.data.path=FILE, or train on generated data with "
                   "--config.data.source=synthetic.")


def save_h5(path: str | os.PathLike, dataset: Dataset) -> Path:
  """Writes `dataset` in the study's layout (float32 images, uint8 labels), atomically: a reader
  never sees half a file."""
  with fileio.atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
    for name, split in zip(SPLITS, dataset):
      f.create_dataset(f"X_{name}", data=np.asarray(split.images, np.float32))
      f.create_dataset(f"y_{name}", data=np.asarray(split.labels, np.uint8))
  return Path(path)




def _layout_problem(path: Path, min_bytes: int) -> str | None:
  """Returns why the existing file `path` is not a whole copy of the study's file, or None."""
  if sniff.looks_like_html(sniff.head(path)):
    return _HTML
  size = path.stat().st_size
  if size < min_bytes:
    return f"is only {size:,} bytes, expected at least {min_bytes:,} (a cut-off download)"
  try:
    with h5py.File(path, "r") as f:
      present = sorted(f.keys())
  except OSError as e:
    return f"is not a readable HDF5 file (truncated, or not HDF5): {e}"
  missing = [key for key in KEYS if key not in present]
  if missing:
    return f"lacks the datasets {missing}; it holds {present}"
  return None


def check_file(path: str | os.PathLike, min_bytes: int = MIN_BYTES) -> None:
  """Raises DataError unless `path` is big enough, is HDF5 and holds the six datasets."""
  path = Path(path)
  sniff.require_file(path, _EXPECTED)
  problem = _layout_problem(path, min_bytes)
  if problem:
    raise DataError(f"{path} {problem}")




def fetch(cache_dir: str | os.PathLike | None = None, *, file_id: str = GDRIVE_FILE_ID,
          filename: str = FILENAME, min_bytes: int = MIN_BYTES,
          download: Callable[..., str | None] | None = None) -> Path:
  """Returns the path of the study's file in the cache, downloading it first if needed
  (`download.fetch` from Google Drive: the file reaches its final name only once whole and valid).

  `download` has gdown.download's call shape (tests pass a stand-in).
  """
  return download_lib.fetch(filename, cache_dir, drive=download_lib.DriveFile(
      file_id, lambda path: _layout_problem(path, min_bytes), _OFFLINE_ADVICE, download))


def open_h5(path: Path) -> h5py.File:
  """Returns `path` opened read-only, or raises a DataError that says what the file is instead."""
  sniff.require_file(path, _EXPECTED)
  if sniff.looks_like_html(sniff.head(path)):
    raise DataError(f"{path} {_HTML}")
  try:
    return h5py.File(path, "r")
  except OSError as e:
    raise DataError(f"{path} is not a readable HDF5 file (truncated, or not HDF5): {e}") from e




def _check_layout(path: Path, f: h5py.File) -> None:
  """Raises DataError unless `f` holds the six datasets, one label per image."""
  missing = [key for key in KEYS if key not in f]
  if missing:
    raise DataError(f"{path} lacks the datasets {missing}; it holds {sorted(f.keys())}. "
                    f"Expected {list(KEYS)}.")
  for key in KEYS:
    if not isinstance(f[key], h5py.Dataset):
      raise DataError(f"{path}: {key} is a group; expected a dataset")
  for split in SPLITS:
    x_key, y_key = f"X_{split}", f"y_{split}"
    _image_layout(path, x_key, f[x_key].shape)
    x_count, y_count = f[x_key].shape[0], f[y_key].shape[0] if f[y_key].shape else 0
    if x_count != y_count:
      raise DataError(f"{path}: {x_key} holds {x_count} images but {y_key} holds "
                      f"{y_count} labels; expected one label per image")


def _image_layout(path: Path, key: str, shape: tuple[int, ...]) -> str:
  """How the images under `key` are laid out: 'grey' (N, 32, 32), 'channel' (one channel axis
  to drop: (N, 32, 32, 1) or (N, 1, 32, 32)) or 'rgb' (N, 32, 32, 3). Raises DataError, saying
  how to convert, for any other shape."""
  expected = "expected (N, 32, 32) greyscale crops, or (N, 32, 32, 1) or (N, 32, 32, 3)"
  if len(shape) == 3 and shape[1:] == IMAGE_SHAPE:
    return "grey"
  if len(shape) == 4 and shape[1:] in ((*IMAGE_SHAPE, 1), (1, *IMAGE_SHAPE)):
    return "channel"
  if len(shape) == 4 and shape[1:] == (*IMAGE_SHAPE, 3):
    return "rgb"
  if len(shape) == 4 and shape[1:] == (3, *IMAGE_SHAPE):
    how = "channels first: convert with np.moveaxis(X, 1, -1) to (N, 32, 32, 3)"
  elif len(shape) == 4 and shape[:3] == (*IMAGE_SHAPE, 3):
    how = ("SVHN format 2's (32, 32, 3, N) order: convert with np.moveaxis(X, -1, 0) to "
           "(N, 32, 32, 3)")
  elif len(shape) == 3 and shape[:2] == IMAGE_SHAPE:
    how = "MATLAB's (32, 32, N) order: convert with np.moveaxis(X, -1, 0) to (N, 32, 32)"
  else:
    how = "crops of another size: resize them to 32x32 first"
  raise DataError(f"{path}: {key} has shape {shape}; {expected}. It looks like {how}")


def _units_problem(low: float, high: float) -> str | None:
  """Why pixel values from `low` to `high` cannot be 0..255 grey levels, with what to do."""
  if high <= 1.0:
    return ("which look scaled to 0..1; expected grey levels 0..255: multiply the images by "
            "255 and save them again")
  if low < 0:
    return ("which look standardized (mean subtracted); expected grey levels 0..255: save the "
            "unnormalized images")
  if high > 255:
    advice = "divide 16-bit images (0..65535) by 257" if high <= 65535 else "rescale them"
    return f"expected grey levels 0..255: {advice} and save them again"
  return None


def _images(path: Path, f: h5py.File, key: str) -> np.ndarray:
  """Returns the (N, 32, 32) images under `key`, checked to be finite 0..255 grey levels:
  uint8 when every value is a whole number (the study's file and the synthetic ones are;
  converting them changes no result, see `steps.model_input`), else float32.

  Accepted and converted, with a logged line: a single channel axis ((N, 32, 32, 1) or
  (N, 1, 32, 32)), and colour crops (N, 32, 32, 3) made grey by the study's luma
  (`transforms.luma`). Refused (DataError, saying what to do): any other shape, NaN or infinite
  values, and values that cannot be grey levels 0..255 (all at most 1: scaled to 0..1;
  negative: standardized; above 255).
  """
  layout = _image_layout(path, key, f[key].shape)
  if f[key].shape[0] == 0:
    raise DataError(f"{path}: {key} holds no images; expected at least one in every split")
  # astype converts while reading: one copy of the data, whatever dtype the file stores.
  images = f[key].astype(np.float32)[()]
  if images.size == 0:
    return images.reshape(0, *IMAGE_SHAPE)
  # min/max propagate NaN and reach +-inf, so two passes without temporaries check everything.
  low, high = float(images.min()), float(images.max())
  if not (np.isfinite(low) and np.isfinite(high)):
    count = int(np.count_nonzero(~np.isfinite(images)))
    raise DataError(f"{path}: {key} has {count} NaN or infinite pixel values; "
                    "expected finite values 0..255")
  problem = _units_problem(low, high)
  if problem:
    raise DataError(f"{path}: {key} has pixel values from {low:g} to {high:g}, {problem}")
  if layout == "channel":
    logging.info("%s: %s has shape %s; dropping its single channel axis", path, key,
                 images.shape)
    images = images.reshape(len(images), *IMAGE_SHAPE)
  whole = images.astype(np.uint8)
  if np.array_equal(whole, images):
    images = whole
  if layout == "rgb":
    logging.info("%s: %s holds colour crops %s; converting them to grey by the study's luma "
                 "(0.299 R + 0.587 G + 0.114 B)", path, key, images.shape)
    images = luma(images)
  return images


def _labels(path: Path, f: h5py.File, key: str) -> np.ndarray:
  """Returns the int32 labels 0..9 under `key`, SVHN's 10 (the digit zero) mapped to 0.

  Accepted and converted, with a logged line: a column (N, 1) and one-hot rows (N, 10).
  """
  labels = f[key][()]
  if labels.dtype.kind not in "iufb":
    raise DataError(f"{path}: {key} has dtype {labels.dtype}; expected integer digit labels")
  if labels.ndim == 2 and labels.shape[1] == 1:
    logging.info("%s: %s is a column %s; reading it as one label per row", path, key,
                 labels.shape)
    labels = labels[:, 0]
  elif labels.ndim == 2 and labels.shape[1] == NUM_CLASSES:
    if not (np.isin(labels, (0, 1)).all() and (labels.sum(axis=1) == 1).all()):
      raise DataError(f"{path}: {key} has shape {labels.shape} but its rows are not one-hot; "
                      "expected one digit label per image, (N,)")
    logging.info("%s: %s holds one-hot rows %s; reading each row's digit", path, key,
                 labels.shape)
    labels = labels.argmax(axis=1)
  elif labels.ndim != 1:
    raise DataError(f"{path}: {key} has shape {labels.shape}; expected (N,) digit labels, "
                    "a column (N, 1) or one-hot rows (N, 10)")
  if labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels)):
    raise DataError(f"{path}: {key} holds labels that are not whole numbers (or NaN); "
                    "expected integer digit labels")
  if labels.size and (labels.min() < 0 or labels.max() > 10):
    raise DataError(f"{path}: {key} has labels from {labels.min():g} to {labels.max():g}; "
                    "expected digits 0..9, or SVHN's 1..10 where 10 is the digit zero")
  return remap_labels(labels)


def load(path: str | os.PathLike) -> Dataset:
  """Returns the train/val/test splits of the HDF5 file at `path`, validated.

  Raises DataError naming the file, the dataset and what was expected, for anything a
  training run could not use.
  """
  path = Path(path)
  with open_h5(path) as f:
    try:
      _check_layout(path, f)
      return Dataset(*(Split(_images(path, f, f"X_{split}"), _labels(path, f, f"y_{split}"))
                       for split in SPLITS))
    except OSError as e:  # h5py opens some truncated files and fails only when reading data
      raise DataError(f"{path} could not be read (truncated?): {e}") from e




class StudyFile(base.Source):
  """Source 'svhn': the study's file (`config.data.path`, else downloaded once into the cache),
  greyscale; with `train_on_val` its training and validation splits pooled (`base.pooled`)."""

  name = "svhn"

  def file(self, data_cfg: ml_collections.ConfigDict) -> Path:
    """The HDF5 file `config.data` asks for: `path` if set (it must exist), else the study's
    file, downloaded once into the cache. Raises DataError for a missing file or a failed
    download."""
    return base.given_file(data_cfg) or fetch(data_cfg.cache_dir)

  def digits(self, data_cfg: ml_collections.ConfigDict) -> tuple[Dataset, Path]:
    base.refuse_colour(data_cfg, self)
    path = self.file(data_cfg)
    dataset = load(path)
    if data_cfg.train_on_val:
      dataset = base.pooled(dataset, data_cfg.val_size, data_cfg.split_seed)
    return dataset, path


SOURCE = StudyFile()
