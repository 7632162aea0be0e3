"""Reads the house number in photos with the best weights of a trained numbers run.

  python -m svhn_jax.read --workdir=runs/numbers photo1.png photo2.jpg
  python -m svhn_jax.read --workdir=runs/numbers --json photo.png
  python -m svhn_jax.read --workdir=runs/numbers --box=12,30,80,41 photo.png

Prints per photo the number read, the probability of that whole number, and each digit with
its probability; --json prints one JSON object per photo instead: file, number (text; '+' after
five digits for "more than 5"), probability, length, length_probability and digits (a list of
{digit, probability}). The number is read as Goodfellow et al. 2013 (arXiv 1312.6082) decode it:
each position's most probable digit and the length that makes the whole number most probable.

Photos may have any size and colour mode (`svhn_jax.images`: transparency over white, 16-bit
and float images scaled, EXIF orientation applied). Without --box the whole photo is the number's
crop: a numbers run trains on margins up to the number's own size on each side
(config.data.numbers.margin_high), so a photo framed loosely around its number reads. With
--box=left,top,width,height (pixels, x right and y down from the top-left corner, as SVHN's
digitStruct.mat boxes) the box around the number's digits is widened by the run's
config.data.numbers.eval_margin per side (Goodfellow's 15%) and clipped to the photo, as the
test photos were; the same box applies to every photo given. Either crop is resized to 64x64
without keeping its aspect ratio, and its centre 54x54 is read.

The photos, the box and the workdir are checked before JAX starts: a missing or unreadable file,
a box that is not four numbers with a positive width and height or that misses a photo, or a
workdir without a numbers run stops with one line on stderr; --verbosity=1 adds the traceback.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
from absl import app, flags

from svhn_jax import cli, evaluate, house_numbers, images, inference, tasks
from svhn_jax.errors import ConfigError, DataError
from svhn_jax.models import number_reader

FLAGS = flags.FLAGS


def define_flags() -> None:
  # Defined only when run as a program: scripts that import the functions have their own flags.
  flags.DEFINE_string("workdir", None, "The workdir of a trained numbers run (config.task=number),"
                      " e.g. runs/numbers.")
  flags.DEFINE_bool("json", False, "Print one JSON object per photo: file, number, probability, "
                    "length, length_probability, digits.")
  flags.DEFINE_string("box", None, "left,top,width,height of the box around the number's digits,"
                      " in pixels; default: the whole photo is the number's crop.")
  flags.mark_flags_as_required(["workdir"])


def parse_box(text: str) -> np.ndarray:
  """float64 (4,) (left, top, width, height) from 'left,top,width,height'. Raises ConfigError,
  one line naming --box, unless it is four finite numbers with width and height above 0."""
  parts = [part.strip() for part in text.split(",")]
  try:
    box = np.array([float(part) for part in parts], np.float64)
  except ValueError:
    box = None
  if box is None or box.shape != (4,) or not np.isfinite(box).all() or (box[2:] <= 0).any():
    raise ConfigError(f"--box={text!r}: expected left,top,width,height in pixels, four numbers "
                      "with a width and height above 0 (e.g. --box=12,30,80,41)")
  return box


def number_crop(path: str, color: str = "grey", box: np.ndarray | None = None,
                margin: float = house_numbers.GOODFELLOW_MARGIN) -> np.ndarray:
  """The photo file at `path` as the 64x64 number crop a numbers run reads: uint8 (64, 64) for
  color="grey", (64, 64, 3) for "rgb". The whole photo without `box`; else `box` (left, top,
  width, height) widened by `margin` per side (`house_numbers.number_box`) and clipped to the
  photo. Raises DataError for an unreadable file (`images.read_image`) and a box that lies
  wholly outside the photo."""
  pixels = np.round(images.read_image(path, color)).astype(np.uint8)
  height, width = pixels.shape[:2]
  if box is None:
    crop_box = np.array([0.0, 0.0, width, height])
  else:
    left, top, box_w, box_h = box
    if left >= width or top >= height or left + box_w <= 0 or top + box_h <= 0:
      raise DataError(f"--box={','.join(f'{v:g}' for v in box)} lies outside {path} "
                      f"({width}x{height} pixels); give the number's box in that photo's pixels")
    crop_box = house_numbers.number_box(box[None], margin, (width, height))
  return house_numbers.crop_number(pixels, crop_box, house_numbers.SIZE, color)


def readings(logits: np.ndarray) -> list[dict]:
  """Per row of logits (N, 57): {'number', 'probability', 'length', 'length_probability',
  'digits': [{'digit', 'probability'} per digit read]}, probabilities as floats in [0, 1]."""
  logits = np.asarray(logits, np.float64)
  decoded = tasks.decode(logits)
  lengths, digits, log_prob = (np.asarray(a) for a in decoded)
  length_logits, digit_logits = number_reader.split_logits(logits)
  length_probs, digit_probs = evaluate.softmax(length_logits), evaluate.softmax(digit_logits)
  out = []
  for i, length in enumerate(lengths):
    shown = min(int(length), house_numbers.MAX_DIGITS)
    out.append({
        "number": evaluate.number_text(length, digits[i]),
        "probability": float(math.exp(log_prob[i])),
        "length": int(length),
        "length_probability": float(length_probs[i, length]),
        "digits": [{"digit": int(digits[i, k]),
                    "probability": float(digit_probs[i, k, digits[i, k]])} for k in range(shown)],
    })
  return out


def lines(paths: Sequence[str], read: Sequence[dict], as_json: bool) -> list[str]:
  """One output line per photo: 'file: number (probability)  digits: d p, ...', or JSON."""
  out = []
  for path, r in zip(paths, read):
    if as_json:
      out.append(json.dumps({"file": str(path), **r}))
      continue
    digits = ", ".join(f"{d['digit']} {d['probability']:.1%}" for d in r["digits"])
    out.append(f"{path}: {r['number'] or '(no number)'} ({r['probability']:.1%})  "
               f"length {r['length']} {r['length_probability']:.1%}; digits: {digits or '-'}")
  return out


def read_photos(workdir: str, paths: Sequence[str], box: np.ndarray | None = None) -> list[dict]:
  """`readings` of the photo files `paths` by the numbers run in `workdir` (see `number_crop`).
  Raises CheckpointError for a workdir without a usable run, ConfigError for a digit run, and
  DataError for a photo it cannot read; the photos are read before the weights."""
  config = inference.saved_config(workdir)
  if config.task != "number":
    raise ConfigError(f"--workdir={workdir} holds a run of config.task={config.task!r}; reading "
                      "whole numbers needs a numbers run (configs/numbers.py). For digit crops "
                      "use python -m svhn_jax.predict")
  crops = np.stack([number_crop(path, config.data.color, box, config.data.numbers.eval_margin)
                    for path in paths])
  return readings(inference.run_logits(inference.load_run(workdir), crops))


def main(argv: list[str]) -> None:
  paths = argv[1:]
  if not paths:
    raise app.UsageError("Give one or more photos to read house numbers from.")
  box = parse_box(FLAGS.box) if FLAGS.box is not None else None
  print("\n".join(lines(paths, read_photos(FLAGS.workdir, paths, box), FLAGS.json)))


if __name__ == "__main__":
  define_flags()
  cli.run(main)
