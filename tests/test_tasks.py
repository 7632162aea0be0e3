"""The tasks' pieces against hand-computed values: the whole-number loss with its masked digits,
Goodfellow's decoding, the number scores (sequence, digit and length accuracy, coverage at 98%,
length confusion), the numbers model's shapes, and the digit task as the study's step."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from svhn_jax import house_numbers, models, recipes, tasks
from svhn_jax.models import number_reader, reader_sizes, study
from svhn_jax.tasks import number
from svhn_jax import config as config_lib
from svhn_jax.errors import ConfigError

NUMBER = number.NumberTask()
DIGIT = tasks.get("digit")


def labels(*numbers: str) -> np.ndarray:
  """int32 (N, 6) labels of numbers written as text, as house_numbers.number_labels makes them."""
  rows = []
  for text in numbers:
    length, digits = house_numbers.number_labels([int(c) for c in text])
    rows.append([length, *digits])
  return np.asarray(rows, np.int32)


def confident(*numbers: str, strength: float = 20.0) -> np.ndarray:
  """Logits (N, 57) that read `numbers` with near certainty (lengths up to 5)."""
  logits = np.zeros((len(numbers), number_reader.OUTPUTS), np.float32)
  for i, text in enumerate(numbers):
    logits[i, len(text)] = strength
    for k, c in enumerate(text):
      logits[i, number_reader.LENGTH_CLASSES + 10 * k + int(c)] = strength
  return logits


def test_split_logits_takes_the_length_then_five_digit_heads():
  logits = np.arange(2 * 57, dtype=np.float32).reshape(2, 57)
  length, digits = number_reader.split_logits(logits)
  assert length.shape == (2, 7) and digits.shape == (2, 5, 10)
  assert digits[1, 2, 3] == logits[1, 7 + 20 + 3]
  with pytest.raises(ValueError, match="expected logits"):
    number_reader.split_logits(np.zeros((2, 10)))


def test_the_loss_with_uniform_softmaxes_counts_the_length_and_each_digit_up_to_it():
  # Every softmax uniform: the length costs log 7 and each digit read log 10; a 2-digit number
  # adds two digit terms, a number of more than 5 digits all five.
  y = np.array([[2, 3, 7, 10, 10, 10], [6, 1, 2, 3, 4, 5]], np.int32)
  losses = number.number_losses(jnp.zeros((2, 57)), jnp.asarray(y))
  np.testing.assert_allclose(losses, [math.log(7) + 2 * math.log(10),
                                      math.log(7) + 5 * math.log(10)], rtol=1e-6)
  np.testing.assert_allclose(NUMBER.loss(jnp.zeros((2, 57)), jnp.asarray(y)),
                             math.log(7) + 3.5 * math.log(10), rtol=1e-6)


def test_the_loss_of_chosen_probabilities_and_the_masked_positions():
  y = jnp.asarray([[2, 3, 7, 10, 10, 10]], jnp.int32)
  logits = np.zeros((1, 57), np.float32)
  logits[0, 2] = math.log(3)  # P(length 2) = 3 / (3 + 6) = 1/3
  logits[0, 7 + 3] = math.log(9)  # P(first digit 3) = 9 / (9 + 9) = 1/2
  logits[0, 7 + 10 + 7] = math.log(3)  # P(second digit 7) = 3 / (3 + 9) = 1/4
  want = math.log(3) + math.log(2) + math.log(4)
  np.testing.assert_allclose(number.number_losses(jnp.asarray(logits), y), [want], rtol=1e-6)
  # Positions past the length are masked: their logits change nothing, nor their gradient.
  noisy = logits.copy()
  noisy[0, 7 + 20:] = np.random.default_rng(0).normal(0, 5, 30)
  np.testing.assert_allclose(number.number_losses(jnp.asarray(noisy), y), [want], rtol=1e-6)
  grad = jax.grad(lambda z: NUMBER.loss(z, y))(jnp.asarray(noisy))
  assert not np.asarray(grad)[0, 7 + 20:].any()


def test_label_smoothing_smooths_each_softmax_as_the_digit_task_does():
  y = jnp.asarray([[1, 4, 10, 10, 10, 10]], jnp.int32)
  logits = jnp.asarray(np.random.default_rng(1).normal(0, 2, (1, 57)), jnp.float32)
  length, digits = number_reader.split_logits(logits)
  want = (recipes.cross_entropy(length, y[:, 0], 0.1)
          + recipes.cross_entropy(digits[:, 0], y[:, 1], 0.1))
  np.testing.assert_allclose(NUMBER.loss(logits, y, 0.1), want, rtol=1e-6)


def test_decode_reads_the_number_and_its_probability():
  logits = np.zeros((1, 57), np.float32)
  logits[0, 3] = math.log(66)  # P(length 3) = 66 / 72 = 11/12
  for k, (d, weight) in enumerate(((4, 9.0), (0, 9.0), (2, 3.0))):
    logits[0, 7 + 10 * k + d] = math.log(weight)  # P = weight / (weight + 9)
  decoded = number.decode(logits)
  assert int(decoded.lengths[0]) == 3
  np.testing.assert_array_equal(decoded.digits[0], [4, 0, 2, 10, 10])
  np.testing.assert_allclose(decoded.log_prob[0], math.log(11 / 12 * 0.5 * 0.5 * 0.25), rtol=1e-5)
  # Digits this unsure make "no number" (P(length 0) = 1/72) likelier than a 402 of 1/4 less.
  logits[0, 3] = math.log(6)
  assert int(number.decode(logits).lengths[0]) == 0
  assert number.number_text(3, np.asarray(decoded.digits[0])) == "402"


def test_decode_picks_the_length_that_makes_the_whole_number_most_probable():
  # The length softmax alone prefers 2 (0.4 against 0.35 for 1), but position 2's digit is
  # a coin toss among ten: reading one digit makes the more probable number (0.35 > 0.04).
  logits = np.full((1, 57), -30.0, np.float32)
  logits[0, [1, 2, 3]] = np.log([0.35, 0.4, 0.25])
  logits[0, 7 + 5] = 0.0
  logits[0, 17:27] = 0.0
  decoded = number.decode(logits)
  assert int(decoded.lengths[0]) == 1
  np.testing.assert_array_equal(decoded.digits[0], [5, 10, 10, 10, 10])


def test_sequence_correct_needs_the_length_and_every_digit():
  y = jnp.asarray(labels("12", "345", "6"))
  decoded = number.decode(confident("12", "346", "61"))
  np.testing.assert_array_equal(number.sequence_correct(decoded, y), [True, False, False])
  assert int(NUMBER.correct(jnp.asarray(confident("12", "346", "61")), y)) == 1
  metrics = NUMBER.metrics(jnp.asarray(confident("12", "346", "61")), y)
  np.testing.assert_allclose(metrics["accuracy"], 1 / 3)


def test_number_scores_on_hand_made_readings():
  y = labels("12", "345", "6", "78", "1234567")
  lengths = np.array([2, 3, 2, 2, 6])
  digits = np.array([[1, 2, 10, 10, 10],  # right
                     [3, 4, 6, 10, 10],  # third digit wrong
                     [6, 1, 10, 10, 10],  # length wrong, its one digit right
                     [7, 8, 10, 10, 10],  # right
                     [1, 2, 3, 4, 5]])  # more than 5, its five digits right: right
  confidence = np.log([0.9, 0.8, 0.7, 0.95, 0.6])
  s = number.number_scores(lengths, digits, confidence, y)
  assert s["sequence_accuracy"] == s["accuracy"] == 3 / 5
  # True digit positions: 2 + 3 + 1 + 2 + 5 = 13, of which 12 read right.
  assert s["digit_accuracy"] == 12 / 13
  assert s["digit_accuracy_by_position"] == [1.0, 1.0, 0.5, 1.0, 1.0]
  assert s["length_accuracy"] == 4 / 5
  confusion = np.asarray(s["length_confusion_matrix"])
  assert confusion.shape == (7, 7) and confusion.sum() == 5
  assert confusion[1, 2] == 1 and confusion[2, 2] == 2 and confusion[3, 3] == 1
  assert confusion[6, 6] == 1
  assert s["accuracy_by_length"] == {"1": {"count": 1, "sequence_accuracy": 0.0},
                                     "2": {"count": 2, "sequence_accuracy": 1.0},
                                     "3": {"count": 1, "sequence_accuracy": 0.0},
                                     "6": {"count": 1, "sequence_accuracy": 1.0}}
  # By confidence: 0.95 right, 0.9 right, 0.8 wrong: only the two most confident reach 98%.
  assert s["coverage_at_98"] == 2 / 5
  text = number.number_report_text(s)
  assert "sequence accuracy 0.6000" in text and "more than 5" in text


def test_coverage_at_98_refuses_the_least_confident_first():
  right = np.array([1, 1, 1, 0, 1], bool)
  confidence = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
  assert number.coverage_at(confidence, right) == 3 / 5
  assert number.coverage_at(confidence, right, target=0.8) == 1.0
  assert number.coverage_at(np.array([0.9, 0.8]), np.array([False, True])) == 0.0
  coverage, accuracy = number.coverage_curve(confidence, right)
  np.testing.assert_allclose(coverage, [0.2, 0.4, 0.6, 0.8, 1.0])
  np.testing.assert_allclose(accuracy, [1, 1, 1, 0.75, 0.8])


def test_coverage_answers_or_refuses_equally_confident_photos_together():
  right = np.array([1, 0, 1, 1], bool)
  confidence = np.array([0.9, 0.9, 0.5, 0.5])
  coverage, accuracy = number.coverage_curve(confidence, right)
  np.testing.assert_allclose(coverage, [0.5, 1.0])
  np.testing.assert_allclose(accuracy, [0.5, 0.75])
  assert number.coverage_at(confidence, right) == 0.0


def test_number_inputs_train_on_random_windows_and_evaluate_on_the_centre():
  images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (4, 64, 64), np.uint8))
  a = NUMBER.train_images(images, jax.random.key(0))
  b = NUMBER.train_images(images, jax.random.key(1))
  assert a.shape == (4, 54, 54) and a.dtype == jnp.uint8 and not np.array_equal(a, b)
  np.testing.assert_array_equal(NUMBER.eval_images(images), images[:, 5:59, 5:59])
  still = number.NumberTask(jitter=False).train_images(images, jax.random.key(0))
  np.testing.assert_array_equal(still, images[:, 5:59, 5:59])


def test_the_digit_task_is_the_studys_step():
  # Its metrics are tested in test_steps.py, with the trainer's evaluation.
  logits = jnp.asarray([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 0.0, 0.0]])
  y = jnp.asarray([0, 1, 1, 1])
  assert int(DIGIT.correct(logits, y)) == 2
  assert DIGIT.loss(logits, y, 0.1) == recipes.cross_entropy(logits, y, 0.1)
  x = jnp.ones((2, 32, 32))
  assert DIGIT.train_images(x, jax.random.key(0)) is x and DIGIT.eval_images(x) is x


def test_the_small_reader_reads_54x54_crops_into_57_logits():
  model = number_reader.multidigit(rngs=nnx.Rngs(0))
  assert jax.eval_shape(model, jax.ShapeDtypeStruct((2, 54, 54, 1), jnp.float32)).shape == (2, 57)
  text = study.summary(model, "multidigit", image_size=54)
  assert "(None, 27, 27, 4)" in text and "(None, 4, 4, 128)" in text and "(None, 57)" in text
  assert f"Total params: {study.param_counts(model)[0]:,}" in text


def test_the_paper_sized_reader_has_goodfellows_layers():
  # Built and run abstractly: 23 M parameters.
  build = lambda: number_reader.multidigit(rngs=nnx.Rngs(0), size="paper", dropout=0.5)
  model = nnx.eval_shape(build)
  # By hand: 5x5 kernels 1*48 + 48*64 + 64*128 + 128*160 + 160*192 + 3 * 192*192, BatchNorm's
  # scale, bias, mean and variance per unit, 4*4*192 -> 3072 -> 3072, and the heads 3072 -> 57.
  convs = 25 * (48 + 48 * 64 + 64 * 128 + 128 * 160 + 160 * 192 + 3 * 192 * 192)
  units = 48 + 64 + 128 + 160 + 4 * 192
  dense = 2 * (3072 * 3072 + 3072) + 3072 * 57 + 57
  assert study.param_counts(model) == (convs + 4 * units + dense, convs + 2 * units + dense,
                                        2 * units)
  out = jax.eval_shape(lambda x: build()(x), jax.ShapeDtypeStruct((2, 54, 54, 1), jnp.float32))
  assert out.shape == (2, 57)


def layer_shapes(build, x_shape) -> list[tuple]:
  """The output shape of each of `build()`'s layers for float32 input of `x_shape`, traced
  abstractly (jax.eval_shape: no weights are drawn, which takes seconds on the CPU)."""
  shapes = []

  def run(x):
    model = build()
    for layer in model.layers:
      x = layer(x)
      shapes.append(tuple(x.shape))
    return x

  jax.eval_shape(run, jax.ShapeDtypeStruct(x_shape, jnp.float32))
  return shapes


def test_the_residual_reader_keeps_seven_columns_and_has_its_hand_counted_parameters():
  build = lambda: number_reader.multidigit(rngs=nnx.Rngs(0), channels=3, size="residual")
  assert layer_shapes(build, (2, 54, 54, 3)) == [
      (2, 27, 27, 12), (2, 27, 27, 32), (2, 27, 27, 32), (2, 14, 14, 64), (2, 7, 7, 128),
      (2, 7, 7, 128), (2, 6272), (2, 512), (2, 57)]
  # By hand: space-to-depth 3 -> 12 channels; 3x3 stem 12 -> 32; blocks 32 -> 32 (two 3x3
  # convs), 32 -> 64 and 64 -> 128 (two 3x3 convs and a 1x1 projection each); BatchNorm before
  # each block's convs and at the end (scale and bias trained, mean and variance kept); 7*7*128
  # -> 512 -> the heads' 57.
  convs = 9 * (12 * 32 + 2 * 32 * 32 + 32 * 64 + 64 * 64 + 64 * 128 + 128 * 128) + 32 * 64 \
      + 64 * 128
  units = (32 + 32) + (32 + 64) + (64 + 128) + 128
  dense = 7 * 7 * 128 * 512 + 512 + 512 * 57 + 57
  assert study.param_counts(nnx.eval_shape(build)) == (
      convs + 4 * units + dense, convs + 2 * units + dense, 2 * units)


def test_the_gpu_sized_residual_reader_has_its_hand_counted_parameters():
  build = lambda: number_reader.multidigit(rngs=nnx.Rngs(0), size="residual_paper", dropout=0.5)
  model = nnx.eval_shape(build)
  block = lambda a, b: 9 * (a * b + b * b) + (a * b if a != b else 0)  # a first, stride 2 block
  convs = (9 * 64 + block(64, 64) + 9 * 2 * 64 * 64 + block(64, 128) + 9 * 2 * 128 * 128
           + block(128, 256) + 9 * 2 * 256 * 256)
  # The first block of 64 projects (stride 2) although its features do not change.
  convs += 64 * 64
  units = 2 * (64 + 64) + (64 + 128) + (128 + 128) + (128 + 256) + (256 + 256) + 256
  dense = 7 * 7 * 256 * 1024 + 1024 + 1024 * 57 + 57
  assert study.param_counts(model) == (convs + 4 * units + dense, convs + 2 * units + dense,
                                        2 * units)
  out = jax.eval_shape(lambda x: build()(x), jax.ShapeDtypeStruct((2, 54, 54, 1), jnp.float32))
  assert out.shape == (2, 57)


def test_the_number_model_sizes_are_the_configs():
  assert tuple(reader_sizes.SIZES) == config_lib.NUMBER_MODEL_SIZES
  assert models.spec("multidigit").convolutional


def test_the_task_follows_the_config():
  from configs import default, numbers
  assert tasks.get(default.get_config()) is DIGIT
  config = numbers.get_config()
  assert tasks.get(config) == number.NumberTask(jitter=True) == tasks.get("number")
  config.data.numbers.jitter = False
  assert tasks.get(config) == number.NumberTask(jitter=False)
  # A config.json written before config.task existed trained digits.
  del config["task"]
  assert tasks.get(config) is DIGIT


def test_each_registered_task_provides_the_whole_interface():
  from svhn_jax.tasks import base
  for name in tasks.REGISTRY.names():
    assert isinstance(tasks.get(name), base.Task), name
    assert tasks.get(name).name == name


# The column reader (config.model.reader.size=ctc, ctc_paper), read with CTC.

def columns_reading(path: str, strength: float = 20.0) -> np.ndarray:
  """Column logits (1, T x 11) whose every column is near-certain of the class of `path` (one
  character per column: a digit, or '-' for CTC's blank)."""
  logits = np.zeros((1, len(path), 11), np.float32)
  for t, c in enumerate(path):
    logits[0, t, 10 if c == "-" else int(c)] = strength
  return logits.reshape(1, -1)


def test_column_logits_are_told_from_the_positional_heads_by_their_width():
  logits = np.arange(2 * 154, dtype=np.float32).reshape(2, 154)
  columns = number_reader.column_logits(logits)
  assert columns.shape == (2, 14, 11) and columns[1, 3, 4] == logits[1, 3 * 11 + 4]
  assert number_reader.is_columns(logits) and not number_reader.is_columns(np.zeros((2, 57)))
  with pytest.raises(ValueError, match="expected logits"):
    number_reader.column_logits(np.zeros((2, 57)))


@pytest.mark.parametrize("path, number_read, length", [
    ("33-37--", "337", 3),  # repeats merge; a blank between two 3s keeps both
    ("-------", "", 0),
    ("1-2-3-4-5-6", "12345+", 6),  # more than five: the first five and the length class 6
    ("9", "9", 1),
])
def test_ctc_best_path_merges_repeats_and_drops_blanks(path, number_read, length):
  decoded = number.decode_host(columns_reading(path))
  assert int(decoded.lengths[0]) == length
  assert number.number_text(length, decoded.digits[0]) == number_read
  digits = [int(c) for c in number_read.rstrip("+")][:5]
  np.testing.assert_array_equal(decoded.digits[0], digits + [10] * (5 - len(digits)))
  # Every column near-certain: the best path's probability is about 1.
  assert decoded.log_prob[0] > -1e-6 * len(path)


def test_ctc_loss_sums_every_path_that_reads_the_number():
  # Two columns, P(5) = a_t and P(blank) = b_t in column t (the other nine share the rest):
  # "5" is read by the paths 5-, -5 and 55, so P("5") = a1 b2 + b1 a2 + a1 a2.
  a, b = np.array([0.5, 0.3]), np.array([0.3, 0.6])
  columns = np.zeros((1, 2, 11), np.float32)
  for t in range(2):
    rest = (1 - a[t] - b[t]) / 9
    columns[0, t] = np.log(np.where(np.arange(11) == 5, a[t], np.where(np.arange(11) == 10,
                                                                       b[t], rest)))
  want = -math.log(a[0] * b[1] + b[0] * a[1] + a[0] * a[1])
  y = jnp.asarray(labels("5"))
  np.testing.assert_allclose(number.number_losses(jnp.asarray(columns.reshape(1, -1)), y),
                             [want], rtol=1e-5)
  # "55" needs a blank between its digits: no path of two columns reads it.
  assert float(number.number_losses(jnp.asarray(columns.reshape(1, -1)),
                                    jnp.asarray(labels("55")))[0]) > 1e4
  # A number of more than five digits has only five labelled: it adds nothing.
  six = jnp.asarray([[6, 1, 2, 3, 4, 5]], jnp.int32)
  assert float(number.number_losses(jnp.zeros((1, 14 * 11)), six)[0]) == 0.0
  with pytest.raises(ValueError, match="CTC"):
    number.number_losses(jnp.zeros((1, 22)), y, 0.1)


def test_readings_of_column_logits_give_each_digits_column_probability():
  logits = columns_reading("4-07--")
  logits[0, 3 * 11 + 7] = math.log(3.0)  # the 7's column: P(7) = 3 / (3 + 10 others at 0)
  reading = number.readings(logits)[0]
  assert reading["number"] == "407" and reading["length"] == 3
  probs = [d["probability"] for d in reading["digits"]]
  assert [d["digit"] for d in reading["digits"]] == [4, 0, 7]
  np.testing.assert_allclose(probs[2], 3 / 13, rtol=1e-5)
  assert probs[0] > 0.999 and probs[1] > 0.999
  assert 0 < reading["probability"] == reading["length_probability"] <= probs[2] * (1 + 1e-6)


def test_the_column_reader_keeps_fourteen_columns_and_has_its_hand_counted_parameters():
  build = lambda: number_reader.multidigit(rngs=nnx.Rngs(0), size="ctc")
  assert layer_shapes(build, (2, 54, 54, 1)) == [
      (2, 27, 27, 4), (2, 27, 27, 32), (2, 27, 27, 32), (2, 27, 27, 32), (2, 14, 14, 32),
      (2, 14, 14, 64), (2, 14, 14, 64), (2, 14, 14, 64),
      (2, 14, 14, 96), (2, 14, 14, 96), (2, 14, 14, 96), (2, 7, 14, 96),
      (2, 7, 14, 128), (2, 7, 14, 128), (2, 7, 14, 128), (2, 4, 14, 128),
      (2, 14, 512), (2, 14, 256), (2, 154)]
  # By hand: 3x3 convolutions 4 -> 32 -> 64 -> 96 -> 128 without biases, BatchNorm's scale, bias,
  # mean and variance per unit; the columns' 3-wide convolution 4 * 128 -> 256 with biases, and
  # the 11 classes of each column from 256.
  convs = 9 * (4 * 32 + 32 * 64 + 64 * 96 + 96 * 128)
  units = 32 + 64 + 96 + 128
  dense = 3 * 512 * 256 + 256 + 256 * 11 + 11
  assert study.param_counts(nnx.eval_shape(build)) == (
      convs + 4 * units + dense, convs + 2 * units + dense, 2 * units)


def test_the_gpu_sized_column_reader_has_its_hand_counted_parameters():
  build = lambda: number_reader.multidigit(rngs=nnx.Rngs(0), size="ctc_paper", channels=3)
  widths = [3, 48, 64, 128, 160, 192, 192, 192, 192]
  convs = 25 * sum(a * b for a, b in zip(widths, widths[1:]))
  units = sum(widths[1:])
  dense = 3 * 4 * 192 * 768 + 768 + 768 * 11 + 11
  assert study.param_counts(nnx.eval_shape(build)) == (
      convs + 4 * units + dense, convs + 2 * units + dense, 2 * units)
  assert layer_shapes(build, (2, 54, 54, 3))[-3:] == [(2, 14, 768), (2, 14, 768), (2, 154)]
  # Another task (the locator's box) reads the flattened map instead of columns.
  box = lambda: number_reader.multidigit(rngs=nnx.Rngs(0), size="ctc", outputs=5)
  assert layer_shapes(box, (2, 54, 54, 1))[-3:] == [(2, 4 * 14 * 128), (2, 256), (2, 5)]


def test_a_column_reader_refuses_label_smoothing_in_one_line():
  from configs import numbers
  config = numbers.get_config()
  config.model.reader.size = "ctc"
  config.train.label_smoothing = 0.1
  with pytest.raises(ConfigError, match="label_smoothing=0.1: the column reader"):
    NUMBER.check_config(config)
