"""Scores of a digit model's test predictions: accuracy, per-class report, confusion matrix;
and the confident errors of any task's answers. A numbers run's scores are its task's
(`svhn_jax.tasks.number`)."""

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
