"""A real-digit development set: scikit-learn's handwritten digits as SVHN-like 32x32 crops.

  python -m benchmarks.real_digits --out=data/real_digits                 # 3,000/1,000/1,000
  python -m benchmarks.real_digits --out=data/real_digits --train=1000,3000,10000 --seed=1

scikit-learn's `load_digits()` holds 1,797 real handwritten digits (UCI optdigits: 43 writers,
8x8, each pixel the count 0-16 of ink pixels in a 4x4 block of a 32x32 bitmap). Each crop here
is one of them, upsampled by scipy.ndimage (cubic spline, in one affine warp with its scale,
aspect, slant, rotation and offset), with parts of other digits at its left and right edges as in
SVHN's crops, blurred, painted in two colours (SVHN's light-on-dark and dark-on-light, shaded),
and noised: `Style` holds the ranges, each drawn per crop from a numpy Generator seeded by
(seed, source digit, variant).

The 1,797 source digits are split first, stratified by class (`split_sources`, 60/20/20 by
default), so that every variant of a source digit, and every neighbour drawn beside a digit, sits
in that digit's split: no handwritten digit is seen in two splits. A split of n crops takes its
sources round-robin in a seeded order: crop j is variant j // S of the split's (j mod S)-th source
(S sources), so a smaller training set is the first crops of a bigger one and validation and
test do not depend on the training size.

Writes, per training size N, into --out:
  real_digits_v1_N_VAL_TEST_seedS.h5   the study's HDF5 layout: X_train/y_train, X_val/y_val,
                                       X_test/y_test, grey float32 0-255 (the study's luma of the
                                       colour crops, so the same pixels as format 2 read in grey)
  real_digits_v1_N_VAL_TEST_seedS/     SVHN format 2: train_32x32.mat (the training and
                                       validation crops, training first: format 2 has no
                                       validation split) and test_32x32.mat, colour uint8
                                       (32, 32, 3, N), y uint8 (N, 1) with 10 for zero

Format 2's loader carves its validation split at random from train_32x32.mat, so there the
validation crops share source digits with training ones; its test split is source-disjoint.
Tune on the HDF5 file's validation split. Same arguments, same bytes.

For reuse (composing these digits into whole-number photos): `load_sources` and `split_sources`
give the digits and their split by source; `ink` warps one digit onto a canvas of any shape at a
given centre, height, stretch, slant and rotation; `paint` turns an ink map of any shape into a
colour photo by `Style`'s photometric ranges; `build` returns the crops with their source ids.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from svhn_jax import cli
from svhn_jax.data import Dataset, Split
from svhn_jax.datasets import cropped
from svhn_jax.datasets.study_h5 import save_h5
from svhn_jax.transforms import luma

log = logging.getLogger(__name__)

# Bump when the same arguments would give other crops: files are named by it.
VERSION = 1
SPLITS = ("train", "val", "test")
SHARES = (0.6, 0.2, 0.2)  # of the 1,797 source digits per split
SIZE = 32
SOURCE_SIZE = 8  # load_digits' images are 8x8, values 0..16
LUMA = np.array([0.299, 0.587, 0.114])


@dataclasses.dataclass(frozen=True)
class Style:
  """The degradations. Ranges are (low, high), drawn uniformly per crop; a share is the chance
  that a crop gets that stage. Lengths are in pixels of the 32x32 crop, levels in grey levels.

  Tuned on the validation split only, with the study's CNN1 for 8 epochs on 3,000/1,000/1,000
  (seed 0; validation accuracy at the last epoch): the digits alone, upsampled, dark on light,
  full contrast, 95.0%; first ranges (height 0.6-0.95, shift 2.5, rotation 8, slant 0.25,
  neighbours 0.75 at gaps -1-4 px, contrast 30-180, blur 0.3-1.8, noise 2-14) 77.2%; with
  contrast 45-180, blur 0.3-1.4, noise 2-10, neighbours 0.6 at gaps 0-4: 83.1%, then 86.0%
  without neighbours, 85.9% with one polarity, 92.1% with height 0.75-0.95, shift 1.5, rotation
  5, slant 0.15 (geometry costs most); these defaults, between the two, 89.0%."""
  height: tuple[float, float] = (0.7, 0.95)  # digit height as a share of the crop's
  aspect: tuple[float, float] = (0.8, 1.25)  # horizontal stretch, log-uniform
  slant: float = 0.2  # max horizontal shear, dx per dy
  rotation: float = 6.0  # max rotation, degrees
  shift: float = 2.0  # max offset of the digit's centre from the crop's, each axis
  stroke: tuple[float, float] = (0.2, 0.5)  # ink threshold on the upsampled 0..1 counts: thick..thin
  neighbour: float = 0.6  # chance of a neighbouring digit at each side
  gap: tuple[float, float] = (0.0, 4.0)  # space between the digit's box and a neighbour's
  neighbour_height: tuple[float, float] = (0.9, 1.1)  # a neighbour's height / the digit's
  dark: float = 0.65  # share of light-on-dark crops (SVHN: 69% of crops have a mean under 128)
  contrast: tuple[float, float] = (45.0, 180.0)  # |digit - background| in grey
  gradient: float = 60.0  # max brightness change across the crop from shading
  chroma: tuple[float, float] = (0.0, 90.0)  # colour of each of digit and background, RGB units
  blur: tuple[float, float] = (0.3, 1.4)  # gaussian sigma
  noise: tuple[float, float] = (2.0, 10.0)  # gaussian noise std, per colour channel


STYLE = Style()


class Crops(NamedTuple):
  """One split's crops. colour: uint8 (N, 32, 32, 3); grey: float32 (N, 32, 32) 0..255, the
  study's luma of `colour` (whole numbers); labels: uint8 (N,) 0..9; sources: int32 (N,) the index
  of each crop's digit in `load_digits()`; variants: int32 (N,) which variant of it."""
  colour: np.ndarray
  grey: np.ndarray
  labels: np.ndarray
  sources: np.ndarray
  variants: np.ndarray


def load_sources() -> tuple[np.ndarray, np.ndarray]:
  """scikit-learn's digits (shipped with it, no download): images float32 (1797, 8, 8) ink
  0..1 (the counts 0..16 divided by 16) and labels uint8 (1797,) 0..9."""
  from sklearn.datasets import load_digits

  digits = load_digits()
  return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.uint8)


def split_sources(labels: np.ndarray, seed: int, shares: Sequence[float] = SHARES
                  ) -> tuple[np.ndarray, ...]:
  """Splits source digits by class: one int64 index array into `labels` per share, disjoint,
  together all of them, each class divided by `shares` (rounded at cumulative boundaries), and
  each array in a seeded random order (the order in which a split takes its sources).

  Raises ValueError unless `shares` are positive and sum to 1, or when a class has too few
  digits to put one in every split."""
  shares = np.asarray(shares, np.float64)
  if shares.ndim != 1 or len(shares) == 0 or (shares <= 0).any() or abs(shares.sum() - 1) > 1e-9:
    raise ValueError(f"shares {shares.tolist()}: expected positive numbers that sum to 1")
  labels = np.asarray(labels)
  rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
  parts: list[list[np.ndarray]] = [[] for _ in shares]
  for label in np.unique(labels):
    members = rng.permutation(np.flatnonzero(labels == label))
    bounds = np.round(np.cumsum(shares) * len(members)).astype(int)
    starts = np.concatenate([[0], bounds[:-1]])
    if (bounds - starts < 1).any():
      raise ValueError(f"class {label} has {len(members)} digits: too few for one in each of "
                       f"{len(shares)} splits of shares {shares.tolist()}")
    for part, start, stop in zip(parts, starts, bounds):
      part.append(members[start:stop])
  return tuple(rng.permutation(np.concatenate(part)) for part in parts)


def column_box(image: np.ndarray) -> tuple[float, float]:
  """(left, right) edges, in source pixels, of the columns of `image` (8, 8) holding ink; every
  load_digits digit spans all 8 rows (its height), its width varies."""
  columns = np.flatnonzero(image.max(axis=0) > 0)
  return float(columns[0]), float(columns[-1] + 1)


def ink(image: np.ndarray, shape: tuple[int, int], centre: tuple[float, float], height: float,
        aspect: float = 1.0, slant: float = 0.0, rotation: float = 0.0) -> np.ndarray:
  """Warps one source digit (8, 8) ink 0..1 into an ink map float32 `shape` 0..1: the digit's
  box (8 rows, its inked columns) scaled to `height` pixels tall and `aspect` times as wide,
  slanted (dx per dy), rotated (degrees, counter-clockwise) and centred at `centre` (y, x in
  pixel-edge coordinates: (16, 16) is a 32x32 crop's middle). scipy.ndimage's cubic spline
  interpolates; outside the source is empty. Reusable for canvases of any shape."""
  left, right = column_box(image)
  scale = height / SOURCE_SIZE
  theta = np.deg2rad(rotation)
  # forward: source offsets (y, x) from the box's centre -> output offsets
  forward = (np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
             @ np.array([[1.0, 0.0], [-slant, 1.0]])
             @ np.diag([scale, scale * aspect]))
  inverse = np.linalg.inv(forward)
  source_centre = np.array([SOURCE_SIZE / 2, (left + right) / 2]) - 0.5  # pixel-centre indices
  out_centre = np.asarray(centre, np.float64) - 0.5
  offset = source_centre - inverse @ out_centre
  warped = ndimage.affine_transform(image.astype(np.float64), inverse, offset, output_shape=shape,
                                    order=3, mode="constant", cval=0.0)
  return np.clip(warped, 0.0, 1.0).astype(np.float32)


def stroke(counts: np.ndarray, threshold: float, softness: float = 0.25) -> np.ndarray:
  """Ink 0..1 from upsampled counts: a soft threshold, so that `threshold` sets how thick the
  strokes come out (low: thick) and their edges stay anti-aliased."""
  return np.clip((counts - threshold) / softness + 0.5, 0.0, 1.0)


def zero_luma(rng: np.random.Generator, size: float) -> np.ndarray:
  """A random RGB direction (3,) of length `size` whose luma is 0: a tint that keeps grey."""
  direction = rng.normal(size=3)
  direction -= direction @ LUMA  # LUMA sums to 1: subtracting a grey removes the luma
  return direction * size / max(np.linalg.norm(direction), 1e-9)


def crop(images: np.ndarray, source: int, variant: int, pool: np.ndarray, seed: int,
         style: Style = STYLE) -> np.ndarray:
  """One colour crop uint8 (32, 32, 3) of source digit `source` (an index into `images`, (M, 8,
  8) ink 0..1), its `variant`-th: every draw comes from a Generator seeded by (seed, source,
  variant); neighbours are drawn from `pool` (source indices of the same split) less `source`."""
  rng = np.random.default_rng(np.random.SeedSequence([seed, 1, source, variant]))
  u = rng.uniform
  height = SIZE * u(*style.height)
  aspect = float(np.exp(u(*np.log(style.aspect))))
  centre = (SIZE / 2 + u(-style.shift, style.shift), SIZE / 2 + u(-style.shift, style.shift))
  slant, rotation = u(-style.slant, style.slant), u(-style.rotation, style.rotation)
  counts = ink(images[source], (SIZE, SIZE), centre, height, aspect, slant, rotation)
  left, right = column_box(images[source])
  half_width = (right - left) / 2 * height / SOURCE_SIZE * aspect
  for side in (-1, 1):
    if u() >= style.neighbour:
      continue
    other = int(rng.choice(pool[pool != source]))
    other_height = height * u(*style.neighbour_height)
    o_left, o_right = column_box(images[other])
    other_half = (o_right - o_left) / 2 * other_height / SOURCE_SIZE * aspect
    x = centre[1] + side * (half_width + u(*style.gap) + other_half)
    y = centre[0] + u(-1.0, 1.0)
    counts = np.maximum(counts, ink(images[other], (SIZE, SIZE), (y, x), other_height, aspect,
                                    slant, rotation))
  return paint(counts, rng, style)


def paint(counts: np.ndarray, rng: np.random.Generator, style: Style = STYLE) -> np.ndarray:
  """A photo uint8 (H, W, 3) of the ink map `counts` float (H, W) 0..1 (`ink`'s, several digits
  composed by np.maximum): strokes thresholded, blurred, painted in a digit and a background
  colour (`contrast` grey levels apart, light on dark with chance `dark`, each tinted by a
  zero-luma colour), shaded across the canvas and noised, each drawn from `rng` by `style`.
  For a canvas of any shape (the shading ramps over its longer side)."""
  u = rng.uniform
  height, width = counts.shape
  mask = stroke(counts, u(*style.stroke))
  mask = ndimage.gaussian_filter(mask, u(*style.blur), mode="nearest")
  # Grey levels of the digit and its background: `contrast` apart, light-on-dark or not.
  contrast = u(*style.contrast)
  low = u(0.0, 255.0 - contrast)
  digit, background = (low + contrast, low) if u() < style.dark else (low, low + contrast)
  digit_rgb = digit + zero_luma(rng, u(*style.chroma))
  background_rgb = background + zero_luma(rng, u(*style.chroma))
  angle = u(0.0, 2 * np.pi)
  ramp = (np.cos(angle) * (np.arange(width)[None, :] - width / 2 + 0.5)
          + np.sin(angle) * (np.arange(height)[:, None] - height / 2 + 0.5)) / max(height, width)
  shading = u(-style.gradient, style.gradient) * ramp
  image = (background_rgb + (digit_rgb - background_rgb) * mask[..., None]
           + shading[..., None] + rng.normal(0.0, u(*style.noise), (height, width, 3)))
  return np.clip(np.round(image), 0, 255).astype(np.uint8)


def make_split(images: np.ndarray, labels: np.ndarray, sources: np.ndarray, n: int, seed: int,
               style: Style = STYLE, progress: Callable[[int], object] | None = None) -> Crops:
  """n crops of a split whose source digits are `sources` (in the order `split_sources` gives):
  crop j is variant j // len(sources) of sources[j % len(sources)], so a split's first k crops
  are the same whatever n. `progress`, if given, is called with 1 per crop made. Raises
  ValueError for n < 0 or no sources."""
  if n < 0 or len(sources) == 0:
    raise ValueError(f"{n} crops from {len(sources)} source digits: expected n >= 0 and sources")
  j = np.arange(n)
  chosen = np.asarray(sources)[j % len(sources)].astype(np.int32)
  variants = (j // len(sources)).astype(np.int32)
  colour = np.empty((n, SIZE, SIZE, 3), np.uint8)
  for k in range(n):
    colour[k] = crop(images, int(chosen[k]), int(variants[k]), sources, seed, style)
    if progress:
      progress(1)
  return Crops(colour, luma(colour).astype(np.float32), labels[chosen].astype(np.uint8), chosen,
               variants)


def build(n_train: int, n_val: int, n_test: int, seed: int = 0, style: Style = STYLE,
          shares: Sequence[float] = SHARES) -> dict[str, Crops]:
  """The development set as arrays: {'train', 'val', 'test'} -> Crops, from the source digits
  split by `split_sources(labels, seed, shares)`. A pure function of its arguments. Raises
  ValueError for a negative count or bad shares."""
  images, labels = load_sources()
  parts = split_sources(labels, seed, shares)
  out = {}
  for name, n, sources in zip(SPLITS, (n_train, n_val, n_test), parts):
    began = time.perf_counter()
    with cli.progress_bar(n, f"real digits {name}", unit="crop") as bar:
      out[name] = make_split(images, labels, sources, n, seed, style, bar.update)
    log.info("real digits %s: %d crops from %d source digits (%.1f s)", name, n, len(sources),
             time.perf_counter() - began)
  return out


def first(crops: Crops, n: int) -> Crops:
  """The first n crops of a split: the split of n crops `build` would make."""
  return Crops(*(array[:n] for array in crops))


def write_h5(path: str | Path, crops: dict[str, Crops]) -> Path:
  """The grey crops in the study's HDF5 layout (float32 0-255, uint8 labels 0-9), atomically."""
  return save_h5(path, Dataset(*(Split(crops[name].grey, crops[name].labels) for name in SPLITS)))


# MATLAB's 116-byte text header; scipy writes the time of writing into it, so a fixed one keeps
# the file's bytes a function of its contents.
def write_format2(folder: str | Path, crops: dict[str, Crops]) -> Path:
  """train_32x32.mat (training then validation crops) and test_32x32.mat in `folder`."""
  folder = Path(folder)
  train = [crops["train"], crops["val"]]
  cropped.write_mat(folder / "train_32x32.mat", np.concatenate([c.colour for c in train]),
            np.concatenate([c.labels for c in train]))
  cropped.write_mat(folder / "test_32x32.mat", crops["test"].colour, crops["test"].labels)
  return folder


def stem(n_train: int, n_val: int, n_test: int, seed: int) -> str:
  """The name of the files of one size: real_digits_v1_3000_1000_1000_seed0."""
  return f"real_digits_v{VERSION}_{n_train}_{n_val}_{n_test}_seed{seed}"


def write(out: str | Path, train_sizes: Sequence[int], n_val: int, n_test: int, seed: int = 0,
          style: Style = STYLE) -> list[Path]:
  """Builds the largest training size once and writes, per training size, its HDF5 file and its
  format-2 folder into `out`; returns the paths written (HDF5, folder, per size)."""
  crops = build(max(train_sizes), n_val, n_test, seed, style)
  written = []
  for n in sorted(set(train_sizes)):
    sized = dict(crops, train=first(crops["train"], n))
    name = stem(n, n_val, n_test, seed)
    written.append(write_h5(Path(out) / f"{name}.h5", sized))
    written.append(write_format2(Path(out) / name, sized))
    log.info("wrote %s.h5 and %s/ (format 2)", Path(out) / name, Path(out) / name)
  return written


def save_preview(path: str | Path, crops: Crops, count: int = 40) -> Path:
  """A PNG grid of the first `count` crops, colour, each titled with its label and source."""
  from svhn_jax import plots

  return plots.image_grid(list(crops.colour[:count]),
                          [f"{l} (#{s})" for l, s in zip(crops.labels, crops.sources)], path,
                          cols=10)


def _sizes(text: str) -> list[int]:
  parse = cli.whole_number(1)
  try:
    return [parse(part) for part in text.split(",")]
  except argparse.ArgumentTypeError:
    raise argparse.ArgumentTypeError(
        f"expected whole numbers of at least 1, separated by commas, got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> None:
  parser = cli.ArgumentParser(prog="python -m benchmarks.real_digits",
                              description=" ".join(__doc__.split("\n\n")[0].split()))
  parser.add_argument("--out", required=True, help="folder to write the files into")
  parser.add_argument("--train", type=_sizes, default=[3000],
                      help="training crops; several sizes separated by commas (default 3000)")
  parser.add_argument("--val", type=cli.whole_number(1), default=1000,
                      help="validation crops (default 1000)")
  parser.add_argument("--test", type=cli.whole_number(1), default=1000,
                      help="test crops (default 1000)")
  parser.add_argument("--seed", type=cli.whole_number(0), default=0,
                      help="the source split's and the degradations' seed (default 0)")
  parser.add_argument("--preview", help="also save a PNG grid of the first 40 training crops")
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(message)s")
  with cli.user_errors():
    write(args.out, args.train, args.val, args.test, args.seed)
    if args.preview:
      crops = build(40, 1, 1, args.seed)  # the first 40 are the same at any size
      log.info("wrote %s", save_preview(args.preview, crops["train"]))


if __name__ == "__main__":
  main()
