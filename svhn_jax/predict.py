"""Predicts the digit in image files with the best weights of a trained run.

  python -m svhn_jax.predict --workdir=runs/cnn2 crop1.png crop2.jpg

Each image is read as greyscale and resized to 32x32, like the study's crops, and prepared as the
run prepared its training data. One line per image: the file, the digit, its probability. The
images and the workdir are checked before JAX starts: a missing, unreadable or non-image file
stops with one line on stderr; --verbosity=1 adds the traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import ml_collections
import numpy as np
from absl import app, flags
from PIL import Image, UnidentifiedImageError

from svhn_jax import cli
from svhn_jax.data import IMAGE_SHAPE
from svhn_jax.errors import CheckpointError, DataError

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "The workdir of a run trained by python -m svhn_jax.main.")


def load_image(path: str | Path) -> np.ndarray:
  """The image file at `path` as a (32, 32) float32 greyscale crop with pixel values 0..255."""
  path = Path(path)
  if not path.exists():
    raise DataError(f"{path}: no such file")
  if not path.is_file():
    raise DataError(f"{path} is not a file; expected an image (PNG, JPEG, ...)")
  try:
    with Image.open(path) as image:
      grey = image.convert("L")
  except UnidentifiedImageError as e:
    raise DataError(f"{path} is not an image that Pillow can read; expected PNG, JPEG, BMP, GIF, "
                    "TIFF or WebP") from e
  except OSError as e:  # PIL's "image file is truncated", or no permission to read
    raise DataError(f"{path} could not be read as an image (damaged or cut short?): {e}") from e
  return np.asarray(grey.resize(IMAGE_SHAPE[::-1], Image.BILINEAR), np.float32)


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
  """(N, 10) class probabilities of (N, 32, 32) images under the run's best weights."""
  # Imported here: JAX takes seconds to start, and bad input is reported before that.
  from svhn_jax import checkpoint, evaluate, models, train

  workdir = Path(workdir)
  tx = train.make_optimizer(config.train.learning_rate, config.train.adam_eps)
  graphdef, like = train.init_state(models.create_model(config.model.name, seed=config.seed), tx)
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
                                batch_size=config.train.eval_batch_size)
  return evaluate.softmax(np.asarray(logits, np.float64))


def main(argv: list[str]) -> None:
  paths = argv[1:]
  if not paths:
    raise app.UsageError("Give one or more image files to read digits from.")
  cli.hide_library_info()
  with cli.user_errors():
    images = np.stack([load_image(path) for path in paths])
    probs = probabilities(saved_config(FLAGS.workdir), FLAGS.workdir, images)
  for path, p in zip(paths, probs):
    print(f"{path}\t{p.argmax()}\t{p.max():.3f}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["workdir"])
  app.run(main)
