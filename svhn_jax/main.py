"""Trains and evaluates one configured run.

  python -m svhn_jax.main --config=configs/cnn2.py --workdir=runs/cnn2 --config.train.epochs=3

Re-running the same command on the same workdir resumes from its latest checkpoint.

Several processes (hosts) run the same command, each with its own --process_id:

  python -m svhn_jax.main --config=configs/cnn2.py --workdir=/shared/runs/cnn2 \
      --coordinator_address=host0:1234 --num_processes=2 --process_id=0

or, where JAX finds them itself (Cloud TPU pods, SLURM, Open MPI), with --distributed alone.
"""

import sys
from pathlib import Path

from absl import app, flags, logging
from ml_collections import config_flags

from svhn_jax import parallel, train
from svhn_jax.errors import SvhnError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", None, "A config file with get_config(), e.g. configs/cnn2.py.", lock_config=True)
flags.DEFINE_string("workdir", None, "Where the run's checkpoints, metrics and figures go "
                    "(default: runs/<config file name>).")
flags.DEFINE_bool("distributed", False, "Join JAX's distributed runtime "
                  "(jax.distributed.initialize), detecting the processes as JAX does on Cloud "
                  "TPU, SLURM and Open MPI. Implied by the three flags below.")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0, the same for every "
                    "process of a multi-process run.")
flags.DEFINE_integer("num_processes", None, "How many processes the run spans.")
flags.DEFINE_integer("process_id", None, "This process's index, 0 .. num_processes-1.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  workdir = FLAGS.workdir or str(
      Path("runs") / Path(config_flags.get_config_filename(FLAGS["config"])).stem)
  parallel.initialize(distributed=FLAGS.distributed,
                      coordinator_address=FLAGS.coordinator_address,
                      num_processes=FLAGS.num_processes, process_id=FLAGS.process_id)
  try:
    train.train_and_evaluate(FLAGS.config, workdir)
  except SvhnError as e:
    if logging.get_verbosity() > logging.INFO:
      raise
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main)
