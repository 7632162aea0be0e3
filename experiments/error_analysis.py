"""Predictions and errors of one run on its test split, as the study showed them.

  python -m experiments.error_analysis                                  # trains the demo run
  python -m experiments.error_analysis --workdir=runs/cnn2              # analyses a finished run

A finished --workdir is analysed as it was trained (its config.json); an unfinished one is
trained (or resumed) with --config first. Writes report.md and figures/ into --results_dir.
"""

from pathlib import Path

import ml_collections
import numpy as np
from absl import app, flags
from ml_collections import config_flags

from svhn_jax import cli, data, evaluate, inference, plots, report, sources, train

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", "configs/demo.py", "The run config, used to train "
                                "--workdir if it holds no finished run.", lock_config=True)
flags.DEFINE_string("workdir", None, "The run to analyse (default: <results_dir>/run).")
flags.DEFINE_string("results_dir", "results/error_analysis", "Where report.md and figures go.")
flags.DEFINE_float("threshold", 0.85, "Errors made with a probability above this are listed as "
                   "high-confidence errors.")
flags.DEFINE_integer("grid", 20, "Images per grid (4 rows of 5).")

GREEN, RED = "tab:green", "tab:red"


def finished_run(config: ml_collections.ConfigDict, workdir: Path) -> report.Run:
  if not (workdir / "test_metrics.json").exists():
    train.train_and_evaluate(config, workdir)
  return report.read_run(workdir)


def prediction_grid(images, labels, probs, indices, path: Path, title: str) -> Path:
  predicted, confidence = probs.argmax(-1), probs.max(-1)
  return plots.image_grid(
      [images[i] for i in indices],
      [f"true {labels[i]}, pred {predicted[i]}\n{confidence[i]:.0%}" for i in indices],
      path, cols=5, title=title,
      borders=[GREEN if predicted[i] == labels[i] else RED for i in indices])


def pairs_table(run: report.Run, k: int = 5) -> str:
  confusion = np.asarray(run.test["confusion_matrix"])
  support = confusion.sum(axis=1)
  rows = [[str(t), str(p), str(n), report.percent(n / support[t])]
          for t, p, n in evaluate.confused_pairs(confusion, k)]
  return report.table(("true digit", "predicted as", "test images", "share of that digit"),
                      rows)


def confident_table(indices, labels, probs, k: int = 10) -> str:
  rows = [[str(i), str(labels[i]), str(probs[i].argmax()), report.percent(probs[i].max())]
          for i in indices[:k]]
  return report.table(("test image", "true digit", "predicted", "probability"), rows)


def markdown(run: report.Run, test: data.Split, probs: np.ndarray, out: Path, grid: int,
             threshold: float) -> str:
  labels = test.labels
  wrong = np.flatnonzero(probs.argmax(-1) != labels)
  confident = evaluate.confident_errors(probs, labels, threshold)
  rng = np.random.default_rng(run.config["seed"])
  shown = rng.choice(len(labels), size=min(grid, len(labels)), replace=False)
  figs = out / "figures"
  random_grid = prediction_grid(test.images, labels, probs, shown, figs / "predictions.png",
                                "Random test images (green: right, red: wrong)")
  sections = [
      f"# Error analysis: {run.config['model']['name'].upper()}",
      f"Run: `{run.workdir}` (seed {run.config['seed']}, best epoch {run.test['best_epoch']} "
      f"of {run.test['epochs_run']}). Data: {report.data_text(run.config['data'])}.",
      f"Test accuracy {report.percent(run.test_accuracy)}: {len(wrong)} of {len(labels)} test "
      "images misclassified.",
      "## Predictions",
      report.image(random_grid, out, "random test predictions"),
      "## Per-class scores (test)",
      report.table(report.PER_CLASS_HEADERS, report.per_class_rows([run])),
      report.image(run.workdir / "figures" / "confusion_matrix.png", out, "confusion matrix"),
      "## Most-confused pairs",
      pairs_table(run),
      "## Misclassified images",
  ]
  if len(wrong):
    picked = np.sort(rng.choice(wrong, size=min(grid, len(wrong)), replace=False))
    sections.append(report.image(prediction_grid(
        test.images, labels, probs, picked, figs / "errors.png", "Misclassified test images"),
        out, "misclassified test images"))
  sections += [
      f"## High-confidence errors (probability above {threshold:.0%})",
      f"{len(confident)} of {len(wrong)} errors "
      f"({report.percent(len(confident) / len(wrong)) if len(wrong) else 'n/a'}) were made with "
      f"a probability above {threshold:.0%}: a confidence cut-off at {threshold:.0%} would not "
      "flag them.",
  ]
  if len(confident):
    sections += [confident_table(confident, labels, probs), report.image(prediction_grid(
        test.images, labels, probs, confident[:grid], figs / "confident_errors.png",
        "The most confident errors"), out, "high-confidence errors")]
  return "\n\n".join(sections)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  out = Path(FLAGS.results_dir)
  workdir = Path(FLAGS.workdir or out / "run")
  run = finished_run(FLAGS.config, workdir)
  loaded = inference.load_run(workdir)
  test = sources.load(loaded.config.data)[0].test
  probs = inference.predict_probs(loaded, test.images)
  print(report.write(out / "report.md",
                     markdown(run, test, probs, out, FLAGS.grid, FLAGS.threshold)))


if __name__ == "__main__":
  cli.run(main)
