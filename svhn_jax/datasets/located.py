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

Zoomed views (config.data.locate.zoom_views = k > 0, configs/locate.py's 1): each training
photo also gives k views of a window around its number (`zoom_window`: the window's width and
height the number's times factors drawn log-uniformly in ZOOM_FACTORS, at least ZOOM_MIN_PIXELS,
the number at a uniformly drawn place inside it, cut to the photo; `boxes.context_window`), each
letterboxed to SIZE as the whole photo is, its label the number's box in that window's letterbox.
One model so learns to place boxes at every scale: on the whole photo (the first pass of
`tasks.locate.locate_photos`) and on a window around its first box (the second, refining pass,
whose context factor REFINE_CONTEXT, 2.5, lies inside ZOOM_FACTORS). The training split is then
the N whole photos followed by their N x k views (photo by photo, view by view); the draws are
seeded by data.split_seed, the split's file name and the photo's index in it, so the arrays are
the same on every run and cached under their own key. Validation and test keep the whole photos
only (what the first pass sees); k = 0 gives the arrays and cache files of before.

Validation: `data.val_size` photos carved from the training photos (train + extra) stratified by
number length, seeded by `data.split_seed`, as `numbers.load` carves them (the same photos).
Arrays are cached as one .npz per split in `<cache>/located/`, named by the contents of the
files they are made from (`content_cache`, as `numbers`) and the settings.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
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
# Zoomed training views: the window's size over the number's, per axis, drawn log-uniformly in
# this range (the refining pass's 2.5 near its geometric middle, 2.7), and its least side, pixels.
ZOOM_FACTORS = (1.5, 5.0)
ZOOM_MIN_PIXELS = 16
_ZOOM_STREAM = 31  # mixed into the zoomed views' seed: draws of their own, not the carving's


def zoom_window(union: np.ndarray, photo_size: tuple[int, int], rng: np.random.Generator
                ) -> np.ndarray:
  """int64 (4,) whole-pixel corners of one zoomed view's window around the number's box `union`
  (corners, photo pixels, inside the photo of `photo_size` = (width, height)): factors (fx, fy)
  drawn log-uniformly in ZOOM_FACTORS, the box's place (px, py) uniformly in [0, 1], at least
  ZOOM_MIN_PIXELS a side (`boxes.context_window`). Draws four numbers from `rng`."""
  low, high = np.log(ZOOM_FACTORS)
  factor = np.exp(rng.uniform(low, high, 2))
  place = rng.uniform(0.0, 1.0, 2)
  return boxes.context_window(union, photo_size, factor, place, min_size=ZOOM_MIN_PIXELS)


def photo_arrays(split: photos.FullSplit | Sequence[tuple[photos.Photo, np.ndarray]], *,
                 color: str = "grey", size: int = SIZE, zoom_views: int = 0,
                 seed: Sequence[int] = (0,), ids: Sequence[int] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 (M, size, size[, 3]), labels float32 (M, 4)) of the N photos of `split` (a
  FullSplit, or (Photo, uint8 (H, W, 3) pixels) pairs): `boxes.letterbox` of each photo and the
  corners of its number's box, cut to the photo, as shares of the letterbox (see the module's
  docstring); M = N. With `zoom_views` = k > 0, M = N (1 + k): then k zoomed views of each photo
  (`zoom_window`, photo i's view v drawn from numpy's default_rng of (*seed, ids[i], v); `ids`
  default 0..N-1), their labels the number's box in the window's letterbox. Raises ValueError
  for a photo without digits or a negative `zoom_views`, DataError for an unreadable photo."""
  if int(zoom_views) != zoom_views or zoom_views < 0:
    raise ValueError(f"located.photo_arrays: zoom_views must be a whole number >= 0, got "
                     f"{zoom_views}")
  count = len(split)
  ids = np.arange(count) if ids is None else np.asarray(ids, np.int64)
  shape = (count, size, size) + ((3,) if color == "rgb" else ())
  images, labels = np.empty(shape, np.uint8), np.empty((count, 4), np.float32)
  zoom_images = np.empty((count * zoom_views,) + shape[1:], np.uint8)
  zoom_labels = np.empty((count * zoom_views, 4), np.float32)
  progress = base.progress("letterboxing photos", count) if count >= _PROGRESS_EVERY else None
  for i in range(count):
    photo, pixels = house_numbers._photo(split, i)
    if not len(photo.labels):
      raise ValueError(f"located.photo_arrays: photo {photo.name} has no digits")
    images[i], geometry = boxes.letterbox(pixels, size, color)
    photo_size = (pixels.shape[1], pixels.shape[0])
    union = boxes.clip_corners(boxes.union_box(photo.boxes), photo_size)
    labels[i] = np.clip(boxes.to_letterbox(union, geometry), 0.0, 1.0)
    for view in range(zoom_views):
      rng = np.random.default_rng([*map(int, seed), int(ids[i]), view])
      window = zoom_window(union, photo_size, rng)
      j = i * zoom_views + view
      zoom_images[j], geometry = boxes.letterbox(boxes.window_pixels(pixels, window), size, color)
      labels_in_window = boxes.to_window(union, window)
      zoom_labels[j] = np.clip(boxes.to_letterbox(labels_in_window, geometry), 0.0, 1.0)
    if progress and ((i + 1) % _PROGRESS_EVERY == 0 or i + 1 == count):
      progress(i + 1)
  if not zoom_views:
    return images, labels
  return np.concatenate([images, zoom_images]), np.concatenate([labels, zoom_labels])


def _arrays(data_cfg: ml_collections.ConfigDict, source: Path, split: photos.FullSplit,
            indices: np.ndarray | None, label: str, zoom_views: int = 0) -> Split:
  """The letterboxed photos and box labels of the photos `indices` (None: all) of `split`, read
  from `source`, with `zoom_views` zoomed views of each (`photo_arrays`); from the cache, else
  made and cached."""
  picked = np.arange(len(split)) if indices is None else np.asarray(indices)
  what = (f"located|color={data_cfg.color}|size={SIZE}|"
          f"photos={hashlib.sha1(picked.astype(np.int64).tobytes()).hexdigest()}")
  stem = Path(source).name.split(".")[0]
  # Zoomed views: their own key (no views: the key, and the file, of before).
  seed = (int(data_cfg.split_seed), _ZOOM_STREAM, zlib.crc32(stem.encode()))
  if zoom_views:
    what += (f"|zoom={zoom_views}|factors={ZOOM_FACTORS}|min={ZOOM_MIN_PIXELS}|"
             f"seed={seed}")
  cache = fileio.cache_dir(data_cfg)
  contents = content_cache.key(
      content_cache.file_digests(numbers._sources(source, split), cache), ARRAYS_VERSION)
  path = cache / "located" / f"{stem}.{contents}.{content_cache.key([what])}.npz"
  if path.is_file():
    content_cache.touch(path)
    with np.load(path) as cached:
      return Split(cached["images"], cached["labels"])
  subset = photos.FullSplit(split.folder, [split.photos[i] for i in picked])
  logging.info("Letterboxing %d %s photos (once; cached in %s)", len(subset), label,
               path.parent)
  images, labels = photo_arrays(subset, color=data_cfg.color, zoom_views=zoom_views, seed=seed,
                                ids=picked)
  with fileio.atomic_path(path) as tmp, open(tmp, "wb") as f:
    np.savez(f, images=images, labels=labels)
  content_cache.evict(path.parent, stem)
  return Split(images, labels)


def zoom_views(data_cfg: ml_collections.ConfigDict) -> int:
  """config.data.locate.zoom_views: the zoomed views per training photo (0 where a config
  predates the field)."""
  return int(data_cfg.get("locate", {}).get("zoom_views", 0))


def load(data_cfg: ml_collections.ConfigDict, train: Sequence[Path], test: Path) -> Dataset:
  """Train (with config.data.locate.zoom_views zoomed views per photo) / validation / test
  letterboxed photos and their number's box (see the module's docstring) of the format-1
  `train` archives or folders (train, and extra with `use_extra`) and `test`. Raises DataError
  for unusable photo files and a photo without digits."""
  parts = [(path, numbers.open_split(path, data_cfg)) for path in train]
  train_parts, val_parts = [], []
  for (path, split), (train_idx, val_idx) in zip(parts, numbers.carve_parts(parts, data_cfg)):
    train_parts.append(_arrays(data_cfg, path, split, train_idx, "training",
                               zoom_views(data_cfg)))
    val_parts.append(_arrays(data_cfg, path, split, val_idx, "validation"))
  test_split = numbers.open_split(test, data_cfg)
  return Dataset(numbers._joined(train_parts), numbers._joined(val_parts),
                 _arrays(data_cfg, test, test_split, None, "test"))
