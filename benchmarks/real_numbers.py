"""A real-number development set: scikit-learn's handwritten digits composed into whole house-number
photos in SVHN's format 1.

  python -m benchmarks.real_numbers --out=data/real_numbers     # 4,000 training, 5 x 300 test
  python -m benchmarks.real_numbers --out=DIR --train=1000 --test-per-length=100 --seed=1
  python -m benchmarks.real_numbers --out=data/real_scenes --style=scene  # whole photos, issue 31
  python -m svhn_jax.main --config=configs/numbers.py --config.data.source=svhn_full \\
      --config.data.path=DIR

Each photo shows one number of 1 to 5 real handwritten digits (benchmarks.real_digits: the 1,797
digits of `load_digits()`, 43 writers) set side by side on a baseline, in colour, at a digit height
drawn log-uniformly between 14 and 64 pixels, in a photo of varied size and aspect ratio around
it, with straight clutter lines off the number; each digit's box is recorded as SVHN's annotators
did: (left, top, width, height) in whole pixels, the hull of its warped 8-row box. The digits are
warped by real_digits.ink (one scale, stretch, slant and rotation per number, each digit's height
and baseline jittered) and painted by real_digits.paint with real_digits.Style's photometric
ranges (its blur scaled to the digit height: the Style's sigmas are for a 24-pixel digit).

The source digits are split first (real_digits.split_sources, stratified by class, 70/30 by
default): every digit of a training photo comes from the first part, every digit of a test photo
from the second, so that no handwritten digit is seen in training and test. The validation photos
that the format-1 loader carves from train/ at random (config.data.val_size) share source digits
with the training photos: tune on them, report on test/. Training photos have 1 to 5 digits in
the shares `NumberStyle.lengths` (15, 30, 25, 15, 15%: long numbers more common than in SVHN);
test photos are stratified by length: photo i has 1 + i mod 5 digits, so --test-per-length=N
gives exactly N photos of each length 1-5 (the per-length figures of a numbers run).

--style=scene makes issue 31's whole-photo development set for locate-then-read
(benchmarks/locate_then_read.py): the same digits, split and lengths, but a small number in a larger
scene (`SCENE_STYLE`). The union of the number's digit boxes covers 8-25% of the photo's width,
drawn uniformly, and at most 45% of its height, in photos 1 to 2.5 times as wide as tall
(log-uniform; SVHN's four sample photos are 2.0-2.4) and at most 640 pixels a side. Digit heights
are drawn as in the number style; a number too wide for its share at 640 pixels is shrunk (all its
digits by one factor) to that share or to 14-pixel digits, whichever comes first, and always to at
most a quarter of the width in whole pixels, in every photo. So long numbers have smaller digits: in
250 test photos (seed 0) the median share is 0.15 for 1 digit and 0.17 for 5, the median digit box
32 pixels tall for 1 digit, 22 for 4 and 19 for 5 (15-70 in all). There are 4 clutter lines on
average (1.5 in the number style), and a Poisson mean of 3 text-like distractors: strings of 2-8
printed letters (DejaVu fonts, no letter that reads as a digit, so a photo still shows one number),
0.3-1.2 digit heights tall, each in its own colour and brightness, turned up to 8 degrees, their
boxes at least half a digit height off the number's (synthetic_photos.text_distractors, which the
synthetic scene photos share). The default, --style=number, makes the photos it made before styles,
byte for byte.

Photo i of a split draws everything from its own generator, seeded by (seed, split, i) and, for
the scene style, the style's name: a photo does not depend on the count asked for, and the same
arguments give the same bytes.

Writes into --out the folders train/ and test/ (--layout=folder, the default) or the archives
train.tar.gz and test.tar.gz (--layout=tar), each holding 1.png ... N.png and a MATLAB v7.3
digitStruct.mat, through svhn_jax.datasets.synthetic_photos.write_photos (the synthetic photos'
writer). The default 5,500 photos took 77 CPU-seconds (130 s wall, 186 MB) on a shared 2-core AMD
EPYC (Zen 3): about 70 photos a CPU-second, PNGs and digitStruct.mat included. Scene photos
have some 15 times the pixels (median 425 x 270) and their noise keeps the PNGs from shrinking:
400 (--train=200 --test-per-length=40) took 32 CPU-seconds (44 s wall, 105 MB) on that machine
under load, about 13 photos a CPU-second and 260 KB a photo, so the default counts would make
about 1.4 GB in 7 minutes; --train=1000 --test-per-length=200 makes about 520 MB.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from benchmarks import real_digits
from svhn_jax import cli
from svhn_jax.datasets import synthetic_photos
from svhn_jax.datasets.digit_struct import Photo
from svhn_jax.errors import DataError

log = logging.getLogger(__name__)

# Bump when the same arguments would give other photos.
VERSION = 1
SPLITS = ("train", "test")
SHARES = (0.7, 0.3)  # of the 1,797 source digits: training photos, test photos
MAX_LENGTH = 5


@dataclasses.dataclass(frozen=True)
class NumberStyle:
  """The knobs of a photo. Ranges (low, high) are drawn uniformly per photo unless noted; lengths
  in pixels unless in digit heights. `digits` holds the photometric ranges (real_digits.Style;
  its geometry and neighbour fields are not read here)."""
  lengths: tuple[float, ...] = (0.15, 0.30, 0.25, 0.15, 0.15)  # training shares of 1..5 digits
  digit_height: tuple[float, float] = (14.0, 64.0)  # log-uniform
  aspect: tuple[float, float] = (0.8, 1.25)  # horizontal stretch, log-uniform
  slant: float = 0.2  # max horizontal shear, dx per dy
  rotation: float = 5.0  # max rotation of the whole number, degrees
  gap: tuple[float, float] = (0.02, 0.3)  # space between digit boxes, in digit heights
  jitter: float = 0.06  # each digit's height (a share) and baseline (in digit heights), +-
  fill_height: tuple[float, float] = (0.3, 0.85)  # the number's share of the photo's height
  fill_width: tuple[float, float] = (0.2, 0.8)  # ... and of its width
  max_side: int = 320  # photo sides are capped here (unless the number is wider), for speed
  lines: float = 1.5  # mean number of clutter lines: Poisson
  line_level: tuple[float, float] = (20.0, 80.0)  # a line's brightness step, either sign
  digits: real_digits.Style = real_digits.STYLE
  # The fields below are the scene style's; their defaults draw nothing and change nothing.
  name: str = "number"  # a style other than "number" has its name in its photos' seeds
  # A scene's frame: the photo's width from the number's width share (fill_width), its height
  # from a drawn width / height ratio (photo_aspect, log-uniform; fill_height[0] unused). A
  # number too wide for its share at max_side is shrunk (all its digit heights by one factor)
  # to that share, or to digit_height[0] if that comes first, and always to at most
  # fill_width[1] of the width and fill_height[1] of the height; the photo is no smaller than
  # those top shares allow: the union of its digit boxes never covers more, in whole pixels.
  fit: bool = False
  photo_aspect: tuple[float, float] = (1.0, 2.5)  # SVHN's four sample photos: 2.0 to 2.4
  text: float = 0.0  # mean strings of letters, Poisson (synthetic_photos.text_distractors)


STYLE = NumberStyle()
# Whole scenes for issue 31's development set (--style=scene): the number covers 8-25% of the
# photo's width (at most a quarter, in every photo: `fit`) and at most 45% of its height, in
# photos 1 to 2.5 times as wide as tall, up to 640 pixels a side; digit heights as STYLE's,
# shrunk for long numbers where the width share needs it; 4 clutter lines and 3 strings of
# letters on average.
SCENE_STYLE = dataclasses.replace(STYLE, name="scene", fill_width=(0.08, 0.25),
                                  fill_height=(0.08, 0.45), max_side=640, fit=True, lines=4.0,
                                  text=3.0)
STYLES = {"number": STYLE, "scene": SCENE_STYLE}


class NumberPhoto(NamedTuple):
  """One photo: its format-1 record (`Photo`: name, labels int32 (k,), boxes float32 (k, 4)),
  the image uint8 (H, W, 3) RGB, and sources int32 (k,): each digit's index in `load_digits()`."""
  photo: Photo
  image: np.ndarray
  sources: np.ndarray


def photo_rng(seed: int, split: str, index: int, style: NumberStyle = STYLE
              ) -> np.random.Generator:
  """The generator of photo `index` (0-based) of `split` ("train" or "test") of `style`: seeded
  by (seed, split, index, VERSION) and, for a style other than "number", the bytes of its name,
  so that the number style's photos are those made before styles and a scene is no copy of
  the number photo of its index."""
  entropy = [seed, 2, SPLITS.index(split), index, VERSION]
  if style.name != "number":
    entropy += list(style.name.encode())
  return np.random.default_rng(np.random.SeedSequence(entropy))


def _forward(height: float, aspect: float, slant: float, rotation: float) -> np.ndarray:
  """real_digits.ink's (2, 2) map of source offsets (y, x) from a digit's box centre to photo
  offsets, for a digit `height` pixels tall."""
  theta = np.deg2rad(rotation)
  scale = height / real_digits.SOURCE_SIZE
  return (np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
          @ np.array([[1.0, 0.0], [-slant, 1.0]]) @ np.diag([scale, scale * aspect]))


def _hull(image: np.ndarray, forward: np.ndarray, centre: np.ndarray) -> np.ndarray:
  """(y0, x0, y1, x1): the hull of a source digit's box (8 rows, its inked columns) warped by
  `forward` about `centre` (y, x)."""
  left, right = real_digits.column_box(image)
  half = np.array([real_digits.SOURCE_SIZE / 2, (right - left) / 2])
  corners = np.array([[sy, sx] for sy in (-1, 1) for sx in (-1, 1)]) * half @ forward.T + centre
  return np.concatenate([corners.min(axis=0), corners.max(axis=0)])


def compose(images: np.ndarray, labels: np.ndarray, pool: np.ndarray, length: int,
            rng: np.random.Generator, style: NumberStyle = STYLE
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """One photo of a `length`-digit number whose digits are drawn from `pool` (indices into
  `images` (M, 8, 8) ink 0..1 and `labels` (M,)), the first not a zero when length > 1; every
  draw from `rng`. Returns (labels int32 (k,), boxes float32 (k, 4) (left, top, width, height)
  in whole pixels, image uint8 (H, W, 3), sources int32 (k,)). Raises ValueError for a length
  outside 1..5 or a pool without a non-zero digit.

  With `style.fit` the number is shrunk where needed so that the union of its boxes covers at
  most fill_width[1] of the photo's width and fill_height[1] of its height; with `style.text`,
  strings of letters are drawn off the number (synthetic_photos.text_distractors)."""
  if not 1 <= length <= MAX_LENGTH:
    raise ValueError(f"compose: length {length}: expected 1 to {MAX_LENGTH} digits")
  pool = np.asarray(pool)
  leading = pool[labels[pool] != 0]
  if len(leading) == 0:
    raise ValueError("compose: the pool holds no digit other than 0")
  u = rng.uniform
  sources = rng.choice(pool, size=length)
  if length > 1:
    sources[0] = rng.choice(leading)
  height = math.exp(u(*np.log(style.digit_height)))
  aspect = math.exp(u(*np.log(style.aspect)))
  slant, rotation = u(-style.slant, style.slant), u(-style.rotation, style.rotation)
  jitters = u(-style.jitter, style.jitter, length)
  columns = np.array([np.subtract(*real_digits.column_box(images[s])[::-1]) for s in sources])
  spaces = u(*style.gap, max(length - 1, 0))
  lifts = u(-style.jitter, style.jitter, length)
  heights, offsets, hulls, extent = _layout(images, sources, height, jitters, columns, spaces,
                                            lifts, aspect, slant, rotation)
  span = extent[2:] - extent[:2]
  if style.fit:
    share = u(*style.fill_width)
    ratio = math.exp(u(*np.log(style.photo_aspect)))
    # Shrink a number too wide for its share at max_side, down to the smallest digit height,
    # and always to the top shares, in whole pixels (a union box is under span + 2 pixels).
    most = np.array([style.fill_height[1], style.fill_width[1]])
    factor = min(1.0, max(share * style.max_side / span[1], style.digit_height[0] / height),
                 float(np.min((most * style.max_side - 2) / span)))
    if factor < 1:
      height *= factor
      heights, offsets, hulls, extent = _layout(images, sources, height, jitters, columns,
                                                spaces, lifts, aspect, slant, rotation)
      span = extent[2:] - extent[:2]
    least = np.ceil((span + 2) / most)
    width = np.clip(np.round(span[1] / share), least[1], style.max_side)
    size = np.array([np.clip(np.round(width / ratio), least[0], style.max_side), width])
  else:
    shares = np.array([u(*style.fill_height), u(*style.fill_width)])
    size = np.clip(np.round(span / shares), span + 4, np.maximum(style.max_side, span + 4))
  size = size.astype(int)
  low, high = 1 - extent[:2], size - 1 - extent[2:]
  middle = u(low, np.maximum(low, high))  # the number's centre (y, x) in the photo
  counts = np.zeros(tuple(size), np.float32)
  for source, h, offset, hull in zip(sources, heights, offsets, hulls):
    top, left = (max(0, math.floor(v) - 3) for v in hull[:2] + middle)
    bottom, right = (min(int(s), math.ceil(v) + 3) for s, v in zip(size, hull[2:] + middle))
    patch = real_digits.ink(images[source], (bottom - top, right - left),
                            tuple(middle + offset - (top, left)), h, aspect, slant, rotation)
    counts[top:bottom, left:right] = np.maximum(counts[top:bottom, left:right], patch)
  scale = height / 24  # real_digits.Style's sigmas are for a 24-pixel digit
  paint_style = dataclasses.replace(style.digits, blur=tuple(b * scale for b in style.digits.blur))
  image = real_digits.paint(counts, rng, paint_style).astype(np.float32)
  number = (extent.reshape(2, 2) + middle).ravel()
  clutter = _clutter(tuple(size), number, height, rng, style)
  if style.text:
    y0, x0, y1, x1 = number
    text = synthetic_photos.text_distractors(tuple(size), (x0, y0, x1, y1), height, rng,
                                             style.text)
    image += ndimage.gaussian_filter(text, (paint_style.blur[0], paint_style.blur[0], 0))
  image = np.clip(np.round(image + ndimage.gaussian_filter(clutter, paint_style.blur[0])[..., None]),
                  0, 255).astype(np.uint8)
  boxes = np.array([[math.floor(x0), math.floor(y0), math.ceil(x1) - math.floor(x0),
                     math.ceil(y1) - math.floor(y0)]
                    for y0, x0, y1, x1 in hulls + np.tile(middle, 2)], np.float32)
  return labels[sources].astype(np.int32), boxes, image, sources.astype(np.int32)


def _layout(images: np.ndarray, sources: np.ndarray, height: float, jitters: np.ndarray,
            columns: np.ndarray, spaces: np.ndarray, lifts: np.ndarray, aspect: float,
            slant: float, rotation: float
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """The number's geometry at digit height `height` (pixels) from its draws, each in digit
  heights: jitters (k,) of each digit's height (a share), columns (k,) each source digit's
  inked width in source pixels, spaces (k - 1,) between digit boxes, lifts (k,) of each
  baseline. Returns float (heights (k,), offsets (k, 2) of the digit centres (y, x) from the
  number's, hulls (k, 4) (y0, x0, y1, x1) about it, extent (4,) their union)."""
  heights = height * (1 + jitters)
  widths = columns * heights / real_digits.SOURCE_SIZE * aspect
  gaps = spaces * height
  # Digit centres along an unrotated baseline, then the baseline turned with the digits.
  xs = np.concatenate([[0.0], np.cumsum((widths[:-1] + widths[1:]) / 2 + gaps)])
  ys = lifts * height
  offsets = np.stack([ys, xs - xs[-1] / 2], axis=1)
  theta = np.deg2rad(rotation)
  offsets = offsets @ np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]]).T
  forwards = [_forward(h, aspect, slant, rotation) for h in heights]
  hulls = np.array([_hull(images[s], f, o) for s, f, o in zip(sources, forwards, offsets)])
  extent = np.concatenate([hulls[:, :2].min(axis=0), hulls[:, 2:].max(axis=0)])  # y0 x0 y1 x1
  return heights, offsets, hulls, extent


def _clutter(shape: tuple[int, int], number: np.ndarray, height: float, rng: np.random.Generator,
             style: NumberStyle) -> np.ndarray:
  """float32 (H, W): straight lines of another brightness (window frames, bricks, wires) across
  the photo, kept a fifth of a digit height off the number's hull `number` (y0, x0, y1, x1)."""
  rows, columns = shape
  layer = Image.new("F", (columns, rows))
  draw = ImageDraw.Draw(layer)
  for _ in range(rng.poisson(style.lines)):
    ends = rng.uniform(0, 1, 4) * [columns, rows, columns, rows]
    draw.line(ends.tolist(), fill=float(rng.uniform(*style.line_level) * rng.choice([-1, 1])),
              width=max(1, round(height * rng.uniform(0.03, 0.15))))
  lines = np.asarray(layer).copy()
  y0, x0, y1, x1 = (round(v) for v in number + 0.2 * height * np.array([-1, -1, 1, 1]))
  lines[max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = 0
  return lines


def lengths_of(split: str, count: int, seed: int, style: NumberStyle = STYLE) -> np.ndarray:
  """int (count,) the digit count of each photo: for "test" 1 + i mod 5 (stratified), for
  "train" drawn by `style.lengths` from a generator of its own, seeded by `seed`."""
  if split == "test":
    return 1 + np.arange(count) % MAX_LENGTH
  shares = np.asarray(style.lengths, np.float64)
  rng = np.random.default_rng(np.random.SeedSequence([seed, 3, VERSION]))
  return 1 + rng.choice(len(shares), size=count, p=shares / shares.sum())


def generate(split: str, count: int, seed: int = 0, style: NumberStyle = STYLE,
             parts: Sequence[np.ndarray] | None = None) -> Iterator[NumberPhoto]:
  """Yields photos 0 .. count - 1 of `split` ("train" or "test"), named f"{i + 1}.png", their
  digits from that split's part of `real_digits.split_sources(labels, seed, SHARES)` (or of
  `parts`, if given: one source-index array per split). Raises ValueError for an unknown split
  or a negative count."""
  if split not in SPLITS or count < 0:
    raise ValueError(f"generate: expected a split of {SPLITS} and count >= 0, got {split!r}, "
                     f"{count}")
  images, labels = real_digits.load_sources()
  if parts is None:
    parts = real_digits.split_sources(labels, seed, SHARES)
  pool = parts[SPLITS.index(split)]
  for i, length in enumerate(lengths_of(split, count, seed, style)):
    digits, boxes, image, sources = compose(images, labels, pool, int(length),
                                            photo_rng(seed, split, i, style), style)
    yield NumberPhoto(Photo(f"{i + 1}.png", digits, boxes), image, sources)


def _logged(photos: Iterator[NumberPhoto], split: str, count: int
            ) -> Iterator[tuple[Photo, np.ndarray]]:
  began = time.perf_counter()
  with cli.progress_bar(count, f"real numbers {split}", unit="photo") as bar:
    for done, made in enumerate(photos, 1):
      yield made.photo, made.image
      bar.update(1)
      if done % 1000 == 0:
        log.info("real numbers %s: %d/%d (%.0f photos/s)", split, done, count,
                 done / max(time.perf_counter() - began, 1e-9))
  log.info("real numbers %s: %d photos (%.1f s)", split, count, time.perf_counter() - began)


def write(out: str | Path, n_train: int, per_length: int, seed: int = 0, layout: str = "folder",
          style: NumberStyle = STYLE) -> list[Path]:
  """Writes `n_train` training photos and 5 x `per_length` test photos (1-5 digits each) into
  `out` as format-1 splits (synthetic_photos.write_photos); returns [train, test]'s paths.
  Raises DataError, before anything is written, when `out` is a file or already holds a split
  in either layout (train/, test/, train.tar.gz, test.tar.gz); ValueError for an unknown
  layout."""
  out = Path(out)
  if out.exists() and not out.is_dir():
    raise DataError(f"--out={out}: a file, not a folder; expected a folder to write train/ and "
                    "test/ into")
  taken = [out / name for split in ("train", "test") for name in (split, f"{split}.tar.gz")
           if (out / name).exists()]
  if taken:
    raise DataError(f"{taken[0]} already exists; remove it or write elsewhere (--out)")
  return [synthetic_photos.write_photos(out, split, _logged(generate(split, n, seed, style),
                                                            split, n), layout=layout)
          for split, n in (("train", n_train), ("test", MAX_LENGTH * per_length))]


def save_preview(path: str | Path, photos: Sequence[NumberPhoto], columns: int = 6) -> Path:
  """A PNG grid of `photos`, each with its digit boxes drawn and its number as title."""
  return synthetic_photos.save_preview(path, [(p.photo, p.image) for p in photos], columns)


def main(argv: Sequence[str] | None = None) -> None:
  parser = cli.ArgumentParser(prog="python -m benchmarks.real_numbers",
                              description=" ".join(__doc__.split("\n\n")[0].split()))
  parser.add_argument("--out", required=True, help="folder to write train/ and test/ into")
  parser.add_argument("--train", type=cli.whole_number(1), default=4000,
                      help="training photos (default 4000)")
  parser.add_argument("--test-per-length", type=cli.whole_number(1), default=300,
                      help="test photos of each length 1-5 (default 300: 1,500 in all)")
  parser.add_argument("--seed", type=cli.whole_number(0), default=0,
                      help="the source split's and the photos' seed (default 0)")
  parser.add_argument("--layout", choices=synthetic_photos.LAYOUTS, default="folder",
                      help="folder: train/ and test/ as extracted (default); tar: train.tar.gz, "
                           "test.tar.gz as distributed")
  parser.add_argument("--style", choices=tuple(STYLES), default="number",
                      help="number: the number fills much of its photo (default); scene: a "
                           "small number (at most a quarter of the width) in a larger photo with "
                           "clutter and strings of letters, issue 31's whole-photo set")
  parser.add_argument("--preview", help="also save a PNG grid of the first 24 training photos")
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(message)s")
  style = STYLES[args.style]
  with cli.user_errors():
    for path in write(args.out, args.train, args.test_per_length, args.seed, args.layout, style):
      log.info("wrote %s", path)
    if args.preview:
      photos = list(generate("train", min(24, args.train), args.seed, style))
      log.info("wrote %s", save_preview(args.preview, photos))


if __name__ == "__main__":
  main()
