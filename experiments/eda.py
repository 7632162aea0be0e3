"""Exploratory analysis of a dataset in the study's layout: the file, the classes, the images.

  python -m experiments.eda                                   # the synthetic default
  python -m experiments.eda --config.data.path=SVHN_single_grey1.h5 --results_dir=results/eda

Writes report.md, summary.json and figures/ into --results_dir.
"""

import json
from pathlib import Path

import numpy as np
from absl import app, flags

from svhn_jax import cli, data, data_stats, plots, report
from svhn_jax.datasets import describe, sources
from svhn_jax import config as config_lib

FLAGS = flags.FLAGS
cli.define_config("configs/demo.py", "A run config; its `data` field picks the file, its seed "
                  "the random samples.")
flags.DEFINE_string("results_dir", "results/eda", "Where report.md and its figures go.")
flags.DEFINE_integer("samples", 5, "Random samples shown per class.")


def summary(path: Path, dataset: data.Dataset) -> dict:
  """The numbers the report shows, per split."""
  splits = {}
  for name, split in zip(data.SPLITS, dataset):
    counts = data_stats.class_counts(split.labels)
    splits[name] = {"images": int(len(split.labels)), "counts": counts.tolist(),
                    "imbalance_ratio": data_stats.imbalance_ratio(counts),
                    "dark_share": data_stats.dark_share(split.images)}
  means = data_stats.class_means(dataset.train.images, dataset.train.labels)
  # The HDF5 datasets of the study's layout; SVHN's own files are listed by `data inspect`.
  rows = describe.inspect(path) if path.is_file() and path.suffix in (".h5", ".hdf5") else []
  return {"file": str(path), "datasets": [list(map(str, row)) for row in rows],
          "splits": splits, "centre_minus_edge": [data_stats.centre_minus_edge(m) for m in means]}


def figures(dataset: data.Dataset, numbers: dict, out: Path, samples: int, seed: int) -> dict:
  train = dataset.train
  picks = data_stats.samples_per_class(train.labels, samples, seed)
  grid = [(train.images[i], str(digit)) for digit, idx in enumerate(picks) for i in idx]
  first = range(min(10, len(train.labels)))
  means = data_stats.class_means(train.images, train.labels)
  return {
      "distribution": plots.class_distribution(
          {s: np.asarray(v["counts"]) for s, v in numbers["splits"].items()},
          out / "figures" / "class_distribution.png"),
      "samples": plots.image_grid([g[0] for g in grid], [g[1] for g in grid],
                                  out / "figures" / "samples_per_class.png", cols=samples,
                                  title=f"{samples} random training images per class"),
      "means": plots.image_grid(means, [str(d) for d in range(10)],
                                out / "figures" / "mean_per_class.png", cols=5,
                                title="Mean training image per class", value_range=None),
      "first": plots.image_grid([train.images[i] for i in first],
                                [f"label {train.labels[i]}" for i in first],
                                out / "figures" / "first_10.png", cols=5,
                                title="The first 10 training images"),
  }


def markdown(numbers: dict, figs: dict, out: Path) -> str:
  splits = numbers["splits"]
  train = splits["train"]
  proportions = np.asarray(train["counts"]) / max(1, train["images"])
  class_rows = [[str(d), *(str(splits[s]["counts"][d]) for s in splits),
                 report.percent(proportions[d])] for d in range(10)]
  split_rows = [[s, str(v["images"]), f"{v['imbalance_ratio']:.3f}", report.percent(v["dark_share"])]
                for s, v in splits.items()]
  brighter = sum(c > 0 for c in numbers["centre_minus_edge"])
  return "\n\n".join([
      "# Exploratory data analysis",
      f"File: `{numbers['file']}`",
      "## What the file holds",
      report.table(("dataset", "shape", "dtype"), numbers["datasets"]),
      "## Class distribution",
      report.table(("split", "images", "imbalance ratio (max/min)", "dark background"),
                   split_rows),
      "Imbalance ratio: the largest class count over the smallest (1.000 is perfectly "
      "balanced). Dark background: the share of images whose mean pixel is under 128, light "
      "digits on a dark ground (the study's SVHN training split: 69.4%).",
      report.table(("digit", *splits, "share of train"), class_rows),
      report.image(figs["distribution"], out, "class distribution"),
      "## Random samples per class",
      report.image(figs["samples"], out, "random samples per class"),
      "## Mean image per class",
      f"{brighter} of 10 class means are brighter in the centre than in the 8-pixel frame "
      "around it (centre minus frame, grey levels: "
      + ", ".join(f"{d}: {c:+.1f}" for d, c in enumerate(numbers["centre_minus_edge"])) + ").",
      report.image(figs["means"], out, "mean image per class"),
      "## The first 10 training images",
      report.image(figs["first"], out, "first 10 training images"),
  ])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  config_lib.validate(FLAGS.config)
  out = Path(FLAGS.results_dir)
  dataset, path = sources.load(FLAGS.config.data)
  numbers = summary(path, dataset)
  figs = figures(dataset, numbers, out, FLAGS.samples, FLAGS.config.seed)
  report.write(out / "summary.json", json.dumps(numbers, indent=2))
  print(report.write(out / "report.md", markdown(numbers, figs, out)))


if __name__ == "__main__":
  cli.run(main)
