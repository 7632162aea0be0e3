"""SVHN format 1, full photos (source 'svhn_full'): `train.tar.gz`, `test.tar.gz`, `extra.tar.gz`
holding PNGs `1.png ... N.png` and `digitStruct.mat` (`digit_struct`) with each photo's digit
boxes. `open_full` opens an archive or its extracted folder, `digit_crops` cuts 32x32
single-digit crops the way format 2 was made.

Source: http://ufldl.stanford.edu/housenumbers/ (Netzer et al. 2011). Pure numpy: no JAX here.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tarfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import ml_collections
import numpy as np
from PIL import Image
from tqdm import tqdm

from svhn_jax import data, fileio, images
from svhn_jax.datasets import base, content_cache, download, sniff
from svhn_jax.datasets.digit_struct import Photo, read_digit_struct
from svhn_jax.errors import DataError, one_line

FILES = download.FULL_FILES
# The extraction's layout: shares format 2's cache version (a bump re-extracts).
_CACHE_VERSION = 1


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
  sniff.require_file(path, "a format-1 archive such as train.tar.gz")
  return _extracted(path, cache_dir)


def _split(folder: Path, source: Path, root: Path | None = None) -> FullSplit:
  """The split whose digitStruct.mat and photos are in `folder`, checked; errors name `source`
  (an archive's extraction into `root`: the member's path in the archive)."""
  # An archive's extraction may be a temporary folder, gone by the time the message is read.
  member = folder.relative_to(root) / "digitStruct.mat" if root else None
  shown = None if source.is_dir() else f"{source}: {member.as_posix()}"
  photos = read_digit_struct(folder / "digitStruct.mat", shown)
  check_present(photos, set(os.listdir(folder)), source)
  return FullSplit(folder, photos)


def check_present(photos: Sequence[Photo], present: set[str], source: Path) -> None:
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
  return folder / one_digit_struct(found, Path(source or folder))


def one_digit_struct(found: Sequence[str], source: Path) -> str:
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
  key = content_cache.source_key(archive, cache_dir, _CACHE_VERSION)
  name = f"{content_cache.stem(archive)}.{key}"
  for folder in content_cache.folders(archive, cache_dir):
    found = _split_folder(folder / name, archive)
    if found is not None:
      content_cache.touch(folder / name)
      return _split(found, archive, folder / name)
  for folder in content_cache.folders(archive, cache_dir):
    try:
      # Checked before the rename, so that a broken archive leaves no extraction behind; a
      # folder another process finished first is kept.
      with fileio.atomic_folder(folder / name, exist_ok=True) as tmp:
        _extract_all(archive, tmp)
        photos = _split(_split_folder(tmp, archive), archive, tmp).photos
    except OSError as e:
      logging.info("Cannot extract into %s (%s); trying the next place.", folder, e)
      continue
    content_cache.touch(folder / name)  # its time was the extraction's start
    content_cache.evict(folder, content_cache.stem(archive))
    return FullSplit(_split_folder(folder / name, archive), photos)
  raise DataError(f"{archive}: no writable folder to extract it into among "
                  f"{[str(f) for f in content_cache.folders(archive, cache_dir)]}; pass "
                  "cache_dir=FOLDER")


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
                    f"{one_line(e)}") from e


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




class Full(base.Source):
  """Source 'svhn_full': format 1's archives (or extracted folders) from the folder
  `config.data.path`, else downloaded (verified) into the cache. Digit crops are cut from the
  photos (`digit_crops`) and carved into train / validation / test (`base.carved`), grey or
  colour; the number task reads the photos whole."""

  name = "svhn_full"
  colors = ("grey", "rgb")
  official_splits = True
  has_photos = True

  def digits(self, data_cfg: ml_collections.ConfigDict) -> tuple[data.Dataset, Path]:
    cache = fileio.cache_dir(data_cfg)

    def parts_of(split: str) -> base.Parts:
      return digit_crops(open_full(self.photos(data_cfg, split), cache))

    return base.carved(data_cfg, parts_of), Path(data_cfg.path or cache)

  def photos(self, data_cfg: ml_collections.ConfigDict, split: str) -> Path:
    return download.official_file(data_cfg, f"{split}.tar.gz", FILES)


SOURCE = Full()
