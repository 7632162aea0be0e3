"""Predictions and errors of one run on its test split, as the study showed them.

  python -m experiments.error_analysis                                  # trains the demo run
  python -m experiments.error_analysis --workdir=runs/cnn2              # analyses a finished run
  python -m experiments.error_analysis --workdir=runs/numbers           # a whole-numbers run

A finished --workdir is analysed as it was trained (its config.json); an unfinished one is
trained (or resumed) with --config first (--config=configs/numbers.py for a numbers run).
Writes report.md and figures/ into --results_dir.

A digit run (config.task=digit) gets its predictions, per-class scores, confusion matrix,
most-confused pairs, misclassified images and high-confidence errors. A whole-house-numbers run
(config.task=number) gets its sequence, digit and length accuracy and coverage at 98%, the
numbers read from random and from misread test photos, the length confusion, accuracy by number
length, the coverage curve, the misreads made with a probability above --threshold, and the kinds
of misread (wrong length, or right length and a wrong digit), counted.
"""

from pathlib import Path

import ml_collections
import numpy as np
from absl import app, flags

from svhn_jax import (cli, data, evaluate, house_numbers, inference, plots, report, tasks,
                      train)

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


def confident_sections(kind: str, confident: int, wrong: int, threshold: float) -> list[str]:
  """The heading and sentence of the high-confidence section: how many of the `wrong` answers
  (`kind`: 'errors' or 'misreads') were given with a probability above `threshold`."""
  share = report.percent(confident / wrong) if wrong else "n/a"
  return [f"## High-confidence {kind} (probability above {threshold:.0%})",
          f"{confident} of {wrong} {kind} ({share}) were made with a probability above "
          f"{threshold:.0%}: a confidence cut-off at {threshold:.0%} would not flag them."]


# ---------------------------------------------------------------------------------------------
# Digit runs (config.task=digit): labels int32 (N,) 0..9, probabilities float64 (N, 10).

def prediction_grid(images, labels, probs, indices, path: Path, title: str) -> Path:
  """A grid of images[indices] (N, H, W[, C]) titled with the true digit of `labels` (N,), the
  digit predicted by `probs` (N, 10) and its probability, framed green where right."""
  predicted, confidence = probs.argmax(-1), probs.max(-1)
  return plots.image_grid(
      [images[i] for i in indices],
      [f"true {labels[i]}, pred {predicted[i]}\n{confidence[i]:.0%}" for i in indices],
      path, cols=5, title=title,
      borders=[GREEN if predicted[i] == labels[i] else RED for i in indices])


def pairs_table(run: report.Run, k: int = 5) -> str:
  """The `k` most-confused (true, predicted) digit pairs of the run's test confusion matrix."""
  confusion = np.asarray(run.test["confusion_matrix"])
  support = confusion.sum(axis=1)
  rows = [[str(t), str(p), str(n), report.percent(n / support[t])]
          for t, p, n in evaluate.confused_pairs(confusion, k)]
  return report.table(("true digit", "predicted as", "test images", "share of that digit"),
                      rows)


def confident_table(indices, labels, probs, k: int = 10) -> str:
  """The first `k` of `indices` (test image numbers) with their true digit (`labels` (N,)), the
  digit predicted and its probability (`probs` (N, 10))."""
  rows = [[str(i), str(labels[i]), str(probs[i].argmax()), report.percent(probs[i].max())]
          for i in indices[:k]]
  return report.table(("test image", "true digit", "predicted", "probability"), rows)


def markdown(run: report.Run, test: data.Split, probs: np.ndarray, out: Path, grid: int,
             threshold: float) -> str:
  """The report of a digit run: `test` images (N, H, W[, C]) and labels int32 (N,), `probs`
  float64 (N, 10) its predictions; figures are written under out/figures."""
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
  sections += confident_sections("errors", len(confident), len(wrong), threshold)
  if len(confident):
    sections += [confident_table(confident, labels, probs), report.image(prediction_grid(
        test.images, labels, probs, confident[:grid], figs / "confident_errors.png",
        "The most confident errors"), out, "high-confidence errors")]
  return "\n\n".join(sections)


# ---------------------------------------------------------------------------------------------
# Whole-house-numbers runs (config.task=number): labels int32 (N, 6) = [length class 0..6, five
# digits, NO_DIGIT past the length], logits float32 (N, 57), read by `tasks.decode`.

LENGTH_CLASSES = evaluate.LENGTH_CLASSES
# The kinds of misread, in the order `error_kinds` counts them.
ERROR_KINDS = ("length read too short", "length read too long",
               "right length, one digit wrong", "right length, two or more digits wrong")


def length_name(length: int) -> str:
  """A length class 0..6 in words: '3', or 'more than 5' for class 6."""
  return "more than 5" if int(length) > house_numbers.MAX_DIGITS else str(int(length))


def number_label(length: int, digits: np.ndarray) -> str:
  """`evaluate.number_text` of a length class and digits int (5,), '(none)' for length 0."""
  return evaluate.number_text(length, digits) or "(none)"


def decoded_numbers(logits: np.ndarray) -> tasks.Decoded:
  """`tasks.decode` of logits (N, 57) as numpy arrays: lengths int32 (N,), digits int32 (N, 5),
  log_prob float32 (N,)."""
  return tasks.Decoded(*(np.asarray(a) for a in tasks.decode(np.asarray(logits))))


def reading_grid(images, labels: np.ndarray, decoded: tasks.Decoded, right: np.ndarray,
                 indices, path: Path, title: str) -> Path:
  """A grid of images[indices] (the 64x64 number crops, (N, 64, 64[, 3])) titled with the true
  number of `labels` (N, 6), the number read (`decoded`) and its probability, framed green where
  `right` (bool (N,)) and red where not."""
  titles = [f"true {number_label(labels[i, 0], labels[i, 1:])}\n"
            f"read {number_label(decoded.lengths[i], decoded.digits[i])} "
            f"({np.exp(decoded.log_prob[i]):.0%})" for i in indices]
  return plots.image_grid([images[i] for i in indices], titles, path, cols=5, title=title,
                          borders=[GREEN if right[i] else RED for i in indices])


def error_kinds(decoded: tasks.Decoded, labels: np.ndarray) -> dict[str, int]:
  """How many numbers of `labels` (N, 6) `decoded` misreads, by kind (`ERROR_KINDS`): the length
  read shorter or longer than the true one, or the right length with one, or more, of the digits
  up to it wrong. Numbers read right are not counted."""
  true_lengths = labels[:, 0]
  shorter = decoded.lengths < true_lengths
  longer = decoded.lengths > true_lengths
  same = decoded.lengths == true_lengths
  wrong_digits = np.sum(decoded.digits != labels[:, 1:], axis=-1)
  return dict(zip(ERROR_KINDS, (int(shorter.sum()), int(longer.sum()),
                                int((same & (wrong_digits == 1)).sum()),
                                int((same & (wrong_digits > 1)).sum()))))


def digit_substitutions(decoded: tasks.Decoded, labels: np.ndarray) -> np.ndarray:
  """int64 (10, 10): over the numbers whose length is read right, how often each true digit
  (row) was read as each digit (column), at the positions up to the length."""
  same = decoded.lengths == labels[:, 0]
  true_digits, read_digits = labels[same, 1:], decoded.digits[same]
  present = true_digits != evaluate.NO_DIGIT
  counts = np.zeros((evaluate.NO_DIGIT, evaluate.NO_DIGIT), np.int64)
  np.add.at(counts, (true_digits[present], read_digits[present]), 1)
  return counts


def length_confusion_table(confusion) -> str:
  """The length confusion matrix (7 x 7 counts, true length class by row, read by column) as a
  markdown table."""
  headers = ("true length", *(f"read {length_name(k)}" for k in range(LENGTH_CLASSES)))
  return report.table(headers, [[length_name(k), *map(str, row)]
                                for k, row in enumerate(np.asarray(confusion))])


def by_length_table(by_length: dict) -> str:
  """`evaluate.number_scores`' accuracy_by_length ({'1': {'count', 'sequence_accuracy'}, ...})
  as a markdown table."""
  return report.table(("digits in the number", "test photos", "sequence accuracy"),
                      [[length_name(k), str(row["count"]), report.percent(row["sequence_accuracy"])]
                       for k, row in by_length.items()])


def misreads_table(indices, labels: np.ndarray, decoded: tasks.Decoded, k: int = 10) -> str:
  """The first `k` of `indices` (test photo numbers) with their true number (`labels` (N, 6)),
  the number read and its probability."""
  rows = [[str(i), number_label(labels[i, 0], labels[i, 1:]),
           number_label(decoded.lengths[i], decoded.digits[i]),
           report.percent(float(np.exp(decoded.log_prob[i])))] for i in indices[:k]]
  return report.table(("test photo", "true number", "read", "probability"), rows)


def number_data_text(data_cfg: dict) -> str:
  """Which photos a numbers run's config `data` field names, in words."""
  if data_cfg["path"]:
    where = f"`{data_cfg['path']}` ({data_cfg['source']})"
  elif data_cfg["source"] == "synthetic":
    sizes = data_cfg["synthetic"]
    where = (f"generated photos, {sizes['train']:,} training ({data_cfg['val_size']:,} of them "
             f"carved for validation) and {sizes['test']:,} test (seed {sizes['seed']})")
  else:
    where = "SVHN's format 1 photos"
  return (f"{where}, test numbers cropped with a margin of "
          f"{data_cfg['numbers']['eval_margin']:g} of their box per side, {data_cfg['color']}")


def run_figure(run: report.Run, name: str, out: Path, draw) -> Path:
  """The run's figures/<name> if training wrote it, else `draw(out / 'figures' / name)`."""
  path = run.workdir / "figures" / name
  return path if path.is_file() else draw(out / "figures" / name)


def number_markdown(run: report.Run, test: data.Split, logits: np.ndarray, out: Path, grid: int,
                    threshold: float) -> str:
  """The report of a whole-house-numbers run: `test` crops uint8 (N, 64, 64[, 3]) and labels
  int32 (N, 6), `logits` float32 (N, 57) the run's on them (`inference.run_logits`, which reads
  their centre 54x54); figures are written under out/figures. Headline scores are the run's
  test_metrics.json; the photos shown and counted are those `logits` read."""
  labels = np.asarray(test.labels)
  decoded = decoded_numbers(logits)
  right = evaluate.sequences_right(decoded.lengths, decoded.digits, labels)
  confidence = np.exp(decoded.log_prob.astype(np.float64))
  wrong = np.flatnonzero(~right)
  confident = evaluate.confident_wrong(confidence, right, threshold)
  scores = run.test
  rng = np.random.default_rng(run.config["seed"])
  shown = rng.choice(len(labels), size=min(grid, len(labels)), replace=False)
  figs = out / "figures"
  model = run.config["model"]
  sections = [
      f"# Error analysis: whole house numbers ({model['name']}, size {model.get('size', '?')})",
      f"Run: `{run.workdir}` (seed {run.config['seed']}, best epoch {scores['best_epoch']} "
      f"of {scores['epochs_run']}). Data: {number_data_text(run.config['data'])}.",
      f"Sequence accuracy {report.percent(scores['sequence_accuracy'])}: {len(wrong)} of "
      f"{len(labels)} test photos misread (the whole number, length and every digit, must be "
      "right).",
      report.table(("sequence accuracy", "digit accuracy", "length accuracy", "coverage at 98%",
                    "test photos"),
                   [[report.percent(scores["sequence_accuracy"]),
                     report.percent(scores["digit_accuracy"]),
                     report.percent(scores["length_accuracy"]),
                     report.percent(scores["coverage_at_98"]), str(scores["num_examples"])]]),
      "Coverage at 98%: the largest share of test photos that can be answered, refusing the "
      "least confident first, with the numbers answered 98% right (arXiv 1312.6082).",
      "## Numbers read",
      report.image(reading_grid(test.images, labels, decoded, right, shown,
                                figs / "numbers_read.png",
                                "Random test photos (green: right, red: wrong)"),
                   out, "numbers read from random test photos"),
      "## Length confusion (test)",
      length_confusion_table(scores["length_confusion_matrix"]),
      "## Accuracy by number length",
      by_length_table(scores["accuracy_by_length"]),
      report.image(run_figure(run, "accuracy_by_length.png", out, lambda path: (
          plots.accuracy_by_length(scores["accuracy_by_length"], path))),
          out, "sequence accuracy by number length"),
  ]
  if scores.get("accuracy_by_margin"):
    sections += ["Sequence accuracy of the test photos cropped with other margins:",
                 report.table(("margin per side", "sequence accuracy"),
                              [[m, report.percent(a)]
                               for m, a in scores["accuracy_by_margin"].items()])]
  sections += [
      "## Coverage against accuracy",
      report.image(run_figure(run, "coverage.png", out, lambda path: plots.coverage_curve(
          *evaluate.coverage_curve(confidence, right), scores["coverage_at_98"], path)),
          out, "coverage against accuracy"),
      "## Misread photos",
  ]
  if len(wrong):
    picked = np.sort(rng.choice(wrong, size=min(grid, len(wrong)), replace=False))
    sections.append(report.image(reading_grid(
        test.images, labels, decoded, right, picked, figs / "misread.png",
        "Misread test photos (true number, number read, its probability)"),
        out, "misread test photos"))
  kinds = error_kinds(decoded, labels)
  wrong_length = kinds[ERROR_KINDS[0]] + kinds[ERROR_KINDS[1]]
  sections += [
      "## Kinds of misread",
      f"Of {len(wrong)} misread photos, {wrong_length} have the wrong length and "
      f"{len(wrong) - wrong_length} the right length but a wrong digit.",
      report.table(("kind of misread", "test photos", "share of misreads"),
                   [[kind, str(n), report.percent(n / len(wrong)) if len(wrong) else "n/a"]
                    for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1])]),
  ]
  length_pairs = evaluate.confused_pairs(np.asarray(scores["length_confusion_matrix"]))
  if length_pairs:
    sections += ["The most common wrong lengths:", report.table(
        ("true length", "read as", "test photos"),
        [[length_name(t), length_name(p), str(n)] for t, p, n in length_pairs])]
  digit_pairs = evaluate.confused_pairs(digit_substitutions(decoded, labels))
  if digit_pairs:
    sections += ["The most common wrong digits, in numbers whose length was read right:",
                 report.table(("true digit", "read as", "times"),
                              [[str(t), str(p), str(n)] for t, p, n in digit_pairs])]
  sections += confident_sections("misreads", len(confident), len(wrong), threshold)
  if len(confident):
    sections += [misreads_table(confident, labels, decoded), report.image(reading_grid(
        test.images, labels, decoded, right, confident[:grid], figs / "confident_misreads.png",
        "The most confident misreads"), out, "high-confidence misreads")]
  return "\n\n".join(sections)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  out = Path(FLAGS.results_dir)
  workdir = Path(FLAGS.workdir or out / "run")
  run = finished_run(FLAGS.config, workdir)
  loaded = inference.load_run(workdir)
  task = tasks.from_config(loaded.config)
  test = task.load(loaded.config.data)[0].test
  if isinstance(task, tasks.NumberTask):
    text = number_markdown(run, test, inference.run_logits(loaded, test.images), out, FLAGS.grid,
                           FLAGS.threshold)
  else:
    probs = inference.predict_probs(loaded, test.images)
    text = markdown(run, test, probs, out, FLAGS.grid, FLAGS.threshold)
  print(report.write(out / "report.md", text))


if __name__ == "__main__":
  cli.run(main)
