"""`python -m svhn_jax.data inspect FILE` (`main`) and what it reports: every dataset of an HDF5
file (`inspect`, `table`), or for SVHN's own files what they hold and how they load (`describe`).
"""

from __future__ import annotations

import collections
import io
import sys
import os
import posixpath
import tarfile
import tempfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np
from tqdm import tqdm

from absl import logging

from svhn_jax import cli, images
from svhn_jax.datasets import cropped, sniff, study_h5
from svhn_jax.datasets.digit_struct import Photo, read_digit_struct
from svhn_jax.datasets.photos import check_present, one_digit_struct, open_full
from svhn_jax.errors import DataError, one_line
from svhn_jax.transforms import remap_labels


def is_official(path: Path) -> bool:
  """SVHN's own files: a format-2 .mat, a digitStruct.mat, a .tar.gz or a folder of photos."""
  return path.suffix == ".mat" or path.name.endswith(".tar.gz") or path.is_dir()


def inspect(path: str | os.PathLike) -> list[tuple[str, tuple[int, ...], str]]:
  """Returns (name, shape, dtype) of every dataset in the HDF5 file, groups included."""
  rows = []

  def visit(name: str, obj: h5py.HLObject) -> None:
    if isinstance(obj, h5py.Dataset):
      rows.append((name, tuple(obj.shape), str(obj.dtype)))

  with study_h5.open_h5(Path(path)) as f:
    f.visititems(visit)
  return rows


def table(rows: list[tuple[str, tuple[int, ...], str]]) -> str:
  """`inspect`'s rows as aligned columns: name, shape, dtype."""
  shapes = [str(shape) for _, shape, _ in rows]
  name_width = max(len(name) for name, _, _ in rows)
  shape_width = max(len(shape) for shape in shapes)
  return "\n".join(f"{name:<{name_width}}  {shape:<{shape_width}}  {dtype}"
                   for (name, _, dtype), shape in zip(rows, shapes))


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
  sniff.require_file(path, "an official SVHN file (.mat, .tar.gz) or an extracted split folder")
  if path.name.endswith((".tar.gz", ".tgz", ".tar")):
    return _describe_archive(path)
  head = sniff.head(path)
  if sniff.looks_like_html(head):
    raise DataError(f"{path} {sniff.HTML}; expected an official SVHN file")
  if sniff.is_hdf5(head):
    return _describe_photos(path, read_digit_struct(path), None)
  if sniff.is_mat_v5(head):
    return _describe_cropped(path)
  raise DataError(f"{path} is neither a MATLAB .mat nor a .tar.gz; expected an official SVHN "
                  "file: train_32x32.mat, digitStruct.mat, train.tar.gz, ...")


def _class_counts(labels: np.ndarray) -> str:
  counts = np.bincount(labels, minlength=10)
  spread = f"; max/min {counts.max() / counts.min():.2f}" if counts.min() else ""
  return "  ".join(f"{digit}: {count:,}" for digit, count in enumerate(counts)) + spread


def _describe_cropped(path: Path) -> str:
  cropped.check_v5(path)
  variables = cropped.variables(path)
  count = cropped.check_variables(path, variables)
  stored = cropped.file_labels(path)
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
                    f"{one_line(e)}") from e
  chosen = one_digit_struct(sorted(structs), archive)
  with tempfile.TemporaryDirectory() as tmp:
    mat = Path(tmp) / "digitStruct.mat"
    mat.write_bytes(structs[chosen])
    photos = read_digit_struct(mat, f"{archive}: {chosen}")
  folder = posixpath.dirname(chosen)
  check_present(photos, {posixpath.basename(name) for name in readings
                          if posixpath.dirname(name) == folder}, archive)
  found = {photo.name: readings[posixpath.join(folder, photo.name)] for photo in photos}
  for reading in found.values():
    if isinstance(reading, DataError):
      raise reading
  return _describe_photos(archive, photos, found)


def main(argv: list[str] | None = None) -> int:
  parser = cli.ArgumentParser(prog="python -m svhn_jax.data",
                              description="Look into SVHN data files: the study's HDF5, "
                              "SVHN's .mat files, .tar.gz archives and photo folders.")
  commands = parser.add_subparsers(dest="command", required=True)
  inspect_cmd = commands.add_parser(
      "inspect", help="list every dataset in an HDF5 file with its shape and dtype")
  inspect_cmd.add_argument("file", help="an HDF5 file, e.g. SVHN_single_grey1.h5")
  inspect_cmd.add_argument("--verbosity", type=int, default=0,
                           help="1 or more: show the Python traceback of an error")
  args = parser.parse_args(argv)
  logging.set_verbosity(args.verbosity)
  with cli.user_errors():
    if is_official(Path(args.file)):
      print(describe(args.file))
      return 0
    rows = inspect(args.file)
  print(table(rows) if rows else f"{args.file} holds no datasets")
  return 0


if __name__ == "__main__":
  sys.exit(main())
