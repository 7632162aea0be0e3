"""The study's HDF5 file: fetch it, inspect it, load and validate its splits.

The file holds X_train/y_train, X_val/y_val, X_test/y_test: greyscale 32x32 crops with pixel
values 0-255, and digit labels (0-9, or SVHN's own 1-10 where 10 is the digit zero).

Command line: `python -m svhn_jax.data inspect FILE` lists every dataset in an HDF5 file.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable, NamedTuple

import h5py
import ml_collections
import numpy as np

from svhn_jax.errors import ConfigError, DataError, SvhnError
from svhn_jax.transforms import remap_labels

SPLITS = ("train", "val", "test")
IMAGE_SHAPE = (32, 32)
KEYS = tuple(f"{kind}_{split}" for split in SPLITS for kind in "Xy")
SOURCES = ("svhn", "synthetic")

GDRIVE_FILE_ID = "1YoTWTdShWdI55SmBp4Ie2IkaI_E3Gmp0"
FILENAME = "SVHN_single_grey1.h5"
# The real file is ~492 MB (120,000 float32 crops); anything far smaller is a cut-off download.
MIN_BYTES = 400_000_000

_HTML = ("looks like an HTML page, not HDF5 (a failed Google Drive download: its virus-scan "
         "warning or quota page)")
_OFFLINE_ADVICE = ("To go on without the download, pass a local copy of the file with "
                   "--config.data.path=FILE, or train on generated data with "
                   "--config.data.source=synthetic.")


class Split(NamedTuple):
  images: np.ndarray  # (N, 32, 32) float32, 0..255
  labels: np.ndarray  # (N,) int32, 0..9


class Dataset(NamedTuple):
  train: Split
  val: Split
  test: Split


def save_h5(path: str | os.PathLike, dataset: Dataset) -> Path:
  """Writes `dataset` in the study's layout, atomically: a reader never sees half a file."""
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
  os.close(fd)
  try:
    # mkstemp makes the file owner-only; the data file should be readable as any other file.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    with h5py.File(tmp, "w") as f:
      for name, split in zip(SPLITS, dataset):
        f.create_dataset(f"X_{name}", data=np.asarray(split.images, np.float32))
        f.create_dataset(f"y_{name}", data=np.asarray(split.labels, np.uint8))
    os.replace(tmp, path)
  except BaseException:
    Path(tmp).unlink(missing_ok=True)
    raise
  return path


def default_cache_dir(cache_dir: str | os.PathLike = "") -> Path:
  """Returns `cache_dir`, else $SVHN_JAX_CACHE, else ~/.cache/svhn_jax."""
  chosen = cache_dir or os.environ.get("SVHN_JAX_CACHE") or Path.home() / ".cache" / "svhn_jax"
  return Path(chosen).expanduser()


def _require_file(path: Path) -> None:
  if not path.exists():
    raise DataError(f"{path}: no such file")
  if not path.is_file():
    raise DataError(f"{path} is not a file; expected an HDF5 file")


def _looks_like_html(path: Path) -> bool:
  with open(path, "rb") as f:
    head = f.read(1024).lstrip(b"\xef\xbb\xbf \t\r\n").lower()
  return head.startswith((b"<!doctype html", b"<html"))


def _layout_problem(path: Path, min_bytes: int) -> str | None:
  """Returns why the existing file `path` is not a whole copy of the study's file, or None."""
  if _looks_like_html(path):
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
  _require_file(path)
  problem = _layout_problem(path, min_bytes)
  if problem:
    raise DataError(f"{path} {problem}")


def _gdown_download(**kwargs) -> str | None:
  # Imported here: gdown pulls in requests, and only a real download needs it.
  import gdown
  return gdown.download(**kwargs)


def fetch(cache_dir: str | os.PathLike | None = None, *, file_id: str = GDRIVE_FILE_ID,
          filename: str = FILENAME, min_bytes: int = MIN_BYTES,
          download: Callable[..., str | None] | None = None) -> Path:
  """Returns the path of the study's file in the cache, downloading it first if needed.

  `download` has gdown.download's call shape (tests pass a stand-in). The file reaches its
  final name only once whole and valid, so the cache never holds a partial download.
  """
  folder = default_cache_dir(cache_dir or "")
  path = folder / filename
  if path.exists():
    problem = _layout_problem(path, min_bytes)
    if problem is None:
      return path
    logging.warning("The cached %s %s; downloading it again.", path, problem)
  folder.mkdir(parents=True, exist_ok=True)
  # A private folder next to the target: os.replace stays on one filesystem, and gdown's own
  # leftovers (it keeps `.part` files for resuming) go when the folder goes, on any failure.
  with tempfile.TemporaryDirectory(dir=folder, prefix=f".{filename}.") as tmp_dir:
    tmp = Path(tmp_dir) / filename
    _download_to(tmp, file_id, download or _gdown_download)
    problem = _layout_problem(tmp, min_bytes)
    if problem:
      raise DataError(f"The file Google Drive sent for id {file_id} {problem}. It was discarded. "
                      + _OFFLINE_ADVICE)
    os.replace(tmp, path)
  logging.info("Saved the SVHN file to %s", path)
  return path


def _download_to(tmp: Path, file_id: str, download: Callable[..., str | None]) -> None:
  logging.info("Downloading the SVHN file (~492 MB, Google Drive id %s)", file_id)
  try:
    result = download(id=file_id, output=str(tmp), quiet=False)
  except Exception as e:  # gdown raises requests' and its own errors when offline or refused
    raise DataError(f"Could not download the SVHN file (Google Drive id {file_id}): {e}. "
                    + _OFFLINE_ADVICE) from e
  if result is None or not tmp.is_file():
    raise DataError(f"Could not download the SVHN file (Google Drive id {file_id}): "
                    "the download returned nothing. " + _OFFLINE_ADVICE)


def _open(path: Path) -> h5py.File:
  """Returns `path` opened read-only, or raises a DataError that says what the file is instead."""
  _require_file(path)
  if path.stat().st_size == 0:
    raise DataError(f"{path} is empty (0 bytes)")
  if _looks_like_html(path):
    raise DataError(f"{path} {_HTML}")
  try:
    return h5py.File(path, "r")
  except OSError as e:
    raise DataError(f"{path} is not a readable HDF5 file (truncated, or not HDF5): {e}") from e


def inspect(path: str | os.PathLike) -> list[tuple[str, tuple[int, ...], str]]:
  """Returns (name, shape, dtype) of every dataset in the HDF5 file, groups included."""
  rows = []

  def visit(name: str, obj: h5py.HLObject) -> None:
    if isinstance(obj, h5py.Dataset):
      rows.append((name, tuple(obj.shape), str(obj.dtype)))

  with _open(Path(path)) as f:
    f.visititems(visit)
  return rows


def _check_layout(path: Path, f: h5py.File) -> None:
  """Raises DataError unless `f` holds the six datasets, with shapes that fit together."""
  missing = [key for key in KEYS if key not in f]
  if missing:
    raise DataError(f"{path} lacks the datasets {missing}; it holds {sorted(f.keys())}. "
                    f"Expected {list(KEYS)}.")
  for key in KEYS:
    if not isinstance(f[key], h5py.Dataset):
      raise DataError(f"{path}: {key} is a group; expected a dataset")
  for split in SPLITS:
    x_key, y_key = f"X_{split}", f"y_{split}"
    x_shape, y_shape = f[x_key].shape, f[y_key].shape
    if len(x_shape) != 3 or x_shape[1:] != IMAGE_SHAPE:
      colour = " It looks like colour images." if len(x_shape) == 4 and x_shape[-1] == 3 else ""
      raise DataError(f"{path}: {x_key} has shape {x_shape}; expected (N, 32, 32): the study's "
                      f"crops must be greyscale 32x32.{colour}")
    if len(y_shape) != 1:
      raise DataError(f"{path}: {y_key} has shape {y_shape}; expected (N,), one label per image")
    if x_shape[0] != y_shape[0]:
      raise DataError(f"{path}: {x_key} holds {x_shape[0]} images but {y_key} holds "
                      f"{y_shape[0]} labels; expected one label per image")


def _images(path: Path, f: h5py.File, key: str) -> np.ndarray:
  """Returns the (N, 32, 32) float32 images under `key`, checked to be finite and 0..255."""
  # astype converts while reading: one copy of the data, whatever dtype the file stores.
  images = f[key].astype(np.float32)[()]
  if images.size == 0:
    return images
  # min/max propagate NaN and reach +-inf, so two passes without temporaries check everything.
  low, high = float(images.min()), float(images.max())
  if not (np.isfinite(low) and np.isfinite(high)):
    count = int(np.count_nonzero(~np.isfinite(images)))
    raise DataError(f"{path}: {key} has {count} NaN or infinite pixel values; "
                    "expected finite values 0..255")
  if low < 0 or high > 255:
    raise DataError(f"{path}: {key} has pixel values from {low:g} to {high:g}; expected 0..255")
  return images


def _labels(path: Path, f: h5py.File, key: str) -> np.ndarray:
  """Returns the int32 labels 0..9 under `key`, SVHN's 10 (the digit zero) mapped to 0."""
  labels = f[key][()]
  if labels.dtype.kind not in "iuf":
    raise DataError(f"{path}: {key} has dtype {labels.dtype}; expected integer digit labels")
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
  with _open(path) as f:
    try:
      _check_layout(path, f)
      return Dataset(*(Split(_images(path, f, f"X_{split}"), _labels(path, f, f"y_{split}"))
                       for split in SPLITS))
    except OSError as e:  # h5py opens some truncated files and fails only when reading data
      raise DataError(f"{path} could not be read (truncated?): {e}") from e


def dataset_path(data_cfg: ml_collections.ConfigDict) -> Path:
  """Returns the HDF5 file that `config.data` asks for, downloading or generating it once."""
  if data_cfg.source not in SOURCES:
    raise ConfigError(f"config.data.source={data_cfg.source!r}: expected one of {list(SOURCES)}")
  if data_cfg.path:
    path = Path(data_cfg.path).expanduser()
    if not path.is_file():
      raise DataError(f"config.data.path={data_cfg.path!r}: no such file")
    return path
  if data_cfg.source == "svhn":
    return fetch(data_cfg.cache_dir)
  return _synthetic_path(data_cfg)


def _synthetic_path(data_cfg: ml_collections.ConfigDict) -> Path:
  # Imported here: only synthetic runs need the generator.
  from svhn_jax import synthetic

  sizes = data_cfg.synthetic
  path = default_cache_dir(data_cfg.cache_dir) / (
      f"synthetic_v{synthetic.VERSION}_{sizes.train}_{sizes.val}_{sizes.test}_seed{sizes.seed}.h5")
  if not path.exists():
    logging.info("Generating synthetic SVHN-like data into %s", path)
    synthetic.write(path, train=sizes.train, val=sizes.val, test=sizes.test, seed=sizes.seed)
  return path


def _table(rows: list[tuple[str, tuple[int, ...], str]]) -> str:
  shapes = [str(shape) for _, shape, _ in rows]
  name_width = max(len(name) for name, _, _ in rows)
  shape_width = max(len(shape) for shape in shapes)
  return "\n".join(f"{name:<{name_width}}  {shape:<{shape_width}}  {dtype}"
                   for (name, _, dtype), shape in zip(rows, shapes))


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="python -m svhn_jax.data",
                                   description="Look into the study's HDF5 data files.")
  commands = parser.add_subparsers(dest="command", required=True)
  inspect_cmd = commands.add_parser(
      "inspect", help="list every dataset in an HDF5 file with its shape and dtype")
  inspect_cmd.add_argument("file", help="an HDF5 file, e.g. SVHN_single_grey1.h5")
  inspect_cmd.add_argument("--verbosity", type=int, default=0,
                           help="1 or more: show the Python traceback of an error")
  args = parser.parse_args(argv)
  try:
    rows = inspect(args.file)
  except SvhnError as e:
    if args.verbosity > 0:
      raise
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(_table(rows) if rows else f"{args.file} holds no datasets")
  return 0


if __name__ == "__main__":
  sys.exit(main())
