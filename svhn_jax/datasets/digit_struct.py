"""Format 1's digitStruct.mat: the reader (`read_digit_struct`) and the writer
(`write_digit_struct`, used by `datasets.synthetic`'s photos and the tests).

The file is MATLAB v7.3, that is HDF5 behind a 512-byte text header: /digitStruct/name and
/digitStruct/bbox are (N, 1) object references, one per photo, to its file name and to a struct
of its digits' boxes (left, top, width, height, label). Reading goes through `_hdf5_fast` where
it can (a few seconds for train's 33,402 photos) and through h5py where it cannot, which also
says what is wrong with a malformed object.

Source: http://ufldl.stanford.edu/housenumbers/ (Netzer et al. 2011). Pure numpy: no JAX here.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import h5py
import numpy as np

from svhn_jax.datasets import sniff
from svhn_jax.datasets._hdf5_fast import BOX_FIELDS, FastReader, NotSimple
from svhn_jax.errors import DataError, one_line
from svhn_jax.transforms import remap_labels

_V73 = ("digitStruct.mat of SVHN format 1, a MATLAB v7.3 (HDF5) file with /digitStruct/name and "
        "/digitStruct/bbox")


class Photo(NamedTuple):
  """One full photo of format 1 and its digits, in reading order."""
  name: str  # the PNG's file name, e.g. "1.png"
  labels: np.ndarray  # (k,) int32, 0..9 (the file's 10 mapped to 0)
  boxes: np.ndarray  # (k, 4) float32 (left, top, width, height) in pixels; may reach outside



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
                      f"{one_line(e)}") from e

  def _wrong(self, obj: h5py.HLObject | None, what: str, expected: str) -> DataError:
    return DataError(f"{self.path}: {what} is {_kind(obj)}; expected {expected}")

  def _values(self, obj: h5py.HLObject | None, what: str, expected: str) -> np.ndarray:
    """Returns the values of the dataset `obj`; raises DataError for anything else."""
    if not isinstance(obj, h5py.Dataset) or obj.shape is None:
      raise self._wrong(obj, what, expected)
    try:
      return np.asarray(obj[()])
    except _H5PY_ERRORS as e:
      raise DataError(f"{self.path}: {what} cannot be read ({one_line(e)}); expected "
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
      raise DataError(f"{self.path}: {what} is not valid UTF-16 ({one_line(e)}); expected "
                      f"{_NAME}") from e

  def fields(self, i: int) -> dict[str, list[float]]:
    what = f"digitStruct({i + 1}).bbox"
    group = self._object(self.boxes[i], what)
    if not isinstance(group, h5py.Group):
      raise self._wrong(group, what, _STRUCT)
    try:
      members = {name: group.get(name) for name in group if name in BOX_FIELDS}
    except _H5PY_ERRORS as e:
      raise DataError(f"{self.path}: {what}'s fields cannot be listed ({one_line(e)}); "
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
  sniff.require_file(path, _V73)
  head = sniff.head(path)
  if sniff.looks_like_html(head):
    raise DataError(f"{path} {sniff.HTML}; expected {_V73}")
  if sniff.is_mat_v5(head) and not sniff.is_hdf5(head):
    raise DataError(f"{path} is a MATLAB v5 file; expected {_V73} (the official digitStruct.mat "
                    "is v7.3)")


def _open_h5(path: Path) -> h5py.File:
  try:
    return h5py.File(path, "r")
  except OSError as e:
    raise DataError(f"{path} is not a readable HDF5 file (truncated or not HDF5): "
                    f"{one_line(e)}; expected {_V73}") from e


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
  seconds (see FastReader).

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
      fast = FastReader(f, path)
    except NotSimple as e:
      logging.info("%s: reading through h5py (%s)", path, e)
      fast = None
    try:
      return _photos(path, [_read(fast, slow, i) for i in range(count)])
    finally:
      if fast is not None:
        fast.close()


def _read(fast: FastReader | None, slow: _H5pyReader, i: int) -> tuple[str, dict]:
  if fast is not None:
    try:
      return fast.name(i), fast.fields(i)
    except (NotSimple, struct.error, IndexError, UnicodeDecodeError, ValueError):
      pass  # an odd or broken object: h5py reads it, and explains what is broken
  return slow.name(i), slow.fields(i)


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


