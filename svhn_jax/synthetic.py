"""A deterministic generator of SVHN-like crops: the offline stand-in for the study's file.

Each crop is 32x32 greyscale with a labelled digit in the centre and, as in SVHN's cropped
format, parts of the neighbouring digits of the same house number cut off at its sides.
Glyphs come from the DejaVu fonts that matplotlib ships, rendered once at high resolution;
each crop is composed from the cached glyph bitmaps with one affine warp, and the photometric
part (background, shading, plate edges, texture, blur, noise) runs on whole batches in numpy.
`Style` holds the difficulty knobs; the defaults were tuned so that a small MLP on raw pixels
lands well below a small CNN, as on real SVHN.

  python -m svhn_jax.synthetic --out synthetic.h5 --train 8000 --val 2000 --test 2000 --seed 0
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import h5py
import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from svhn_jax import plots
from svhn_jax.data import Dataset, Split, save_h5

log = logging.getLogger(__name__)

# Cached files are named by it: bump it whenever the same seed would give different crops.
VERSION = 1
SIZE = 32
SUPERSAMPLE = 3  # warp at 3x then box-filter down: anti-aliasing at the cost of one reduce
FONT_PX = 128  # digits render about 95 px tall: finer than any warp will ask for
CHUNK = 2048  # images per random stream; fixed, so output never depends on batching
BLUR_STEP = 0.25  # per-image blur sigmas are rounded to this to blur a batch per level

FONTS = (
  "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
  "DejaVuSans-BoldOblique.ttf", "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf",
  "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf", "DejaVuSansMono.ttf",
  "DejaVuSansMono-Bold.ttf", "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf",
)


@dataclasses.dataclass(frozen=True)
class Style:
  """The difficulty knobs. Ranges are (low, high), drawn uniformly per image."""
  fonts: tuple[str, ...] = FONTS
  strokes: tuple[int, ...] = (-2, 0, 4)  # stroke width changes, pixels at FONT_PX
  height: tuple[float, float] = (0.55, 0.95)  # centre digit height as a share of the crop
  aspect: tuple[float, float] = (0.8, 1.25)  # horizontal stretch, drawn log-uniformly
  shift: float = 3.5  # max offset of the centre digit, pixels
  rotation: float = 12.0  # max rotation, degrees
  shear: float = 0.3  # max horizontal slant, dx per dy
  neighbour: float = 0.9  # chance of a neighbouring digit on each side
  gap: tuple[float, float] = (0.03, 0.35)  # space between digits, in digit heights
  # Share of light-on-dark crops. Big bright digits lift some of them past a mean pixel of 128,
  # so 0.71 gives SVHN's 69% of crops with a mean under 128.
  dark: float = 0.71
  contrast: tuple[float, float] = (45.0, 170.0)  # |digit - background| grey levels
  gradient: float = 80.0  # max brightness change across the crop from shading
  edge: float = 0.4  # chance of a plate or wall edge crossing the crop
  edge_step: tuple[float, float] = (15.0, 60.0)  # brightness step across that edge
  texture: float = 0.2  # max std of blotchy background texture, as a share of the contrast
  blur: tuple[float, float] = (0.3, 1.5)  # gaussian sigma, pixels
  noise: tuple[float, float] = (2.0, 12.0)  # gaussian noise std, grey levels
  clarity: float = 6.0  # min contrast / noise std, so that every centre digit stays readable


STYLE = Style()


def generate(
  n: int, *, seed: int, style: Style = STYLE, progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
  """Returns `n` crops, float32 (n, 32, 32) in 0..255, and their labels, uint8 (n,) in 0..9.

  Classes are balanced (counts differ by at most one) in shuffled order. The same (n, seed,
  style) gives bit-identical output. `progress`, if given, is called with the images done so far.
  """
  if n < 0:
    raise ValueError(f"cannot generate {n} images")
  streams = np.random.SeedSequence(seed).spawn(1 + math.ceil(n / CHUNK))
  labels = np.random.default_rng(streams[0]).permutation(np.arange(n) % 10).astype(np.uint8)
  images = np.empty((n, SIZE, SIZE), np.float32)
  for k, start in enumerate(range(0, n, CHUNK)):
    stop = min(start + CHUNK, n)
    rng = np.random.default_rng(streams[k + 1])
    images[start:stop] = photograph(ink(labels[start:stop], rng, style), rng, style)
    if progress:
      progress(stop)
  return images, labels


def ink(labels: np.ndarray, rng: np.random.Generator, style: Style) -> np.ndarray:
  """Returns float32 (n, 32, 32) ink coverage in 0..1: the centre digit and its neighbours."""
  n = len(labels)
  fonts = rng.integers(len(style.fonts), size=n)
  strokes = rng.integers(len(style.strokes), size=n)
  sides = np.where(rng.random((n, 2)) < style.neighbour, rng.integers(10, size=(n, 2)), -1)
  gaps = rng.uniform(*style.gap, size=(n, 2))
  heights = rng.uniform(*style.height, size=n)
  backward = unit_warps(heights, rng, style)
  # Vertical shifts keep the centre digit whole, as SVHN's boxes hug the digit's height.
  room = np.stack([np.full(n, style.shift), np.minimum(style.shift, (1 - heights) * SIZE / 2)], -1)
  targets = (SIZE / 2 + rng.uniform(-1, 1, size=(n, 2)) * room) * SUPERSAMPLE
  origins = np.einsum("nij,nj->ni", backward, targets)
  size = SIZE * SUPERSAMPLE
  out = np.empty((n, SIZE, SIZE), np.uint8)
  for i, (matrix, origin) in enumerate(zip(backward.tolist(), origins.tolist())):
    glyphs = font_glyphs(style.fonts[fonts[i]], style.strokes[strokes[i]])
    strip, (cx, cy) = house_number(glyphs, labels[i], sides[i], gaps[i])
    (a, b), (d, e) = matrix
    h = strip.height
    coefficients = (a * h, b * h, cx - origin[0] * h, d * h, e * h, cy - origin[1] * h)
    warped = strip.transform((size, size), Image.Transform.AFFINE, coefficients,
                             Image.Resampling.BILINEAR)
    out[i] = np.asarray(warped.reduce(SUPERSAMPLE))
  return out.astype(np.float32) / 255.0


def unit_warps(heights: np.ndarray, rng: np.random.Generator, style: Style) -> np.ndarray:
  """Returns (n, 2, 2) maps from supersampled crop offsets to strip offsets, for unit glyphs.

  Scaled by a strip's height, each maps the crop around its centre onto the strip around the
  centre digit: inverse of a stretch, slant and rotation that gives the digit its drawn height.
  """
  n = len(heights)
  scale = heights * SIZE * SUPERSAMPLE
  aspect = np.exp(rng.uniform(*np.log(style.aspect), size=n))
  shear = rng.uniform(-style.shear, style.shear, size=n)
  angle = np.radians(rng.uniform(-style.rotation, style.rotation, size=n))
  cos, sin, zero = np.cos(angle), np.sin(angle), np.zeros(n)
  rotate = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)
  distort = np.stack([np.stack([scale * aspect, scale * shear], -1),
                      np.stack([zero, scale], -1)], -2)
  return np.linalg.inv(rotate @ distort)


def photograph(masks: np.ndarray, rng: np.random.Generator, style: Style) -> np.ndarray:
  """Returns float32 crops in 0..255: ink masks painted on shaded backgrounds, blurred, noisy."""
  n = len(masks)
  dark = rng.random(n) < style.dark
  contrast = rng.uniform(*style.contrast, size=n)
  # Leave room for the digit on the far side of the background without clipping it.
  low = np.where(dark, 20.0, np.maximum(140.0, contrast + 5.0))
  high = np.where(dark, np.minimum(105.0, 250.0 - contrast), 245.0)
  background = rng.uniform(low, high)
  sigmas = rng.uniform(*style.blur, size=n)
  masks = blurred(masks, sigmas)
  # Blur flattens thin strokes; rescale so the strokes keep the contrast drawn for them.
  ink_step = np.where(dark, contrast, -contrast) / np.maximum(masks.max(axis=(1, 2)), 0.25)
  noise = np.minimum(rng.uniform(*style.noise, size=n), contrast / style.clarity)
  texture = per_image(contrast * rng.uniform(0, style.texture, size=n)) * blotches(n, rng)
  images = (per_image(background) + blurred(lighting(n, rng, style) + texture, sigmas)
            + per_image(ink_step) * masks
            + per_image(noise) * rng.standard_normal(masks.shape, dtype=np.float32))
  return np.rint(np.clip(images, 0.0, 255.0)).astype(np.float32)


def per_image(values: np.ndarray) -> np.ndarray:
  """Returns one value per image shaped to broadcast over (n, 32, 32)."""
  return values[:, None, None]


def lighting(n: int, rng: np.random.Generator, style: Style) -> np.ndarray:
  """Returns float32 (n, 32, 32) brightness offsets: a linear shading plus, maybe, an edge."""
  coords = (np.arange(SIZE, dtype=np.float32) + 0.5) / SIZE - 0.5
  y, x = coords[None, :, None], coords[None, None, :]

  def ramp(angle: np.ndarray) -> np.ndarray:
    return per_image(np.cos(angle)) * x + per_image(np.sin(angle)) * y

  shading = per_image(rng.uniform(-style.gradient, style.gradient, size=n)) * ramp(
    rng.uniform(0, 2 * np.pi, size=n))
  steps = np.where(rng.random(n) < style.edge, rng.uniform(*style.edge_step, size=n), 0.0)
  steps *= rng.choice([-1.0, 1.0], size=n)
  # A straight edge that misses the middle, like the border of a number plate or a wall.
  edge = ramp(rng.uniform(0, 2 * np.pi, size=n)) > per_image(rng.uniform(0.2, 0.45, size=n))
  return (shading + per_image(steps) * edge).astype(np.float32)


def blotches(n: int, rng: np.random.Generator, cells: int = 4) -> np.ndarray:
  """Returns float32 (n, 32, 32) smooth random texture, std about 1: stucco, wood, dirt."""
  coarse = rng.standard_normal((n, cells + 2, cells + 2), dtype=np.float32)
  # Gaussian bumps on a grid one cell wider than the crop, so its borders are not flatter.
  pitch = SIZE / cells
  pixels = np.arange(SIZE, dtype=np.float32) + 0.5
  centres = (np.arange(cells + 2, dtype=np.float32) - 0.5) * pitch
  basis = np.exp(-0.5 * ((pixels[:, None] - centres[None, :]) / (0.6 * pitch)) ** 2)
  # Two plain einsums rather than BLAS: same bits whatever the thread count.
  fine = np.einsum("ij,njl->nil", basis, np.einsum("njk,lk->njl", coarse, basis))
  return fine / np.sqrt(np.mean(fine ** 2))


def blurred(images: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
  """Returns `images` each blurred by its gaussian sigma, rounded to BLUR_STEP."""
  levels = np.round(sigmas / BLUR_STEP) * BLUR_STEP
  out = images.copy()
  for sigma in np.unique(levels[levels > 0]):
    chosen = levels == sigma
    out[chosen] = ndimage.gaussian_filter(images[chosen], sigma=(0, sigma, sigma), mode="nearest")
  return out


def house_number(
  glyphs: Sequence[Image.Image], digit: int, sides: np.ndarray, gaps: np.ndarray,
) -> tuple[Image.Image, tuple[float, float]]:
  """Returns a strip of `digit` between optional neighbours (-1: none), and its centre point."""
  left, right = sides
  height = glyphs[digit].height
  placed = []
  x = 0
  if left >= 0:
    placed.append((glyphs[left], x))
    x += glyphs[left].width + round(gaps[0] * height)
  centre = (x + glyphs[digit].width / 2, height / 2)
  placed.append((glyphs[digit], x))
  x += glyphs[digit].width
  if right >= 0:
    x += round(gaps[1] * height)
    placed.append((glyphs[right], x))
    x += glyphs[right].width
  strip = Image.new("L", (x, height))
  for glyph, left_edge in placed:
    strip.paste(glyph, (left_edge, 0), glyph)
  return strip, centre


@functools.cache
def font_glyphs(name: str, stroke: int = 0) -> tuple[Image.Image, ...]:
  """Returns the ten digit bitmaps of one font, cropped to their ink, on a common baseline.

  `stroke` thickens (or, negative, thins) every stroke by that many pixels at render size.
  """
  font = ImageFont.truetype(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", name),
                            FONT_PX)
  rendered = []
  for digit in "0123456789":
    image = Image.new("L", (FONT_PX * 2, FONT_PX * 2))
    ImageDraw.Draw(image).text((FONT_PX // 2, FONT_PX // 2), digit, fill=255, font=font)
    rendered.append(np.asarray(image))
  footprint = (1, abs(stroke) + 1, abs(stroke) + 1)
  change = ndimage.maximum_filter if stroke > 0 else ndimage.minimum_filter
  pixels = change(np.stack(rendered), size=footprint) if stroke else np.stack(rendered)
  glyphs = [Image.fromarray(p) for p in pixels]
  boxes = np.array([glyph.getbbox() for glyph in glyphs])
  top, bottom = boxes[:, 1].min(), boxes[:, 3].max()
  return tuple(glyph.crop((box[0], top, box[2], bottom)) for glyph, box in zip(glyphs, boxes))


def write(path: str | os.PathLike, *, train: int, val: int, test: int, seed: int = 0,
          style: Style = STYLE) -> Path:
  """Writes train/val/test splits in the study's HDF5 layout; each split has its own seed."""
  seeds = np.random.SeedSequence(seed).generate_state(3)
  splits = [logged_split(name, count, int(s), style)
            for name, count, s in zip(("train", "val", "test"), (train, val, test), seeds)]
  return save_h5(path, Dataset(*splits))


def logged_split(name: str, n: int, seed: int, style: Style) -> Split:
  """Returns one generated split, logging progress since 120,000 crops take about a minute."""
  began = time.perf_counter()

  def report(done: int) -> None:
    rate = done / max(time.perf_counter() - began, 1e-9)
    log.info("synthetic %s: %d/%d images (%.0f/s)", name, done, n, rate)

  return Split(*generate(n, seed=seed, style=style, progress=report))


def save_preview(path: str | os.PathLike, images: np.ndarray, labels: np.ndarray,
                 columns: int = 10) -> Path:
  """Saves a labelled grid of crops as a PNG."""
  return plots.image_grid(list(images), [str(label) for label in labels], path, cols=columns)


def count(text: str) -> int:
  """Returns a split size parsed from the command line."""
  value = int(text)
  if value < 0:
    raise argparse.ArgumentTypeError(f"expected a count >= 0, got {text}")
  return value


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(prog="python -m svhn_jax.synthetic",
                                   description=__doc__.splitlines()[0])
  parser.add_argument("--out", required=True, help="HDF5 file to write")
  parser.add_argument("--train", type=count, required=True, help="training crops")
  parser.add_argument("--val", type=count, required=True, help="validation crops")
  parser.add_argument("--test", type=count, required=True, help="test crops")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--preview", help="also save a PNG grid of the first 50 training crops")
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(message)s")
  path = write(args.out, train=args.train, val=args.val, test=args.test, seed=args.seed)
  log.info("wrote %s", path)
  if args.preview:
    with h5py.File(path, "r") as f:
      images, labels = f["X_train"][:50], f["y_train"][:50]
    log.info("wrote %s", save_preview(args.preview, images, labels))


if __name__ == "__main__":
  main()
