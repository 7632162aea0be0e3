"""The error analysis of a whole-house-numbers run (`number.NumberTask.analysis`, for
experiments/error_analysis.py): labels int32 (N, 6) = [length class 0..6, five digits, NO_DIGIT
past the length], logits float32 (N, 57), read by `number.decode`.

Its sequence, digit and length accuracy and coverage at 98%, the numbers read from random and
from misread test photos, the length confusion, accuracy by number length, the coverage curve,
the misreads made with a probability above a threshold, and the kinds of misread (wrong length,
or right length and a wrong digit), counted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from svhn_jax import evaluate, house_numbers, plots, report
from svhn_jax.house_numbers import NO_DIGIT
from svhn_jax.models.number_reader import LENGTH_CLASSES
from svhn_jax.tasks import number

GREEN, RED = "tab:green", "tab:red"
# The kinds of misread, in the order `error_kinds` counts them.
ERROR_KINDS = ("length read too short", "length read too long",
               "right length, one digit wrong", "right length, two or more digits wrong")


def length_name(length: int) -> str:
  """A length class 0..6 in words: '3', or 'more than 5' for class 6."""
  return "more than 5" if int(length) > house_numbers.MAX_DIGITS else str(int(length))


def number_label(length: int, digits: np.ndarray) -> str:
  """`number.number_text` of a length class and digits int (5,), '(none)' for length 0."""
  return number.number_text(length, digits) or "(none)"


def reading_grid(images, labels: np.ndarray, decoded: number.Decoded, right: np.ndarray,
                 indices, path: Path, title: str) -> Path:
  """A grid of images[indices] (the 64x64 number crops, (N, 64, 64[, 3])) titled with the true
  number of `labels` (N, 6), the number read (`decoded`) and its probability, framed green where
  `right` (bool (N,)) and red where not."""
  titles = [f"true {number_label(labels[i, 0], labels[i, 1:])}\n"
            f"read {number_label(decoded.lengths[i], decoded.digits[i])} "
            f"({np.exp(decoded.log_prob[i]):.0%})" for i in indices]
  return plots.image_grid([images[i] for i in indices], titles, path, cols=5, title=title,
                          borders=[GREEN if right[i] else RED for i in indices])


def error_kinds(decoded: number.Decoded, labels: np.ndarray) -> dict[str, int]:
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


def digit_substitutions(decoded: number.Decoded, labels: np.ndarray) -> np.ndarray:
  """int64 (10, 10): over the numbers whose length is read right, how often each true digit
  (row) was read as each digit (column), at the positions up to the length."""
  same = decoded.lengths == labels[:, 0]
  true_digits, read_digits = labels[same, 1:], decoded.digits[same]
  present = true_digits != NO_DIGIT
  counts = np.zeros((NO_DIGIT, NO_DIGIT), np.int64)
  np.add.at(counts, (true_digits[present], read_digits[present]), 1)
  return counts


def length_confusion_table(confusion) -> str:
  """The length confusion matrix (7 x 7 counts, true length class by row, read by column) as a
  markdown table."""
  headers = ("true length", *(f"read {length_name(k)}" for k in range(LENGTH_CLASSES)))
  return report.table(headers, [[length_name(k), *map(str, row)]
                                for k, row in enumerate(np.asarray(confusion))])


def by_length_table(by_length: dict) -> str:
  """`number.number_scores`' accuracy_by_length ({'1': {'count', 'sequence_accuracy'}, ...})
  as a markdown table."""
  return report.table(("digits in the number", "test photos", "sequence accuracy"),
                      [[length_name(k), str(row["count"]), report.percent(row["sequence_accuracy"])]
                       for k, row in by_length.items()])


def misreads_table(indices, labels: np.ndarray, decoded: number.Decoded, k: int = 10) -> str:
  """The first `k` of `indices` (test photo numbers) with their true number (`labels` (N, 6)),
  the number read and its probability."""
  rows = [[str(i), number_label(labels[i, 0], labels[i, 1:]),
           number_label(decoded.lengths[i], decoded.digits[i]),
           report.percent(float(np.exp(decoded.log_prob[i])))] for i in indices[:k]]
  return report.table(("test photo", "true number", "read", "probability"), rows)


def run_figure(run: report.Run, name: str, out: Path, draw) -> Path:
  """The run's figures/<name> if training wrote it, else `draw(out / 'figures' / name)`."""
  path = run.workdir / "figures" / name
  return path if path.is_file() else draw(out / "figures" / name)


def _best(scores: dict) -> str:
  """Which validation's weights the run kept: 'best step 750 of 3000' for a run counted in steps
  (test_metrics.json's best_step, steps_run), else 'best epoch 5 of 7'."""
  if "best_step" in scores:
    return f"best step {scores['best_step']} of {scores['steps_run']}"
  return f"best epoch {scores['best_epoch']} of {scores['epochs_run']}"


def markdown(run: report.Run, test, logits: np.ndarray, out: Path, grid: int,
             threshold: float) -> str:
  """The report of a whole-house-numbers run: `test` crops uint8 (N, 64, 64[, 3]) and labels
  int32 (N, 6), `logits` float32 (N, 57) the run's on them (`inference.run_logits`, which reads
  their centre 54x54); figures are written under out/figures. Headline scores are the run's
  test_metrics.json; the photos shown and counted are those `logits` read."""
  labels = np.asarray(test.labels)
  decoded = number.decode_host(logits)
  right = number.sequences_right(decoded.lengths, decoded.digits, labels)
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
      f"Run: `{run.workdir}` (seed {run.config['seed']}, {_best(scores)}). "
      f"Data: {number.NUMBER.data_text(run.config['data'])}.",
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
          *number.coverage_curve(confidence, right), scores["coverage_at_98"], path)),
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
  sections += report.confident_sections("misreads", len(confident), len(wrong), threshold)
  if len(confident):
    sections += [misreads_table(confident, labels, decoded), report.image(reading_grid(
        test.images, labels, decoded, right, confident[:grid], figs / "confident_misreads.png",
        "The most confident misreads"), out, "high-confidence misreads")]
  return "\n\n".join(sections)
