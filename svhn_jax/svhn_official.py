"""The official SVHN distribution (Netzer et al. 2011): fetch, verify, load and describe it.

Format 2, cropped digits: `train_32x32.mat`, `test_32x32.mat`, `extra_32x32.mat`, MATLAB v5 files
holding X uint8 (32, 32, 3, N) and y (N, 1) with 10 for the digit zero. `load_cropped` converts a
file once into a cached .npy pair and memory-maps it from then on.

Format 1, full photos: `train.tar.gz`, `test.tar.gz`, `extra.tar.gz`, PNGs `1.png ... N.png` and
`digitStruct.mat` (MATLAB v7.3, that is HDF5) with each photo's digit boxes. `read_digit_struct`
parses the boxes, `open_full` opens an archive or its extracted folder, `digit_crops` cuts 32x32
single-digit crops the way format 2 was made; `write_digit_struct` writes the file as MATLAB
does (svhn_jax.synthetic_photos and the tests write format 1 with it).

Source: http://ufldl.stanford.edu/housenumbers/. Pure numpy: no JAX here.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import io
import itertools
import logging
import math
import mmap
import os
import posixpath
import re
import shutil
import struct
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np
import pooch
import requests
import scipy.io
from PIL import Image
from scipy.io.matlab import MatReadError
from tqdm import tqdm

from svhn_jax import content_cache, fileio, images
from svhn_jax.errors import DataError
from svhn_jax.transforms import remap_labels

BASE_URL = "http://ufldl.stanford.edu/housenumbers/"
CROP_SHAPE = (32, 32, 3)
BOX_FIELDS = ("left", "top", "width", "height", "label")
# Bumped when the cached .npy layout changes, so that old caches are converted again.
_CACHE_VERSION = 1
_CHUNK = 8192  # images transposed per step of a conversion: 25 MB


class OfficialFile(NamedTuple):
  size: int  # bytes
  md5: str


REGISTRY: dict[str, OfficialFile] = {
    "train_32x32.mat": OfficialFile(182_040_794, "e26dedcc434d2e4c54c9b2d4a06d8373"),
    "test_32x32.mat": OfficialFile(64_275_384, "eb5a983be6a315427106f1b164d9cef3"),
    "extra_32x32.mat": OfficialFile(1_329_278_602, "a93ce644f1a588dc4d68dda5feec44a7"),
    "train.tar.gz": OfficialFile(404_141_560, "a649f4cb15c35520e8a8c342d4c0005a"),
    "test.tar.gz": OfficialFile(276_555_967, "790d9c8d42f1fcbd219b59956c853a81"),
    "extra.tar.gz": OfficialFile(1_955_489_752, "606f41243d71ca4d5fe66dbaf1f02bee"),
}

_OFFLINE_ADVICE = ("To work offline, copy the official files from a machine that has internet "
                   "access and pass the folder that holds them with --config.data.path=FOLDER.")
_HTML = "looks like an HTML page (an error or login page saved under the file's name)"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class Photo(NamedTuple):
  """One full photo of format 1 and its digits, in reading order."""
  name: str  # the PNG's file name, e.g. "1.png"
  labels: np.ndarray  # (k,) int32, 0..9 (the file's 10 mapped to 0)
  boxes: np.ndarray  # (k, 4) float32 (left, top, width, height) in pixels; may reach outside


# ---------------------------------------------------------------------------------------------
# Download

class _SizeCheckedDownload:
  """pooch's HTTP downloader, refusing a file of the wrong size before pooch checks its hash.

  pooch downloads into a temporary file and renames it only after the hash matches; raising here
  makes pooch delete the temporary file, so a cut-off download never reaches the final name.
  """

  def __init__(self, filename: str, expected: OfficialFile, http: Callable):
    self.filename, self.expected, self.http = filename, expected, http

  def __call__(self, url: str, output_file: str, pooch, check_only: bool = False):
    self.http(url, output_file, pooch, check_only=check_only)
    size = os.path.getsize(output_file)
    if size != self.expected.size:
      raise DataError(f"{self.filename} downloaded from {url} is {size:,} bytes, expected "
                      f"{self.expected.size:,} (a cut-off or wrong download); it was discarded. "
                      + _OFFLINE_ADVICE)


def fetch(filename: str, cache_dir: str | os.PathLike | None = None, *, base_url: str = BASE_URL,
          registry: Mapping[str, OfficialFile] = REGISTRY) -> Path:
  """Returns the path of the official file `filename` in `cache_dir`, downloading it if needed.

  The download shows a progress bar and lands under a temporary name; it is renamed to
  `cache_dir/filename` only when its size and MD5 match `registry`. A file already there with
  the right MD5 is reused without a download; one with the wrong MD5 is downloaded again.
  `cache_dir` defaults to $SVHN_JAX_CACHE, else ~/.cache/svhn_jax.

  Raises DataError for a name not in `registry`, a download of the wrong size or MD5 (nothing
  is left at the final name), and a network failure (saying how to work offline).
  """
  if filename not in registry:
    raise DataError(f"{filename}: not an official SVHN file; expected one of {sorted(registry)}")
  expected = registry[filename]
  folder = Path(cache_dir).expanduser() if cache_dir else fileio.default_cache_dir()
  url = base_url.rstrip("/") + "/" + filename
  # 1 MiB chunks: pooch's default of 1 KiB costs a Python call per KiB of a 2 GB file.
  http = pooch.HTTPDownloader(progressbar=True, chunk_size=1 << 20, timeout=60)
  try:
    return Path(pooch.retrieve(url, known_hash=f"md5:{expected.md5}", fname=filename, path=folder,
                               downloader=_SizeCheckedDownload(filename, expected, http)))
  except requests.exceptions.RequestException as e:
    raise DataError(f"Could not download {filename} from {url}: {_one_line(e)}. "
                    + _OFFLINE_ADVICE) from e
  except ValueError as e:  # pooch's hash mismatch
    raise DataError(f"{filename} downloaded from {url} does not have the MD5 {expected.md5} "
                    f"(a corrupted download); it was discarded. {_OFFLINE_ADVICE}") from e
  except OSError as e:
    raise DataError(f"Could not save {filename} into {folder}: {_one_line(e)}") from e


def _one_line(error: BaseException) -> str:
  return " ".join(str(error).split())


# ---------------------------------------------------------------------------------------------
# Sniffing files

def _require_file(path: Path, expected: str) -> int:
  """Returns the size of `path`, or raises DataError if it is missing, a folder or empty."""
  if not path.exists():
    raise DataError(f"{path}: no such file; expected {expected}")
  if not path.is_file():
    raise DataError(f"{path} is not a file; expected {expected}")
  size = path.stat().st_size
  if size == 0:
    raise DataError(f"{path} is empty (0 bytes); expected {expected}")
  return size


def _head(path: Path, count: int = 1024) -> bytes:
  try:
    with open(path, "rb") as f:
      return f.read(count)
  except OSError as e:
    raise DataError(f"{path} cannot be read: {_one_line(e)}") from e


def _looks_like_html(head: bytes) -> bool:
  return head.lstrip(b"\xef\xbb\xbf \t\r\n").lower().startswith((b"<!doctype html", b"<html"))


def _is_hdf5(head: bytes) -> bool:
  """True for HDF5 (MATLAB v7.3 writes its text header, then HDF5 at byte 512)."""
  return head.startswith(b"MATLAB 7.3 MAT-file") or _HDF5_SIGNATURE in (head[:8], head[512:520])


def _is_mat_v5(head: bytes) -> bool:
  # The v5 header: 116 bytes of text, 8 of subsystem offset, version 0x0100, endian "IM" or "MI".
  return len(head) >= 128 and head[124:126] in (b"\x00\x01", b"\x01\x00") and \
      head[126:128] in (b"IM", b"MI")


# ---------------------------------------------------------------------------------------------
# Format 2: cropped digits

_V5 = "a MATLAB v5 .mat of SVHN format 2 (X uint8 (32, 32, 3, N), y (N, 1))"
_NUMERIC = ("double", "single", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
            "uint64")
# What scipy raises on a truncated or corrupt v5 file.
_SCIPY_ERRORS = (MatReadError, ValueError, TypeError, IndexError, OSError, EOFError, zlib.error)


def _check_v5(path: Path) -> None:
  """Raises DataError unless `path` is a whole MATLAB v5 file (not HTML, v7.3 or truncated)."""
  size = _require_file(path, _V5)
  head = _head(path)
  if _looks_like_html(head):
    raise DataError(f"{path} {_HTML}; expected {_V5}")
  if _is_hdf5(head):
    raise DataError(f"{path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read; expected "
                    f"{_V5}: save it again in MATLAB with save(FILE, 'X', 'y', '-v7')")
  if not _is_mat_v5(head):
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


def _variables(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
  """Returns {name: (shape, MATLAB class)} of the file's variables, without reading their data."""
  try:
    return {name: (tuple(shape), cls) for name, shape, cls in scipy.io.whosmat(path)}
  except _SCIPY_ERRORS as e:
    raise DataError(f"{path} could not be read as a MATLAB v5 file (corrupt?): "
                    f"{_one_line(e)}") from e


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


def _check_variables(path: Path, variables: Mapping[str, tuple[tuple[int, ...], str]]) -> int:
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
                    f"{_one_line(e)}") from e


def _file_labels(path: Path) -> np.ndarray:
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


def _cache_key(path: Path, cache_dir: str | os.PathLike | None) -> str:
  """Changes whenever the source file's bytes do, or the cache layout (see content_cache; its
  memo lives in `cache_dir`, else the user cache)."""
  digest = content_cache.file_digest(path, fileio.default_cache_dir(cache_dir or ""))
  return content_cache.key([digest], _CACHE_VERSION)


def _cache_folders(path: Path, cache_dir: str | os.PathLike | None) -> Iterator[Path]:
  """Yields where a cache may live, in order: `cache_dir`, else beside the source, else the
  user cache."""
  if cache_dir:
    yield Path(cache_dir).expanduser()
    return
  yield path.parent
  yield fileio.default_cache_dir()


def _stem(path: Path) -> str:
  """train_32x32.mat -> train_32x32, train.tar.gz -> train."""
  return re.sub(r"(\.tar\.gz|\.tgz|\.tar|\.mat)$", "", path.name)


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
  count = _check_variables(path, _variables(path))
  labels = _file_labels(path)
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
  _require_file(path, _V5)
  key = _cache_key(path, cache_dir)
  for folder in _cache_folders(path, cache_dir):
    pair = _pair(folder, path, key)
    loaded = _cached(pair)
    if loaded is not None:
      content_cache.touch(*pair)
      return loaded
  _check_v5(path)
  for folder in _cache_folders(path, cache_dir):
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
    content_cache.evict(folder, _stem(path))
    loaded = _cached(pair)
    if loaded is None:
      raise DataError(f"{pair.images}: the cache just written does not read back")
    return loaded
  raise DataError(f"{path}: no writable folder for its cache among "
                  f"{[str(f) for f in _cache_folders(path, cache_dir)]}; pass cache_dir=FOLDER")


def _pair(folder: Path, path: Path, key: str) -> _CachePair:
  stem = f"{_stem(path)}.{key}"
  return _CachePair(folder / f"{stem}.images.npy", folder / f"{stem}.labels.npy")


# ---------------------------------------------------------------------------------------------
# Format 1: digitStruct.mat

_V73 = ("digitStruct.mat of SVHN format 1, a MATLAB v7.3 (HDF5) file with /digitStruct/name and "
        "/digitStruct/bbox")


class _NotSimple(Exception):
  """An object the fast reader does not parse; h5py reads it instead."""


_DATASET_MESSAGES = {0x01, 0x03, 0x08}  # dataspace, datatype, data layout
_GROUP_MESSAGES = {0x11}  # symbol table


class _FastReader:
  """Reads digitStruct.mat's objects straight from the file's bytes, by their references.

  h5py spends tens of microseconds on each object, and train's file references 575,000 of them
  (a name, a bbox struct, 5 fields, 5 scalars per digit): 70 s through h5py, 3 s here, on a
  full-size stand-in (benchmarks/official_data.py, 2-core Xeon). MATLAB writes them in the
  oldest HDF5 formats (version-1 object headers, symbol-table groups, contiguous or compact
  data), whose few fields this class reads in a few microseconds. An object in any other form
  raises _NotSimple, and that photo is read through h5py.
  """

  def __init__(self, f: h5py.File, path: Path):
    plist = f.id.get_create_plist()
    if plist.get_sizes() != (8, 8):
      raise _NotSimple("addresses are not 8 bytes")
    self.base = plist.get_userblock()  # object addresses count from the superblock
    self.names = _raw_addresses(f["digitStruct/name"]).tolist()
    self.boxes = _raw_addresses(f["digitStruct/bbox"]).tolist()
    with open(path, "rb") as file:
      self.buf = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)

  def close(self) -> None:
    self.buf.close()

  def _u64(self, offset: int) -> int:
    return struct.unpack_from("<Q", self.buf, offset)[0]

  def _messages(self, address: int, wanted: set[int]) -> dict[int, int]:
    """Returns {message type: offset of its data} for the object header at `address`, reading
    messages until it has seen every type in `wanted`."""
    start = self.base + address
    if not (0 < address and start + 16 <= len(self.buf) and self.buf[start] == 1):
      raise _NotSimple(f"no version-1 object header at {address}")
    size = struct.unpack_from("<I", self.buf, start + 8)[0]
    chunks, found = [(start + 16, size)], {}
    for chunk_start, chunk_size in chunks:
      position, end = chunk_start, min(chunk_start + chunk_size, len(self.buf))
      while position + 8 <= end:
        kind, length, flags = struct.unpack_from("<HHB", self.buf, position)
        if kind == 0x10:  # continuation: more messages elsewhere
          chunks.append((self.base + self._u64(position + 8), self._u64(position + 16)))
        elif kind and kind not in found:
          if flags & 0x02:  # shared message: the data lives in another object
            raise _NotSimple(f"shared message in the object at {address}")
          found[kind] = position + 8
        position += 8 + length
        if wanted <= found.keys():
          return found
    return found

  def _dataset(self, address: int) -> tuple[tuple[int, ...], int, int, bytes]:
    """Returns (dims, datatype class, element size, raw data) of a dataset."""
    messages = self._messages(address, _DATASET_MESSAGES)
    if not _DATASET_MESSAGES <= messages.keys():
      raise _NotSimple(f"the object at {address} is not a plain dataset")
    space = messages[0x01]
    version, rank = self.buf[space], self.buf[space + 1]
    dims = struct.unpack_from(f"<{rank}Q", self.buf, space + (8 if version == 1 else 4))
    datatype = messages[0x03]
    type_class, bits = self.buf[datatype] & 0x0F, self.buf[datatype + 1]
    element = struct.unpack_from("<I", self.buf, datatype + 4)[0]
    layout = messages[0x08]
    # Bit 0 is the byte order of numbers, and for references 0 in the low 4 bits is an object's.
    if self.buf[layout] != 3 or (bits & 0x01 if type_class != 7 else bits & 0x0F):
      raise _NotSimple(f"unusual layout, byte order or reference kind at {address}")
    if self.buf[layout + 1] == 0:  # compact: the data sits in the header
      size = struct.unpack_from("<H", self.buf, layout + 2)[0]
      data_start = layout + 4
    elif self.buf[layout + 1] == 1:  # contiguous
      data_start = self.base + self._u64(layout + 2)
      size = self._u64(layout + 10)
    else:
      raise _NotSimple(f"chunked data at {address}")
    if size != element * math.prod(dims) or data_start + size > len(self.buf):
      raise _NotSimple(f"data of the dataset at {address} does not fit its shape")
    return dims, type_class, element, self.buf[data_start:data_start + size]

  def _links(self, address: int) -> dict[str, int]:
    """Returns {name: object address} of a symbol-table group's members."""
    messages = self._messages(address, _GROUP_MESSAGES)
    if 0x11 not in messages:
      raise _NotSimple(f"the object at {address} is not a symbol-table group")
    tree, heap = struct.unpack_from("<QQ", self.buf, messages[0x11])
    heap_start = self.base + heap
    if self.buf[heap_start:heap_start + 4] != b"HEAP":
      raise _NotSimple(f"no local heap at {heap}")
    names_start = self.base + self._u64(heap_start + 24)
    links, nodes = {}, [tree]
    while nodes:
      node = self.base + nodes.pop()
      if self.buf[node:node + 4] != b"TREE" or self.buf[node + 4] != 0:
        raise _NotSimple(f"no group B-tree node at {node - self.base}")
      level, used = self.buf[node + 5], struct.unpack_from("<H", self.buf, node + 6)[0]
      children = [self._u64(node + 32 + 16 * i) for i in range(used)]
      if level:
        nodes.extend(children)
        continue
      for child in children:
        symbols = self.base + child
        if self.buf[symbols:symbols + 4] != b"SNOD":
          raise _NotSimple(f"no symbol node at {child}")
        for i in range(struct.unpack_from("<H", self.buf, symbols + 6)[0]):
          name_offset, target = struct.unpack_from("<QQ", self.buf, symbols + 8 + 40 * i)
          name_start = names_start + name_offset
          name = self.buf[name_start:self.buf.find(b"\0", name_start)].decode()
          links[name] = target
    return links

  def name(self, i: int) -> str:
    dims, type_class, element, data = self._dataset(self.names[i])
    if type_class != 0 or element != 2:
      raise _NotSimple("the name is not a uint16 char array")
    return data.decode("utf-16-le")

  def _number(self, address: int) -> float:
    dims, type_class, element, data = self._dataset(address)
    if type_class != 1 or element != 8 or len(data) != 8:
      raise _NotSimple("not a (1, 1) double")
    return struct.unpack("<d", data)[0]

  def fields(self, i: int) -> dict[str, list[float]]:
    fields = {}
    for name, address in self._links(self.boxes[i]).items():
      if name not in BOX_FIELDS:
        continue
      dims, type_class, element, data = self._dataset(address)
      count = len(data) // 8
      if type_class == 1 and element == 8:
        fields[name] = list(struct.unpack(f"<{count}d", data))
      elif type_class == 7 and element == 8:
        fields[name] = [self._number(a) for a in struct.unpack(f"<{count}Q", data)]
      else:
        raise _NotSimple(f"field {name} is neither doubles nor references")
    return fields


def _raw_addresses(dataset: h5py.Dataset) -> np.ndarray:
  """Returns the object addresses an (N, 1) reference dataset holds, in one read."""
  if not dataset.id.get_type().equal(h5py.h5t.STD_REF_OBJ):
    raise _NotSimple(f"{dataset.name} holds another kind of reference")
  addresses = np.empty(dataset.shape, np.uint64)
  dataset.id.read(h5py.h5s.ALL, h5py.h5s.ALL, addresses, mtype=h5py.h5t.STD_REF_OBJ)
  return addresses.ravel()


_NAME = "a MATLAB char array (uint16) holding a file name such as 1.png"
_STRUCT = f"a MATLAB struct with fields {', '.join(BOX_FIELDS)}"
_FIELD = "one double per digit, inline or as references to (1, 1) doubles"
_NUMBER = "a (1, 1) double"
# What h5py raises on an object it cannot open or read (a filter it lacks, a broken link).
_H5PY_ERRORS = (KeyError, TypeError, ValueError, IndexError, OSError, RuntimeError)


def _kind(obj: h5py.HLObject | None) -> str:
  """Says what an HDF5 object is, for an error message: 'a group', 'a dataset of float32 ...'."""
  if obj is None:
    return "a dangling link"
  if isinstance(obj, h5py.Group):
    return "a group"
  if isinstance(obj, h5py.Datatype):
    return "a named datatype"
  if obj.shape is None:
    return "an empty dataset (null dataspace)"
  dtype = obj.dtype
  if h5py.check_string_dtype(dtype):
    return f"a dataset of strings, shape {obj.shape}"
  if h5py.check_ref_dtype(dtype):
    return f"a dataset of {h5py.check_ref_dtype(dtype).__name__}s, shape {obj.shape}"
  return f"a dataset of {dtype}, shape {obj.shape}"


class _H5pyReader:
  """Reads photo i through h5py: slow (~50 us an object) but any valid HDF5 form, and the one
  that says what is wrong: every malformed object, and every error h5py raises on one, ends in
  a DataError naming the file, the record (digitStruct(3).bbox.label) and what was expected.
  Fields other than BOX_FIELDS are not read."""

  def __init__(self, f: h5py.File, path: Path):
    self.f, self.path = f, path
    self.names = self._values(f["digitStruct/name"], "/digitStruct/name", _V73).ravel()
    self.boxes = self._values(f["digitStruct/bbox"], "/digitStruct/bbox", _V73).ravel()

  def _object(self, ref, what: str) -> h5py.HLObject:
    if not ref:
      raise DataError(f"{self.path}: {what} is a null reference; expected a reference to a "
                      "MATLAB value")
    try:
      return self.f[ref]
    except _H5PY_ERRORS as e:
      raise DataError(f"{self.path}: {what} refers to nothing (a dangling reference): "
                      f"{_one_line(e)}") from e

  def _wrong(self, obj: h5py.HLObject | None, what: str, expected: str) -> DataError:
    return DataError(f"{self.path}: {what} is {_kind(obj)}; expected {expected}")

  def _values(self, obj: h5py.HLObject | None, what: str, expected: str) -> np.ndarray:
    """Returns the values of the dataset `obj`; raises DataError for anything else."""
    if not isinstance(obj, h5py.Dataset) or obj.shape is None:
      raise self._wrong(obj, what, expected)
    try:
      return np.asarray(obj[()])
    except _H5PY_ERRORS as e:
      raise DataError(f"{self.path}: {what} cannot be read ({_one_line(e)}); expected "
                      f"{expected}") from e

  def name(self, i: int) -> str:
    what = f"digitStruct({i + 1}).name"
    dataset = self._object(self.names[i], what)
    codes = self._values(dataset, what, _NAME)
    # Any 2-byte integer, as the fast reader takes: MATLAB writes uint16.
    if codes.dtype.kind not in "iu" or codes.dtype.itemsize != 2:
      raise self._wrong(dataset, what, _NAME)
    try:
      return codes.astype("<u2").tobytes().decode("utf-16-le")
    except UnicodeDecodeError as e:
      raise DataError(f"{self.path}: {what} is not valid UTF-16 ({_one_line(e)}); expected "
                      f"{_NAME}") from e

  def fields(self, i: int) -> dict[str, list[float]]:
    what = f"digitStruct({i + 1}).bbox"
    group = self._object(self.boxes[i], what)
    if not isinstance(group, h5py.Group):
      raise self._wrong(group, what, _STRUCT)
    try:
      members = {name: group.get(name) for name in group if name in BOX_FIELDS}
    except _H5PY_ERRORS as e:
      raise DataError(f"{self.path}: {what}'s fields cannot be listed ({_one_line(e)}); "
                      f"expected {_STRUCT}") from e
    return {name: self._field(member, f"{what}.{name}") for name, member in members.items()}

  def _field(self, dataset: h5py.HLObject | None, what: str) -> list[float]:
    values = self._values(dataset, what, _FIELD)
    if h5py.check_ref_dtype(values.dtype) is h5py.Reference:
      values = np.array([self._number(ref, f"{what} (digit {j + 1})")
                         for j, ref in enumerate(values.ravel())])
    elif values.dtype.kind not in "iuf":  # MATLAB's numeric classes
      raise self._wrong(dataset, what, _FIELD)
    return values.astype(np.float64).ravel().tolist()

  def _number(self, ref, what: str) -> float:
    number = self._object(ref, what)
    value = self._values(number, what, _NUMBER)
    if value.dtype.kind not in "iuf" or value.size != 1:
      raise self._wrong(number, what, _NUMBER)
    return float(value.ravel()[0])


def _check_v73(path: Path) -> None:
  _require_file(path, _V73)
  head = _head(path)
  if _looks_like_html(head):
    raise DataError(f"{path} {_HTML}; expected {_V73}")
  if _is_mat_v5(head) and not _is_hdf5(head):
    raise DataError(f"{path} is a MATLAB v5 file; expected {_V73} (the official digitStruct.mat "
                    "is v7.3)")


def _open_h5(path: Path) -> h5py.File:
  try:
    return h5py.File(path, "r")
  except OSError as e:
    raise DataError(f"{path} is not a readable HDF5 file (truncated or not HDF5): "
                    f"{_one_line(e)}; expected {_V73}") from e


def _reference_datasets(path: Path, f: h5py.File) -> int:
  """Returns N after checking /digitStruct/name and /bbox: (N, 1) object references each."""
  if not isinstance(f.get("digitStruct"), h5py.Group):
    raise DataError(f"{path} has no group /digitStruct; it holds {sorted(f.keys())}. "
                    f"Expected {_V73}.")
  shapes = {}
  for field in ("name", "bbox"):
    dataset = f["digitStruct"].get(field)
    if not isinstance(dataset, h5py.Dataset) or dataset.shape is None or \
        h5py.check_ref_dtype(dataset.dtype) is not h5py.Reference:
      raise DataError(f"{path}: /digitStruct/{field} is missing or not a dataset of object "
                      f"references; expected {_V73}")
    shapes[field] = dataset.shape
  count = math.prod(shapes["name"])
  if shapes["name"] != shapes["bbox"] or count != max(shapes["name"], default=0):
    raise DataError(f"{path}: /digitStruct/name has shape {shapes['name']} and bbox "
                    f"{shapes['bbox']}; expected (N, 1) each")
  return count


def _box_of(path: Path, i: int, name: str) -> str:
  return f"{path}: digitStruct({i + 1}).bbox ({name})"


def _first_photo(ends: np.ndarray, bad_digits: np.ndarray) -> int | None:
  """Returns the index of the photo holding the first bad digit, or None if none is bad."""
  if not bad_digits.any():
    return None
  return int(np.searchsorted(ends, np.argmax(bad_digits), side="right"))


_BOX_RULES = {
    "left": "finite pixel coordinates (float32; they may lie outside the photo)",
    "top": "finite pixel coordinates (float32; they may lie outside the photo)",
    "width": "finite pixel sizes > 0 (float32)",
    "height": "finite pixel sizes > 0 (float32)",
}


def _valid_boxes(boxes: np.ndarray) -> np.ndarray:
  """bool (k, 4): which fields of (k, 4) (left, top, width, height) boxes are valid: all finite,
  width and height > 0. Coordinates may lie outside the photo: official boxes do."""
  return np.isfinite(boxes) & ((boxes > 0) | np.array([True, True, False, False]))


def _photos(path: Path, raw: Sequence[tuple[str, Mapping[str, list[float]]]]) -> list[Photo]:
  """Returns the photos' records from their names and box fields, after checking the fields
  of each photo, then the labels and boxes of all photos at once."""
  lengths = []
  for i, (name, fields) in enumerate(raw):
    if name in ("", ".", "..") or any(c in name for c in "/\\\0"):
      raise DataError(f"{path}: digitStruct({i + 1}).name is {name!r}; expected a file name such "
                      "as 1.png")
    missing = [field for field in BOX_FIELDS if field not in fields]
    if missing:
      raise DataError(f"{_box_of(path, i, name)} has no field {', '.join(missing)}; expected "
                      f"fields {', '.join(BOX_FIELDS)}")
    counts = [len(fields[field]) for field in BOX_FIELDS]
    if min(counts) != max(counts) or not counts[0]:
      raise DataError(f"{_box_of(path, i, name)} has fields of lengths {counts} "
                      f"({', '.join(BOX_FIELDS)}); expected one value per digit in every field")
    lengths.append(counts[0])
  columns = {field: np.fromiter(itertools.chain.from_iterable(f[field] for _, f in raw),
                                np.float64, count=sum(lengths)) for field in BOX_FIELDS}
  ends = np.cumsum(lengths)
  labels = columns["label"]
  boxes = np.stack([columns[field] for field in BOX_FIELDS[:4]], axis=1)
  i = _first_photo(ends, ~np.isin(labels, np.arange(1, 11)))
  if i is not None:
    raise DataError(f"{_box_of(path, i, raw[i][0])} has labels {raw[i][1]['label']}; expected "
                    "1..10 (10 is the digit zero)")
  # Checked as float32, as kept: a double beyond float32's range becomes infinite.
  with np.errstate(over="ignore"):
    boxes = boxes.astype(np.float32)
  i = _first_photo(ends, ~_valid_boxes(boxes).all(axis=1))
  if i is not None:
    valid = _valid_boxes(boxes[ends[i] - lengths[i]:ends[i]]).all(axis=0)
    field = BOX_FIELDS[int(np.argmin(valid))]
    raise DataError(f"{_box_of(path, i, raw[i][0])} has {field} {raw[i][1][field]}; expected "
                    f"{_BOX_RULES[field]}")
  labels = remap_labels(labels)
  return [Photo(name, photo_labels, photo_boxes) for (name, _), photo_labels, photo_boxes
          in zip(raw, np.split(labels, ends[:-1]), np.split(boxes, ends[:-1]))]


def read_digit_struct(path: str | os.PathLike, source: str | None = None) -> list[Photo]:
  """Returns the photos of a format-1 digitStruct.mat, in file order.

  The file is MATLAB v7.3 (HDF5): /digitStruct/name and /digitStruct/bbox are (N, 1) object
  references; a name is a uint16 char array; a bbox is a struct whose fields left, top, width,
  height, label are inline (1, 1) doubles for one digit, or (k, 1) references to (1, 1) doubles
  for k digits. Everything is read through those references. Train's 33,402 photos take a few
  seconds (see _FastReader).

  Raises DataError for: a missing, empty, HTML, MATLAB v5 or non-HDF5 file, a missing
  /digitStruct, a null or dangling reference, an object of another kind, type or shape than a
  name, a bbox struct or a field should be (naming the record, e.g. digitStruct(3).bbox.label),
  a name that is empty or not a plain file name, a box without one of the five fields (others
  are not read), fields of unequal lengths, labels outside 1..10, and a box with a NaN or
  infinite field (as float32) or a width or height <= 0; its left and top may lie outside the
  photo. The message names `source` in place of `path` when given: the file as the user knows
  it, for one taken out of an archive into a temporary place.
  """
  path = Path(path)
  try:
    return _read_photos(path)
  except DataError as e:
    if source is None:
      raise
    raise DataError(str(e).replace(str(path), source)) from e


def _read_photos(path: Path) -> list[Photo]:
  _check_v73(path)
  with _open_h5(path) as f:
    count = _reference_datasets(path, f)
    slow = _H5pyReader(f, path)
    try:
      fast = _FastReader(f, path)
    except _NotSimple as e:
      logging.info("%s: reading through h5py (%s)", path, e)
      fast = None
    try:
      return _photos(path, [_read(fast, slow, i) for i in range(count)])
    finally:
      if fast is not None:
        fast.close()


def _read(fast: _FastReader | None, slow: _H5pyReader, i: int) -> tuple[str, dict]:
  if fast is not None:
    try:
      return fast.name(i), fast.fields(i)
    except (_NotSimple, struct.error, IndexError, UnicodeDecodeError, ValueError):
      pass  # an odd or broken object: h5py reads it, and explains what is broken
  return slow.name(i), slow.fields(i)


# ---------------------------------------------------------------------------------------------
# Format 1: photos

@dataclasses.dataclass(frozen=True)
class FullSplit:
  """A format-1 split: its photos' records and the folder of their PNGs."""
  folder: Path
  photos: list[Photo]

  def __len__(self) -> int:
    return len(self.photos)

  def image(self, i: int) -> np.ndarray:
    """Returns photo i as uint8 (H, W, 3) RGB, read as `read` and `predict` read a file
    (images.read_photo: EXIF orientation, 16-bit, palette, transparency over white); raises
    DataError for an unreadable photo."""
    return images.read_photo(self.folder / self.photos[i].name)


def open_full(path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> FullSplit:
  """Returns the split in a format-1 archive (train.tar.gz) or its extracted folder (train/).

  The split's photos lie beside its digitStruct.mat, found at any depth of the archive or folder
  (`digit_struct_file`): train/digitStruct.mat as in the official archive, the folder itself, or
  deeper (SVHN/train/digitStruct.mat). An archive is extracted
  once, atomically, into `<stem>.<key>/` (in `cache_dir`, else beside
  it, else in the user cache when that folder is read-only); `key` follows the archive's bytes
  (content_cache), and the extractions of the content_cache.KEEP_PER_NAME most recently used
  contents of a file name are kept in a folder, older ones deleted. A gzip stream cannot seek,
  so reading photos from the archive itself would decompress it from the start for each one.

  Raises DataError for: an unreadable or truncated archive, no digitStruct.mat or several, a bad
  digitStruct.mat (see read_digit_struct), and a photo listed there whose file is missing.
  """
  path = Path(path)
  if path.is_dir():
    return _split(_split_folder(path, path), path)
  _require_file(path, "a format-1 archive such as train.tar.gz")
  return _extracted(path, cache_dir)


def _split(folder: Path, source: Path, root: Path | None = None) -> FullSplit:
  """The split whose digitStruct.mat and photos are in `folder`, checked; errors name `source`
  (an archive's extraction into `root`: the member's path in the archive)."""
  # An archive's extraction may be a temporary folder, gone by the time the message is read.
  member = folder.relative_to(root) / "digitStruct.mat" if root else None
  shown = None if source.is_dir() else f"{source}: {member.as_posix()}"
  photos = read_digit_struct(folder / "digitStruct.mat", shown)
  _check_present(photos, set(os.listdir(folder)), source)
  return FullSplit(folder, photos)


def _check_present(photos: Sequence[Photo], present: set[str], source: Path) -> None:
  """Raises DataError unless every photo's file name is in `present`, the names of the files
  beside digitStruct.mat."""
  missing = [photo.name for photo in photos if photo.name not in present]
  if missing:
    raise DataError(f"{source}: {len(missing)} photos listed in digitStruct.mat are missing, "
                    f"e.g. {missing[0]}; expected one image file per photo beside it")


def digit_struct_file(folder: str | os.PathLike, source: str | os.PathLike | None = None) -> Path:
  """The digitStruct.mat of the format-1 split in `folder`: the one file of that name at any
  depth below it, `folder` itself included. Raises DataError, naming `source` (default: the
  folder), for none or several, listing those found."""
  folder = Path(folder)
  found = sorted(str(p.relative_to(folder)) for p in folder.rglob("digitStruct.mat") if p.is_file())
  return folder / _one_digit_struct(found, Path(source or folder))


def _one_digit_struct(found: Sequence[str], source: Path) -> str:
  """The one path in `found`, the digitStruct.mat files of `source` (an archive's members or a
  folder's files, relative to it); raises DataError for none or several, listing them."""
  if not found:
    raise DataError(f"{source} has no digitStruct.mat; expected one at any depth, beside the "
                    "split's photos, as train/digitStruct.mat in the official train.tar.gz")
  if len(found) > 1:
    raise DataError(f"{source} holds {len(found)} digitStruct.mat files: {', '.join(found)}; "
                    "expected one per split: give each split's archive or folder on its own")
  return found[0]


def _extracted(archive: Path, cache_dir: str | os.PathLike | None) -> FullSplit:
  """Returns the split of `archive` from its extraction cache, extracting it there first."""
  key = _cache_key(archive, cache_dir)
  name = f"{_stem(archive)}.{key}"
  for folder in _cache_folders(archive, cache_dir):
    found = _split_folder(folder / name, archive)
    if found is not None:
      content_cache.touch(folder / name)
      return _split(found, archive, folder / name)
  for folder in _cache_folders(archive, cache_dir):
    try:
      folder.mkdir(parents=True, exist_ok=True)
      tmp = Path(tempfile.mkdtemp(dir=folder, prefix=f".{name}.", suffix=".partial"))
    except OSError as e:
      logging.info("Cannot extract into %s (%s); trying the next place.", folder, e)
      continue
    try:
      _extract_all(archive, tmp)
      # Checked before the rename, so that a broken archive leaves no extraction behind.
      photos = _split(_split_folder(tmp, archive), archive, tmp).photos
      try:
        os.replace(tmp, folder / name)
      except OSError:  # another process finished the same extraction first
        if _split_folder(folder / name, archive) is None:
          raise
    finally:
      shutil.rmtree(tmp, ignore_errors=True)
    content_cache.touch(folder / name)  # its time was the extraction's start
    content_cache.evict(folder, _stem(archive))
    return FullSplit(_split_folder(folder / name, archive), photos)
  raise DataError(f"{archive}: no writable folder to extract it into among "
                  f"{[str(f) for f in _cache_folders(archive, cache_dir)]}; pass cache_dir=FOLDER")


def _split_folder(root: Path, source: Path) -> Path | None:
  """Returns the folder under `root` that holds its one digitStruct.mat (`digit_struct_file`,
  errors naming `source`), or None when `root` is not a folder."""
  return digit_struct_file(root, source).parent if root.is_dir() else None


def _extract_all(archive: Path, target: Path) -> None:
  logging.info("Extracting %s into %s, once.", archive, target.parent)
  try:
    with tarfile.open(archive, "r|*") as tar, \
        tqdm(desc=f"extracting {archive.name}", unit="file", disable=None) as bar:
      for member in tar:
        tar.extract(member, target, filter="data")
        bar.update()
  except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
    raise DataError(f"{archive} is not a readable .tar.gz (truncated or corrupt?): "
                    f"{_one_line(e)}") from e


# The largest square square_crops resizes whole: 3 MB of pixels.
_MAX_SQUARE = 1024


def _square_pixels(start: int, side: int, count: int, extent: int) -> np.ndarray:
  """Returns intp (count,): pixel indices spread evenly over [start, start + side), each
  clipped to [0, extent); for count == side, start, start + 1, ... (floats: `start` and `side`
  may exceed int64)."""
  positions = np.floor(start + (np.arange(count) + 0.5) * (side / count))
  return np.clip(positions, 0, extent - 1).astype(np.intp)


def square_crops(image: np.ndarray, boxes: np.ndarray, size: int = 32) -> np.ndarray:
  """Returns uint8 (k, size, size, 3): each box of `image` (H, W, 3) as a centred square crop.

  As format 2 was made: a (left, top, width, height) box is widened to a square of side
  max(width, height) about its centre (top-left corner rounded down), pixels beyond the photo's
  edge repeat the edge pixel, and the square is resized bilinearly to size x size. A square of
  side above _MAX_SQUARE pixels (far above SVHN's) is first sampled down to that side by nearest
  pixel, so that any finite box costs no more than that.
  """
  image = np.asarray(image)
  height, width = image.shape[:2]
  crops = np.empty((len(boxes), size, size, 3), np.uint8)
  for j, (left, top, box_w, box_h) in enumerate(np.asarray(boxes, np.float64)):
    side = max(1, int(round(max(box_w, box_h))))
    x0 = int(np.floor(left + box_w / 2 - side / 2))
    y0 = int(np.floor(top + box_h / 2 - side / 2))
    count = min(side, _MAX_SQUARE)
    rows = _square_pixels(y0, side, count, height)
    cols = _square_pixels(x0, side, count, width)
    square = image[rows[:, None], cols[None, :]]
    if count != size:
      square = np.asarray(Image.fromarray(square).resize((size, size), Image.Resampling.BILINEAR))
    crops[j] = square
  return crops


def digit_crops(split: FullSplit,
                indices: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Returns (crops, labels) of every digit of the photos `indices` (default: all), in order:
  uint8 (D, 32, 32, 3) centred single-digit crops (see square_crops) and int32 (D,) 0..9."""
  indices = range(len(split)) if indices is None else indices
  total = sum(len(split.photos[i].labels) for i in indices)
  crops = np.empty((total, 32, 32, 3), np.uint8)
  labels = np.empty(total, np.int32)
  start = 0
  for i in tqdm(indices, desc="cropping digits", unit="photo", disable=None):
    photo = split.photos[i]
    end = start + len(photo.labels)
    crops[start:end] = square_crops(split.image(i), photo.boxes)
    labels[start:end] = photo.labels
    start = end
  return crops, labels


# ---------------------------------------------------------------------------------------------
# Format 1: writing digitStruct.mat

# MATLAB's 116 bytes of header text; read_digit_struct and _is_hdf5 recognize its first 19.
MATLAB_73_HEADER = (b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Thu Jan  1 00:00:00 2011 "
                    b"HDF5 schema 1.00 .")
# MATLAB stores a struct's fields in alphabetical order.
_MATLAB_BOX_FIELDS = ("height", "label", "left", "top", "width")


def _set_class(obj: h5py.HLObject, matlab_class: str) -> None:
  obj.attrs["MATLAB_class"] = np.bytes_(matlab_class)


def _fields_attr(group: h5py.Group, names: Sequence[str]) -> None:
  values = np.empty(len(names), dtype=h5py.vlen_dtype(np.dtype("S1")))
  for i, name in enumerate(names):
    values[i] = np.frombuffer(name.encode(), "S1")
  group.attrs["MATLAB_fields"] = values


class _Refs:
  """The `#refs#` group, naming members as MATLAB does (a, b, ..., z, A, ..., Z, ba, ...)."""

  _LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

  def __init__(self, f: h5py.File):
    self.group = f.create_group("#refs#")
    self.count = 0
    # MATLAB keeps a "canonical empty" first: readers must skip members that nothing references.
    empty = self.group.create_dataset(self._next_name(), data=np.zeros(2, np.uint64))
    _set_class(empty, "double")
    empty.attrs["MATLAB_empty"] = np.uint8(1)

  def _next_name(self) -> str:
    n, name = self.count, ""
    while True:
      name = self._LETTERS[n % 52] + name
      n //= 52
      if n == 0:
        break
    self.count += 1
    return name

  def double(self, value: float) -> h5py.Dataset:
    dataset = self.group.create_dataset(self._next_name(), data=np.full((1, 1), value, np.float64))
    _set_class(dataset, "double")
    return dataset

  def char(self, text: str) -> h5py.Dataset:
    codes = np.frombuffer(text.encode("utf-16-le"), np.uint16).reshape(-1, 1)
    dataset = self.group.create_dataset(self._next_name(), data=codes)
    _set_class(dataset, "char")
    dataset.attrs["MATLAB_int_decode"] = np.int32(2)
    return dataset

  def struct(self) -> h5py.Group:
    group = self.group.create_group(self._next_name())
    _set_class(group, "struct")
    return group


def _write_bbox(refs: _Refs, photo: Photo) -> h5py.Group:
  """One photo's 1xk bbox struct: inline (1, 1) doubles for k = 1, (k, 1) references for k > 1."""
  group = refs.struct()
  _fields_attr(group, _MATLAB_BOX_FIELDS)
  labels = np.where(np.asarray(photo.labels) == 0, 10, photo.labels)
  left, top, width, height = np.asarray(photo.boxes, np.float64).reshape(-1, 4).T
  columns = {"height": height, "label": labels, "left": left, "top": top, "width": width}
  for field in _MATLAB_BOX_FIELDS:
    values = columns[field]
    if len(values) == 1:
      _set_class(group.create_dataset(field, data=np.full((1, 1), values[0], np.float64)),
                  "double")
    else:
      group.create_dataset(field, data=np.array([[refs.double(v).ref] for v in values]),
                           dtype=h5py.ref_dtype)
  return group


def write_digit_struct(path: str | os.PathLike, photos: Sequence[Photo], *,
                       libver: str = "earliest") -> Path:
  """Writes `photos` as MATLAB writes format 1's 1xN struct array `digitStruct`; returns `path`.

  The file is what read_digit_struct reads: HDF5 behind a 512-byte user block holding MATLAB's
  v7.3 header text; /digitStruct/name and /digitStruct/bbox are (N, 1) object references into
  `#refs#`; a name is a (len, 1) uint16 char array; a bbox is a struct whose fields (height,
  label, left, top, width) are inline (1, 1) doubles for one digit and (k, 1) references to
  (1, 1) doubles for k digits. Labels 0 are stored as 10 (SVHN's zero); other values are stored
  as they are, unchecked (read_digit_struct refuses labels outside 1..10, and tests write such
  files on purpose). MATLAB writes HDF5's earliest formats; libver="latest" gives newer object
  headers, which the reader takes through h5py. Photo boxes are (k, 4) (left, top, width,
  height) in pixels, written as doubles.

  h5py creates every object one by one (7 a photo, 7 + 5k for k > 1 digits): about 400 photos
  of 2.35 digits a second, measured on a 2-core Intel Xeon. Raises OSError from h5py when `path`
  cannot be written.
  """
  path = Path(path)
  with h5py.File(path, "w", userblock_size=512, libver=libver) as f:
    refs = _Refs(f)
    names, boxes = [], []
    for photo in photos:
      names.append([refs.char(photo.name).ref])
      boxes.append([_write_bbox(refs, photo).ref])
    struct_group = f.create_group("digitStruct")
    _set_class(struct_group, "struct")
    _fields_attr(struct_group, ("name", "bbox"))
    for field, refs_column in (("name", names), ("bbox", boxes)):
      struct_group.create_dataset(
          field, data=np.array(refs_column, dtype=h5py.ref_dtype).reshape(-1, 1),
          dtype=h5py.ref_dtype)
  with open(path, "r+b") as f:
    # MATLAB's 128-byte header: 116 bytes of text, 8 of subsystem offset, version 0x0200, 'IM'.
    f.write(MATLAB_73_HEADER.ljust(116) + b" " * 8 + b"\x00\x02" + b"IM")
  return path


# ---------------------------------------------------------------------------------------------
# describe

def describe(path: str | os.PathLike) -> str:
  """Returns a few lines on an official file: what it holds and how it loads.

  Accepts a format-2 .mat, a digitStruct.mat, a format-1 .tar.gz (read in one pass, without
  extracting it) or an extracted split folder. Reports counts, shapes, dtypes, label range and
  per-class counts, and for format 1 the digits per photo, boxes reaching outside the photo, and
  the photos' formats and modes with the rules they are read by (images.reading). A format-1
  archive or folder is located and checked by the code that training opens it with
  (`digit_struct_file`, read_digit_struct, every photo present and decoded as images.read_photo
  decodes it), so it is described exactly when training can load it, and raises the same
  DataError otherwise. Raises DataError for a file of none of these kinds.
  """
  path = Path(path)
  if path.is_dir():
    return _describe_folder(path)
  _require_file(path, "an official SVHN file (.mat, .tar.gz) or an extracted split folder")
  if path.name.endswith((".tar.gz", ".tgz", ".tar")):
    return _describe_archive(path)
  head = _head(path)
  if _looks_like_html(head):
    raise DataError(f"{path} {_HTML}; expected an official SVHN file")
  if _is_hdf5(head):
    return _describe_photos(path, read_digit_struct(path), None)
  if _is_mat_v5(head):
    return _describe_cropped(path)
  raise DataError(f"{path} is neither a MATLAB .mat nor a .tar.gz; expected an official SVHN "
                  "file: train_32x32.mat, digitStruct.mat, train.tar.gz, ...")


def _class_counts(labels: np.ndarray) -> str:
  counts = np.bincount(labels, minlength=10)
  spread = f"; max/min {counts.max() / counts.min():.2f}" if counts.min() else ""
  return "  ".join(f"{digit}: {count:,}" for digit, count in enumerate(counts)) + spread


def _describe_cropped(path: Path) -> str:
  _check_v5(path)
  variables = _variables(path)
  count = _check_variables(path, variables)
  stored = _file_labels(path)
  labels = remap_labels(stored)
  x_shape, x_class = variables["X"]
  y_shape, y_class = variables["y"]
  low, high = (int(stored.min()), int(stored.max())) if count else (0, 0)
  return "\n".join([
      f"{path}: SVHN format 2 (cropped digits), MATLAB v5, {count:,} crops",
      f"  X  {x_shape} {x_class}: loads as images uint8 ({count}, 32, 32, 3), NHWC colour",
      f"  y  {y_shape} {y_class}, labels {low}..{high} (10 is the digit zero): loads as "
      "int32 0..9",
      f"  per class: {_class_counts(labels)}",
  ])


def _describe_photos(source: Path, photos: Sequence[Photo],
                     readings: Mapping[str, images.Reading] | None) -> str:
  """Describes photos; `readings` ({name: how it is read}) lets it count boxes outside photos and
  say how the photos are read."""
  lengths = np.array([len(photo.labels) for photo in photos], np.int64)
  labels = np.concatenate([photo.labels for photo in photos]) if photos else np.zeros(0, int)
  boxes = np.concatenate([photo.boxes for photo in photos]) if photos else np.zeros((0, 4))
  histogram = "  ".join(f"{k}: {n:,}" for k, n in enumerate(np.bincount(lengths)) if n)
  lines = [
      f"{source}: SVHN format 1 (full photos), {len(photos):,} photos, {len(labels):,} digits",
      f"  digits per photo: {histogram}",
      "  loads as Photo(name, labels int32 (k,) 0..9, boxes float32 (k, 4) left, top, width, "
      "height in pixels)",
      f"  per class: {_class_counts(labels)}" if len(labels) else "  no digits",
  ]
  if len(boxes):
    lines.append(f"  box width {boxes[:, 2].min():g}..{boxes[:, 2].max():g} px, height "
                 f"{boxes[:, 3].min():g}..{boxes[:, 3].max():g} px")
  if readings is None:
    off = int(np.count_nonzero((boxes[:, 0] < 0) | (boxes[:, 1] < 0)))
    lines.append(f"  boxes starting left of or above their photo: {off:,} (photo sizes need the "
                 "photos)")
    return "\n".join(lines)
  sizes = {name: reading.size for name, reading in readings.items()}
  lines.append(f"  boxes reaching outside their photo: {_outside(photos, sizes):,}")
  if readings:
    widths = [w for w, _ in sizes.values()]
    heights = [h for _, h in sizes.values()]
    lines.append(f"  photo size {min(widths)}..{max(widths)} x {min(heights)}..{max(heights)}"
                 " px (width x height, upright): photo i loads as uint8 (H, W, 3) RGB")
    kinds = collections.Counter(reading.kind for reading in readings.values())
    rules = collections.Counter(rule for reading in readings.values() for rule in reading.rules)
    lines.append(f"  photo files: {_counts(kinds)}")
    lines.append(f"  read by svhn_jax.images' rules: {_counts(rules)}" if rules else
                 "  read as stored: 8-bit RGB, no EXIF orientation, no transparency")
  return "\n".join(lines)


def _counts(counter: collections.Counter) -> str:
  return ", ".join(f"{what}: {count:,}" for what, count in sorted(counter.items()))


def _outside(photos: Sequence[Photo], sizes: Mapping[str, tuple[int, int]]) -> int:
  count = 0
  for photo in photos:
    if photo.name in sizes:
      width, height = sizes[photo.name]
      left, top, box_w, box_h = photo.boxes.T
      count += int(np.count_nonzero((left < 0) | (top < 0) | (left + box_w > width)
                                    | (top + box_h > height)))
  return count


def _describe_folder(folder: Path) -> str:
  split = open_full(folder)
  # Each photo is decoded as training will (33,402 of them in SVHN's train/): a bar shows it.
  readings = {photo.name: images.reading(split.folder / photo.name)
              for photo in tqdm(split.photos, desc=f"inspecting {folder.name}", unit="photo",
                                disable=None)}
  return _describe_photos(folder, split.photos, readings)


def _describe_archive(archive: Path) -> str:
  """Describes a format-1 archive in one pass: each file is decoded as a photo as it streams by
  (only digitStruct.mat, read last, says which files are photos), and kept as its reading or
  its error, so that memory holds no photo once decoded."""
  structs: dict[str, bytes] = {}
  readings: dict[str, images.Reading | DataError] = {}
  try:
    with tarfile.open(archive, "r|*") as tar, tempfile.TemporaryDirectory() as target:
      for member in tqdm(tar, desc=f"inspecting {archive.name}", unit="file", disable=None):
        # What extraction for training refuses (links out of the folder, devices, ...).
        tarfile.data_filter(member, target)
        if not member.isfile():
          continue
        name = posixpath.normpath(member.name)
        payload = tar.extractfile(member).read()
        if posixpath.basename(name) == "digitStruct.mat":
          structs[name] = payload
          continue
        try:
          readings[name] = images.reading(archive / name, io.BytesIO(payload))
        except DataError as e:
          readings[name] = e
  except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
    raise DataError(f"{archive} is not a readable .tar.gz (truncated or corrupt?): "
                    f"{_one_line(e)}") from e
  chosen = _one_digit_struct(sorted(structs), archive)
  with tempfile.TemporaryDirectory() as tmp:
    mat = Path(tmp) / "digitStruct.mat"
    mat.write_bytes(structs[chosen])
    photos = read_digit_struct(mat, f"{archive}: {chosen}")
  folder = posixpath.dirname(chosen)
  _check_present(photos, {posixpath.basename(name) for name in readings
                          if posixpath.dirname(name) == folder}, archive)
  found = {photo.name: readings[posixpath.join(folder, photo.name)] for photo in photos}
  for reading in found.values():
    if isinstance(reading, DataError):
      raise reading
  return _describe_photos(archive, photos, found)
