"""What every command-line entry point shares (main, predict, data, the experiments): flag
parsing with the config's own spellings, a user's error as one line, the console log, progress.

  cli.define_config("configs/demo.py", "A run config.")  # instead of DEFINE_config_file
  cli.run(main)                      # instead of absl's app.run(main)

`run` parses `--config` files and their `--config.<field>=` overrides (an override naming no
field, or a file that cannot load, is one line), sets up the log once, and runs `main` inside
`user_errors`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging as std_logging
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from svhn_jax import config as config_lib
from svhn_jax.errors import SvhnError, one_line

FLAGS = flags.FLAGS
# The command line --config reads its overrides from: `parse_flags` fills it with its argv less
# the overrides it parses itself (ml_collections reads sys.argv whole, and refuses a list field).
_CONFIG_ARGV: list[str] = []
# XLA's words for an allocation that failed.
_OUT_OF_MEMORY = ("Out of memory", "out of memory", "Allocator", "allocate")


@contextlib.contextmanager
def user_errors(on_interrupt: str = "stopped by Ctrl-C") -> Iterator[None]:
  """Turns a user's error into one line on stderr and its exit status; --verbosity=1 (or more)
  lets the traceback through instead. OSError counts as the user's (a folder that cannot be
  written, a full disk: its message names the path), and so does running out of memory."""
  try:
    yield
  except KeyboardInterrupt:
    if logging.get_verbosity() > logging.INFO:
      raise
    print(f"stopped: {on_interrupt}", file=sys.stderr)
    sys.exit(130)
  except (SvhnError, OSError, MemoryError) as e:
    if logging.get_verbosity() > logging.INFO:
      raise
    print(f"{getattr(e, 'label', 'error')}: {_message(e)}", file=sys.stderr)
    sys.exit(getattr(e, "exit_code", 1))
  except Exception as e:  # XLA's allocation failures arrive as JaxRuntimeError
    if logging.get_verbosity() > logging.INFO or not _out_of_memory(e):
      raise
    print(f"error: out of memory ({_message(e)[:200]}). Use a smaller config.train.batch_size "
          "or config.train.eval_batch_size, or fewer seeds at once (--multiseed=loop)",
          file=sys.stderr)
    sys.exit(1)


def _out_of_memory(e: Exception) -> bool:
  return (type(e).__name__ in ("JaxRuntimeError", "XlaRuntimeError")
          and "RESOURCE_EXHAUSTED" in str(e) and any(s in str(e) for s in _OUT_OF_MEMORY))


def _message(e: BaseException) -> str:
  if isinstance(e, MemoryError):
    return ("out of memory. Use a smaller config.train.batch_size or "
            "config.train.eval_batch_size, or a smaller dataset")
  return one_line(e)


def setup_logging() -> None:
  """The console log every entry point shows: the run's own INFO lines (progress, epochs,
  results) on stderr, without the INFO lines of JAX (its search for a TPU) and orbax (some
  twenty per checkpoint), unless --verbosity asks for more. Orbax's warnings and errors go too,
  and asyncio's (only orbax runs an event loop): they come from its writer threads, and a failed
  save reaches the user as this codebase's own one-line error (`checkpoint`), which they would
  bury under tracebacks."""
  logging.use_absl_handler()
  if logging.get_verbosity() > logging.INFO:
    return
  sys.unraisablehook = _quiet_closed_loops(sys.unraisablehook)
  logging.set_verbosity(logging.INFO)
  jax_dirs = tuple(f"{os.sep}{name}{os.sep}" for name in ("jax", "jaxlib"))
  orbax_dir = f"{os.sep}orbax{os.sep}"
  logging.get_absl_handler().addFilter(
      lambda record: orbax_dir not in record.pathname and record.name != "asyncio"
      and (record.levelno > std_logging.INFO
           or not any(d in record.pathname for d in jax_dirs)))


def _quiet_closed_loops(hook):
  """`hook` (sys.unraisablehook), less the reports of writes finishing after orbax closed their
  event loop: after a failed checkpoint save (a full disk) its writer threads raise one each,
  while the user's one-line error says what happened."""
  def quiet(unraisable):
    value = unraisable.exc_value
    if isinstance(value, RuntimeError) and str(value) == "Event loop is closed":
      return
    code = getattr(unraisable.object, "cr_code", None)
    if code is not None and f"{os.sep}orbax{os.sep}" in code.co_filename:
      return  # an orbax coroutine dropped after a failed restore, already reported in one line
    hook(unraisable)

  return quiet


class ArgumentParser(argparse.ArgumentParser):
  """argparse's parser for the entry points that take no --config (`svhn_jax.data`, the
  generators, benchmarks): a bad argument is one line, `error: <prog>: <what>; see --help`, with
  exit status 2, where argparse prints its usage block first. Subcommands' parsers are of this
  class too (argparse's `add_subparsers` makes them of the parent's class)."""

  def error(self, message: str):
    print(f"error: {self.prog}: {' '.join(message.split())}; see {self.prog} --help",
          file=sys.stderr)
    sys.exit(2)


def whole_number(low: int) -> Callable[[str], int]:
  """An argparse `type`: a whole number of at least `low`, else argparse's one-line error."""
  def parse(text: str) -> int:
    try:
      value = int(text)
    except ValueError:
      value = None
    if value is None or value < low:
      raise argparse.ArgumentTypeError(f"expected a whole number of at least {low}, got {text!r}")
    return value

  return parse


def positive_number(text: str) -> float:
  """An argparse `type`: a finite number above 0, else argparse's one-line error."""
  try:
    value = float(text)
  except ValueError:
    value = math.nan
  if not (math.isfinite(value) and value > 0):
    raise argparse.ArgumentTypeError(f"expected a finite number above 0, got {text!r}")
  return value


class progress_bar:
  """A tqdm bar on an interactive terminal; silent in logs and CI."""

  def __init__(self, total: int, desc: str, unit: str = "step"):
    from tqdm import tqdm

    self._bar = tqdm(total=total, desc=desc, leave=False, disable=None, unit=unit)

  def __enter__(self):
    return self._bar

  def __exit__(self, *exc):
    self._bar.close()


def define_config(default: str | None, help_string: str) -> None:
  """Defines --config, a config file with get_config() (`default` where the command line names
  none, e.g. 'configs/demo.py'), for `run` to parse with its `--config.<field>=` overrides.
  ml_collections, left to itself, parses a default and the overrides from sys.argv as the flag
  is defined, on import, where a misspelt field is a traceback rather than one line."""
  config_flags.DEFINE_config_file("config", default, help_string, lock_config=True,
                                  sys_argv=_CONFIG_ARGV)


def run(main: Callable[[list[str]], None], *, on_interrupt: str = "stopped by Ctrl-C",
        schema: Mapping[str, config_lib.Field] | None = None) -> None:
  """absl's `app.run(main)` with this codebase's flag parsing, log and one-line errors;
  `schema` is the --config's (default: a run config's, `config.RUN_SCHEMA`)."""
  app.run(lambda argv: _main(main, argv, on_interrupt),
          flags_parser=functools.partial(parse_flags, schema=schema))


def _main(main, argv, on_interrupt) -> None:
  setup_logging()
  with user_errors(on_interrupt):
    main(argv)



def parse_flags(argv: list[str], schema: Mapping[str, config_lib.Field] | None = None
                ) -> list[str]:
  """absl's flag parsing, plus: the optional-boolean and list fields' spellings (see
  `config.split_overrides`) of `schema`'s fields (default: `config.RUN_SCHEMA`), and a config
  file or field that cannot be used as one line."""
  schema = config_lib.RUN_SCHEMA if schema is None else schema
  try:
    # A --flagfile's lines too, so that its list and optional-boolean overrides are parsed here.
    argv = FLAGS.read_flags_from_files(argv, force_gnu=False)
    argv, values = config_lib.split_overrides(argv, schema)
    if "config" in FLAGS:
      argv = _naming_the_config(argv)
      _CONFIG_ARGV[:] = argv
    # FLAGS(argv) rather than app.parse_flags_with_usage, which prints absl's two-line FATAL
    # message for a value of the wrong type (--config.train.epochs=2.5).
    rest = FLAGS(argv)
    if "config" in FLAGS:
      # ml_collections keeps a config file's load error until the config is first read.
      FLAGS.config.get("seed")
      # A config file written before the models package may set config.model.depth etc.
      config_lib.move_renamed(FLAGS.config)
      config_lib.apply_overrides(FLAGS.config, values)
  except (SvhnError, flags.Error) as e:
    sys.exit(f"error: {e}")
  except (AttributeError, KeyError) as e:
    sys.exit(f"error: {_unknown_field(argv) or e}")
  except (OSError, SyntaxError) as e:
    sys.exit(f"error: {_config_load_problem(argv, e)}")
  except TypeError as e:
    sys.exit(f"error: {e}")
  return rest


def _naming_the_config(argv: list[str]) -> list[str]:
  """`argv` with --config=<its default> first where it names no config file, so that the file
  and its overrides are parsed here rather than when the flag was defined."""
  flag = FLAGS["config"]
  given = any(arg in ("--config", "-config") or re.match(r"^--?config=", arg) for arg in argv)
  if given or flag.default is None:
    return argv
  default = flag.default_as_str.strip("'")
  return [*argv[:1], f"--config={default}", *argv[1:]]


def _config_argument(argv: list[str]) -> str:
  for i, arg in enumerate(argv):
    if arg in ("--config", "-config") and i + 1 < len(argv):
      return argv[i + 1]
    if re.match(r"^--?config=", arg):
      return arg.split("=", 1)[1]
  return FLAGS["config"].default_as_str.strip("'") if "config" in FLAGS else ""


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
