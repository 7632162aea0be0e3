"""Reading finished runs and writing markdown reports about them.

Every number a report shows comes from a run's workdir (test_metrics.json, metrics.jsonl), read
by `read_run`, so a report can be checked against the runs it describes and rebuilt from them.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from svhn_jax import evaluate, fileio, stats, tasks


class Run(NamedTuple):
  """What a finished workdir says: its config, its epochs, its test scores."""

  workdir: Path
  config: dict
  history: list[dict]
  test: dict

  @property
  def best_row(self) -> dict:
    """The metrics of the epoch (validation, in a step-counted run: its `best_step`) whose
    weights were restored (Keras's restore_best_weights)."""
    if "best_step" in self.test:
      return next(row for row in self.history if row["step"] == self.test["best_step"])
    return self.history[self.test["best_epoch"] - 1]

  @property
  def train_accuracy(self) -> float:
    return self.best_row["accuracy"]

  @property
  def val_accuracy(self) -> float:
    return self.best_row["val_accuracy"]

  @property
  def test_accuracy(self) -> float:
    return self.test["accuracy"]


def read_run(workdir: str | os.PathLike) -> Run:
  workdir = Path(workdir)
  history = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()
             if line.strip()]
  return Run(workdir, json.loads((workdir / "config.json").read_text()), history,
             json.loads((workdir / "test_metrics.json").read_text()))


def percent(x: float) -> str:
  return "n/a" if math.isnan(x) else f"{100 * x:.2f}%"


def points(x: float) -> str:
  """A difference of two accuracies, in percentage points."""
  return "n/a" if math.isnan(x) else f"{100 * x:+.2f} pp"


def mean_std(s: stats.Summary) -> str:
  return percent(s.mean) if s.n < 2 else f"{percent(s.mean)} ± {100 * s.std:.2f}"


def interval(s: stats.Summary | stats.PairedTest, fmt=percent) -> str:
  if math.isnan(s.ci_low):
    return "n/a"
  return f"[{fmt(s.ci_low)}, {fmt(s.ci_high)}]"


def p_value(p: float) -> str:
  if math.isnan(p):
    return "n/a"
  return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
  """A GitHub markdown table; cells are written with str()."""
  lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
  lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
  return "\n".join(lines)


def image(path: str | os.PathLike, report_dir: str | os.PathLike, alt: str) -> str:
  """A markdown image whose link works from the report's folder."""
  return f"![{alt}]({Path(os.path.relpath(path, report_dir)).as_posix()})"


def seed_summary_rows(groups: dict[str, Sequence[Run]]) -> list[list[str]]:
  """Per group: seeds, then train/val/test accuracy mean ± std, then the test accuracy's CI."""
  rows = []
  for name, runs in groups.items():
    summaries = [stats.summary([getattr(r, f) for r in runs])
                 for f in ("train_accuracy", "val_accuracy", "test_accuracy")]
    rows.append([name, str(len(runs)), *(mean_std(s) for s in summaries),
                 interval(summaries[-1])])
  return rows


SEED_SUMMARY_HEADERS = ("run", "seeds", "train accuracy", "validation accuracy",
                        "test accuracy", "test 95% CI")


def best_of_run(test: dict) -> str:
  """'best/run': the best epoch of the epochs run, or for a step-counted run (its
  test_metrics.json has `best_step`) the best step of the steps run, e.g. 'step 1750/2000'."""
  if "best_step" in test:
    return f"step {test['best_step']}/{test['steps_run']}"
  return f"{test['best_epoch']}/{test['epochs_run']}"


def per_seed_rows(groups: dict[str, Sequence[Run]]) -> list[list[str]]:
  """One row per run: group, seed, best epoch (or step) of those run, train/val/test
  accuracy."""
  return [[name, str(r.config["seed"]), best_of_run(r.test),
           percent(r.train_accuracy), percent(r.val_accuracy), percent(r.test_accuracy)]
          for name, runs in groups.items() for r in runs]


PER_SEED_HEADERS = ("run", "seed", "best epoch (step) / run", "train accuracy",
                    "validation accuracy", "test accuracy")


def per_class_rows(runs: Sequence[Run]) -> list[list[str]]:
  """Per digit: precision, recall and F1 on test, mean ± std over `runs`, and the support."""
  rows = []
  for name in (*evaluate.CLASS_NAMES, "macro avg", "weighted avg"):
    cells = [name]
    for metric in ("precision", "recall", "f1-score"):
      s = stats.summary([r.test["classification_report"][name][metric] for r in runs])
      cells.append(f"{s.mean:.4f}" if s.n < 2 else f"{s.mean:.4f} ± {s.std:.4f}")
    cells.append(str(int(runs[0].test["classification_report"][name]["support"])))
    rows.append(cells)
  return rows


PER_CLASS_HEADERS = ("digit", "precision", "recall", "F1", "support")


def data_text(config: dict) -> str:
  """Which data a run config (a saved config.json's dict) names, in words, as its task says it
  (`svhn_jax.tasks`, `Task.data_text`)."""
  return tasks.get(tasks.name_of(config)).data_text(config["data"])


def confident_sections(kind: str, confident: int, wrong: int, threshold: float) -> list[str]:
  """The heading and sentence of an error analysis' high-confidence section: how many of the
  `wrong` answers (`kind`: 'errors' or 'misreads') were given with a probability above
  `threshold`."""
  share = percent(confident / wrong) if wrong else "n/a"
  return [f"## High-confidence {kind} (probability above {threshold:.0%})",
          f"{confident} of {wrong} {kind} ({share}) were made with a probability above "
          f"{threshold:.0%}: a confidence cut-off at {threshold:.0%} would not flag them."]


def recipe_text(train: dict) -> str:
  """How a run config's `train` field sets the learning rate and stops, in words."""
  epochs, steps = train["epochs"], train.get("total_steps")
  length = (f"{steps:,} step{'s' * (steps != 1)}" if epochs is None
            else f"at most {epochs} epoch{'s' * (epochs != 1)}")
  text = (f"{length}, batch {train['batch_size']}, "
          f"{train.get('optimizer', 'adam')} at learning rate {train['learning_rate']:g}")
  schedule = train.get("schedule", "plateau")
  if schedule == "plateau":
    plateau = train["plateau"]
    text += (f", multiplied by {plateau['factor']:g} when validation loss has not improved for "
             f"{plateau['patience']} epochs")
  else:
    text += f" on a {schedule} schedule"
  stopping = train["early_stopping"]
  if stopping.get("enabled", True):
    return (text + f", early stopping on validation accuracy (patience {stopping['patience']}, "
            "best weights restored)")
  return text + ", no early stopping (the last epoch's weights)"


def settings_text(groups: dict[str, Sequence[Run]], seeds: Sequence[int]) -> str:
  """The settings the groups of runs were trained with, read from their configs."""
  configs = {name: runs[0].config for name, runs in groups.items()}
  data = {data_text(c) for c in configs.values()}
  if len(data) == 1:
    head = f"Data: {data.pop()}. "
    per_group = [f"{name}: {recipe_text(c['train'])}" for name, c in configs.items()]
  else:
    head = ""
    per_group = [f"{name}: {recipe_text(c['train'])}; data: {data_text(c)}"
                 for name, c in configs.items()]
  return f"{head}Seeds: {', '.join(map(str, seeds))}. " + ". ".join(per_group) + "."


def write(path: str | os.PathLike, text: str) -> Path:
  """Writes the report atomically: a reader never sees half of it."""
  return fileio.write_text(path, text.rstrip() + "\n")
