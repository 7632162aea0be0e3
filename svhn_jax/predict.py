"""Predicts the digit in image files with the best weights of a trained run.

  python -m svhn_jax.predict --workdir=runs/cnn2 crop1.png crop2.jpg
  python -m svhn_jax.predict --workdir=runs/cnn2 --json crop1.png

Any size or colour is accepted and made into a crop as the study's data was: greyscale by
luma (0.299 R + 0.587 G + 0.114 B), widened to a square around its centre, resized bilinearly
to 32x32. The run's own preprocessing (its mask, for a masked run) is then applied. The images
and the workdir are checked before JAX starts: a missing, unreadable or non-image file stops
with one line on stderr; --verbosity=1 adds the traceback.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import ml_collections
import numpy as np
from absl import app, flags
from PIL import Image, ImageOps, UnidentifiedImageError

from svhn_jax import cli
from svhn_jax.data import IMAGE_SHAPE
from svhn_jax.errors import CheckpointError, DataError

FLAGS = flags.FLAGS


def define_flags() -> None:
  # Defined only when run as a program: scripts that import the functions have their own flags.
  flags.DEFINE_string("workdir", None, "The workdir of a trained run, e.g. runs/cnn2.")
  flags.DEFINE_bool("json", False, "Print one JSON object per image: file, digit, probability, "
                    "probabilities (all ten).")
  flags.mark_flags_as_required(["workdir"])


def greyscale(image: Image.Image) -> np.ndarray:
  """Returns the image as float32 (H, W) grey levels 0..255."""
  if image.mode.startswith("I;16"):
    # 16-bit greyscale: Pillow's convert('L') would clip rather than rescale it.
    return np.asarray(image, np.float32) / np.float32(257)
  return np.asarray(image.convert("L"), np.float32)


def to_crop(grey: np.ndarray) -> np.ndarray:
  """Returns a (H, W) grey image as a (32, 32) crop: widened to a square of side max(H, W)
  around its centre (edge pixels repeated), then resized bilinearly, as SVHN's crops were made."""
  h, w = grey.shape
  side = max(h, w)
  top, left = (side - h) // 2, (side - w) // 2
  square = np.pad(grey, ((top, side - h - top), (left, side - w - left)), mode="edge")
  resized = Image.fromarray(square.astype(np.float32)).resize(
      IMAGE_SHAPE[::-1], Image.BILINEAR)
  return np.clip(np.asarray(resized, np.float32), 0, 255)


def load_image(path: str | Path) -> np.ndarray:
  """The image file at `path` as a (32, 32) float32 crop with pixel values 0..255."""
  path = Path(path)
  if not path.exists():
    raise DataError(f"{path}: no such file")
  if not path.is_file():
    raise DataError(f"{path} is not a file; expected an image (PNG, JPEG, ...)")
  try:
    with Image.open(path) as image:
      # Phones store photos sideways with an EXIF flag; turn them the way they were seen.
      grey = greyscale(ImageOps.exif_transpose(image))
  except UnidentifiedImageError as e:
    raise DataError(f"{path} is not an image that Pillow can read; expected PNG, JPEG, BMP, GIF, "
                    "TIFF or WebP") from e
  except OSError as e:  # PIL's "image file is truncated", or no permission to read
    raise DataError(f"{path} could not be read as an image (damaged or cut short?): {e}") from e
  return to_crop(grey)


def saved_config(workdir: str | Path) -> ml_collections.ConfigDict:
  """The config that trained `workdir`, checked to have come with checkpoints."""
  workdir = Path(workdir)
  path = workdir / "config.json"
  if not workdir.is_dir():
    raise CheckpointError(f"--workdir={workdir}: no such folder; expected the workdir of a run "
                          "trained with python -m svhn_jax.main")
  if not path.is_file() or not (workdir / "checkpoints").is_dir():
    raise CheckpointError(f"{workdir} holds no trained run (config.json and checkpoints/); "
                          "expected the workdir of a run trained with python -m svhn_jax.main")
  try:
    return ml_collections.ConfigDict(json.loads(path.read_text()))
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise CheckpointError(f"{path} is not the JSON config a run writes: {e}") from e


def probabilities(config: ml_collections.ConfigDict, workdir: str | Path,
                  images: np.ndarray) -> np.ndarray:
  """(N, 10) class probabilities of (N, 32, 32) images (0..255) under the run's best weights."""
  # Imported here: JAX takes seconds to start, and bad input is reported before that.
  from svhn_jax import checkpoint, evaluate, models, train

  workdir = Path(workdir)
  tx = train.make_optimizer(config.train.learning_rate, config.train.adam_eps)
  model = models.create_model(config.model.name, seed=config.seed,
                              impl=config.model.get("impl", "fast"))
  graphdef, like = train.init_state(model, tx)
  ckpts = checkpoint.Checkpoints(workdir)
  try:
    restored = ckpts.restore_best(like) or ckpts.restore_latest(like)
  finally:
    ckpts.close()
  if restored is None:
    raise CheckpointError(f"{workdir / 'checkpoints'} is empty: the run saved no epoch yet")
  state = train.TrainState(*restored[0])
  mask = np.load(workdir / "mask.npy") if config.data.preprocess == "mask" else None
  logits = train.predict_logits(graphdef, state.params, state.batch_stats,
                                train.prepare_images(images, mask),
                                batch_size=train.inference_chunk(config.train.eval_batch_size,
                                                                 model))
  return evaluate.softmax(np.asarray(logits, np.float64))


def lines(paths: Sequence[str], probs: np.ndarray, as_json: bool) -> list[str]:
  """One output line per image: 'file: digit (probability)', or a JSON object."""
  out = []
  for path, p in zip(paths, probs):
    digit, probability = int(p.argmax()), float(p.max())
    if as_json:
      out.append(json.dumps({"file": str(path), "digit": digit, "probability": probability,
                             "probabilities": [round(float(q), 6) for q in p]}))
    else:
      out.append(f"{path}: {digit} ({probability:.1%})")
  return out


def main(argv: list[str]) -> None:
  paths = argv[1:]
  if not paths:
    raise app.UsageError("Give one or more image files to read digits from.")
  cli.hide_library_info()
  with cli.user_errors():
    images = np.stack([load_image(path) for path in paths])
    probs = probabilities(saved_config(FLAGS.workdir), FLAGS.workdir, images)
  print("\n".join(lines(paths, probs, FLAGS.json)))


if __name__ == "__main__":
  define_flags()
  app.run(main)
