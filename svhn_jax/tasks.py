"""What a run learns, as a small interface the one trainer dispatches through: its inputs, loss,
per-step totals, validation metrics, test scores, report and figures.

- `DigitTask` (config.task=digit): the study's classification of one centred digit, labels int32
  (N,) 0..9, logits (N, 10). Its every step is the study's, bit for bit.
- `NumberTask` (config.task=number): whole house numbers read as Goodfellow et al. 2013 (arXiv
  1312.6082) did, from 64x64 crops of the number with its margins, labels int32 (N, 6) =
  [length class 0..6, digit 1, ..., digit 5] with `house_numbers.NO_DIGIT` (10) past the length,
  logits (N, 57) (`number_reader.split_logits`). Training reads a random 54x54 window of each
  crop (drawn on the device), evaluation the centre one. The loss is the negative sum of the
  length's log-likelihood and those of the digits up to the length (positions past it are
  masked), the per-step 'accuracy' is sequence accuracy, so that early stopping follows the
  validation sequence accuracy and the plateau schedule the validation loss.

`steps.train_step`, `trainer.Trainer` and `train` call these methods and nothing else task-specific,
so both tasks share one train loop, checkpoints, resume, devices and seed axis. The methods that
run inside a compiled step take and return JAX arrays; `test_report`, `report_text` and
`write_figures` run on the host.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from svhn_jax import evaluate, house_numbers, models, plots, recipes
from svhn_jax.datasets import sources
from svhn_jax.config import TASKS
from svhn_jax.data import Split
from svhn_jax.errors import ConfigError
from svhn_jax.house_numbers import MAX_DIGITS, NO_DIGIT
from svhn_jax.models import number_reader

# The margins a numbers run's test photos are also read at, per side as a share of the number's
# box: Goodfellow's 0.15 up to the box's own size, the far end of training's default range.
REPORTED_MARGINS = (0.15, 0.3, 0.5, 1.0)
# Test crops drawn with the number read, in figures/numbers_read.png.
_GRID = 36

# A function of pixel images (N, H, W[, C]) giving the model's logits, as
# `inference.predict_logits` with a run's weights bound.
Predict = Callable[[Any], jax.Array]


@dataclasses.dataclass(frozen=True)
class DigitTask:
  """The study's task: one digit per 32x32 crop, labels int32 (N,) 0..9, logits (N, 10)."""

  name: str = "digit"

  def load(self, data_cfg) -> tuple[Split, ...]:
    """The digit crops config.data asks for, and where they came from (`datasets.sources.load`)."""
    return sources.load(data_cfg)

  def build_model(self, model_cfg: Mapping, *, seed, channels: int, dtype=jnp.float32):
    """`models.build`: the model config.model names."""
    return models.build(model_cfg, seed=seed, channels=channels, dtype=dtype)

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

  def test_report(self, predict: Predict, test: Split, data_cfg) -> tuple[dict, Any]:
    """(`evaluate.scores` of the test split, the logits for `write_figures`)."""
    del data_cfg
    logits = np.asarray(predict(test.images))
    return evaluate.scores(logits, np.asarray(test.labels)), logits

  def report_text(self, report: dict) -> str:
    return evaluate.report_text(report)

  def write_figures(self, folder: Path, report: dict, logits, test: Split) -> None:
    """figures/confusion_matrix.png."""
    del logits, test
    plots.confusion_matrix(np.asarray(report["confusion_matrix"]), folder / "confusion_matrix.png")


class Decoded(NamedTuple):
  """Numbers read from logits (N, 57), as arrays of the logits' kind (numpy or JAX)."""

  lengths: Any  # int32 (N,): the length class 0..6
  digits: Any  # int32 (N, 5): 0..9, NO_DIGIT past the length
  log_prob: Any  # float32 (N,): log of the probability of that whole sequence


# Compiled as one program per shape: called eagerly on a report's or a photo's logits, its
# twenty-odd operations would each compile one of their own.
@jax.jit
def decode(logits: jax.Array) -> Decoded:
  """The most probable number of each row of logits (N, 57), as arXiv 1312.6082 section 3
  reads it: every position's most probable digit, and the length l maximizing
  log P(L = l) + sum over the first min(l, 5) positions of log P(digit), which is the log
  probability of the sequence read. JAX arrays (float32 logits), jit-compatible."""
  length_logits, digit_logits = number_reader.split_logits(jnp.asarray(logits, jnp.float32))
  length_lp = jax.nn.log_softmax(length_logits)
  digit_lp = jax.nn.log_softmax(digit_logits)
  best = jnp.argmax(digit_lp, -1).astype(jnp.int32)
  prefix = jnp.concatenate([jnp.zeros(digit_lp.shape[:-2] + (1,)),
                            jnp.cumsum(jnp.max(digit_lp, -1), -1)], -1)
  # Length class l reads its first min(l, 5) digits; "more than 5" reads all five.
  used = np.minimum(np.arange(number_reader.LENGTH_CLASSES), MAX_DIGITS)
  scores = length_lp + prefix[..., used]
  lengths = jnp.argmax(scores, -1).astype(jnp.int32)
  shown = jnp.arange(MAX_DIGITS) < jnp.minimum(lengths, MAX_DIGITS)[..., None]
  return Decoded(lengths, jnp.where(shown, best, NO_DIGIT), jnp.max(scores, -1))


@jax.jit
def sequence_correct(decoded: Decoded, labels: jax.Array) -> jax.Array:
  """bool (N,): the length class and every digit up to it right, for labels (N, 6)."""
  return (decoded.lengths == labels[:, 0]) & jnp.all(decoded.digits == labels[:, 1:], -1)


@functools.partial(jax.jit, static_argnames="smoothing")
def number_losses(logits: jax.Array, labels: jax.Array, smoothing: float = 0.0) -> jax.Array:
  """float32 (N,): each sample's -[log P(L = length) + sum over the positions up to the length
  of log P(digit)], from logits (N, 57) and labels (N, 6). Positions holding NO_DIGIT (past the
  length) add nothing. With `smoothing` a, each softmax's targets are (1 - a) one-hot +
  a / classes (`optax.smooth_labels`), as `recipes.cross_entropy` smooths the digit task's."""
  length_logits, digit_logits = number_reader.split_logits(logits)
  lengths, digits = labels[:, 0], labels[:, 1:]
  present = digits != NO_DIGIT
  length_loss = recipes.cross_entropies(length_logits, lengths, smoothing)
  digit_loss = recipes.cross_entropies(digit_logits, jnp.where(present, digits, 0), smoothing)
  return length_loss + jnp.sum(jnp.where(present, digit_loss, 0.0), -1)


@dataclasses.dataclass(frozen=True)
class NumberTask:
  """Whole house numbers: 64x64 number crops in, labels int32 (N, 6), logits (N, 57).

  `jitter`: training reads a random `crop` x `crop` window of each crop (arXiv 1312.6082 section
  5.1), else the centre one, as evaluation always does.
  """

  jitter: bool = True
  crop: int = house_numbers.CROP
  name: str = "number"

  def load(self, data_cfg) -> tuple[Split, ...]:
    """The house numbers of config.data's photos, and where they came from
    (`datasets.sources.load_numbers`)."""
    return sources.load_numbers(data_cfg)

  def build_model(self, model_cfg: Mapping, *, seed, channels: int, dtype=jnp.float32):
    """`models.build`: the reader of config.model.reader's size and dropout (in float32:
    config.py refuses bfloat16 for it)."""
    return models.build(model_cfg, seed=seed, channels=channels, dtype=dtype)

  def train_images(self, images: jax.Array, key: jax.Array) -> jax.Array:
    """A random (jitter) or the centre crop x crop window of each image (N, 64, 64[, C])."""
    if self.jitter:
      return house_numbers.random_crop(images, key, self.crop)
    return house_numbers.centre_crop(images, self.crop)

  def eval_images(self, images):
    """The centre crop x crop window of each image (numpy or JAX), `house_numbers.centre_crop`."""
    return house_numbers.centre_crop(images, self.crop)

  def loss(self, logits: jax.Array, labels: jax.Array, smoothing: float = 0.0) -> jax.Array:
    """The batch's mean of `number_losses`."""
    return jnp.mean(number_losses(logits, labels, smoothing))

  def correct(self, logits: jax.Array, labels: jax.Array) -> jax.Array:
    """How many numbers of the batch are read right whole (int32 scalar)."""
    return jnp.sum(sequence_correct(decode(logits), labels))

  def metrics(self, logits: jax.Array, labels: jax.Array) -> dict:
    """'loss' (mean of `number_losses`, unsmoothed) and 'accuracy' (sequence accuracy)."""
    return {"loss": jnp.mean(number_losses(logits, labels)),
            "accuracy": jnp.mean(sequence_correct(decode(logits), labels))}

  def test_report(self, predict: Predict, test: Split, data_cfg) -> tuple[dict, np.ndarray]:
    """(`evaluate.number_scores` of the test split plus its 'loss' and 'accuracy_by_margin', the
    logits). The test photos are read again at each of REPORTED_MARGINS (cached after the first
    time, `datasets.sources.number_test_at_margin`), and their sequence accuracy reported per margin."""
    logits = np.asarray(predict(test.images))
    labels = np.asarray(test.labels)
    report = evaluate.number_scores(*_host(decode(logits)), labels)
    report["loss"] = float(np.mean(np.asarray(number_losses(jnp.asarray(logits),
                                                            jnp.asarray(labels)))))
    by_margin = {}
    for margin in REPORTED_MARGINS:
      split = sources.number_test_at_margin(data_cfg, margin)
      decoded = decode(predict(self.eval_images(split.images)))
      by_margin[f"{margin:g}"] = float(np.mean(np.asarray(sequence_correct(
          decoded, jnp.asarray(split.labels)))))
      logging.info("Test photos cropped with a margin of %g per side: sequence accuracy %.4f",
                   margin, by_margin[f"{margin:g}"])
    report["accuracy_by_margin"] = by_margin
    return report, logits

  def report_text(self, report: dict) -> str:
    return evaluate.number_report_text(report)

  def write_figures(self, folder: Path, report: dict, logits: np.ndarray, test: Split) -> None:
    """figures/numbers_read.png (test crops titled with the number read, framed green where it is
    right and red where not), accuracy_by_length.png and coverage.png."""
    decoded = _host(decode(logits))
    labels = np.asarray(test.labels)
    shown = min(_GRID, len(labels))
    right = evaluate.sequences_right(decoded.lengths, decoded.digits, labels)
    titles = [f"{evaluate.number_text(decoded.lengths[i], decoded.digits[i])} "
              f"({np.exp(decoded.log_prob[i]):.0%})" for i in range(shown)]
    plots.image_grid(np.asarray(test.images[:shown]), titles, folder / "numbers_read.png",
                     cols=9, borders=["tab:green" if ok else "tab:red" for ok in right[:shown]],
                     title="Test photos read (green: right, red: wrong; probability of the "
                     "number read)")
    plots.accuracy_by_length(report["accuracy_by_length"], folder / "accuracy_by_length.png")
    coverage, accuracy = evaluate.coverage_curve(np.exp(decoded.log_prob), right)
    plots.coverage_curve(coverage, accuracy, report["coverage_at_98"],
                         folder / "coverage.png")


def _host(decoded: Decoded) -> Decoded:
  return Decoded(*(np.asarray(a) for a in decoded))


Task = DigitTask | NumberTask
DIGIT = DigitTask()


def from_config(config: ml_collections.ConfigDict) -> Task:
  """The task of config.task: 'digit' (the default of a config without the field) or 'number'
  (with config.data.numbers.jitter). Raises ConfigError for another name."""
  name = config.get("task", "digit")
  if name == "digit":
    return DIGIT
  if name == "number":
    return NumberTask(jitter=bool(config.data.numbers.jitter))
  raise ConfigError(f"config.task={name!r}: expected one of {', '.join(TASKS)}")
