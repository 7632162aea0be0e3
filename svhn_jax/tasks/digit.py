"""config.task=digit, the study's task: one centred digit per 32x32 crop, labels int32 (N,) 0..9,
logits float32 (N, 10). Its every step is the study's, bit for bit.

`python -m svhn_jax.predict --workdir=RUN crop.png` prints 'file: digit (probability)' per file;
with --json {'file', 'digit', 'probability', 'probabilities' (all ten, rounded to 6 places)}.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from svhn_jax import models, recipes
from svhn_jax.errors import ConfigError
from svhn_jax.tasks.base import Predict

GREEN, RED = "tab:green", "tab:red"


@dataclasses.dataclass(frozen=True)
class DigitTask:
  """The study's task: one digit per 32x32 crop, labels int32 (N,) 0..9, logits (N, 10)."""

  name: str = "digit"
  # What config.data gives it: the config fields a run reads follow (`config.Declares`).
  data_kind: str = "digit crops"

  def from_config(self, config) -> "DigitTask":
    """The digit task has no options."""
    del config
    return self

  # Device side ---------------------------------------------------------------------------

  def build_model(self, model_cfg: Mapping, *, seed, channels: int, dtype=jnp.float32,
                  sample=None):
    """`models.build`: the model config.model names, 10 outputs."""
    return models.build(model_cfg, seed=seed, channels=channels, dtype=dtype, sample=sample)

  def train_images(self, images: jax.Array, key: jax.Array) -> jax.Array:
    """The training input of a batch: the images themselves (augmentation is the recipe's)."""
    del key
    return images

  def eval_images(self, images):
    """The evaluation input: the images themselves."""
    return images

  def loss(self, logits: jax.Array, labels: jax.Array, smoothing: float = 0.0) -> jax.Array:
    """Mean cross-entropy, targets smoothed by `smoothing` (`recipes.cross_entropy`)."""
    return recipes.cross_entropy(logits, labels, smoothing)

  def correct(self, logits: jax.Array, labels: jax.Array) -> jax.Array:
    """How many of the batch's argmax predictions are right (int32 scalar)."""
    return jnp.sum(jnp.argmax(logits, -1) == labels)

  def metrics(self, logits: jax.Array, labels: jax.Array) -> dict:
    """Mean cross-entropy 'loss' and 'accuracy' of logits (N, 10) against labels (N,)."""
    return {"loss": recipes.cross_entropy(logits, labels),
            "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels)}

  # Host side -----------------------------------------------------------------------------

  def check_config(self, config: Mapping) -> None:
    """No number reader for digit crops."""
    if config["model"]["name"] == "multidigit":
      raise ConfigError("config.model.name='multidigit' reads whole house numbers: it needs "
                        "config.task=number")

  def load(self, config):
    """`sources.load`: 32x32 digit crops of config.data, labels int32 (N,) 0..9."""
    from svhn_jax.datasets import sources
    return sources.load(config.data)

  def extra_tests(self, config) -> dict:
    del config
    return {}

  def test_report(self, predict: Predict, test, extra: Mapping[str, Callable] | None = None
                  ) -> tuple[dict, Any]:
    """(`evaluate.scores` of the test split, the logits for `write_figures`)."""
    from svhn_jax import evaluate
    del extra
    logits = np.asarray(predict(test.images))
    return evaluate.scores(logits, np.asarray(test.labels)), logits

  def report_text(self, report: dict) -> str:
    from svhn_jax import evaluate
    return evaluate.report_text(report)

  def write_figures(self, folder: Path, report: dict, logits, test) -> None:
    """figures/confusion_matrix.png."""
    from svhn_jax import plots
    del logits, test
    plots.confusion_matrix(np.asarray(report["confusion_matrix"]), folder / "confusion_matrix.png")

  def data_text(self, data: Mapping) -> str:
    """Which data a run config's `data` field names, in words."""
    return data_text(data)

  def read_files(self, workdir: Path, config, paths: Sequence[str],
                 options: Mapping[str, Any]) -> list[dict]:
    """{'digit', 'probability', 'probabilities'} per image file: any size, colour mode or
    transparency (`images.load_crop`), greyscale by luma unless the run trained in colour,
    widened to a square around its centre, resized to 32x32; then the run's own preprocessing.
    Raises ConfigError for a --box (a digit run reads whole crops) and DataError for a file it
    cannot read, before the weights are read."""
    from svhn_jax import images, inference
    if options.get("box") is not None:
      raise ConfigError(f"--box: --workdir={workdir} holds a digit run (config.task=digit), which "
                        "reads each image whole as a digit crop; --box is for a numbers run")
    if options.get("boxes") is not None:
      raise ConfigError(f"--locator: --workdir={workdir} holds a digit run (config.task=digit), "
                        "which reads each image whole as a digit crop; --locator is for a "
                        "numbers run")
    crops = np.stack([images.load_crop(path, color=config.data.color) for path in paths])
    probs = inference.predict_probs(inference.load_run(workdir), crops)
    return [{"digit": int(p.argmax()), "probability": float(p.max()),
             "probabilities": [round(float(q), 6) for q in p]} for p in probs]

  def answer_line(self, path: str, answer: dict) -> str:
    """'file: digit (probability)'."""
    return f"{path}: {answer['digit']} ({answer['probability']:.1%})"

  def analysis(self, run, loaded, out: Path, grid: int, threshold: float) -> str:
    """`markdown` of the run's test split (read as the run reads it)."""
    from svhn_jax import inference
    test = self.load(loaded.config)[0].test
    return markdown(run, test, inference.predict_probs(loaded, test.images), out, grid, threshold)


DIGIT = DigitTask()


def data_text(data: Mapping) -> str:
  """Which data a digit run config's `data` field names, in words."""
  if data["path"]:
    where = f"`{data['path']}`"
  elif data["source"] == "synthetic":
    sizes = data["synthetic"]
    where = (f"synthetic, {sizes['train']:,} / {sizes['val']:,} / {sizes['test']:,} "
             f"train / validation / test images (generator version {sizes.get('version', 1)}, "
             f"seed {sizes['seed']})")
  else:
    where = "the study's SVHN file"
  held_out = data.get("val_size", 6_000)
  pooled = (f", training on the training and validation images together ({held_out:,} held out "
            "for validation)" if data.get("train_on_val") else "")
  return f"{where}, preprocessing `{data['preprocess']}`{pooled}"


# Error analysis (experiments/error_analysis.py): probabilities float64 (N, 10). -------------

def prediction_grid(images, labels, probs, indices, path: Path, title: str) -> Path:
  """A grid of images[indices] (N, H, W[, C]) titled with the true digit of `labels` (N,), the
  digit predicted by `probs` (N, 10) and its probability, framed green where right."""
  from svhn_jax import plots
  predicted, confidence = probs.argmax(-1), probs.max(-1)
  return plots.image_grid(
      [images[i] for i in indices],
      [f"true {labels[i]}, pred {predicted[i]}\n{confidence[i]:.0%}" for i in indices],
      path, cols=5, title=title,
      borders=[GREEN if predicted[i] == labels[i] else RED for i in indices])


def pairs_table(run, k: int = 5) -> str:
  """The `k` most-confused (true, predicted) digit pairs of the run's test confusion matrix."""
  from svhn_jax import evaluate, report
  confusion = np.asarray(run.test["confusion_matrix"])
  support = confusion.sum(axis=1)
  rows = [[str(t), str(p), str(n), report.percent(n / support[t])]
          for t, p, n in evaluate.confused_pairs(confusion, k)]
  return report.table(("true digit", "predicted as", "test images", "share of that digit"),
                      rows)


def confident_table(indices, labels, probs, k: int = 10) -> str:
  """The first `k` of `indices` (test image numbers) with their true digit (`labels` (N,)), the
  digit predicted and its probability (`probs` (N, 10))."""
  from svhn_jax import report
  rows = [[str(i), str(labels[i]), str(probs[i].argmax()), report.percent(probs[i].max())]
          for i in indices[:k]]
  return report.table(("test image", "true digit", "predicted", "probability"), rows)


def markdown(run, test, probs: np.ndarray, out: Path, grid: int, threshold: float) -> str:
  """The report of a digit run (`report.Run`): `test` images (N, H, W[, C]) and labels int32
  (N,), `probs` float64 (N, 10) its predictions; figures are written under out/figures."""
  from svhn_jax import evaluate, report
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
      f"of {run.test['epochs_run']}). Data: {data_text(run.config['data'])}.",
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
  sections += report.confident_sections("errors", len(confident), len(wrong), threshold)
  if len(confident):
    sections += [confident_table(confident, labels, probs), report.image(prediction_grid(
        test.images, labels, probs, confident[:grid], figs / "confident_errors.png",
        "The most confident errors"), out, "high-confidence errors")]
  return "\n\n".join(sections)
