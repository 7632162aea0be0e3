"""Scores of a model's test predictions: accuracy, per-class report, confusion matrix."""

from __future__ import annotations

import numpy as np
from sklearn import metrics

from svhn_jax.transforms import NUM_CLASSES

CLASS_NAMES = tuple(str(d) for d in range(NUM_CLASSES))


def softmax(logits: np.ndarray) -> np.ndarray:
  z = logits - logits.max(axis=-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis=-1, keepdims=True)


def scores(logits: np.ndarray, labels: np.ndarray) -> dict:
  """JSON-ready scores: accuracy, cross-entropy, per-class precision/recall/F1, confusion matrix."""
  labels = np.asarray(labels)
  predictions = logits.argmax(axis=-1)
  probs = softmax(logits.astype(np.float64))
  loss = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None)).mean()
  per_class = metrics.classification_report(
      labels, predictions, labels=range(NUM_CLASSES), target_names=CLASS_NAMES, output_dict=True,
      zero_division=0)
  return {
      "accuracy": float((predictions == labels).mean()),
      "loss": float(loss),
      "num_examples": int(len(labels)),
      "classification_report": per_class,
      "confusion_matrix": metrics.confusion_matrix(labels, predictions, labels=range(NUM_CLASSES)).tolist(),
  }


def report_text(scores: dict) -> str:
  """The scikit-learn classification report table, rebuilt from `scores`' dict."""
  rows = scores["classification_report"]
  lines = [f"{'':>12} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}"]
  for name in (*CLASS_NAMES, "macro avg", "weighted avg"):
    r = rows[name]
    lines.append(f"{name:>12} {r['precision']:9.4f} {r['recall']:9.4f} {r['f1-score']:9.4f} "
                 f"{int(r['support']):9d}")
  lines.append(f"{'accuracy':>12} {scores['accuracy']:29.4f} {scores['num_examples']:9d}")
  return "\n".join(lines)


def confused_pairs(confusion: np.ndarray, k: int = 5) -> list[tuple[int, int, int]]:
  """The `k` largest off-diagonal cells of a confusion matrix: (true, predicted, count), most
  frequent first, ties broken by (true, predicted); pairs never confused are left out."""
  confusion = np.asarray(confusion)
  cells = [(int(confusion[t, p]), t, p) for t in range(confusion.shape[0])
           for p in range(confusion.shape[1]) if t != p and confusion[t, p] > 0]
  cells.sort(key=lambda cell: (-cell[0], cell[1], cell[2]))
  return [(t, p, count) for count, t, p in cells[:k]]


def confident_errors(probs: np.ndarray, labels: np.ndarray, threshold: float = 0.85) -> np.ndarray:
  """Indices of wrong predictions made with probability above `threshold`, most confident
  first: errors that no confidence cut-off would catch."""
  probs, labels = np.asarray(probs), np.asarray(labels)
  return confident_wrong(probs.max(axis=-1), probs.argmax(axis=-1) == labels, threshold)


def confident_wrong(confidence: np.ndarray, right: np.ndarray,
                    threshold: float = 0.85) -> np.ndarray:
  """int64 indices (K,) of the answers not `right` (bool (N,)) whose `confidence` (float (N,))
  is above `threshold`, most confident first (ties in index order): for a digit run the
  probability of the class predicted, for a numbers run that of the whole number read."""
  confidence, right = np.asarray(confidence), np.asarray(right, bool)
  chosen = np.flatnonzero(~right & (confidence > threshold))
  return chosen[np.argsort(-confidence[chosen], kind="stable")]


# ---------------------------------------------------------------------------------------------
# Whole house numbers (config.task=number): labels int32 (N, 6) = [length class, 5 digits],
# NO_DIGIT (10) past the length, as svhn_jax.house_numbers.number_labels makes them.

NO_DIGIT = 10
LENGTH_CLASSES = 7  # 0..5 digits and "more than 5" (arXiv 1312.6082 section 3)
# Goodfellow et al.'s operating point: the share of photos answered at 98% accuracy, human
# operators' accuracy (arXiv 1312.6082 section 5.1).
COVERAGE_ACCURACY = 0.98


def sequences_right(lengths: np.ndarray, digits: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """bool (N,): numbers read right whole, i.e. the length class (N,) and every digit (N, 5)
  equal to labels (N, 6) (digits past the length are NO_DIGIT in both)."""
  labels = np.asarray(labels)
  return (np.asarray(lengths) == labels[:, 0]) & np.all(np.asarray(digits) == labels[:, 1:], -1)


def coverage_curve(confidence: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(coverage, accuracy), float64 (K,) each: answering only the photos whose `confidence` (N,)
  is at least a threshold, the share answered and the share of those `right` (N,), for every
  threshold that separates two distinct confidences (ties are answered or refused together),
  from the most confident photos alone to all of them."""
  confidence, right = np.asarray(confidence, np.float64), np.asarray(right, bool)
  if not len(confidence):
    return np.zeros(0), np.zeros(0)
  order = np.argsort(-confidence, kind="stable")
  sorted_conf = confidence[order]
  answered = np.arange(1, len(order) + 1)
  accuracy = np.cumsum(right[order]) / answered
  # A cut after position k - 1 is a threshold only where the next photo is less confident.
  cuts = np.flatnonzero(np.append(sorted_conf[1:] < sorted_conf[:-1], True))
  return answered[cuts] / len(order), accuracy[cuts]


def coverage_at(confidence: np.ndarray, right: np.ndarray,
                target: float = COVERAGE_ACCURACY) -> float:
  """The largest share of photos that can be answered, refusing the least confident, while the
  answered ones are at least `target` right (arXiv 1312.6082's coverage at 98% accuracy); 0.0
  when even the most confident ones fall short."""
  coverage, accuracy = coverage_curve(confidence, right)
  reached = coverage[accuracy >= target]
  return float(reached.max()) if len(reached) else 0.0


def number_text(length: int, digits: np.ndarray) -> str:
  """A number read as text: its digits, '+' after five for "more than 5", '' for length 0."""
  shown = "".join(str(int(d)) for d in np.asarray(digits)[:min(int(length), len(digits))])
  return shown + ("+" if int(length) > len(digits) else "")


def number_scores(lengths: np.ndarray, digits: np.ndarray, log_prob: np.ndarray,
                  labels: np.ndarray) -> dict:
  """JSON-ready scores of numbers read (length classes (N,), digits (N, 5), log probability of
  each number read (N,)) against labels (N, 6):

  - sequence_accuracy: the whole number right (length and every digit); also as 'accuracy', the
    name every run's test_metrics.json gives its headline score;
  - digit_accuracy: the share of true digit positions (those up to min(length, 5)) where the
    number read has the right digit (a position past the length read counts as wrong), and
    digit_accuracy_by_position, the same per position 1..5 (None where no number reaches it);
  - length_accuracy, and length_confusion_matrix (7 x 7 counts, true length class by row);
  - accuracy_by_length: per true length class present, {'count', 'sequence_accuracy'};
  - coverage_at_98: `coverage_at` with the probability of the number read as confidence.
  """
  labels = np.asarray(labels)
  lengths, digits = np.asarray(lengths), np.asarray(digits)
  right = sequences_right(lengths, digits, labels)
  true_digits = labels[:, 1:]
  present = true_digits != NO_DIGIT
  digit_right = (digits == true_digits) & present
  by_position = [float(digit_right[:, i].sum() / present[:, i].sum()) if present[:, i].any()
                 else None for i in range(true_digits.shape[1])]
  confusion = np.zeros((LENGTH_CLASSES, LENGTH_CLASSES), np.int64)
  np.add.at(confusion, (labels[:, 0], np.clip(lengths, 0, LENGTH_CLASSES - 1)), 1)
  by_length = {str(k): {"count": int((labels[:, 0] == k).sum()),
                        "sequence_accuracy": float(right[labels[:, 0] == k].mean())}
               for k in range(LENGTH_CLASSES) if (labels[:, 0] == k).any()}
  sequence_accuracy = float(right.mean()) if len(right) else 0.0
  return {
      "accuracy": sequence_accuracy,
      "sequence_accuracy": sequence_accuracy,
      "digit_accuracy": float(digit_right.sum() / max(present.sum(), 1)),
      "digit_accuracy_by_position": by_position,
      "length_accuracy": float((lengths == labels[:, 0]).mean()) if len(right) else 0.0,
      "coverage_at_98": coverage_at(np.exp(np.asarray(log_prob, np.float64)), right),
      "num_examples": int(len(labels)),
      "accuracy_by_length": by_length,
      "length_confusion_matrix": confusion.tolist(),
  }


def number_report_text(scores: dict) -> str:
  """The printed report of `number_scores` (with 'accuracy_by_margin' if present)."""
  lines = [f"{'sequence accuracy':>22} {scores['sequence_accuracy']:.4f}",
           f"{'digit accuracy':>22} {scores['digit_accuracy']:.4f}",
           f"{'length accuracy':>22} {scores['length_accuracy']:.4f}",
           f"{'coverage at 98%':>22} {scores['coverage_at_98']:.4f}",
           f"{'test photos':>22} {scores['num_examples']}",
           "sequence accuracy by true length:"]
  for length, row in scores["accuracy_by_length"].items():
    name = "more than 5" if int(length) > 5 else f"{length} digits"
    lines.append(f"{name:>22} {row['sequence_accuracy']:.4f}  ({row['count']} photos)")
  for margin, accuracy in scores.get("accuracy_by_margin", {}).items():
    lines.append(f"{'margin ' + margin + ' per side':>22} {accuracy:.4f}")
  header = "".join(f"{k:>6}" for k in range(LENGTH_CLASSES))
  lines.append(f"length confusion (true by row, read by column; 6 = more than 5):\n{'':>6}{header}")
  for k, row in enumerate(scores["length_confusion_matrix"]):
    lines.append(f"{k:>6}" + "".join(f"{count:>6}" for count in row))
  return "\n".join(lines)
