"""Builders of small files in the exact layouts of the official SVHN distribution.

- `write_cropped_mat`: format 2, a MATLAB v5 .mat with X uint8 (32, 32, 3, N) and y uint8 (N, 1).
- `write_digit_struct`: format 1's digitStruct.mat, MATLAB v7.3 (HDF5 behind a 512-byte header),
  with the tree MATLAB writes: struct groups, `#refs#`, object references, `MATLAB_class`; the
  product's writer (datasets.digit_struct.write_digit_struct), which the synthetic photos use too.
- `write_full_tar`: a format-1 archive, `<split>/1.png ... <split>/N.png` and the digitStruct.mat.
- `photos_on_white`, `photo_file`: photos as the image files of other modes a user may have
  (transparent, EXIF-rotated, palette, 16-bit, ...) that read back as the same pixels.

Images show seven-segment digits, so a crop or a photo can be checked by eye; everything is
deterministic. Tests and benchmarks share these builders.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.io
from PIL import ExifTags, Image, ImageDraw

from svhn_jax.datasets.digit_struct import Photo, write_digit_struct

# Segments a-g of a seven-segment display as (x0, y0, x1, y1) in a 0..1 box, and each digit's set.
_SEGMENTS = {"a": (0, 0, 1, 0), "b": (1, 0, 1, .5), "c": (1, .5, 1, 1), "d": (0, 1, 1, 1),
             "e": (0, .5, 0, 1), "f": (0, 0, 0, .5), "g": (0, .5, 1, .5)}
_DIGIT_SEGMENTS = ("abcdef", "bc", "abdeg", "abcdg", "bcfg", "acdfg", "acdefg", "abc", "abcdefg",
                   "abcdfg")


def draw_digit(draw: ImageDraw.ImageDraw, digit: int, box: Sequence[float],
               colour: tuple[int, int, int]) -> None:
  """Draws `digit` (0..9) as seven segments filling `box` = (left, top, width, height)."""
  left, top, width, height = box
  inset_x, inset_y = width * 0.2, height * 0.1
  stroke = max(1, round(min(width, height) * 0.12))
  for name in _DIGIT_SEGMENTS[digit]:
    x0, y0, x1, y1 = _SEGMENTS[name]
    span_x, span_y = width - 2 * inset_x, height - 2 * inset_y
    draw.line([(left + inset_x + x0 * span_x, top + inset_y + y0 * span_y),
               (left + inset_x + x1 * span_x, top + inset_y + y1 * span_y)],
              fill=colour, width=stroke)


def _colours(rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
  """A background and a foreground colour far apart in brightness, dark or light background."""
  dark = tuple(int(v) for v in rng.integers(0, 90, 3))
  light = tuple(int(v) for v in rng.integers(165, 256, 3))
  return (dark, light) if rng.random() < 0.7 else (light, dark)


def drawn_crops(labels: Sequence[int], seed: int = 0) -> np.ndarray:
  """Returns uint8 (N, 32, 32, 3) crops, each showing its digit (0..9) centred, with noise."""
  rng = np.random.default_rng(seed)
  crops = np.empty((len(labels), 32, 32, 3), np.uint8)
  for i, digit in enumerate(labels):
    background, foreground = _colours(rng)
    image = Image.new("RGB", (32, 32), background)
    draw_digit(ImageDraw.Draw(image), int(digit), (6, 2, 20, 28), foreground)
    noise = rng.integers(-12, 13, (32, 32, 3))
    crops[i] = np.clip(np.asarray(image, np.int16) + noise, 0, 255)
  return crops


def house_photo(labels: Sequence[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Returns a uint8 (H, W, 3) photo of the digits `labels` side by side, and their float32
  (k, 4) boxes (left, top, width, height) in pixels, as digitStruct.mat holds them."""
  rng = np.random.default_rng(seed)
  digit_w, digit_h = int(rng.integers(12, 24)), int(rng.integers(24, 40))
  margin_x, margin_y = int(rng.integers(4, 16)), int(rng.integers(4, 12))
  width, height = 2 * margin_x + digit_w * len(labels), 2 * margin_y + digit_h
  background, foreground = _colours(rng)
  image = Image.new("RGB", (width, height), background)
  draw = ImageDraw.Draw(image)
  boxes = np.array([(margin_x + j * digit_w, margin_y, digit_w, digit_h)
                    for j in range(len(labels))], np.float32)
  for digit, box in zip(labels, boxes):
    draw_digit(draw, int(digit), box, foreground)
  return np.asarray(image), boxes


def sample_photos(count: int, seed: int = 0, max_digits: int = 4) -> list[tuple[Photo, np.ndarray]]:
  """Returns `count` (Photo, image) pairs named 1.png..., 1 to `max_digits` digits each."""
  rng = np.random.default_rng(seed)
  pairs = []
  for i in range(count):
    labels = rng.integers(0, 10, int(rng.integers(1, max_digits + 1))).astype(np.int32)
    image, boxes = house_photo(labels, seed=seed * 100_003 + i)
    pairs.append((Photo(f"{i + 1}.png", labels, boxes), image))
  return pairs


INK = (20, 40, 120)  # the digits' colour in photos_on_white
GREY_INK = 60  # and their grey in photo_file's grey files


def photos_on_white(count: int, seed: int = 0) -> list[tuple[Photo, np.ndarray]]:
  """`sample_photos`, with digits of colour INK on white: white is what transparency reads as."""
  pairs = []
  for photo, image in sample_photos(count, seed):
    ink = (image != image[0, 0]).any(axis=-1, keepdims=True)  # the corner is background
    pairs.append((photo, np.where(ink, np.uint8(INK), np.uint8(255)).astype(np.uint8)))
  return pairs


def grey_of(image: np.ndarray) -> np.ndarray:
  """A photos_on_white image as its grey files read in RGB: GREY_INK on white, in 3 channels."""
  white = (image == 255).all(axis=-1, keepdims=True)
  return np.repeat(np.where(white, 255, GREY_INK).astype(np.uint8), 3, axis=-1)


PHOTO_FILES = ("rgba", "exif_png", "exif_jpeg", "palette", "cmyk_jpeg", "l", "la", "i16")
LOSSY = ("exif_jpeg", "cmyk_jpeg")
GREY = ("l", "la", "i16")


def photo_file(image: np.ndarray, how: str) -> bytes:
  """A photos_on_white `image` (uint8 (H, W, 3)) as the bytes of an image file that reads back,
  by svhn_jax.images' rules, as `image` (as `grey_of(image)` for the GREY kinds; near it, within
  JPEG's loss, for the LOSSY ones). `how`, one of PHOTO_FILES: "rgba", the digits on a
  transparent canvas whose hidden colour is black; "exif_png", "exif_jpeg", stored turned a
  quarter with EXIF orientation 6; "palette", a 'P' PNG whose transparent index hides black;
  "cmyk_jpeg"; "l", 8-bit grey; "la", grey on a transparent canvas; "i16", 16-bit grey PNG."""
  white = (image == 255).all(axis=-1)
  grey = np.where(white, 255, GREY_INK).astype(np.uint8)
  rgb = Image.fromarray(image)
  exif = Image.Exif()
  exif[ExifTags.Base.Orientation] = 6  # shown turned a quarter clockwise from how it is stored
  buffer = io.BytesIO()
  if how == "rgba":
    alpha = np.where(white, 0, 255).astype(np.uint8)
    hidden = np.where(white[..., None], 0, image).astype(np.uint8)
    Image.fromarray(np.dstack([hidden, alpha])).save(buffer, "PNG")
  elif how in ("exif_png", "exif_jpeg"):
    stored = rgb.transpose(Image.Transpose.ROTATE_90)
    stored.save(buffer, "PNG" if how == "exif_png" else "JPEG", exif=exif, quality=95)
  elif how == "palette":
    palette_image = rgb.quantize(colors=2)
    background = palette_image.getpixel((0, 0))
    palette = palette_image.getpalette()
    palette[3 * background:3 * background + 3] = [0, 0, 0]
    palette_image.putpalette(palette)
    palette_image.save(buffer, "PNG", transparency=background)
  elif how == "cmyk_jpeg":
    rgb.convert("CMYK").save(buffer, "JPEG", quality=95)
  elif how == "l":
    Image.fromarray(grey).save(buffer, "PNG")
  elif how == "la":
    alpha = np.where(white, 0, 255).astype(np.uint8)
    Image.fromarray(np.dstack([np.where(white, 0, grey), alpha]).astype(np.uint8)).save(
        buffer, "PNG")
  elif how == "i16":
    Image.fromarray(grey.astype(np.uint16) * 257).save(buffer, "PNG")
  else:
    raise ValueError(f"photo_file: how={how!r}, expected one of {PHOTO_FILES}")
  return buffer.getvalue()


def write_cropped_mat(path: str | os.PathLike, images: np.ndarray, labels: np.ndarray, *,
                      compress: bool = True) -> Path:
  """Writes format 2: `images` uint8 (N, 32, 32, 3) NHWC stored as X (32, 32, 3, N), and
  `labels` (N,) stored as they are (the official files use 1..10) as y uint8 (N, 1).

  The official files are zlib-compressed MATLAB v5 files, hence `compress=True`.
  """
  images = np.asarray(images)
  x = np.transpose(images, (1, 2, 3, 0))
  y = np.asarray(labels, np.uint8).reshape(-1, 1)
  scipy.io.savemat(path, {"X": x, "y": y}, do_compression=compress)
  return Path(path)


def png_bytes(image: np.ndarray) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="PNG")
  return buffer.getvalue()


def _add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
  info = tarfile.TarInfo(name)
  info.size = len(payload)
  info.mtime = 1_300_000_000
  tar.addfile(info, io.BytesIO(payload))


def write_full_tar(path: str | os.PathLike, split: str,
                   photos: Sequence[tuple[Photo, np.ndarray | bytes | None]], *,
                   digit_struct: bool = True) -> Path:
  """Writes format 1: a .tar.gz of `<split>/<photo.name>` PNGs and `<split>/digitStruct.mat`.

  An image is uint8 pixels, saved as PNG, or the bytes of an image file, stored as they are.
  `split` may hold folders (SVHN/train). An image of None lists the photo in digitStruct.mat
  without its file, and `digit_struct=False` leaves digitStruct.mat out: both are broken
  archives, for tests.
  """
  path = Path(path)
  with tarfile.open(path, "w:gz") as tar:
    for photo, image in photos:
      if image is not None:
        _add(tar, f"{split}/{photo.name}", image if isinstance(image, bytes) else png_bytes(image))
    if digit_struct:
      mat = path.with_name(f".{path.name}.digitStruct.mat")
      try:
        write_digit_struct(mat, [photo for photo, _ in photos])
        _add(tar, f"{split}/digitStruct.mat", mat.read_bytes())
      finally:
        mat.unlink(missing_ok=True)
  return path
