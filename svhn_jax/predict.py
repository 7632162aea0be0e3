"""Predicts the digit in image files with the best weights of a trained run.

  python -m svhn_jax.predict --workdir=runs/cnn2 crop1.png crop2.jpg
  python -m svhn_jax.predict --workdir=runs/cnn2 --json crop1.png

Any size, colour mode or transparency is accepted (`svhn_jax.images`) and made into a crop as
the study's data was: greyscale by luma (0.299 R + 0.587 G + 0.114 B; kept in colour for a run
trained with config.data.color=rgb), widened to a square around its centre, resized bilinearly
to 32x32. The run's own preprocessing (its mask, for a masked run)
is then applied. The images and the workdir are checked before JAX starts: a missing,
unreadable, too large or non-image file stops with one line on stderr; --verbosity=1 adds the
traceback.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
from absl import app, flags

from svhn_jax import cli, images, inference
from svhn_jax.errors import ConfigError

FLAGS = flags.FLAGS


def define_flags() -> None:
  # Defined only when run as a program: scripts that import the functions have their own flags.
  flags.DEFINE_string("workdir", None, "The workdir of a trained run, e.g. runs/cnn2.")
  flags.DEFINE_bool("json", False, "Print one JSON object per image: file, digit, probability, "
                    "probabilities (all ten).")
  flags.mark_flags_as_required(["workdir"])


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
  config = inference.saved_config(FLAGS.workdir)
  if config.task != "digit":
    raise ConfigError(f"--workdir={FLAGS.workdir} holds a numbers run (config.task="
                      f"{config.task!r}); read its photos with python -m svhn_jax.read")
  crops = np.stack([images.load_crop(path, color=config.data.color) for path in paths])
  probs = inference.predict_probs(inference.load_run(FLAGS.workdir), crops)
  print("\n".join(lines(paths, probs, FLAGS.json)))


if __name__ == "__main__":
  define_flags()
  cli.run(main)
