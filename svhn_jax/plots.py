"""Figures of a run: training curves and the confusion matrix. Files are written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save(fig, path: str | os.PathLike) -> Path:
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
  fig.savefig(tmp, dpi=110, bbox_inches="tight")
  plt.close(fig)
  os.replace(tmp, path)
  return path


def training_curves(history: list[dict], path, title: str = "") -> Path:
  """Accuracy and loss per epoch, train against validation, as in the study's notebook."""
  epochs = [row["epoch"] for row in history]
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  for ax, metric in zip(axes, ("accuracy", "loss")):
    ax.plot(epochs, [row[metric] for row in history], "o-", label="train")
    ax.plot(epochs, [row[f"val_{metric}"] for row in history], "o-", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend()
  fig.suptitle(title or "Training curves")
  return save(fig, path)


def confusion_matrix(matrix: np.ndarray, path, title: str = "Confusion matrix (test)") -> Path:
  """A heat map of counts, true digit by row, predicted digit by column."""
  fig, ax = plt.subplots(figsize=(7, 6))
  im = ax.imshow(matrix, cmap="Blues")
  fig.colorbar(im, ax=ax)
  threshold = matrix.max() / 2 if matrix.size else 0
  for (i, j), count in np.ndenumerate(matrix):
    ax.text(j, i, str(count), ha="center", va="center", fontsize=8,
            color="white" if count > threshold else "black")
  ax.set_xticks(range(10))
  ax.set_yticks(range(10))
  ax.set_xlabel("predicted digit")
  ax.set_ylabel("true digit")
  ax.set_title(title)
  return save(fig, path)
