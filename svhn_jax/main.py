"""Trains and evaluates one configured run.

  python -m svhn_jax.main --config=configs/cnn2.py --workdir=runs/cnn2 --config.train.epochs=3

Re-running the same command on the same workdir resumes from its latest checkpoint. Ctrl-C or
SIGTERM finishes and saves the current epoch, then stops. A config, data file or workdir that the
run cannot use stops it before training with one line on stderr; --verbosity=1 adds the traceback.

Several processes (hosts) run the same command, each with its own --process_id:

  python -m svhn_jax.main --config=configs/cnn2.py --workdir=/shared/runs/cnn2 \
      --coordinator_address=host0:1234 --num_processes=2 --process_id=0

or, where JAX finds them itself (Cloud TPU pods, SLURM, Open MPI), with --distributed alone.
"""

import re
import sys
from pathlib import Path

import ml_collections
from absl import app, flags
from ml_collections import config_flags

from svhn_jax import cli, interrupts, preflight

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

_SECOND_SIGNAL = ("Ctrl-C stopped the run at once: the workdir keeps its last saved epoch, if "
                  "any. Run the same command to resume.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  cli.hide_library_info()
  config_file = config_flags.get_config_filename(FLAGS["config"])
  workdir = FLAGS.workdir or str(Path("runs") / Path(config_file).stem)
  with cli.user_errors(_SECOND_SIGNAL):
    if FLAGS.distributed or FLAGS.num_processes or FLAGS.coordinator_address:
      # Before preflight: it may open checkpoints, which starts JAX, and processes cannot join
      # the distributed runtime after that. Imported here so bad input fails before JAX loads.
      from svhn_jax import parallel

      parallel.initialize(distributed=FLAGS.distributed,
                          coordinator_address=FLAGS.coordinator_address,
                          num_processes=FLAGS.num_processes, process_id=FLAGS.process_id)
    preflight.check_run(FLAGS.config, workdir)
    # Imported only now: JAX takes seconds to start, and bad input is reported before that.
    from svhn_jax import train

    with interrupts.deferred():
      train.train_and_evaluate(FLAGS.config, workdir)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with a config file or field it cannot use reported in one line."""
  try:
    rest = app.parse_flags_with_usage(argv)
    # ml_collections keeps a config file's load error until the config is first read.
    FLAGS.config.get("model")
  except (AttributeError, KeyError) as e:
    sys.exit(f"error: {_unknown_field(argv) or e}")
  except (OSError, SyntaxError) as e:
    sys.exit(f"error: {_config_load_problem(argv, e)}")
  return rest


def _config_argument(argv: list[str]) -> str:
  for i, arg in enumerate(argv):
    if arg in ("--config", "-config") and i + 1 < len(argv):
      return argv[i + 1]
    if re.match(r"^--?config=", arg):
      return arg.split("=", 1)[1]
  return ""


def _config_load_problem(argv: list[str], e: OSError | SyntaxError) -> str:
  argument = _config_argument(argv)
  if isinstance(e, SyntaxError):
    return f"--config={argument}: {e.msg} at line {e.lineno}"
  # A config file may be followed by ":arguments" for its get_config.
  if not Path(argument.split(":", 1)[0]).is_file():
    return f"--config={argument}: no such file; expected a Python file with get_config()"
  return f"--config={argument} cannot be loaded: {str(e).splitlines()[-1].strip()}"


def _unknown_field(argv: list[str]) -> str | None:
  """Which --config.a.b=... override names no field of the config file, and what fields exist."""
  config = FLAGS["config"].parser.parse(_config_argument(argv))
  for arg in argv:
    if not re.match(r"^--?(no)?config\.", arg):
      continue
    flag = arg.split("=", 1)[0]
    node, walked = config, "config"
    for name in flag.split(".")[1:]:
      fields = sorted(node) if isinstance(node, ml_collections.ConfigDict) else []
      if name not in fields:
        return (f"{flag}: {walked} has no field {name!r}"
                + (f"; its fields are {', '.join(fields)}" if fields else ""))
      node, walked = node[name], f"{walked}.{name}"
  return None


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main, flags_parser=parse_flags)
