"""Reads any image file a user gives into the study's pixel units: float32, 0..255.

Greyscale is the study's luma, 0.299 R + 0.587 G + 0.114 B, as Pillow's convert('L') computes it
(rounded to whole levels), so a plain RGB or L file gives the grey levels SVHN's crops were made
with, pixel for pixel. Crops are then made as SVHN's were: widened to a square around the centre,
resized bilinearly to 32x32. Every problem with a file is a one-line DataError naming it.

`read_photo` gives the same pixels as uint8 RGB, the way format 1's photos are read for training,
and `reading` names the rules a file is read by, for `svhn_jax.data inspect`.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from svhn_jax import data
from svhn_jax.errors import DataError

COLORS = ("grey", "rgb")
# What a viewer shows behind transparent pixels: its usual page is white.
BACKGROUND = (255, 255, 255, 255)
_SAVE_SMALLER = "crop or shrink it around the digit first"
_GREY = ("1", "L", "LA", "La")
# EXIF orientations that ImageOps.exif_transpose turns; 1 is upright, other values are ignored.
_TURNED = range(2, 9)


def read_image(path: str | Path, color: str = "grey") -> np.ndarray:
  """The image file at `path` as float32 pixel values 0..255: (H, W) for color="grey", (H, W, 3)
  for color="rgb".

  Any file Pillow opens is read; an animated or multi-frame file (GIF, APNG, WebP, multi-page
  TIFF) gives its first frame. An EXIF orientation is applied, so a phone photo stored sideways
  comes out as it was seen. Pixel modes are brought to 0..255 as `pixels` describes, transparency
  included (composited over white).

  Raises ValueError for a `color` other than "grey" or "rgb", and DataError, one line naming the
  file and what to do, for: a missing file; a folder or other non-file; a file that is not an image
  (a header with a zero width or height is one: Pillow will not open it); a damaged or truncated
  file; no permission to read it; an image over Pillow's decompression-bomb limit of
  PIL.Image.MAX_IMAGE_PIXELS pixels (refused at that limit, where Pillow would only warn up to
  twice it); an image too large for the free memory; and the content errors of `pixels`.
  """
  _check_color(color)
  path = Path(path)
  if not path.exists():
    raise DataError(f"{path}: no such file; check the path")
  if not path.is_file():
    kind = "a folder" if path.is_dir() else "not a regular file"
    raise DataError(f"{path} is {kind}; give image files (PNG, JPEG, ...)")
  return _decode(path, None, color)[1]


def read_photo(path: str | Path) -> np.ndarray:
  """The image file at `path` as uint8 (H, W, 3) RGB: `read_image(path, "rgb")` rounded to whole
  levels, so an 8-bit RGB file gives its own pixels. Format 1's photos are read with it for
  training (datasets.photos.FullSplit.image), by the rules `read` and `predict` read a file with.
  Raises as read_image does."""
  return np.round(read_image(path, "rgb")).astype(np.uint8)


class Reading(NamedTuple):
  """How read_image reads one image file."""
  size: tuple[int, int]  # (width, height) as read: after its EXIF orientation
  kind: str  # its format and pixel mode as stored, e.g. "PNG RGBA"
  rules: tuple[str, ...]  # each rule of read_image and `pixels` that changes its stored pixels


def reading(path: str | Path, file: BinaryIO | None = None) -> Reading:
  """How read_image reads the image file at `path`, or the seekable binary `file` (named `path`
  in errors): the file is decoded and converted as read_image does, so this raises the same
  DataError for the same file. Rules named: an EXIF orientation applied, palette colours, 16-bit
  divided by 257, 32-bit or float scaled, CMYK and other modes converted to RGB, transparency
  composited over white, grey repeated in R, G and B."""
  opened, _ = _decode(Path(path), file, "rgb")
  image, rules = opened.image, []
  if opened.orientation != 1:
    rules.append(f"turned upright by EXIF orientation {opened.orientation}")
  if image.mode.startswith("I;16"):
    rules.append("16-bit, divided by 257")
  elif image.mode in ("I", "F"):
    rules.append("32-bit or float, scaled to 0..255")
  elif image.mode in ("P", "PA"):
    rules.append("palette colours")
  elif image.mode not in ("RGB", "RGBA", "RGBa", "RGBX") + _GREY:
    rules.append(f"{image.mode} converted to RGB")
  if image.has_transparency_data:
    rules.append("transparency composited over white")
  if image.mode in _GREY or image.mode in ("I", "F") or image.mode.startswith("I;16"):
    rules.append("grey repeated in R, G and B")
  return Reading(image.size, f"{opened.format} {image.mode}", tuple(rules))


def pixels(image: Image.Image, color: str = "grey") -> np.ndarray:
  """The Pillow `image` as float32 pixel values 0..255: (H, W) for color="grey", (H, W, 3) for
  color="rgb".

  Each mode is brought to 0..255 by its own rule:
  - 8-bit modes (L, RGB, RGBX, P, 1, ...) as they are; bilevel '1' gives 0 and 255, palette 'P'
    the palette's colours. CMYK, YCbCr, LAB and HSV are converted to RGB by Pillow first.
  - Alpha (RGBA, LA, PA, and premultiplied RGBa, La) and a `transparency` entry in image.info (a
    PNG tRNS key colour or palette alpha, a GIF's transparent index) are composited over white, as
    a viewer shows them on its page: a black digit drawn on a transparent canvas reads as black on
    white.
  - 16-bit greyscale (I;16, I;16B, I;16L, I;16N: 16-bit PNG and TIFF) by its full range, / 257.
  - Float (F) whose values all lie in 0..1, x 255.
  - Other float ranges, and 32-bit integers (I), by the image's own min..max stretched to 0..255;
    a constant image has no range and gives its value clipped to 0..255.
  - A 16-bit or 32-bit image's `transparency` key value becomes white.
  Grey from colour is the luma 0.299 R + 0.587 G + 0.114 B of Pillow's convert('L'), whole levels;
  "rgb" from a 16-bit, 32-bit or float image repeats its grey in the three channels.

  Raises ValueError for a `color` other than "grey" or "rgb", an image with a zero width or height,
  a float image with NaN or infinite values, or a mode Pillow cannot convert to RGB.
  """
  _check_color(color)
  if 0 in image.size:
    raise ValueError(f"the image is {image.width}x{image.height} pixels: it has none to read")
  if image.mode in ("I", "F") or image.mode.startswith("I;16"):
    grey = _deep_grey(image)
    return grey if color == "grey" else np.repeat(grey[..., np.newaxis], 3, axis=-1)
  if image.has_transparency_data:
    if image.mode == "La":
      image = image.convert("LA")  # Pillow un-premultiplies grey into LA only
    image = Image.alpha_composite(Image.new("RGBA", image.size, BACKGROUND),
                                  image.convert("RGBA"))
  rgb = image.convert("RGB")
  return np.asarray(rgb.convert("L") if color == "grey" else rgb, np.float32)


def to_crop(image: np.ndarray) -> np.ndarray:
  """A (H, W) or (H, W, C) image of pixel values 0..255 as a float32 (32, 32) or (32, 32, C) crop,
  made as SVHN's crops were: widened to a square of side max(H, W) around its centre (edge pixels
  repeated), resized bilinearly by Pillow (each channel on its own), clipped to 0..255.

  Raises ValueError for an array that is not (H, W) or (H, W, C) with H, W > 0.
  """
  image = np.asarray(image, np.float32)
  if image.ndim not in (2, 3) or 0 in image.shape[:2]:
    raise ValueError(f"to_crop: expected an (H, W) or (H, W, C) image, got shape {image.shape}")
  h, w = image.shape[:2]
  side = max(h, w)
  top, left = (side - h) // 2, (side - w) // 2
  widths = ((top, side - h - top), (left, side - w - left)) + ((0, 0),) * (image.ndim - 2)
  square = np.pad(image, widths, mode="edge")
  channels = square[..., np.newaxis] if image.ndim == 2 else square
  crop = np.stack([
      np.asarray(Image.fromarray(np.ascontiguousarray(channels[..., c]))
                 .resize(data.IMAGE_SHAPE[::-1], Image.BILINEAR), np.float32)
      for c in range(channels.shape[-1])
  ], axis=-1)
  return np.clip(crop[..., 0] if image.ndim == 2 else crop, 0, 255)


def load_crop(path: str | Path, color: str = "grey") -> np.ndarray:
  """The image file at `path` as a float32 (32, 32) crop for color="grey", (32, 32, 3) for
  color="rgb", pixel values 0..255: `read_image`, then `to_crop`; raises as `read_image` does."""
  return to_crop(read_image(path, color))


def _check_color(color: str) -> None:
  if color not in COLORS:
    raise ValueError(f"color={color!r}: expected one of {COLORS}")


class _Opened(NamedTuple):
  image: Image.Image  # the first frame, decoded and upright
  format: str | None  # Pillow's name of the file format, e.g. "PNG"
  orientation: int  # the EXIF orientation it was turned by; 1 for none


def _decode(path: Path, file: BinaryIO | None, color: str) -> tuple[_Opened, np.ndarray]:
  """The image file at `path` (read from `file` if given) opened, and its `pixels`; raises
  DataError naming `path` for each problem with the file."""
  try:
    opened = _open(path, file)
    return opened, pixels(opened.image, color)
  except MemoryError as e:
    raise DataError(f"{path} is too large to decode in the free memory; {_SAVE_SMALLER}") from e
  except ValueError as e:  # from `pixels`: about what the file holds, so name the file
    raise DataError(f"{path}: {e}") from e


def _open(path: Path, file: BinaryIO | None = None) -> _Opened:
  """The first frame of the image file at `path` (read from `file` if given), decoded and turned
  upright by its EXIF orientation; raises DataError for each problem with the file."""
  try:
    with warnings.catch_warnings():
      # Pillow only warns between MAX_IMAGE_PIXELS and twice it: decoding such a file could
      # still exhaust memory, so it is refused like a larger one.
      warnings.simplefilter("error", Image.DecompressionBombWarning)
      with Image.open(file or path) as image:
        image.load()
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        ImageOps.exif_transpose(image, in_place=True)
        return _Opened(image, image.format, orientation if orientation in _TURNED else 1)
  except PermissionError as e:
    raise DataError(f"{path}: permission denied; make it readable (chmod +r) or copy it where "
                    "it can be read") from e
  except UnidentifiedImageError as e:
    raise DataError(f"{path} is not an image that Pillow can read; expected PNG, JPEG, BMP, GIF, "
                    "TIFF or WebP") from e
  except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
    # Pillow gives the pixel count only in its message.
    found = re.search(r"\((\d+) pixels\)", str(e))
    count = f"{int(found[1]):,} pixels" if found else "too many pixels"
    raise DataError(f"{path} has {count}, over the {Image.MAX_IMAGE_PIXELS:,} that Pillow decodes "
                    f"safely (PIL.Image.MAX_IMAGE_PIXELS); {_SAVE_SMALLER}") from e
  except MemoryError:
    raise
  except Exception as e:
    # Pillow's decoders report damaged data as OSError, SyntaxError, ValueError, TypeError,
    # struct.error, ... (found by corrupting files of each format): all mean the file is bad.
    reason = " ".join(str(e).split()) or type(e).__name__
    raise DataError(f"{path} could not be read as an image (damaged or cut short?): {reason}; "
                    "save or download it again") from e


def _deep_grey(image: Image.Image) -> np.ndarray:
  """(H, W) float32 grey levels 0..255 of an I;16*, I or F image, by the rules of `pixels`."""
  values = np.asarray(image)
  if image.mode.startswith("I;16"):
    grey = values.astype(np.float32) / np.float32(257)
  else:
    if image.mode == "F" and not np.isfinite(values).all():
      raise ValueError("the float image has NaN or infinite values, which have no grey level; "
                       "replace them and save it again")
    low, high = values.min(), values.max()
    if image.mode == "F" and 0 <= low and high <= 1:
      grey = values * np.float32(255)
    elif low == high:
      grey = np.clip(values, 0, 255)
    else:
      # float64: int32 values lose their low bits in float32 before the stretch.
      grey = (values - np.float64(low)) * (255 / (np.float64(high) - low))
  key = image.info.get("transparency")
  if isinstance(key, int):
    grey = np.where(values == key, 255, grey)
  return grey.astype(np.float32)
