"""SVHN format 2, cropped digits (source 'svhn_cropped'): `train_32x32.mat`, `test_32x32.mat`,
`extra_32x32.mat`, MATLAB v5 files holding X uint8 (32, 32, 3, N) and y (N, 1) with 10 for the
digit zero. `load_cropped` converts a file once into a cached .npy pair and memory-maps it from
then on.

Source: http://ufldl.stanford.edu/housenumbers/ (Netzer et al. 2011). Pure numpy: no JAX here.
"""

from __future__ import annotations

import errno
import io
import itertools
import logging
import math
import os
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

import ml_collections
import numpy as np
import scipy.io
from scipy.io.matlab import MatReadError
from tqdm import tqdm

from svhn_jax import data, fileio
from svhn_jax.datasets import base, content_cache, download, sniff
from svhn_jax.errors import DataError, one_line
from svhn_jax.transforms import remap_labels

CROP_SHAPE = (32, 32, 3)
FILES = download.CROPPED_FILES
# Bumped when the cached .npy layout changes, so that old caches are converted again.
_CACHE_VERSION = 1
_CHUNK = 8192  # images transposed per step of a conversion: 25 MB


_V5 = "a MATLAB v5 .mat of SVHN format 2 (X uint8 (32, 32, 3, N), y (N, 1))"
_NUMERIC = ("double", "single", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
            "uint64")
# What scipy raises on a truncated or corrupt v5 file.
_SCIPY_ERRORS = (MatReadError, ValueError, TypeError, IndexError, OSError, EOFError, zlib.error)


def check_v5(path: Path) -> None:
  """Raises DataError unless `path` is a whole MATLAB v5 file (not HTML, v7.3 or truncated)."""
  size = sniff.require_file(path, _V5)
  head = sniff.head(path)
  if sniff.looks_like_html(head):
    raise DataError(f"{path} {sniff.HTML}; expected {_V5}")
  if sniff.is_hdf5(head):
    raise DataError(f"{path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read; expected "
                    f"{_V5}: save it again in MATLAB with save(FILE, 'X', 'y', '-v7')")
  if not sniff.is_mat_v5(head):
    raise DataError(f"{path} is not a MATLAB v5 file (no MAT-file header in its first 128 bytes); "
                    f"expected {_V5}")
  missing = _v5_missing_bytes(path, size, head[126:128])
  if missing:
    raise DataError(f"{path} is truncated: a variable runs {missing:,} bytes past its end "
                    "(a cut-off download?)")


def _v5_missing_bytes(path: Path, size: int, endian: bytes) -> int:
  """Returns how many bytes the file's last top-level element lacks (0 for a whole file)."""
  tag = struct.Struct("<II" if endian == b"IM" else ">II")
  position = 128
  with open(path, "rb") as f:
    while position + tag.size <= size:
      f.seek(position)
      _, byte_count = tag.unpack(f.read(tag.size))
      position += tag.size + byte_count
  return max(0, position - size)


def variables(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
  """Returns {name: (shape, MATLAB class)} of the file's variables, without reading their data."""
  try:
    return {name: (tuple(shape), cls) for name, shape, cls in scipy.io.whosmat(path)}
  except _SCIPY_ERRORS as e:
    raise DataError(f"{path} could not be read as a MATLAB v5 file (corrupt?): "
                    f"{one_line(e)}") from e


def _axis_advice(shape: tuple[int, ...]) -> str:
  """Says how to transpose a 4-D X with its axes in another order than (32, 32, 3, N)."""
  if len(shape) != 4:
    return ""
  for order in itertools.permutations(range(4)):
    if tuple(shape[axis] for axis in order[:3]) == CROP_SHAPE and order[0] < order[1]:
      matlab = " ".join(str(axis + 1) for axis in order)
      return (f" Its axes look reordered: np.transpose(X, {order}) in numpy, or "
              f"permute(X, [{matlab}]) in MATLAB, gives the official layout.")
  return ""


def check_variables(path: Path, variables: Mapping[str, tuple[tuple[int, ...], str]]) -> int:
  """Returns N after checking X and y's presence, shapes and classes against format 2."""
  for name in ("X", "y"):
    if name not in variables:
      raise DataError(f"{path} has no variable {name}; it holds {sorted(variables)}. Expected "
                      f"{_V5}.")
  x_shape, x_class = variables["X"]
  if len(x_shape) != 4 or x_shape[:3] != CROP_SHAPE:
    raise DataError(f"{path}: X has shape {x_shape}; expected (32, 32, 3, N), N colour 32x32 "
                    f"crops.{_axis_advice(x_shape)}")
  if x_class not in _NUMERIC:
    raise DataError(f"{path}: X is a MATLAB {x_class} array; expected uint8 pixels 0..255")
  count = x_shape[3]
  y_shape, y_class = variables["y"]
  if y_class not in _NUMERIC:
    raise DataError(f"{path}: y is a MATLAB {y_class} array; expected numeric labels 1..10")
  if math.prod(y_shape) != count or sum(d > 1 for d in y_shape) > 1:
    raise DataError(f"{path}: X holds {count} images but y has shape {y_shape}; expected "
                    f"({count}, 1), one label per image")
  return count


def _load_variable(path: Path, name: str) -> np.ndarray:
  try:
    return scipy.io.loadmat(path, variable_names=[name])[name]
  except _SCIPY_ERRORS as e:
    raise DataError(f"{path}: {name} could not be read (truncated or corrupt?): "
                    f"{one_line(e)}") from e


def file_labels(path: Path) -> np.ndarray:
  """Returns y as stored (1..10), checked, as a flat uint8 array."""
  y = _load_variable(path, "y").ravel()
  if y.size and not np.isin(y, np.arange(1, 11)).all():
    bad = np.unique(y[~np.isin(y, np.arange(1, 11))])
    raise DataError(f"{path}: y holds labels {bad[:5].tolist()} outside 1..10; expected 1..10 "
                    "with 10 for the digit zero")
  return y.astype(np.uint8)


def _uint8_chunk(path: Path, chunk: np.ndarray) -> np.ndarray:
  """Returns `chunk` as uint8, after checking that a non-uint8 X holds whole numbers 0..255."""
  if chunk.dtype == np.uint8:
    return chunk
  if not (np.all(chunk >= 0) and np.all(chunk <= 255) and np.array_equal(chunk, np.round(chunk))):
    raise DataError(f"{path}: X (MATLAB {chunk.dtype}) holds values that are not whole numbers "
                    "0..255; expected uint8 pixels")
  return chunk.astype(np.uint8)


def _nhwc_chunks(path: Path, x: np.ndarray) -> Iterator[np.ndarray]:
  """Yields X (32, 32, 3, N) as C-ordered uint8 (k, 32, 32, 3) chunks: one chunk of memory."""
  count = x.shape[3]
  with tqdm(total=count, unit="img", desc=f"converting {path.name}", disable=None) as bar:
    for start in range(0, count, _CHUNK):
      chunk = np.ascontiguousarray(np.transpose(x[..., start:start + _CHUNK], (3, 0, 1, 2)))
      yield _uint8_chunk(path, chunk)
      bar.update(len(chunk))


def _write_npy(path: Path, shape: tuple[int, ...], chunks: Iterable[np.ndarray]) -> None:
  """Writes a uint8 .npy of `shape` from C-ordered `chunks`, atomically, a chunk at a time."""
  with fileio.atomic_path(path) as tmp, open(tmp, "wb") as f:
    np.lib.format.write_array_header_1_0(
        f, {"descr": "|u1", "fortran_order": False, "shape": shape})
    for chunk in chunks:
      f.write(memoryview(chunk).cast("B"))


class _CachePair(NamedTuple):
  images: Path
  labels: Path


def _cached(pair: _CachePair, count: int | None = None) -> tuple[np.ndarray, np.ndarray] | None:
  """Returns the memory-mapped pair if both files are whole and agree, else None."""
  if not (pair.images.is_file() and pair.labels.is_file()):
    return None
  try:
    images = np.load(pair.images, mmap_mode="r")
    labels = np.load(pair.labels)
  except (ValueError, OSError) as e:
    logging.warning("Ignoring the unreadable cache %s: %s", pair.images, e)
    return None
  n = len(labels)
  if (images.dtype != np.uint8 or images.shape != (n,) + CROP_SHAPE or labels.dtype != np.uint8
      or labels.ndim != 1 or (count is not None and n != count) or (n and labels.max() > 9)):
    logging.warning("Ignoring the cache %s: its shapes or labels do not match", pair.images)
    return None
  return images, labels.astype(np.int32)


def _convert(path: Path, pair: _CachePair) -> None:
  """Writes the .npy pair of the format-2 file `path`: labels first, images last."""
  count = check_variables(path, variables(path))
  labels = file_labels(path)
  logging.info("Converting %s (%d crops, %.0f MB) to %s, once; later loads map it from disk.",
               path, count, path.stat().st_size / 1e6, pair.images)
  _write_npy(pair.labels, labels.shape, [remap_labels(labels).astype(np.uint8)])
  try:
    x = _load_variable(path, "X")
    _write_npy(pair.images, (count,) + CROP_SHAPE, _nhwc_chunks(path, x))
  except BaseException:
    pair.labels.unlink(missing_ok=True)
    raise


def load_cropped(path: str | os.PathLike,
                 cache_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Returns (images, labels) of a format-2 file: uint8 (N, 32, 32, 3) NHWC and int32 (N,) 0..9.

  The first call converts the .mat (X (32, 32, 3, N), y (N, 1) 1..10, 10 meaning zero) into a
  pair of .npy files `<stem>.<key>.images.npy` and `.labels.npy`, written atomically in
  `cache_dir`, else beside the .mat, else (folder read-only) in the user cache; `key` follows the
  .mat's bytes (content_cache: hashed once, then remembered by the file's stat), so a file of
  other contents is converted into its own pair, whatever its name, size and modification time.
  The pairs of the content_cache.KEEP_PER_NAME most recently used contents of a file name are
  kept in a folder, older ones deleted. Later calls return `images` memory-mapped read-only from
  that cache: no copy, no float data. The conversion holds X once in memory plus a 25 MB chunk.

  Raises DataError, naming the file and the variable, for: a missing, empty or truncated file, an
  HTML page, a MATLAB v7.3 file, a missing X or y, X with other axes than (32, 32, 3, N) (saying
  how to transpose), X with values that are not whole numbers 0..255, labels outside 1..10, and
  a count of labels other than of images.
  """
  path = Path(path)
  sniff.require_file(path, _V5)
  key = content_cache.source_key(path, cache_dir, _CACHE_VERSION)
  for folder in content_cache.folders(path, cache_dir):
    pair = _pair(folder, path, key)
    loaded = _cached(pair)
    if loaded is not None:
      content_cache.touch(*pair)
      return loaded
  check_v5(path)
  for folder in content_cache.folders(path, cache_dir):
    pair = _pair(folder, path, key)
    try:
      folder.mkdir(parents=True, exist_ok=True)
      _convert(path, pair)
    except PermissionError as e:
      logging.info("Cannot write the cache into %s (%s); trying the next place.", folder, e)
      continue
    except OSError as e:
      if e.errno != errno.EROFS:  # a read-only file system is as good as a read-only folder
        raise DataError(f"Could not write the cache of {path} into {folder}: {e}") from e
      continue
    content_cache.evict(folder, content_cache.stem(path))
    loaded = _cached(pair)
    if loaded is None:
      raise DataError(f"{pair.images}: the cache just written does not read back")
    return loaded
  raise DataError(f"{path}: no writable folder for its cache among "
                  f"{[str(f) for f in content_cache.folders(path, cache_dir)]}; pass "
                  "cache_dir=FOLDER")


def _pair(folder: Path, path: Path, key: str) -> _CachePair:
  stem = f"{content_cache.stem(path)}.{key}"
  return _CachePair(folder / f"{stem}.images.npy", folder / f"{stem}.labels.npy")




class Cropped(base.Source):
  """Source 'svhn_cropped': format 2's files from the folder `config.data.path`, else downloaded
  (verified) into the cache; crops carved into train / validation / test (`base.carved`), grey or
  colour."""

  name = "svhn_cropped"
  colors = ("grey", "rgb")
  official_splits = True

  def digits(self, data_cfg: ml_collections.ConfigDict) -> tuple[data.Dataset, Path]:
    cache = fileio.cache_dir(data_cfg)

    def parts_of(split: str) -> base.Parts:
      file = download.official_file(data_cfg, f"{split}_32x32.mat", FILES)
      return load_cropped(file, cache)

    return base.carved(data_cfg, parts_of), Path(data_cfg.path or cache)


SOURCE = Cropped()


# scipy writes the time into a MATLAB file's 116-byte text header; a fixed one keeps the bytes
# of a written file a function of its arrays alone.
_MAT_HEADER = b"MATLAB 5.0 MAT-file, written by svhn_jax.datasets.cropped".ljust(116)


def write_mat(path: str | os.PathLike, images: np.ndarray, labels: np.ndarray) -> Path:
  """Writes a format-2 file atomically, as the official ones are: X uint8 (32, 32, 3, N) from
  `images` uint8 (N, 32, 32, 3), y uint8 (N, 1) from `labels` (N,) 0..9 or 1..10, zero stored as
  10; zlib-compressed MATLAB v5, the same bytes for the same arrays. Returns `path`."""
  images, labels = np.asarray(images), np.asarray(labels)
  y = np.where(labels == 0, 10, labels).astype(np.uint8).reshape(-1, 1)
  buffer = io.BytesIO()
  scipy.io.savemat(buffer, {"X": np.ascontiguousarray(np.transpose(images, (1, 2, 3, 0))),
                            "y": y}, do_compression=True)
  with fileio.atomic_path(path) as tmp:
    tmp.write_bytes(_MAT_HEADER + buffer.getvalue()[len(_MAT_HEADER):])
  return Path(path)
