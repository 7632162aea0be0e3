"""Trains and evaluates one configured run.

  python -m svhn_jax.main --config=configs/cnn2.py --workdir=runs/cnn2 --config.train.epochs=3

Re-running the same command on the same workdir resumes from its latest checkpoint.
"""

import sys
from pathlib import Path

from absl import app, flags, logging
from ml_collections import config_flags

from svhn_jax import train
from svhn_jax.errors import SvhnError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "A config file with get_config(), e.g. configs/cnn2.py.", lock_config=True)
flags.DEFINE_string("workdir", None, "Where the run's checkpoints, metrics and figures go "
                    "(default: runs/<config file name>).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  workdir = FLAGS.workdir or str(
      Path("runs") / Path(config_flags.get_config_filename(FLAGS["config"])).stem)
  try:
    train.train_and_evaluate(FLAGS.config, workdir)
  except SvhnError as e:
    if logging.get_verbosity() > logging.INFO:
      raise
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main)
