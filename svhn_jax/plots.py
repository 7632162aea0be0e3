"""Figures of runs, experiments and datasets, written atomically as PNG files.

Figures are drawn on `matplotlib.figure.Figure` objects, never through pyplot: importing this
module changes no matplotlib backend or global state, and nothing needs a display.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from svhn_jax import fileio, stats
from svhn_jax.transforms import NUM_CLASSES


def _subplots(*grid, figsize, layout=None, **kwargs):
  fig = Figure(figsize=figsize, layout=layout)
  return fig, fig.subplots(*grid, **kwargs)


def save(fig: Figure, path: str | os.PathLike) -> Path:
  with fileio.atomic_path(path) as tmp:
    fig.savefig(tmp, dpi=110, bbox_inches="tight", format=Path(path).suffix.lstrip(".") or "png")
  return Path(path)


def training_curves(history: list[dict], path, title: str = "") -> Path:
  """Accuracy and loss per epoch, train against validation, as in the study's notebook."""
  epochs = [row["epoch"] for row in history]
  fig, axes = _subplots(1, 2, figsize=(11, 4))
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
  fig, ax = _subplots(figsize=(7, 6))
  im = ax.imshow(matrix, cmap="Blues")
  fig.colorbar(im, ax=ax)
  threshold = matrix.max() / 2 if matrix.size else 0
  for (i, j), count in np.ndenumerate(matrix):
    ax.text(j, i, str(count), ha="center", va="center", fontsize=8,
            color="white" if count > threshold else "black")
  ax.set_xticks(range(NUM_CLASSES))
  ax.set_yticks(range(NUM_CLASSES))
  ax.set_xlabel("predicted digit")
  ax.set_ylabel("true digit")
  ax.set_title(title)
  return save(fig, path)


def image_grid(images, titles, path, *, cols: int, title: str = "", borders=None,
               value_range: tuple[float, float] | None = (0, 255)) -> Path:
  """Greyscale images in rows of `cols`, each titled; `borders`, if given, colours each frame.

  `value_range` fixes the grey scale across images (None: each image stretched to its own).
  """
  rows = max(1, -(-len(images) // cols))
  fig, axes = _subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows + 0.4), squeeze=False,
                           layout="constrained")
  vmin, vmax = value_range or (None, None)
  for k, ax in enumerate(axes.flat):
    ax.set_xticks([])
    ax.set_yticks([])
    if k >= len(images):
      ax.axis("off")
      continue
    ax.imshow(np.asarray(images[k]), cmap="gray", vmin=vmin, vmax=vmax)
    ax.set_title(titles[k], fontsize=8)
    if borders is not None:
      for spine in ax.spines.values():
        spine.set_edgecolor(borders[k])
        spine.set_linewidth(3)
  if title:
    fig.suptitle(title)
  return save(fig, path)


def class_distribution(counts: dict[str, np.ndarray], path) -> Path:
  """Images per digit, one bar group per digit, one bar per split."""
  fig, ax = _subplots(figsize=(9, 4))
  width = 0.8 / max(1, len(counts))
  for k, (split, per_class) in enumerate(counts.items()):
    ax.bar(np.arange(len(per_class)) + k * width, per_class, width, label=split)
  ax.set_xticks(np.arange(NUM_CLASSES) + width * (len(counts) - 1) / 2,
                [str(d) for d in range(NUM_CLASSES)])
  ax.set_xlabel("digit")
  ax.set_ylabel("images")
  ax.set_title("Class distribution")
  ax.legend()
  return save(fig, path)


def accuracy_bars(names, summaries, per_seed, path, title: str = "Test accuracy") -> Path:
  """One bar per model at its mean, a 95% confidence interval, and a dot per seed."""
  fig, ax = _subplots(figsize=(1.8 * len(names) + 2, 4))
  x = np.arange(len(names))
  means = [100 * s.mean for s in summaries]
  errors = [[100 * (s.mean - s.ci_low) if s.n > 1 else 0 for s in summaries],
            [100 * (s.ci_high - s.mean) if s.n > 1 else 0 for s in summaries]]
  ax.bar(x, means, color="tab:blue", alpha=0.7)
  ax.errorbar(x, means, yerr=errors, fmt="none", ecolor="black", capsize=6)
  for k, values in enumerate(per_seed):
    ax.plot(np.full(len(values), k), 100 * np.asarray(values), "o", color="black", ms=4)
  for k, m in enumerate(means):
    ax.text(k, m / 2, f"{m:.2f}%", ha="center", color="white", fontsize=9)
  ax.set_xticks(x, names)
  ax.set_ylabel("test accuracy (%)")
  ax.set_title(title + " (bars: mean, whiskers: 95% CI, dots: seeds)")
  ax.grid(axis="y", alpha=0.3)
  return save(fig, path)


def accuracy_by_size(sizes, per_seed: dict[str, list[list[float]]], path,
                     title: str = "Test accuracy against training-set size") -> Path:
  """A line per recipe through its mean test accuracy at each training size (`per_seed[name][k]`:
  the seeds' accuracies, 0-1, at `sizes[k]`), whiskers at the mean's 95% t interval cut to the
  0-100% an accuracy can take (none for one seed; with two, the t interval is 12.7 standard
  errors wide each way), a dot per seed; sizes on a log axis."""
  fig, ax = _subplots(figsize=(7, 4.5))
  colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
  x = np.asarray(sizes, float)
  for k, (colour, (name, values)) in enumerate(zip(colours, per_seed.items())):
    summaries = [stats.summary(v) for v in values]
    means = np.array([100 * s.mean for s in summaries])
    errors = np.array([[100 * (s.mean - max(s.ci_low, 0.0)), 100 * (min(s.ci_high, 1.0) - s.mean)]
                       if s.n > 1 else [0.0, 0.0] for s in summaries]).T
    # Recipes side by side at each size, a few per cent apart on the log axis.
    shifted = x * 1.03 ** (k - (len(per_seed) - 1) / 2)
    ax.errorbar(shifted, means, yerr=errors, fmt="-o", color=colour, capsize=4, ms=5,
                label=name)
    for xs, v in zip(shifted, values):
      ax.plot(np.full(len(v), xs), 100 * np.asarray(v), ".", color=colour, alpha=0.5)
  ax.set_xscale("log")
  ax.set_xticks(x, [f"{int(n):,}" for n in sizes])
  ax.minorticks_off()
  ax.set_xlabel("training crops")
  ax.set_ylabel("test accuracy (%)")
  ax.set_title(title + " (mean, 95% CI, dots: seeds)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  return save(fig, path)


def curves_by_group(histories: dict[str, list[list[dict]]], path, title: str = "") -> Path:
  """Accuracy and loss per epoch for several groups of runs side by side: one colour per
  group, one line per seed, train dashed and validation solid."""
  fig, axes = _subplots(1, 2, figsize=(12, 4.5))
  colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
  for colour, (name, runs) in zip(colours, histories.items()):
    for k, history in enumerate(runs):
      epochs = [row["epoch"] for row in history]
      for ax, metric in zip(axes, ("accuracy", "loss")):
        label = name if k == 0 else None
        ax.plot(epochs, [row[f"val_{metric}"] for row in history], "-o", color=colour, ms=3,
                label=f"{label} (validation)" if label else None)
        ax.plot(epochs, [row[metric] for row in history], "--", color=colour, alpha=0.6,
                label=f"{label} (train)" if label else None)
  for ax, metric in zip(axes, ("accuracy", "loss")):
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.suptitle(title or "Training curves")
  return save(fig, path)


def mask_panels(mean_map: np.ndarray, mask: np.ndarray, sample: np.ndarray,
                masked: np.ndarray, path) -> Path:
  """The data-driven mask: the mean stroke map it comes from, the mask, a sample before and
  after (background-normalized, masked)."""
  panels = ((mean_map, "mean stroke map (train)", None), (mask, "mask", (0, 1)),
            (sample, "a training image", (0, 255)), (masked, "normalized and masked", (0, 255)))
  fig, axes = _subplots(1, 4, figsize=(14, 3.6))
  for ax, (image, title, value_range) in zip(axes, panels):
    vmin, vmax = value_range or (None, None)
    im = ax.imshow(image, cmap="gray" if value_range != (0, 1) else "viridis",
                   vmin=vmin, vmax=vmax)
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
  return save(fig, path)


def accuracy_by_length(by_length: dict, path, title: str = "Sequence accuracy by number length"
                       ) -> Path:
  """One bar per true length class: `by_length` maps '1'.. '6' to {'count', 'sequence_accuracy'}
  (tasks.number.number_scores); each bar is labelled with its accuracy and photo count."""
  names = ["more than 5" if int(k) > 5 else k for k in by_length]
  values = [100 * row["sequence_accuracy"] for row in by_length.values()]
  fig, ax = _subplots(figsize=(1.2 * len(names) + 3, 4))
  x = np.arange(len(names))
  ax.bar(x, values, color="tab:blue", alpha=0.8)
  for k, row in enumerate(by_length.values()):
    ax.text(k, values[k] + 1, f"{values[k]:.1f}%\n(n={row['count']})", ha="center", fontsize=8)
  ax.set_xticks(x, names)
  ax.set_ylim(0, 112)
  ax.set_xlabel("digits in the number")
  ax.set_ylabel("whole numbers read right (%)")
  ax.set_title(title)
  ax.grid(axis="y", alpha=0.3)
  return save(fig, path)


def coverage_curve(coverage: np.ndarray, accuracy: np.ndarray, coverage_at_98: float, path,
                   title: str = "Coverage against accuracy (test)") -> Path:
  """Accuracy of the numbers answered against the share answered, refusing the least confident
  first (tasks.number.coverage_curve), with the 98% operating point of arXiv 1312.6082 marked."""
  fig, ax = _subplots(figsize=(6, 4.5))
  ax.plot(100 * np.asarray(coverage), 100 * np.asarray(accuracy), "-", color="tab:blue")
  ax.axhline(98, color="tab:red", ls="--", lw=1, label="98% accuracy")
  if coverage_at_98 > 0:
    ax.axvline(100 * coverage_at_98, color="tab:green", ls=":", lw=1,
               label=f"coverage at 98%: {100 * coverage_at_98:.1f}%")
  ax.set_xlabel("test photos answered (%)")
  ax.set_ylabel("numbers answered that are right (%)")
  ax.set_xlim(0, 100)
  ax.grid(alpha=0.3)
  ax.legend(loc="lower left")
  ax.set_title(title)
  return save(fig, path)


def boxes_grid(images, true_boxes, found_boxes, titles, path, *, cols: int,
               title: str = "") -> Path:
  """Images (H, W) grey or (H, W, 3) uint8 (a sequence; sizes may differ) in rows of `cols`,
  each titled, with two boxes drawn on each: `true_boxes` (N, 4) in green and `found_boxes`
  (N, 4) in red, corners (x0, y0, x1, y1) as shares of the image's width (x) and height (y) (the
  locator's labels and outputs on its square letterboxes)."""
  from matplotlib.patches import Rectangle
  rows = max(1, -(-len(images) // cols))
  fig, axes = _subplots(rows, cols, figsize=(1.6 * cols, 1.8 * rows + 0.4), squeeze=False,
                        layout="constrained")
  for k, ax in enumerate(axes.flat):
    ax.set_xticks([])
    ax.set_yticks([])
    if k >= len(images):
      ax.axis("off")
      continue
    image = np.asarray(images[k])
    height, width = image.shape[:2]
    ax.imshow(image, cmap="gray", vmin=0, vmax=255)
    for box, colour in ((true_boxes[k], "tab:green"), (found_boxes[k], "tab:red")):
      # Pixel centres lie at whole numbers in imshow's axes: an edge at x pixels is x - 0.5.
      x0, y0, x1, y1 = np.asarray(box, np.float64) * [width, height, width, height] - 0.5
      ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, lw=1.5))
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.set_title(titles[k], fontsize=7)
  if title:
    fig.suptitle(title)
  return save(fig, path)
