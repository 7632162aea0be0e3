"""The data of config.task=locate: SVHN format-1 photos whole, letterboxed to SIZE x SIZE, with
the box around their number as the label; cached so that a rerun starts in seconds.

Photos come from a format-1 split as for the number task (`numbers.open_split`: SVHN's own for
source `svhn_full`, the generated ones of `datasets.synthetic_photos` for `synthetic`). Each
photo becomes `boxes.letterbox` of it (aspect ratio kept, centred, padded with its mean), uint8
(SIZE, SIZE) grey or (SIZE, SIZE, 3) colour, and its label float32 (4,): the corners (x0, y0,
x1, y1) of the union of its digit boxes (`boxes.union_box`, the number's box of Goodfellow et
al. 2013, arXiv 1312.6082, section 5.1, with no margin), cut to the photo (format 1's boxes may
reach past its edges) and given as shares of the letterbox's side (`boxes.to_letterbox`), so in
[0, 1].

Why SIZE = 54: the number reader's input (`house_numbers.CROP`), so that its trunk, whose dense
layer sees every position of its last map (what a box regression needs; a Wide ResNet pools it
away), is reused as it is (`models.number_reader.multidigit` with 4 + 1 outputs). In a
letterbox of 54 a SVHN photo (median about 2:1) keeps a number at its usual share of the
height (0.3 to 0.85) at 8 to 23 pixels high: enough to find, cheap on a CPU (a step costs as
much as the small reader's, 0.56 CPU-s for 128).

Validation: `data.val_size` photos carved from the training photos (train + extra) stratified by
number length, seeded by `data.split_seed`, as `numbers.load` carves them (the same photos).
Arrays are cached as one .npz per split in `<cache>/located/`, named by the contents of the
files they are made from (`content_cache`, as `numbers`) and the settings.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import ml_collections
import numpy as np

from svhn_jax import boxes, fileio, house_numbers
from svhn_jax.data import Dataset, Split
from svhn_jax.datasets import base, content_cache, numbers, photos

SIZE = house_numbers.CROP  # 54: the letterbox's side, pixels (see the module's docstring)
# Bump when the same photos and settings would give other arrays.
ARRAYS_VERSION = 1
_PROGRESS_EVERY = 1000


def photo_arrays(split: photos.FullSplit | Sequence[tuple[photos.Photo, np.ndarray]], *,
                 color: str = "grey", size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 (N, size, size[, 3]), labels float32 (N, 4)) of every photo of `split` (a
  FullSplit, or (Photo, uint8 (H, W, 3) pixels) pairs): `boxes.letterbox` of the photo and the
  corners of its number's box, cut to the photo, as shares of the letterbox (see the module's
  docstring). Raises ValueError for a photo without digits, DataError for an unreadable one."""
  count = len(split)
  shape = (count, size, size) + ((3,) if color == "rgb" else ())
  images, labels = np.empty(shape, np.uint8), np.empty((count, 4), np.float32)
  progress = base.progress("letterboxing photos", count) if count >= _PROGRESS_EVERY else None
  for i in range(count):
    photo, pixels = house_numbers._photo(split, i)
    if not len(photo.labels):
      raise ValueError(f"located.photo_arrays: photo {photo.name} has no digits")
    images[i], geometry = boxes.letterbox(pixels, size, color)
    union = boxes.clip_corners(boxes.union_box(photo.boxes), (pixels.shape[1], pixels.shape[0]))
    labels[i] = np.clip(boxes.to_letterbox(union, geometry), 0.0, 1.0)
    if progress and ((i + 1) % _PROGRESS_EVERY == 0 or i + 1 == count):
      progress(i + 1)
  return images, labels


def _arrays(data_cfg: ml_collections.ConfigDict, source: Path, split: photos.FullSplit,
            indices: np.ndarray | None, label: str) -> Split:
  """The letterboxed photos and box labels of the photos `indices` (None: all) of `split`, read
  from `source`; from the cache, else made and cached."""
  picked = np.arange(len(split)) if indices is None else np.asarray(indices)
  what = (f"located|color={data_cfg.color}|size={SIZE}|"
          f"photos={hashlib.sha1(picked.astype(np.int64).tobytes()).hexdigest()}")
  cache = fileio.cache_dir(data_cfg)
  contents = content_cache.key(
      content_cache.file_digests(numbers._sources(source, split), cache), ARRAYS_VERSION)
  stem = Path(source).name.split(".")[0]
  path = cache / "located" / f"{stem}.{contents}.{content_cache.key([what])}.npz"
  if path.is_file():
    content_cache.touch(path)
    with np.load(path) as cached:
      return Split(cached["images"], cached["labels"])
  subset = photos.FullSplit(split.folder, [split.photos[i] for i in picked])
  logging.info("Letterboxing %d %s photos (once; cached in %s)", len(subset), label,
               path.parent)
  images, labels = photo_arrays(subset, color=data_cfg.color)
  with fileio.atomic_path(path) as tmp, open(tmp, "wb") as f:
    np.savez(f, images=images, labels=labels)
  content_cache.evict(path.parent, stem)
  return Split(images, labels)


def load(data_cfg: ml_collections.ConfigDict, train: Sequence[Path], test: Path) -> Dataset:
  """Train / validation / test letterboxed photos and their number's box (see the module's
  docstring) of the format-1 `train` archives or folders (train, and extra with `use_extra`)
  and `test`. Raises DataError for unusable photo files and a photo without digits."""
  parts = [(path, numbers.open_split(path, data_cfg)) for path in train]
  train_parts, val_parts = [], []
  for (path, split), (train_idx, val_idx) in zip(parts, numbers.carve_parts(parts, data_cfg)):
    train_parts.append(_arrays(data_cfg, path, split, train_idx, "training"))
    val_parts.append(_arrays(data_cfg, path, split, val_idx, "validation"))
  test_split = numbers.open_split(test, data_cfg)
  return Dataset(numbers._joined(train_parts), numbers._joined(val_parts),
                 _arrays(data_cfg, test, test_split, None, "test"))
