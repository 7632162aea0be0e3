"""Trains and evaluates one configured run.

  python -m svhn_jax.main --config=configs/cnn2.py --workdir=runs/cnn2 --config.train.epochs=3

Re-running the same command on the same workdir resumes from its latest checkpoint; a config
that would change what the run computes is refused (--restart discards the old run instead).
Ctrl-C or SIGTERM finishes and saves the current epoch (validation period, in a run counted in
steps), then stops. A config, data file or
workdir that the run cannot use stops it before training with one line on stderr;
--verbosity=1 adds the traceback. A second run on a workdir in use stops at once.

Several processes (hosts) run the same command, each with its own --process_id:

  python -m svhn_jax.main --config=configs/cnn2.py --workdir=/shared/runs/cnn2 \
      --coordinator_address=host0:1234 --num_processes=2 --process_id=0

or, where JAX finds them itself (Cloud TPU pods, SLURM, Open MPI), with --distributed alone.
"""

import contextlib
from pathlib import Path

from absl import app, flags
from ml_collections import config_flags

from svhn_jax import cli, interrupts, parallel, preflight, runlock, train
from svhn_jax import config as config_lib

FLAGS = flags.FLAGS
cli.define_config(None, "A config file with get_config(), e.g. configs/cnn2.py.")
flags.DEFINE_string("workdir", None, "Where the run's checkpoints, metrics and figures go "
                    "(default: runs/<config file name>).")
flags.DEFINE_bool("restart", False, "Discard the workdir's previous run (checkpoints, metrics, "
                  "figures) and train from scratch.")
flags.DEFINE_bool("distributed", False, "Join JAX's distributed runtime "
                  "(jax.distributed.initialize), detecting the processes as JAX does on Cloud "
                  "TPU, SLURM and Open MPI. Implied by the three flags below.")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0, the same for every "
                    "process of a multi-process run.")
flags.DEFINE_integer("num_processes", None, "How many processes the run spans.")
flags.DEFINE_integer("process_id", None, "This process's index, 0 .. num_processes-1.")

_SECOND_SIGNAL = ("Ctrl-C stopped the run at once: the workdir keeps its last saved epoch, if "
                  "any. Run the same command to resume.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  config_file = config_flags.get_config_filename(FLAGS["config"])
  workdir = Path(FLAGS.workdir or Path("runs") / Path(config_file).stem)
  config_lib.validate(FLAGS.config)
  # Before the lock, which makes the workdir a folder.
  preflight.check_workdir(workdir)
  # Before anything else that may start JAX: processes cannot join the runtime after that.
  distributed = parallel.initialize(distributed=FLAGS.distributed,
                                    coordinator_address=FLAGS.coordinator_address,
                                    num_processes=FLAGS.num_processes, process_id=FLAGS.process_id)
  # Asked only of a distributed run: the question starts JAX's backend, which a bad config
  # should never wait for.
  primary = not distributed or parallel.is_primary()
  with runlock.hold(workdir) if primary else contextlib.nullcontext():
    loaded = preflight.check_run(FLAGS.config, workdir, restart=FLAGS.restart)
    if FLAGS.restart and primary:
      train.clear_workdir(workdir)
    with interrupts.deferred():
      train.train_and_evaluate(FLAGS.config, workdir, loaded=loaded)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  cli.run(main, on_interrupt=_SECOND_SIGNAL)
