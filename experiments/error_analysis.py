"""Predictions and errors of one run on its test split, as the study showed them.

  python -m experiments.error_analysis                                  # trains the demo run
  python -m experiments.error_analysis --workdir=runs/cnn2              # analyses a finished run
  python -m experiments.error_analysis --workdir=runs/numbers           # a whole-numbers run

A finished --workdir is analysed as it was trained (its config.json); an unfinished one is
trained (or resumed) with --config first (--config=configs/numbers.py for a numbers run).
Writes report.md and figures/ into --results_dir.

The report is the run's task's (`svhn_jax.tasks`, `Task.analysis`): a digit run
(config.task=digit) gets its predictions, per-class scores, confusion matrix, most-confused pairs,
misclassified images and high-confidence errors (svhn_jax/tasks/digit.py); a whole-house-numbers
run (config.task=number) its sequence, digit and length accuracy and coverage at 98%, the
numbers read from random and from misread test photos, the length confusion, accuracy by number
length, the coverage curve, the misreads made with a probability above --threshold, and the kinds
of misread, counted (svhn_jax/tasks/number_analysis.py).
"""

from pathlib import Path

import ml_collections
from absl import app, flags

from svhn_jax import cli, inference, report, tasks, train

FLAGS = flags.FLAGS
cli.define_config("configs/demo.py", "The run config, used to train --workdir if it holds no "
                  "finished run.")
flags.DEFINE_string("workdir", None, "The run to analyse (default: <results_dir>/run).")
flags.DEFINE_string("results_dir", "results/error_analysis", "Where report.md and figures go.")
flags.DEFINE_float("threshold", 0.85, lower_bound=0.0, upper_bound=1.0,
                   help="Errors made with a probability above this (0..1) are listed as "
                   "high-confidence errors.")
flags.DEFINE_integer("grid", 20, "Images per grid (4 rows of 5).", lower_bound=1)

GREEN, RED = "tab:green", "tab:red"



def finished_run(config: ml_collections.ConfigDict, workdir: Path) -> report.Run:
  """The run in `workdir`, trained (or resumed) with `config` first unless it has finished."""
  if not (workdir / "test_metrics.json").exists():
    train.train_and_evaluate(config, workdir)
  return report.read_run(workdir)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  out = Path(FLAGS.results_dir)
  workdir = Path(FLAGS.workdir or out / "run")
  run = finished_run(FLAGS.config, workdir)
  loaded = inference.load_run(workdir)
  text = tasks.get(loaded.config).analysis(run, loaded, out, FLAGS.grid, FLAGS.threshold)
  print(report.write(out / "report.md", text))


if __name__ == "__main__":
  cli.run(main)
