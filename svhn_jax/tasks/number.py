"""config.task=number: whole house numbers read as Goodfellow et al. 2013 (arXiv 1312.6082) did,
from 64x64 crops of the number with its margins; labels int32 (N, 6) = [length class 0..6,
digit 1, ..., digit 5] with `house_numbers.NO_DIGIT` (10) past the length; logits float32
(N, 57) (`models.number_reader.split_logits`: 7 length classes, then 5 x 10 digit classes).

Training reads a random 54x54 window of each crop (drawn on the device), evaluation the centre
one. The loss is the negative sum of the length's log-likelihood and those of the digits up to
the length (positions past it are masked); the per-step 'accuracy' is sequence accuracy, so that
early stopping follows the validation sequence accuracy and the plateau schedule the validation
loss. Its scores (`number_scores`), printed report and error analysis (number_analysis.py) are
here too.

`python -m svhn_jax.predict --workdir=RUN photo.png [--box=left,top,width,height]` prints per
photo the number read, the probability of that whole number, and each digit with its
probability; --json one object per photo: file, number (text; '+' after five digits for "more
than 5"), probability, length, length_probability and digits (a list of {digit, probability}).
Without --box the whole photo is the number's crop (a numbers run trains on margins up to the
number's own size per side, config.data.numbers.margin_high); with --box (pixels, x right and y
down from the top-left corner, as SVHN's digitStruct.mat boxes) the box is widened by the run's
config.data.numbers.eval_margin per side and clipped to the photo, as the test photos were. The
crop is resized to 64x64 without keeping its aspect ratio, and its centre 54x54 is read.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from svhn_jax import datasets, house_numbers, models, recipes
from svhn_jax.config import Declares
from svhn_jax.errors import ConfigError, DataError
from svhn_jax.house_numbers import MAX_DIGITS, NO_DIGIT
from svhn_jax.models import number_reader, reader_sizes
from svhn_jax.models.number_reader import LENGTH_CLASSES
from svhn_jax.tasks.base import Predict

# The margins a numbers run's test photos are also read at, per side as a share of the number's
# box: Goodfellow's 0.15 up to the box's own size, the far end of training's default range.
REPORTED_MARGINS = (0.15, 0.3, 0.5, 1.0)
# Test crops drawn with the number read, in figures/numbers_read.png.
_GRID = 36
# The sources with whole photos (`datasets.base.Source.has_photos`), registered or named by spec.
PHOTO_SOURCES = Declares(datasets.REGISTRY, "has_photos", True)


def check_photo_data(data: Mapping, task: str) -> None:
  """What every task on whole photos (config.task `task`: number, locate) asks of config.data:
  a source with photos, no extra split of the synthetic photos, raw inputs. Raises ConfigError
  naming the field."""
  if data["source"] not in PHOTO_SOURCES:
    raise ConfigError(f"config.data.source={data['source']!r}: config.task={task} reads whole "
                      f"photos; expected one of {', '.join(PHOTO_SOURCES.values)} (or another "
                      f"source with photos) with config.task={task}")
  if data["source"] == "synthetic" and data["use_extra"] and not data["path"]:
    raise ConfigError("config.data.use_extra=True: the synthetic photos have train and test "
                      "splits only; expected false with config.data.source=synthetic")
  if data["preprocess"] != "raw":
    raise ConfigError(f"config.data.preprocess={data['preprocess']!r}: the mask is made for "
                      f"32x32 digit crops; expected raw with config.task={task}")
# Goodfellow et al.'s operating point: the share of photos answered at 98% accuracy, human
# operators' accuracy (arXiv 1312.6082 section 5.1).
COVERAGE_ACCURACY = 0.98


class Decoded(NamedTuple):
  """Numbers read from logits (N, 57), as arrays of the logits' kind (numpy or JAX)."""

  lengths: Any  # int32 (N,): the length class 0..6
  digits: Any  # int32 (N, 5): 0..9, NO_DIGIT past the length
  log_prob: Any  # float32 (N,): log of the probability of that whole sequence


# Compiled as one program per shape: called eagerly on a report's or a photo's logits, its
# twenty-odd operations would each compile one of their own.
@jax.jit
def decode(logits: jax.Array) -> Decoded:
  """The most probable number of each row of logits (N, K), JAX arrays (float32 logits),
  jit-compatible. The logits' width says which reader made them (`number_reader.is_columns`):

  - positional heads (K = 57), as arXiv 1312.6082 section 3 reads them: every position's most
    probable digit, and the length l maximizing log P(L = l) + sum over the first min(l, 5)
    positions of log P(digit), which is the log probability of the sequence read;
  - a column reader (K = T x 11, read with CTC): CTC's best path (Graves et al. 2006, section
    3.2): each column's most probable class, repeats merged, blanks dropped; the length class is
    the count of digits read (6 for more than five, whose first five are the digits), log_prob
    the best path's log probability (a lower bound of the number's).
  """
  logits = jnp.asarray(logits, jnp.float32)
  if number_reader.is_columns(logits):
    return _decode_columns(number_reader.column_logits(logits))
  length_logits, digit_logits = number_reader.split_logits(logits)
  length_lp = jax.nn.log_softmax(length_logits)
  digit_lp = jax.nn.log_softmax(digit_logits)
  best = jnp.argmax(digit_lp, -1).astype(jnp.int32)
  prefix = jnp.concatenate([jnp.zeros(digit_lp.shape[:-2] + (1,)),
                            jnp.cumsum(jnp.max(digit_lp, -1), -1)], -1)
  # Length class l reads its first min(l, 5) digits; "more than 5" reads all five.
  used = np.minimum(np.arange(LENGTH_CLASSES), MAX_DIGITS)
  scores = length_lp + prefix[..., used]
  lengths = jnp.argmax(scores, -1).astype(jnp.int32)
  shown = jnp.arange(MAX_DIGITS) < jnp.minimum(lengths, MAX_DIGITS)[..., None]
  return Decoded(lengths, jnp.where(shown, best, NO_DIGIT), jnp.max(scores, -1))


def emitted(columns: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """CTC's best path of column logits (N, T, 11): (best int32 (N, T): each column's most
  probable class, emit bool (N, T): whether that column starts a digit (not the blank, not
  its left neighbour's class), log_prob float32 (N,): the path's log probability)."""
  lp = jax.nn.log_softmax(columns)
  best = jnp.argmax(lp, -1).astype(jnp.int32)
  before = jnp.concatenate([jnp.full_like(best[:, :1], number_reader.BLANK), best[:, :-1]], 1)
  emit = (best != number_reader.BLANK) & (best != before)
  return best, emit, jnp.sum(jnp.max(lp, -1), -1)


def _decode_columns(columns: jax.Array) -> Decoded:
  best, emit, log_prob = emitted(columns)
  position = jnp.cumsum(emit, -1) - 1
  at = emit[..., None] & (position[..., None] == jnp.arange(MAX_DIGITS))  # (N, T, 5)
  digits = jnp.where(jnp.any(at, 1), jnp.sum(jnp.where(at, best[..., None], 0), 1), NO_DIGIT)
  lengths = jnp.minimum(jnp.sum(emit, -1), LENGTH_CLASSES - 1).astype(jnp.int32)
  return Decoded(lengths, digits.astype(jnp.int32), log_prob)


def decode_host(logits) -> Decoded:
  """`decode` of logits (N, 57) as numpy arrays: lengths int32 (N,), digits int32 (N, 5),
  log_prob float32 (N,)."""
  return Decoded(*(np.asarray(a) for a in decode(np.asarray(logits))))


@jax.jit
def sequence_correct(decoded: Decoded, labels: jax.Array) -> jax.Array:
  """bool (N,): the length class and every digit up to it right, for labels (N, 6)."""
  return (decoded.lengths == labels[:, 0]) & jnp.all(decoded.digits == labels[:, 1:], -1)


def sequences_right(lengths: np.ndarray, digits: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """bool (N,) on the host: `sequence_correct` of lengths (N,) and digits (N, 5) as numpy."""
  labels = np.asarray(labels)
  return (np.asarray(lengths) == labels[:, 0]) & np.all(np.asarray(digits) == labels[:, 1:], -1)


@functools.partial(jax.jit, static_argnames="smoothing")
def number_losses(logits: jax.Array, labels: jax.Array, smoothing: float = 0.0) -> jax.Array:
  """float32 (N,): each sample's negative log-likelihood of its number, from logits (N, K) and
  labels (N, 6), by the reader that made the logits (`number_reader.is_columns`):

  - positional heads (K = 57): -[log P(L = length) + sum over the positions up to the length of
    log P(digit)]; positions holding NO_DIGIT (past the length) add nothing. With `smoothing` a,
    each softmax's targets are (1 - a) one-hot + a / classes (`optax.smooth_labels`), as
    `recipes.cross_entropy` smooths the digit task's.
  - a column reader (K = T x 11): CTC's loss (Graves et al. 2006; `optax.ctc_loss`, blank 10)
    of the digits up to the length. A number of more than five digits (length class 6) has only
    its first five labelled, so it adds 0. CTC has no smoothed targets: `smoothing` must be 0
    (the task's check_config refuses another with such a reader).
  """
  if number_reader.is_columns(logits):
    if smoothing:
      raise ValueError(f"number_losses: smoothing={smoothing!r}; CTC's loss has no smoothed "
                       "targets, expected 0")
    columns = number_reader.column_logits(logits)
    digits = labels[:, 1:]
    present = digits != NO_DIGIT
    losses = optax.ctc_loss(columns, jnp.zeros(columns.shape[:2], columns.dtype),
                            jnp.where(present, digits, 0), (~present).astype(columns.dtype),
                            blank_id=number_reader.BLANK)
    return jnp.where(labels[:, 0] <= MAX_DIGITS, losses, 0.0)
  length_logits, digit_logits = number_reader.split_logits(logits)
  lengths, digits = labels[:, 0], labels[:, 1:]
  present = digits != NO_DIGIT
  length_loss = recipes.cross_entropies(length_logits, lengths, smoothing)
  digit_loss = recipes.cross_entropies(digit_logits, jnp.where(present, digits, 0), smoothing)
  return length_loss + jnp.sum(jnp.where(present, digit_loss, 0.0), -1)


@dataclasses.dataclass(frozen=True)
class NumberTask:
  """Whole house numbers: 64x64 number crops in, labels int32 (N, 6), logits (N, 57) or a column
  reader's (N, T x 11).

  `jitter`: training reads a random `crop` x `crop` window of each crop (arXiv 1312.6082 section
  5.1), else the centre one, as evaluation always does.
  """

  jitter: bool = True
  crop: int = house_numbers.CROP
  name: str = "number"
  data_kind: str = "number photos"

  def from_config(self, config) -> "NumberTask":
    """The task with config.data.numbers.jitter."""
    return dataclasses.replace(self, jitter=bool(config.data.numbers.jitter))

  # Device side ---------------------------------------------------------------------------

  def build_model(self, model_cfg: Mapping, *, seed, channels: int, dtype=jnp.float32,
                  sample=None):
    """`models.build`: the reader of config.model.reader's size and dropout, 57 outputs (in
    float32: config.py refuses bfloat16 for it)."""
    return models.build(model_cfg, seed=seed, channels=channels, dtype=dtype, sample=sample)

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

  # Host side -----------------------------------------------------------------------------

  def check_config(self, config: Mapping) -> None:
    """The number reader, photo sources, raw inputs, no test-time shifts, and an ordered range
    of training margins."""
    model, data = config["model"]["name"], config["data"]
    if model != "multidigit":
      raise ConfigError(f"config.task='number': expected config.model.name=multidigit (the "
                        f"number reader), got {model!r}")
    check_photo_data(data, "number")
    if config["train"]["tta"]:
      raise ConfigError(f"config.train.tta={config['train']['tta']!r}: test-time shifts average "
                        "one softmax; expected 0 with config.task=number")
    size = config["model"]["reader"]["size"]
    if (isinstance(reader_sizes.SIZES.get(size), reader_sizes.Columns)
        and config["train"]["label_smoothing"]):
      raise ConfigError(f"config.train.label_smoothing={config['train']['label_smoothing']!r}: "
                        f"the column reader (config.model.reader.size={size}) learns with CTC, "
                        "which has no smoothed targets; expected 0")
    numbers = data["numbers"]
    if numbers["margin_low"] > numbers["margin_high"]:
      raise ConfigError(f"config.data.numbers.margin_low={numbers['margin_low']!r}: expected at "
                        f"most config.data.numbers.margin_high={numbers['margin_high']!r}")

  def load(self, config):
    """`sources.load_numbers`: 64x64 number crops of config.data's photos, labels (N, 6)."""
    from svhn_jax.datasets import sources
    return sources.load_numbers(config.data)

  def extra_tests(self, config) -> dict[str, Callable]:
    """The test photos cropped at each of REPORTED_MARGINS (`sources.number_test_at_margin`:
    made once, then read from the cache), by the margin's text ('0.15'), each loaded when
    called."""
    from svhn_jax.datasets import sources
    return {f"{margin:g}": functools.partial(sources.number_test_at_margin, config.data, margin)
            for margin in REPORTED_MARGINS}

  def test_report(self, predict: Predict, test, extra: Mapping[str, Callable] | None = None
                  ) -> tuple[dict, np.ndarray]:
    """(`number_scores` of the test split plus its 'loss' and, for `extra`, 'accuracy_by_margin'
    (the sequence accuracy of each extra test set, by name), the logits)."""
    logits = np.asarray(predict(test.images))
    labels = np.asarray(test.labels)
    report = number_scores(*decode_host(logits), labels)
    report["loss"] = float(np.mean(np.asarray(number_losses(jnp.asarray(logits),
                                                            jnp.asarray(labels)))))
    by_margin = {}
    for margin, load in (extra or {}).items():
      split = load()
      decoded = decode(predict(self.eval_images(split.images)))
      by_margin[margin] = float(np.mean(np.asarray(sequence_correct(
          decoded, jnp.asarray(split.labels)))))
      logging.info("Test photos cropped with a margin of %s per side: sequence accuracy %.4f",
                   margin, by_margin[margin])
    if extra is not None:
      report["accuracy_by_margin"] = by_margin
    return report, logits

  def report_text(self, report: dict) -> str:
    return number_report_text(report)

  def write_figures(self, folder: Path, report: dict, logits: np.ndarray, test) -> None:
    """figures/numbers_read.png (test crops titled with the number read, framed green where it is
    right and red where not), accuracy_by_length.png and coverage.png."""
    from svhn_jax import plots
    decoded = decode_host(logits)
    labels = np.asarray(test.labels)
    shown = min(_GRID, len(labels))
    right = sequences_right(decoded.lengths, decoded.digits, labels)
    titles = [f"{number_text(decoded.lengths[i], decoded.digits[i])} "
              f"({np.exp(decoded.log_prob[i]):.0%})" for i in range(shown)]
    plots.image_grid(np.asarray(test.images[:shown]), titles, folder / "numbers_read.png",
                     cols=9, borders=["tab:green" if ok else "tab:red" for ok in right[:shown]],
                     title="Test photos read (green: right, red: wrong; probability of the "
                     "number read)")
    plots.accuracy_by_length(report["accuracy_by_length"], folder / "accuracy_by_length.png")
    coverage, accuracy = coverage_curve(np.exp(decoded.log_prob), right)
    plots.coverage_curve(coverage, accuracy, report["coverage_at_98"],
                         folder / "coverage.png")

  def data_text(self, data: Mapping) -> str:
    """Which photos a numbers run's config `data` field names, in words."""
    if data["path"]:
      where = f"`{data['path']}` ({data['source']})"
    elif data["source"] == "synthetic":
      sizes = data["synthetic"]
      where = (f"generated photos, {sizes['train']:,} training ({data['val_size']:,} of them "
               f"carved for validation) and {sizes['test']:,} test (seed {sizes['seed']})")
    else:
      where = "SVHN's format 1 photos"
    return (f"{where}, test numbers cropped with a margin of "
            f"{data['numbers']['eval_margin']:g} of their box per side, {data['color']}")

  def read_files(self, workdir: Path, config, paths: Sequence[str],
                 options: Mapping[str, Any]) -> list[dict]:
    """`readings` of the photo files `paths` (see `number_crop`), `options['box']` the box
    around the number in every photo, as the text 'left,top,width,height' (--box) or float (4,),
    or None for the whole photo; else `options['boxes']`, float64 (N, 4), one box per path (a
    locator's, `svhn_jax.predict --locator`), or None. Raises ConfigError for a bad box,
    DataError for a photo it cannot read or a box outside it, CheckpointError for a workdir
    without usable weights; the photos are read before the weights."""
    from svhn_jax import inference
    box = options.get("box")
    if box is not None:
      box = parse_box(box) if isinstance(box, str) else np.asarray(box, np.float64)
    per_file = [box] * len(paths)
    if box is None and options.get("boxes") is not None:
      per_file = list(np.asarray(options["boxes"], np.float64).reshape(len(paths), 4))
    numbers = config.data.numbers
    crops = np.stack([number_crop(path, config.data.color, where, numbers.eval_margin,
                                  min_aspect=numbers.get("min_aspect", 0.0))
                      for path, where in zip(paths, per_file)])
    return readings(inference.run_logits(inference.load_run(workdir), crops))

  def answer_line(self, path: str, answer: dict) -> str:
    """'file: number (probability)  length L p; digits: d p, ...'."""
    digits = ", ".join(f"{d['digit']} {d['probability']:.1%}" for d in answer["digits"])
    return (f"{path}: {answer['number'] or '(no number)'} ({answer['probability']:.1%})  "
            f"length {answer['length']} {answer['length_probability']:.1%}; "
            f"digits: {digits or '-'}")

  def analysis(self, run, loaded, out: Path, grid: int, threshold: float) -> str:
    """`number_analysis.markdown` of the run's test photos, read as the run reads them."""
    from svhn_jax import inference
    from svhn_jax.tasks import number_analysis
    test = self.load(loaded.config)[0].test
    return number_analysis.markdown(run, test, inference.run_logits(loaded, test.images), out,
                                    grid, threshold)


NUMBER = NumberTask()


# Scores -------------------------------------------------------------------------------------

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


# Reading photo files (the predict CLI) ------------------------------------------------------

def parse_box(text: str) -> np.ndarray:
  """float64 (4,) (left, top, width, height) from 'left,top,width,height'. Raises ConfigError,
  one line naming --box, unless it is four finite numbers with width and height above 0."""
  parts = [part.strip() for part in text.split(",")]
  try:
    box = np.array([float(part) for part in parts], np.float64)
  except ValueError:
    box = None
  if box is None or box.shape != (4,) or not np.isfinite(box).all() or (box[2:] <= 0).any():
    raise ConfigError(f"--box={text!r}: expected left,top,width,height in pixels, four numbers "
                      "with a width and height above 0 (e.g. --box=12,30,80,41)")
  return box


def number_crop(path: str, color: str = "grey", box: np.ndarray | None = None,
                margin: float = house_numbers.GOODFELLOW_MARGIN, min_aspect: float = 0.0
                ) -> np.ndarray:
  """The photo file at `path` as the 64x64 number crop a numbers run reads: uint8 (64, 64) for
  color="grey", (64, 64, 3) for "rgb". The whole photo without `box`; else `box` (left, top,
  width, height) widened by `margin` per side and to `min_aspect` (`house_numbers.number_box`)
  and clipped to the photo. Raises DataError for an unreadable file (`images.read_image`) and a box that lies
  wholly outside the photo."""
  from svhn_jax import images
  pixels = np.round(images.read_image(path, color)).astype(np.uint8)
  height, width = pixels.shape[:2]
  if box is None:
    crop_box = np.array([0.0, 0.0, width, height])
  else:
    left, top, box_w, box_h = box
    if left >= width or top >= height or left + box_w <= 0 or top + box_h <= 0:
      raise DataError(f"--box={','.join(f'{v:g}' for v in box)} lies outside {path} "
                      f"({width}x{height} pixels); give the number's box in that photo's pixels")
    crop_box = house_numbers.number_box(box[None], margin, (width, height), min_aspect)
  return house_numbers.crop_number(pixels, crop_box, house_numbers.SIZE, color)


def readings(logits: np.ndarray) -> list[dict]:
  """Per row of logits (N, K): {'number', 'probability', 'length', 'length_probability',
  'digits': [{'digit', 'probability'} per digit read]}, probabilities as floats in [0, 1]. For
  a column reader (`number_reader.is_columns`) a digit's probability is its class's at the
  column that first reads it, and the length's is the best path's (length and digits are read
  together there)."""
  from svhn_jax import evaluate
  logits = np.asarray(logits, np.float64)
  lengths, digits, log_prob = decode_host(logits)
  if number_reader.is_columns(logits):
    columns = number_reader.column_logits(logits)
    probs = evaluate.softmax(columns)
    best, emit, _ = (np.asarray(a) for a in emitted(jnp.asarray(columns, jnp.float32)))
    digit_probs = [probs[i, np.flatnonzero(emit[i]), best[i, emit[i]]] for i in range(len(probs))]
    length_probs = np.exp(log_prob.astype(np.float64))[:, None] * np.ones(LENGTH_CLASSES)
  else:
    length_logits, digit_logits = number_reader.split_logits(logits)
    length_probs, all_digit_probs = evaluate.softmax(length_logits), evaluate.softmax(digit_logits)
    digit_probs = [all_digit_probs[i, np.arange(MAX_DIGITS), np.minimum(digits[i], 9)]
                   for i in range(len(logits))]
  out = []
  for i, length in enumerate(lengths):
    shown = min(int(length), MAX_DIGITS)
    out.append({
        "number": number_text(length, digits[i]),
        "probability": float(math.exp(log_prob[i])),
        "length": int(length),
        "length_probability": float(length_probs[i, length]),
        "digits": [{"digit": int(digits[i, k]), "probability": float(digit_probs[i][k])}
                   for k in range(shown)],
    })
  return out
