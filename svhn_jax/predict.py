"""Reads image files with the best weights of a trained run, as the run's task reads them.

  python -m svhn_jax.predict --workdir=runs/cnn2 crop1.png crop2.jpg        # a digit per crop
  python -m svhn_jax.predict --workdir=runs/cnn2 --json crop1.png
  python -m svhn_jax.predict --workdir=runs/numbers photo1.png              # a number per photo
  python -m svhn_jax.predict --workdir=runs/numbers --box=12,30,80,41 photo.png
  python -m svhn_jax.predict --workdir=runs/locate street.jpg              # the number's box
  python -m svhn_jax.predict --workdir=runs/numbers --locator=runs/locate street.jpg
  python -m svhn_jax.predict --workdir=runs/locate --refine_passes=0 street.jpg  # one pass

`python -m svhn_jax.read` is the same program (its old name for numbers runs). What a file
becomes and what is printed is the run's task's (`svhn_jax.tasks`, `Task.read_files` and
`Task.answer_line`; --json prints {'file': path, ...the answer} per file):

- a digit run (config.task=digit): any size, colour mode or transparency is accepted
  (`svhn_jax.images`) and made into a crop as the study's data was: greyscale by luma (0.299 R
  + 0.587 G + 0.114 B; kept in colour for a run trained with config.data.color=rgb), widened to
  a square around its centre, resized bilinearly to 32x32, then the run's own preprocessing
  (its mask, for a masked run). Prints 'file: digit (probability)'; --json gives file, digit,
  probability, probabilities (all ten).
- a numbers run (config.task=number): each photo is the number's crop, or with
  --box=left,top,width,height (pixels from the top-left corner, as SVHN's digitStruct.mat boxes)
  that box widened by the run's config.data.numbers.eval_margin per side (`tasks.number`).
  Prints the number read, its probability, the length and each digit with its probability;
  --json gives file, number, probability, length, length_probability, digits.
- a locator run (config.task=locate, issue 31): prints the box found around the number, in the
  file's pixels (left,top,width,height), and its confidence (the IoU the locator predicts for
  it); --json gives file, box, confidence. The box is found coarse to fine: on the whole photo,
  then --refine_passes times (default 2; 0: the first pass alone) on a window around the last
  box (`tasks.locate.locate_photos`).
- a numbers run with --locator=LOCATOR (the workdir of a locator run): each photo is located
  by LOCATOR (in its --refine_passes), and the box found is read as a --box would be (widened
  by the reader's eval_margin); the line ends with the box and its confidence, --json adds
  'box' and 'box_confidence'. A --box overrides the locator (which is then not run; its
  workdir is still checked).

The images, the options and the workdir are checked before JAX starts: a missing, unreadable,
too large or non-image file, a --box the run's task does not take or that is not four numbers,
stops with one line on stderr; --verbosity=1 adds the traceback.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from absl import app, flags

from svhn_jax import cli, inference, tasks
from svhn_jax.errors import CheckpointError, ConfigError

FLAGS = flags.FLAGS


def define_flags() -> None:
  # Defined only when run as a program: scripts that import the functions have their own flags.
  flags.DEFINE_string("workdir", None, "The workdir of a trained run, e.g. runs/cnn2.")
  flags.DEFINE_bool("json", False, "Print one JSON object per file: the file and what the run "
                    "reads in it (a digit run: digit, probability, probabilities; a numbers "
                    "run: number, probability, length, length_probability, digits).")
  flags.DEFINE_string("box", None, "Numbers runs: left,top,width,height of the box around the "
                      "number's digits, in pixels; default: the whole photo is the number's crop.")
  flags.DEFINE_string("locator", None, "The workdir of a locator run (config.task=locate): "
                      "find each photo's number with it, then read that box with --workdir's "
                      "numbers run.")
  flags.DEFINE_integer("refine_passes", None, "Locator runs (--workdir or --locator): the "
                       "passes after the first, each on a window around the last box found "
                       "(default 2; 0: the whole photo's pass alone).")
  flags.mark_flags_as_required(["workdir"])


def lines(task, paths: Sequence[str], answers: Sequence[dict], as_json: bool) -> list[str]:
  """One output line per file: the task's `answer_line`, or {'file': path, **answer} as JSON;
  an answer located by --locator ends with its box and confidence."""
  if as_json:
    return [json.dumps({"file": str(path), **answer}) for path, answer in zip(paths, answers)]
  out = []
  for path, answer in zip(paths, answers):
    line = task.answer_line(path, answer)
    if answer.get("box_confidence") is not None:
      box = ",".join(f"{v:.1f}" for v in answer["box"])
      line += f"  [box {box}, confidence {answer['box_confidence']:.1%}]"
    out.append(line)
  return out


def check_locator(locator: str):
  """(the locator run's saved config, its task) for --locator=`locator`, read without JAX.
  Raises CheckpointError for a folder that holds no run, ConfigError for a run whose task finds
  no boxes (a digit or numbers run)."""
  if not locator or not Path(locator).is_dir():
    raise CheckpointError(f"--locator={locator}: no such folder; expected the workdir of a "
                          "locator run (python -m svhn_jax.main --config=configs/locate.py)")
  config = inference.saved_config(locator)
  task = tasks.get(config)
  if not getattr(task, "finds_boxes", False):
    raise ConfigError(f"--locator={locator} holds a run of config.task={tasks.name_of(config)}, "
                      "which finds no boxes; expected the workdir of a locator run "
                      "(config.task=locate, configs/locate.py)")
  return config, task


def read_files(workdir: str, paths: Sequence[str], locator: str | None = None,
               refine_passes: int | None = None, **options) -> tuple[object, list[dict]]:
  """(the run's task, its answer per file of `paths`) for the run in `workdir`, `options` as the
  CLI's ('box': text or None). With `locator` (the workdir of a locator run) and no 'box', each
  file's box is found by it first and handed to the run's task as options['boxes'] (float64
  (N, 4), left, top, width, height in pixels, one per file); each answer then also holds 'box'
  (that box) and 'box_confidence'. `refine_passes` (None: the locator's default) goes to the
  locator, `locator`'s or `workdir`'s run (options['refine_passes']). Raises CheckpointError for
  a workdir without a usable run, ConfigError for an option the run's task does not take, a
  locator that is no locator run or a --refine_passes without one, DataError for a file it
  cannot read; the files are read before the weights."""
  config = inference.saved_config(workdir)
  task = tasks.get(config)
  options = {"box": None, **options}
  finds_boxes = getattr(task, "finds_boxes", False)
  if refine_passes is not None and locator is None and not finds_boxes:
    raise ConfigError(f"--refine_passes={refine_passes}: --workdir={workdir} holds a run of "
                      f"config.task={tasks.name_of(config)}, which finds no boxes; give it with "
                      "--locator=LOCATOR, or --workdir a locator run")
  if locator is None:
    if finds_boxes:
      options["refine_passes"] = refine_passes
    return task, task.read_files(Path(workdir), config, paths, options)
  locator_config, locator_task = check_locator(locator)
  if options["box"] is not None:
    return task, task.read_files(Path(workdir), config, paths, options)
  found = locator_task.read_files(Path(locator), locator_config, paths,
                                  {"box": None, "refine_passes": refine_passes})
  boxes = np.array([answer["box"] for answer in found], np.float64).reshape(-1, 4)
  answers = task.read_files(Path(workdir), config, paths, {**options, "boxes": boxes})
  return task, [{**answer, "box": where["box"], "box_confidence": where["confidence"]}
                for answer, where in zip(answers, found)]


def main(argv: list[str]) -> None:
  paths = argv[1:]
  if not paths:
    raise app.UsageError("Give one or more image files to read.")
  task, answers = read_files(FLAGS.workdir, paths, locator=FLAGS.locator,
                             refine_passes=FLAGS.refine_passes, box=FLAGS.box)
  print("\n".join(lines(task, paths, answers, FLAGS.json)))


if __name__ == "__main__":
  define_flags()
  cli.run(main)
