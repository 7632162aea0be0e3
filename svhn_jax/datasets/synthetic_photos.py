"""A deterministic generator of whole house-number photos in SVHN's format 1 layout.

Each photo shows one house number of 1 to 5 digits (6, rarely, so that the length class "more
than 5" of arXiv 1312.6082 occurs) somewhere in a larger photo of varied size and aspect
ratio, with each digit's box recorded as SVHN's annotators did: (left, top, width, height) in
whole pixels, a box reaching outside the photo where the number is cut off by its edge (3% of
photos by default; SVHN has such boxes too). It is the offline stand-in for `train.tar.gz` /
`test.tar.gz` (Netzer et al. 2011), for tests, demos and the whole-number task without internet.

The digits are the DejaVu glyphs that datasets.synthetic renders (`font_glyphs`), one font and
stroke per number, set side by side with gaps, then stretched, slanted and rotated by one affine
warp (rendered at 3x and box-filtered down). The photometric recipe is synthetic.py's, at the
photo's size: a background level, light-on-dark or dark-on-light at a drawn contrast, linear
shading and a wall or plate edge, blotchy texture (synthetic.blotches), a plate behind the
number, clutter lines away from it, gaussian blur scaled to the digit height (synthetic.blurred),
noise; then colour, as chroma (colour at equal luma) added to background and ink, so that the
grey of a photo (the study's luma) is the grey scene drawn. The scene style (SCENE_STYLE, for the
locator) sets a smaller number in a larger photo and adds strings of letters off the number
(`text_distractors`, shared with benchmarks.real_numbers' scene style).

Photo i of a split draws everything from its own generator, seeded by (seed, split, i), so a
photo does not depend on the count asked for, and the same seed gives byte-identical files.

  python -m svhn_jax.datasets.synthetic_photos --out DIR --train 5000 --test 1000 --seed 0 \
      [--layout tar|folder] [--workers 2] [--preview grid.png]

writes DIR/train.tar.gz and DIR/test.tar.gz (or the folders DIR/train, DIR/test), each holding
<split>/1.png ... <split>/N.png and <split>/digitStruct.mat, as the official archives do;
datasets.photos.open_full reads them.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import gzip
import io
import logging
import math
import multiprocessing
import os
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from svhn_jax import cli, fileio, plots
from svhn_jax.errors import DataError
from svhn_jax.datasets.digit_struct import Photo, write_digit_struct
from svhn_jax.datasets.synthetic import FONTS, blotches, blurred, font_glyphs

log = logging.getLogger(__name__)

# Bump whenever the same seed would give other photos.
VERSION = 1
SPLITS = ("train", "test", "extra")  # the official splits; a split's index seeds its photos
LAYOUTS = ("tar", "folder")
SUPERSAMPLE = 3  # digits are warped at 3x, then box-filtered down: anti-aliased edges
PNG_LEVEL = 6  # zlib level of the PNGs: Pillow's default
GZIP_LEVEL = 6  # of the archive, gzip's default; PNGs hardly compress further
_TAR_MTIME = 1_300_000_000  # every archive member's time: the same seed, the same bytes
_CHUNK = 100  # photos per task of a worker process
_PROGRESS_EVERY = 500  # a multiple of _CHUNK
# Two unit vectors orthogonal to the luma weights (0.299, 0.587, 0.114): adding any mix of them
# to a pixel changes its colour, not its grey level.
_LUMA = np.array([0.299, 0.587, 0.114])
_CHROMA = np.stack([np.cross(_LUMA, [0.0, 0.0, 1.0]),
                    np.cross(_LUMA, np.cross(_LUMA, [0.0, 0.0, 1.0]))])
_CHROMA /= np.linalg.norm(_CHROMA, axis=1, keepdims=True)


@dataclasses.dataclass(frozen=True)
class PhotoStyle:
  """The knobs of a photo. Ranges (low, high) are drawn uniformly per photo unless noted.

  Photometric ranges are those of synthetic.Style's version 1, with lengths in pixels of the
  crop scaled to the digit's height (a 32x32 crop's digit is about 24 px high).
  """
  # Shares of numbers of 1..6 digits. SVHN's train split has 15.4, 54.3, 26.0, 4.3, 0.03 and
  # 0.003% (5,137, 18,130, 8,691, 1,434, 9 and 1 photos: TRAIN_LENGTHS in
  # benchmarks/official_data.py); 4 to 6 digits are made more common here, so that a few
  # thousand photos teach every length.
  lengths: tuple[float, ...] = (0.16, 0.50, 0.24, 0.07, 0.025, 0.005)
  fonts: tuple[str, ...] = FONTS
  strokes: tuple[int, ...] = (-2, 0, 4)  # stroke width changes, pixels at synthetic.FONT_PX
  digit_height: tuple[float, float] = (10.0, 75.0)  # pixels, drawn log-uniformly
  aspect: tuple[float, float] = (0.8, 1.25)  # horizontal stretch, drawn log-uniformly
  shear: float = 0.25  # max horizontal slant, dx per dy
  rotation: float = 6.0  # max rotation, degrees
  gap: tuple[float, float] = (0.03, 0.35)  # space between digits, in digit heights
  # The number's share of the photo's height and width: SVHN's four sample photos
  # (shared/data/svhn_samples) have 0.43..0.65 and 0.17..0.33; wider ranges here.
  fill_height: tuple[float, float] = (0.3, 0.85)
  fill_width: tuple[float, float] = (0.2, 0.8)
  max_side: int = 640  # photo sides are capped here, for speed
  cut_off: float = 0.03  # chance that the number runs past an edge of the photo
  dark: float = 0.71  # share of light-on-dark photos
  contrast: tuple[float, float] = (45.0, 170.0)  # |digit - background| grey levels
  gradient: float = 80.0  # max brightness change across the photo from shading
  edge: float = 0.4  # chance of a wall or plate edge crossing the photo
  edge_step: tuple[float, float] = (15.0, 60.0)  # brightness step across that edge
  texture: float = 0.2  # max std of blotchy texture, as a share of the contrast
  plate: float = 0.5  # chance of a plate behind the number
  lines: float = 1.5  # mean number of clutter lines (window frames, bricks, wires): Poisson
  blur: tuple[float, float] = (0.3, 1.5)  # gaussian sigma per 24 px of digit height
  noise: tuple[float, float] = (2.0, 12.0)  # gaussian noise std, grey levels
  clarity: float = 6.0  # min contrast / noise std, so that every number stays readable
  chroma: float = 40.0  # max colour (distance from grey at equal luma) of background and ink
  # Mean number of text-like distractors (strings of letters, `text_distractors`): Poisson. At 0
  # (the default) none is drawn and no random number spent, so STYLE's photos stay as they were.
  text: float = 0.0


STYLE = PhotoStyle()
# Whole scenes for the locator (config.task=locate, issue 31): the number smaller and anywhere in
# a larger photo (SVHN's four sample photos have it at 0.17..0.33 of the width; issue 31's
# development set at most a quarter), with more clutter lines and, from its version 2, strings
# of letters away from the number (a mean of 3: signs, shop names; `text_distractors`). Made
# only when a config asks for it (config.data.synthetic.photo_style=scene): STYLE's photos are
# unchanged.
# The two shares are drawn apart, so a narrow share with a tall one makes a wide strip: their
# ranges stop at 0.1 and 0.6 (photos up to about 13:1 for a 4-digit number, as SVHN has).
SCENE_STYLE = dataclasses.replace(STYLE, fill_width=(0.1, 0.4), fill_height=(0.15, 0.6),
                                  lines=4.0, text=3.0)
# The styles config.data.synthetic.photo_style names (config.PHOTO_STYLES, kept equal by a test).
STYLES = {"number": STYLE, "scene": SCENE_STYLE}
# Each style's generator version, in the name of its photos' cache folder
# (datasets.synthetic.photos_folder), so that changed photos are never read from an old folder:
# bump a style's version whenever the same seed would give other photos of that style.
# scene 2: text-like distractors (issue 31); its version 1 had none.
STYLE_VERSIONS = {"number": VERSION, "scene": 2}


# ---------------------------------------------------------------------------------------------
# One photo

def photo_rng(seed: int, split: str, index: int) -> np.random.Generator:
  """Returns the generator of photo `index` (0-based) of `split` ("train", "test", "extra")."""
  return np.random.default_rng([seed, SPLITS.index(split), index, VERSION])


def generate_photo(rng: np.random.Generator,
                   style: PhotoStyle = STYLE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Returns one photo: (labels int32 (k,) 0..9 in reading order, boxes float32 (k, 4) (left,
  top, width, height) in whole pixels, image uint8 (H, W, 3) RGB).

  A box is the axis-aligned hull of its digit's ink rectangle after the warp, rounded outwards
  to whole pixels; where the number is cut off by an edge, its boxes reach outside the photo.
  """
  count = 1 + int(rng.choice(len(style.lengths), p=np.asarray(style.lengths) / sum(style.lengths)))
  labels = rng.integers(10, size=count).astype(np.int32)
  if count > 1:
    labels[0] = rng.integers(1, 10)  # house numbers rarely start with a zero
  glyphs = font_glyphs(style.fonts[rng.integers(len(style.fonts))],
                       style.strokes[rng.integers(len(style.strokes))])
  strip, rects = _number_strip(glyphs, labels, rng.uniform(*style.gap, size=count - 1))
  digit_height = math.exp(rng.uniform(*np.log(style.digit_height)))
  warp = _warp(digit_height / strip.height, rng, style)
  # The strip's outline and each digit's ink rectangle, relative to the strip's centre.
  centre = np.array([strip.width, strip.height]) / 2
  hull = _corners(np.array([[0, 0, strip.width, strip.height]]))[0] - centre
  extent = _span(hull @ warp.T)
  size, middle = _frame(extent, digit_height, rng, style)
  boxes = np.array([_box(_span((corners - centre) @ warp.T + middle))
                    for corners in _corners(rects)], np.float32)
  mask = _ink(strip, warp, centre, middle, extent, size)
  return labels, boxes, _photograph(mask, boxes, digit_height, rng, style)


def _number_strip(glyphs: Sequence[Image.Image], labels: np.ndarray,
                  gaps: np.ndarray) -> tuple[Image.Image, np.ndarray]:
  """Returns the digits `labels` side by side on one "L" strip (gaps in glyph heights), and
  each digit's ink rectangle on it, float (k, 4) (x0, y0, x1, y1)."""
  height = glyphs[0].height
  lefts = np.concatenate([[0], np.cumsum([glyphs[d].width + round(g * height)
                                          for d, g in zip(labels[:-1], gaps)])]).astype(int)
  strip = Image.new("L", (int(lefts[-1] + glyphs[labels[-1]].width), height))
  rects = []
  for digit, left in zip(labels, lefts):
    glyph = glyphs[digit]
    strip.paste(glyph, (int(left), 0), glyph)
    x0, y0, x1, y1 = glyph.getbbox()
    rects.append((left + x0, y0, left + x1, y1))
  return strip, np.array(rects, np.float64)


def _warp(scale: float, rng: np.random.Generator, style: PhotoStyle) -> np.ndarray:
  """Returns the (2, 2) map from strip pixels to photo pixels: scale, stretch, slant, rotate."""
  aspect = math.exp(rng.uniform(*np.log(style.aspect)))
  shear = rng.uniform(-style.shear, style.shear)
  angle = math.radians(rng.uniform(-style.rotation, style.rotation))
  rotate = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
  return rotate @ np.array([[scale * aspect, scale * shear], [0.0, scale]])


def _corners(rects: np.ndarray) -> np.ndarray:
  """(k, 4) (x0, y0, x1, y1) -> (k, 4, 2) corner points."""
  x0, y0, x1, y1 = np.asarray(rects, np.float64).T
  return np.stack([np.stack([x0, y0], -1), np.stack([x1, y0], -1), np.stack([x1, y1], -1),
                   np.stack([x0, y1], -1)], 1)


def _span(points: np.ndarray) -> np.ndarray:
  """(m, 2) points -> (x0, y0, x1, y1) of their hull."""
  return np.concatenate([points.min(axis=0), points.max(axis=0)])


def _box(span: np.ndarray) -> tuple[float, float, float, float]:
  """A hull (x0, y0, x1, y1) rounded outwards to whole pixels, as (left, top, width, height)."""
  x0, y0 = math.floor(span[0]), math.floor(span[1])
  x1, y1 = math.ceil(span[2]), math.ceil(span[3])
  return x0, y0, x1 - x0, y1 - y0


def _frame(extent: np.ndarray, digit_height: float, rng: np.random.Generator,
           style: PhotoStyle) -> tuple[tuple[int, int], np.ndarray]:
  """Returns the photo's (width, height) and where the number's centre goes in it, for a number
  spanning `extent` (x0, y0, x1, y1) about its centre."""
  number = extent[2:] - extent[:2]
  shares = np.array([rng.uniform(*style.fill_width), rng.uniform(*style.fill_height)])
  size = np.clip(np.round(number / shares), number + 4, np.maximum(style.max_side, number + 4))
  size = size.astype(int)
  # The number's centre: anywhere that keeps its hull a pixel inside the photo ...
  low, high = 1 - extent[:2], size - 1 - extent[2:]
  middle = rng.uniform(low, np.maximum(low, high))
  if rng.random() < style.cut_off:
    # ... or past one edge by up to a third of a digit's height.
    axis, side = int(rng.integers(2)), int(rng.integers(2))
    past = rng.uniform(0.05, 0.35) * digit_height
    middle[axis] = low[axis] - 1 - past if side == 0 else high[axis] + 1 + past
  return (int(size[0]), int(size[1])), middle


def _ink(strip: Image.Image, warp: np.ndarray, centre: np.ndarray, middle: np.ndarray,
         extent: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Returns float32 (H, W) ink coverage 0..1: the strip warped into place, rendered at
  SUPERSAMPLE x over the number's hull only, then box-filtered down."""
  width, height = size
  x0, y0 = (max(0, math.floor(v)) for v in extent[:2] + middle - 1)
  x1, y1 = min(width, math.ceil(extent[2] + middle[0] + 1)), \
      min(height, math.ceil(extent[3] + middle[1] + 1))
  mask = np.zeros((height, width), np.float32)
  if x1 <= x0 or y1 <= y0:
    return mask
  # PIL maps an output point to strip = inverse @ (photo - middle) + centre, in continuous
  # coordinates (pixel centres at +0.5 on both sides); output u is photo (x0, y0) + u / S.
  inverse = np.linalg.inv(warp)
  shift = inverse @ (np.array([x0, y0]) - middle) + centre
  a, b = inverse[0] / SUPERSAMPLE
  d, e = inverse[1] / SUPERSAMPLE
  region = strip.transform(((x1 - x0) * SUPERSAMPLE, (y1 - y0) * SUPERSAMPLE),
                           Image.Transform.AFFINE, (a, b, shift[0], d, e, shift[1]),
                           Image.Resampling.BILINEAR)
  mask[y0:y1, x0:x1] = np.asarray(region.reduce(SUPERSAMPLE), np.float32) / 255
  return mask


def _upscaled(field: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """A smooth float32 field resized bilinearly to (height, width) = size[::-1]."""
  return np.asarray(Image.fromarray(field.astype(np.float32), "F").resize(size, Image.BILINEAR))


def _photograph(mask: np.ndarray, boxes: np.ndarray, digit_height: float,
                rng: np.random.Generator, style: PhotoStyle) -> np.ndarray:
  """Returns uint8 (H, W, 3): the ink `mask` painted on a shaded, textured, cluttered
  background, blurred, noisy, in colour."""
  height, width = mask.shape
  dark = rng.random() < style.dark
  contrast = rng.uniform(*style.contrast)
  # Leave room for the digit on the far side of the background without clipping it (synthetic).
  low, high = (20.0, min(105.0, 250.0 - contrast)) if dark else \
      (max(140.0, contrast + 5.0), 245.0)
  background = np.float32(rng.uniform(low, high))
  sigma = rng.uniform(*style.blur) * digit_height / 24
  scene = _shading(mask.shape, rng, style)
  scene += _plate(mask.shape, boxes, digit_height, contrast, rng, style)
  texture = _upscaled(blotches(1, rng)[0], (width, height))
  scene += np.float32(contrast * rng.uniform(0, style.texture)) * texture
  scene += _clutter(mask.shape, boxes, digit_height, rng, style)
  scene = blurred(scene[None], np.array([sigma]))[0]
  ink = blurred(mask[None], np.array([sigma]))[0]
  # Blur flattens thin strokes; rescale so the strokes keep the contrast drawn for them.
  ink_step = (contrast if dark else -contrast) / max(float(ink.max()), 0.25)
  grey = (background + scene + np.float32(ink_step) * ink)[..., None]
  background_colour, ink_colour = (np.float32(rng.uniform(0, style.chroma)) * _hue(rng)
                                   for _ in range(2))
  share = (ink * np.float32(1 / max(float(ink.max()), 1e-6)))[..., None]
  noise = np.float32(min(rng.uniform(*style.noise), contrast / style.clarity))
  rgb = grey + background_colour + share * (ink_colour - background_colour)
  if style.text:
    text = text_distractors(mask.shape, _number_hull(boxes, 0.0), digit_height, rng, style.text)
    rgb += blurred(text.transpose(2, 0, 1), np.full(3, sigma)).transpose(1, 2, 0)
  rgb += noise * rng.standard_normal((height, width, 3), dtype=np.float32)
  return np.rint(np.clip(rgb, 0, 255, out=rgb), out=rgb).astype(np.uint8)


def _hue(rng: np.random.Generator) -> np.ndarray:
  angle = rng.uniform(0, 2 * np.pi)
  return (math.cos(angle) * _CHROMA[0] + math.sin(angle) * _CHROMA[1]).astype(np.float32)


def _shading(shape: tuple[int, int], rng: np.random.Generator, style: PhotoStyle) -> np.ndarray:
  """float32 (H, W): a linear brightness ramp across the photo plus, maybe, a straight edge that
  misses the middle (synthetic.lighting at the photo's size)."""
  height, width = shape
  y = ((np.arange(height, dtype=np.float32) + 0.5) / height - 0.5)[:, None]
  x = ((np.arange(width, dtype=np.float32) + 0.5) / width - 0.5)[None, :]

  def ramp(angle: float) -> np.ndarray:
    return math.cos(angle) * x + math.sin(angle) * y

  shading = rng.uniform(-style.gradient, style.gradient) * ramp(rng.uniform(0, 2 * np.pi))
  step = rng.uniform(*style.edge_step) * rng.choice([-1.0, 1.0]) \
      if rng.random() < style.edge else 0.0
  edge = ramp(rng.uniform(0, 2 * np.pi)) > rng.uniform(0.2, 0.45)
  return (shading + step * edge).astype(np.float32)


def _number_hull(boxes: np.ndarray, pad: float) -> tuple[float, float, float, float]:
  left, top = boxes[:, 0].min() - pad, boxes[:, 1].min() - pad
  right = (boxes[:, 0] + boxes[:, 2]).max() + pad
  bottom = (boxes[:, 1] + boxes[:, 3]).max() + pad
  return left, top, right, bottom


def _plate(shape: tuple[int, int], boxes: np.ndarray, digit_height: float, contrast: float,
           rng: np.random.Generator, style: PhotoStyle) -> np.ndarray:
  """float32 (H, W): maybe a plate behind the number, a brightness step with a border; its step
  is under half the contrast, so the digits stay readable on it."""
  layer = Image.new("F", shape[::-1])
  if rng.random() < style.plate:
    hull = _number_hull(boxes, rng.uniform(0.15, 0.6) * digit_height)
    step = rng.uniform(-0.45, 0.45) * contrast
    border = rng.uniform(-0.45, 0.45) * contrast
    line = max(1, round(digit_height * rng.uniform(0.03, 0.1)))
    ImageDraw.Draw(layer).rectangle(hull, fill=step, outline=border, width=line)
  return np.asarray(layer)


def _clutter(shape: tuple[int, int], boxes: np.ndarray, digit_height: float,
             rng: np.random.Generator, style: PhotoStyle) -> np.ndarray:
  """float32 (H, W): straight lines of other brightness crossing the photo, kept off the
  number (a fifth of a digit height around its boxes)."""
  height, width = shape
  layer = Image.new("F", (width, height))
  draw = ImageDraw.Draw(layer)
  for _ in range(rng.poisson(style.lines)):
    ends = rng.uniform(0, 1, 4) * [width, height, width, height]
    draw.line(ends.tolist(), fill=float(rng.uniform(20, 80) * rng.choice([-1, 1])),
              width=max(1, round(digit_height * rng.uniform(0.02, 0.15))))
  lines = np.asarray(layer).copy()
  left, top, right, bottom = (round(v) for v in _number_hull(boxes, 0.2 * digit_height))
  lines[max(0, top):max(0, bottom), max(0, left):max(0, right)] = 0
  return lines


# Letters of the text-like distractors: none that reads as a digit (O, D, o, Q for 0; I, i, l for
# 1; Z, z for 2; S, s for 5; G, b for 6; B for 8; g, q for 9), so that a photo shows one number.
CAPITALS = "ACEFHJKLMNPRTUVWXY"
SMALL_LETTERS = "acefhkmnprtuvwxy"
# DejaVu's cap height in ems: a font of size cap / CAP_HEIGHT pixels draws capitals `cap` high.
CAP_HEIGHT = 0.73


@functools.lru_cache(maxsize=256)
def _font(name: str, pixels: int) -> ImageFont.FreeTypeFont:
  """One of synthetic.FONTS (shipped with matplotlib) at `pixels` em size."""
  return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name),
                            pixels)


def text_distractors(shape: tuple[int, int], keep_off: Sequence[float], digit_height: float,
                     rng: np.random.Generator, mean: float) -> np.ndarray:
  """Returns float32 (H, W, 3) for a photo of `shape` (H, W): short strings of letters (a
  sign, a shop's name, a plate's text) to add to it, 0 elsewhere, in RGB levels.

  Poisson(`mean`) strings of 2 to 8 letters, half all CAPITALS, half a capital then
  SMALL_LETTERS (none reads as a digit); each in one of synthetic.FONTS (the synthetic digits'
  fonts), capitals 0.3 to 1.2 `digit_height`s tall, turned up to 8 degrees either way, in its
  own colour: a brightness step of 30 to 110 grey levels, lighter or darker, plus up to 60
  levels of colour at equal luma, times the letters' anti-aliased coverage. Each is placed at
  random wholly inside the photo with its (turned) box at least half a digit height off
  `keep_off` (x0, y0, x1, y1), the number's hull in pixels, and not on an earlier string's box;
  a string larger than the photo, or for which 10 draws find no such place, is left out. Every
  draw from `rng`: the same generator state gives the same layer.

  Shared by the synthetic scene photos (`SCENE_STYLE`) and benchmarks.real_numbers' scene
  style."""
  rows, columns = shape
  layer = np.zeros((rows, columns, 3), np.float32)
  margin = 0.5 * digit_height
  x0, y0, x1, y1 = (float(v) for v in keep_off)
  # Boxes (x0, y0, x1, y1) a string's box must not overlap: the number's, widened by the margin.
  taken = [(x0 - margin, y0 - margin, x1 + margin, y1 + margin)]
  for _ in range(rng.poisson(mean)):
    count = int(rng.integers(2, 9))
    if rng.random() < 0.5:
      letters = "".join(CAPITALS[i] for i in rng.integers(len(CAPITALS), size=count))
    else:
      letters = CAPITALS[rng.integers(len(CAPITALS))] + "".join(
          SMALL_LETTERS[i] for i in rng.integers(len(SMALL_LETTERS), size=count - 1))
    font = _font(FONTS[rng.integers(len(FONTS))],
                 max(6, round(digit_height * rng.uniform(0.3, 1.2) / CAP_HEIGHT)))
    angle = rng.uniform(-8.0, 8.0)
    colour = rng.uniform(30.0, 110.0) * rng.choice([-1.0, 1.0]) + rng.uniform(0, 60.0) * _hue(rng)
    left, top, right, bottom = font.getbbox(letters)
    text = Image.new("L", (right - left + 2, bottom - top + 2))
    ImageDraw.Draw(text).text((1 - left, 1 - top), letters, fill=255, font=font)
    text = text.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    width, height = text.size
    if width > columns or height > rows:
      continue
    for _ in range(10):
      x, y = int(rng.integers(columns - width + 1)), int(rng.integers(rows - height + 1))
      if all(x + width <= left or x >= right or y + height <= top or y >= bottom
             for left, top, right, bottom in taken):
        coverage = np.asarray(text, np.float32) / 255
        layer[y:y + height, x:x + width] = coverage[..., None] * colour.astype(np.float32)
        taken.append((x, y, x + width, y + height))
        break
  return layer


# ---------------------------------------------------------------------------------------------
# Splits and files

def generate(count: int, *, seed: int, split: str = "train", style: PhotoStyle = STYLE,
             start: int = 0) -> Iterator[tuple[Photo, np.ndarray]]:
  """Yields photos `start` .. `start` + `count` - 1 of `split` as (Photo named f"{i + 1}.png",
  uint8 (H, W, 3) RGB image). Photo i is the same whatever `count` and `start`.

  Raises ValueError for a negative `count` or `start`, or an unknown `split`.
  """
  if count < 0 or start < 0:
    raise ValueError(f"generate: count and start must be >= 0, got {count}, {start}")
  if split not in SPLITS:
    raise ValueError(f"generate: split={split!r}, expected one of {SPLITS}")
  for i in range(start, start + count):
    labels, boxes, image = generate_photo(photo_rng(seed, split, i), style)
    yield Photo(f"{i + 1}.png", labels, boxes), image


def _png(image: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="PNG", compress_level=PNG_LEVEL)
  return buffer.getvalue()


def _tar_member(tar: tarfile.TarFile, name: str, payload: bytes | None) -> None:
  """Adds a file (or, for None, a folder) with fixed times and owners: deterministic bytes."""
  info = tarfile.TarInfo(name)
  info.mtime, info.uid, info.gid, info.uname, info.gname = _TAR_MTIME, 0, 0, "", ""
  if payload is None:
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    tar.addfile(info)
  else:
    info.size, info.mode = len(payload), 0o644
    tar.addfile(info, io.BytesIO(payload))


def _progress(split: str, count: int) -> Callable[[int], None]:
  began = time.perf_counter()

  def report(done: int) -> None:
    rate = done / max(time.perf_counter() - began, 1e-9)
    log.info("synthetic photos %s: %d/%d (%.0f photos/s)", split, done, count, rate)

  return report


def _png_chunk(start: int, count: int, seed: int, split: str,
               style: PhotoStyle) -> list[tuple[Photo, bytes]]:
  """Photos `start` .. `start` + `count` - 1 of `split`, as PNG bytes: one worker's task."""
  return [(photo, _png(image))
          for photo, image in generate(count, seed=seed, split=split, style=style, start=start)]


def _photos_as_pngs(count: int, seed: int, split: str, style: PhotoStyle, workers: int,
                    progress: Callable[[int], None] | None) -> Iterator[tuple[Photo, bytes]]:
  """Yields the photos of `split` as (Photo, PNG bytes) in order, made by `workers` processes
  (in this one for 1), at most 2 * workers chunks of _CHUNK photos ahead of the consumer."""
  tasks = [(start, min(_CHUNK, count - start), seed, split, style)
           for start in range(0, count, _CHUNK)]
  if workers == 1 or len(tasks) < 2:
    return _counted((_png_chunk(*task) for task in tasks), count, progress)
  return _counted(_pooled(tasks, workers), count, progress)


def _pooled(tasks: list[tuple], workers: int) -> Iterator[list[tuple[Photo, bytes]]]:
  # spawn: a forked child of a process running JAX's threads can deadlock.
  context = multiprocessing.get_context("spawn")
  with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
    pending = collections.deque()
    for task in tasks:
      pending.append(pool.submit(_png_chunk, *task))
      if len(pending) > 2 * workers:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()


def _counted(chunks: Iterator[list[tuple[Photo, bytes]]], count: int,
             progress: Callable[[int], None] | None) -> Iterator[tuple[Photo, bytes]]:
  done = 0
  for chunk in chunks:
    yield from chunk
    done += len(chunk)
    if progress and (done % _PROGRESS_EVERY == 0 or done == count):
      progress(done)
  if progress and not count:
    progress(0)


def write_split(out: str | os.PathLike, split: str, count: int, *, seed: int = 0,
                layout: str = "tar", style: PhotoStyle = STYLE, workers: int = 1,
                progress: Callable[[int], None] | None = None) -> Path:
  """Writes `count` photos of `split` in format 1's layout under the folder `out`; returns the
  path written: `out/<split>.tar.gz` (layout "tar") holding `<split>/`, `<split>/1.png` ...
  `<split>/N.png` and `<split>/digitStruct.mat`, or the folder `out/<split>` (layout "folder")
  holding the same files. The archive's bytes depend only on (count, seed, split, style): its
  members' times and owners are fixed and its gzip header holds no time.

  Written atomically: an archive under a temporary name, a folder as a hidden temporary folder,
  renamed into place when complete. `workers` processes make the photos (1: this process); the
  files do not depend on their number. `progress`, if given, is called with the photos done,
  every 500 and at the end (0 for none).

  `workers` > 1 starts processes by spawn: a script calling it needs Python's usual
  `if __name__ == "__main__":` guard.

  Speed, measured in CPU time on a 2-core Intel Xeon (wall times there were those of a machine
  shared with other jobs): 9 ms a photo with 1 worker, so about 110 photos a second or 6,500 a
  minute on one free core: making it 2.9 ms, its PNG (27 KB on average) 2.5 ms, its entry in
  digitStruct.mat 2.9 ms (h5py, in this process), the archive the rest. With 2 workers both
  cores make photos and PNGs: about 10,000 a minute on two free cores, estimated from those
  times.

  Raises ValueError for an unknown `split` or `layout`, a negative `count` or `seed`, or
  `workers` < 1; DataError when the folder `out/<split>` already exists (layout "folder"); and
  OSError when `out` cannot be written.
  """
  if layout not in LAYOUTS:
    raise ValueError(f"write_split: layout={layout!r}, expected one of {LAYOUTS}")
  if split not in SPLITS or count < 0 or seed < 0 or workers < 1:
    raise ValueError(f"write_split: expected a split of {SPLITS}, count >= 0, seed >= 0 and "
                     f"workers >= 1, got {split!r}, {count}, {seed}, {workers}")
  out = Path(out)
  out.mkdir(parents=True, exist_ok=True)
  pngs = _photos_as_pngs(count, seed, split, style, workers, progress)
  if layout == "tar":
    return _write_tar(out / f"{split}.tar.gz", split, pngs)
  return _write_folder(out / split, pngs)


def write_photos(out: str | os.PathLike, split: str, photos: Iterable[tuple[Photo, np.ndarray]],
                 *, layout: str = "tar") -> Path:
  """Writes photos made elsewhere, (Photo, uint8 (H, W, 3) RGB image) pairs in order, as a
  format-1 split under the folder `out`, exactly as write_split writes its own: `out/<split>.tar.gz`
  (layout "tar") or the folder `out/<split>` (layout "folder"), atomically, PNGs at PNG_LEVEL, the
  same bytes for the same photos. For other generators of format-1 data (benchmarks.real_numbers).

  Raises ValueError for an unknown `layout`, DataError when the folder `out/<split>` exists
  (layout "folder"), OSError when `out` cannot be written."""
  if layout not in LAYOUTS:
    raise ValueError(f"write_photos: layout={layout!r}, expected one of {LAYOUTS}")
  out = Path(out)
  out.mkdir(parents=True, exist_ok=True)
  pngs = ((photo, _png(image)) for photo, image in photos)
  if layout == "tar":
    return _write_tar(out / f"{split}.tar.gz", split, pngs)
  return _write_folder(out / split, pngs)


def _write_tar(path: Path, split: str, pngs: Iterator[tuple[Photo, bytes]]) -> Path:
  with fileio.atomic_path(path) as tmp, open(tmp, "wb") as raw, \
      gzip.GzipFile(filename=f"{split}.tar", mode="wb", fileobj=raw, mtime=0,
                    compresslevel=GZIP_LEVEL) as zipped, \
      tarfile.open(fileobj=zipped, mode="w", format=tarfile.GNU_FORMAT) as tar:
    _tar_member(tar, f"{split}/", None)
    photos = []
    for photo, png in pngs:
      _tar_member(tar, f"{split}/{photo.name}", png)
      photos.append(photo)
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
      mat = write_digit_struct(Path(scratch) / "digitStruct.mat", photos)
      _tar_member(tar, f"{split}/digitStruct.mat", mat.read_bytes())
  return path


def _write_folder(folder: Path, pngs: Iterator[tuple[Photo, bytes]]) -> Path:
  if folder.exists():
    raise DataError(f"{folder} already exists; remove it or write elsewhere (--out)")
  with fileio.atomic_folder(folder) as tmp:
    photos = []
    for photo, png in pngs:
      (tmp / photo.name).write_bytes(png)
      photos.append(photo)
    write_digit_struct(tmp / "digitStruct.mat", photos)
  return folder


def write(out: str | os.PathLike, *, train: int, test: int, seed: int = 0,
          layout: str = "tar", style: PhotoStyle = STYLE, workers: int = 1) -> list[Path]:
  """Writes the train and test splits (see write_split), logging progress; returns their paths.
  Each split draws its own photos from `seed` (see photo_rng)."""
  return [write_split(out, split, count, seed=seed, layout=layout, style=style, workers=workers,
                      progress=_progress(split, count))
          for split, count in (("train", train), ("test", test))]


def save_preview(path: str | os.PathLike, photos: Sequence[tuple[Photo, np.ndarray]],
                 columns: int = 6) -> Path:
  """Saves a PNG grid of `photos`, each with its digit boxes drawn and its number as title."""
  framed, titles = [], []
  for photo, image in photos:
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    for left, top, width, height in photo.boxes.tolist():
      draw.rectangle((left, top, left + width - 1, top + height - 1), outline=(255, 40, 40))
    framed.append(np.asarray(canvas))
    titles.append("".join(str(d) for d in photo.labels))
  return plots.image_grid(framed, titles, path, cols=columns, value_range=None)


def main(argv: Sequence[str] | None = None) -> None:
  parser = cli.ArgumentParser(prog="python -m svhn_jax.datasets.synthetic_photos",
                              description=__doc__.splitlines()[0])
  parser.add_argument("--out", required=True, help="folder to write train.tar.gz, test.tar.gz")
  parser.add_argument("--train", type=cli.whole_number(0), required=True, help="training photos")
  parser.add_argument("--test", type=cli.whole_number(0), required=True, help="test photos")
  parser.add_argument("--seed", type=cli.whole_number(0), default=0)
  parser.add_argument("--layout", choices=LAYOUTS, default="tar",
                      help="tar: <split>.tar.gz as distributed; folder: <split>/ as extracted")
  parser.add_argument("--workers", type=cli.whole_number(0),
                      default=min(2, os.cpu_count() or 1),
                      help="processes making photos (default: 2, or 1 on one core)")
  parser.add_argument("--preview", help="also save a PNG grid of the first 24 training photos")
  args = parser.parse_args(argv)
  if args.workers < 1:
    parser.error("--workers must be at least 1")
  logging.basicConfig(level=logging.INFO, format="%(message)s")
  with cli.user_errors():
    for path in write(args.out, train=args.train, test=args.test, seed=args.seed,
                      layout=args.layout, workers=args.workers):
      log.info("wrote %s", path)
    if args.preview:
      photos = list(generate(min(24, args.train), seed=args.seed, split="train"))
      log.info("wrote %s", save_preview(args.preview, photos))


if __name__ == "__main__":
  main()
