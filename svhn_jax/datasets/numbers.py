"""The data of config.task=number: SVHN format-1 photos as 64x64 crops of their house numbers,
with labels [length, d1..d5], cached so that a rerun starts in seconds.

Photos come from a format-1 split (`photos.open_full`: `train.tar.gz`, `test.tar.gz` and,
with `use_extra`, `extra.tar.gz`, or their extracted folders): SVHN's own for source
`svhn_full`, or made once into the cache by `datasets.synthetic_photos` for source `synthetic`,
so that the offline data goes through the same loader. Each photo becomes
`house_numbers.crop_number` of its `number_box` (Goodfellow et al. 2013, arXiv 1312.6082,
section 5.1), uint8 (64, 64) grey or (64, 64, 3) colour, and its labels int32 (6,) =
[length class 0..6, five digits with NO_DIGIT (10) past the length] (`number_labels`).

Validation: `data.val_size` photos carved from the training photos (train + extra) by
`input_pipeline.carve_validation`, stratified by number length, seeded by `data.split_seed`.
Margins: each training photo draws its own margin per side once, uniformly in
[data.numbers.margin_low, margin_high] (by split_seed, so the seeds of an ablation share the
data); its random 54x54 window is then drawn anew every step on the device
(`tasks.number.NumberTask`).
Validation and test photos use data.numbers.eval_margin; `test_at_margin` crops the test photos
at any other margin, for accuracy against margin.

Each array set is cached as one .npz in `<cache>/numbers/`, written atomically and named by the
contents of the files it is made from (an archive; for an extracted folder, its digitStruct.mat
and every photo it lists: see `content_cache`) and by the margins, colour and photos taken. An
unchanged folder is re-keyed from its files' stat alone: for SVHN's train, 33,402 photos stat'ed
and looked up in the digest memo, not read. The arrays of the content_cache.KEEP_PER_NAME most
recently used contents of each file name (train, test, extra) are kept, older ones deleted.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import ml_collections
import numpy as np

from svhn_jax import fileio, house_numbers, input_pipeline
from svhn_jax.data import Dataset, Split
from svhn_jax.datasets import base, content_cache, photos
from svhn_jax.errors import DataError

# Bump when the same photos and settings would give other arrays.
ARRAYS_VERSION = 1
# Threads cropping photos (Pillow resizes outside Python's lock).
_WORKERS = min(2, os.cpu_count() or 1)


# ---------------------------------------------------------------------------------------------
# Where the photos are

def open_split(path: Path, data_cfg: ml_collections.ConfigDict) -> photos.FullSplit:
  """`photos.open_full` of an archive or folder. An archive is extracted once, where its source
  says (`Source.extraction_folder`: the generated photos' beside them, in their own folder,
  SVHN's into the cache folder, as for the digits of svhn_full). Extractions are keyed by the
  archive's contents (see open_full)."""
  return photos.open_full(path, base.get(data_cfg).extraction_folder(data_cfg, Path(path)))


# ---------------------------------------------------------------------------------------------
# Arrays

def _sources(path: Path, split: photos.FullSplit) -> list[Path]:
  """The files `split`'s crops are made from: the archive `path`, or for a folder its
  digitStruct.mat and every photo it lists, in its order."""
  if Path(path).is_file():
    return [Path(path)]
  names = dict.fromkeys(photo.name for photo in split.photos)
  return [split.folder / "digitStruct.mat", *(split.folder / name for name in names)]


def _cache_file(data_cfg: ml_collections.ConfigDict, source: Path,
                split: photos.FullSplit, what: str) -> Path:
  """`<cache>/numbers/<stem>.<contents' key>.<settings' key>.npz`."""
  cache = fileio.cache_dir(data_cfg)
  contents = content_cache.key(content_cache.file_digests(_sources(source, split), cache),
                               ARRAYS_VERSION)
  stem = Path(source).name.split(".")[0]  # train.tar.gz, train/ -> train
  return cache / "numbers" / f"{stem}.{contents}.{content_cache.key([what])}.npz"


def _arrays(data_cfg: ml_collections.ConfigDict, source: Path, split: photos.FullSplit,
            indices: np.ndarray | None, margin: float | tuple[float, float], seed: int,
            label: str) -> Split:
  """The number crops and labels (N, 6) of the photos `indices` (None: all) of `split`, read
  from `source`, at one `margin` or margins drawn in (low, high) by `seed`; from the cache, else
  made and cached."""
  picked = np.arange(len(split)) if indices is None else np.asarray(indices)
  min_aspect = data_cfg.numbers.min_aspect
  what = (f"margin={margin!r}|seed={seed}|color={data_cfg.color}|size={house_numbers.SIZE}|"
          f"photos={hashlib.sha1(picked.astype(np.int64).tobytes()).hexdigest()}"
          + (f"|min_aspect={min_aspect!r}" if min_aspect else ""))
  path = _cache_file(data_cfg, source, split, what)
  if path.is_file():
    content_cache.touch(path)
    with np.load(path) as cached:
      return Split(cached["images"], cached["labels"])
  subset = photos.FullSplit(split.folder, [split.photos[i] for i in picked])
  logging.info("Cropping the house numbers of %d %s photos (once; cached in %s)", len(subset),
               label, path.parent)
  arrays = house_numbers.number_arrays(subset, margin=margin, seed=seed, color=data_cfg.color,
                                       min_aspect=min_aspect, workers=_WORKERS,
                                       progress=base.progress(f"cropping {label} numbers",
                                                          len(subset)))
  labels = np.concatenate([arrays.lengths[:, None], arrays.digits], axis=1).astype(np.int32)
  with fileio.atomic_path(path) as tmp, open(tmp, "wb") as f:
    np.savez(f, images=arrays.images, labels=labels)
  content_cache.evict(path.parent, path.name.split(".")[0])
  return Split(arrays.images, labels)


def length_classes(split: photos.FullSplit) -> np.ndarray:
  """int32 (N,): each photo's length class (`house_numbers.number_labels`), from its record."""
  return np.array([house_numbers.number_labels(photo.labels)[0] for photo in split.photos],
                  np.int32)


def carve_parts(parts: Sequence[tuple[Path, photos.FullSplit]], data_cfg: ml_collections.ConfigDict
                ) -> list[tuple[np.ndarray, np.ndarray]]:
  """Per training part (path, split) (train, and extra with `use_extra`), the indices into its
  photos (int, ascending) of the training and the validation photos: config.data.val_size photos
  carved from all parts together, stratified by the number's length
  (`input_pipeline.carve_validation`, seeded by config.data.split_seed). Used by every task that
  reads format-1 photos (numbers, located). Raises DataError naming the first part's file for a
  photo without digit boxes."""
  lengths = np.concatenate([length_classes(split) for _, split in parts])
  if (lengths == 0).any():
    first = int(np.flatnonzero(lengths == 0)[0])
    raise DataError(f"{parts[0][0]}: photo {first + 1} has no digit boxes; every photo of a "
                    "format-1 split must hold a number")
  # "More than 5" is merged with 5 for stratifying: SVHN's train split has one such photo, too
  # few to split, and carve_validation would then not stratify at all.
  train_idx, val_idx = input_pipeline.carve_validation(
      np.minimum(lengths, house_numbers.MAX_DIGITS), data_cfg.val_size, data_cfg.split_seed)
  starts = np.cumsum([0] + [len(split) for _, split in parts])
  mine = lambda idx, p: idx[(idx >= starts[p]) & (idx < starts[p + 1])] - starts[p]
  return [(mine(train_idx, p), mine(val_idx, p)) for p in range(len(parts))]


def load(data_cfg: ml_collections.ConfigDict, train: Sequence[Path], test: Path) -> Dataset:
  """Train / validation / test number crops (see the module's docstring) of the photos in the
  format-1 `train` archives or folders (train, and extra with `use_extra`) and `test`.

  Raises DataError for unusable photo files (see `photos.open_full`) and a photo without
  digits.
  """
  numbers = data_cfg.numbers
  parts = [(path, open_split(path, data_cfg)) for path in train]
  train_parts, val_parts = [], []
  for p, ((path, split), (train_idx, val_idx)) in enumerate(
      zip(parts, carve_parts(parts, data_cfg))):
    train_parts.append(_arrays(data_cfg, path, split, train_idx,
                               (numbers.margin_low, numbers.margin_high),
                               2 * data_cfg.split_seed + p, "training"))
    val_parts.append(_arrays(data_cfg, path, split, val_idx, numbers.eval_margin, 0,
                             "validation"))
  return Dataset(_joined(train_parts), _joined(val_parts),
                 test_at_margin(data_cfg, test, numbers.eval_margin))


def _joined(parts: list[Split]) -> Split:
  if len(parts) == 1:
    return parts[0]
  return Split(np.concatenate([p.images for p in parts]), np.concatenate([p.labels for p in parts]))


def test_at_margin(data_cfg: ml_collections.ConfigDict, test: Path, margin: float) -> Split:
  """The number crops (N, 64, 64[, 3]) uint8 and labels (N, 6) of every photo of the format-1
  `test` archive or folder, each box widened by `margin` per side; cached."""
  return _arrays(data_cfg, test, open_split(test, data_cfg), None, float(margin), 0, "test")
