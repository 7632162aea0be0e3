"""The locator (config.task=locate, issue 31): its loss on hand-made predictions, its config rules,
the letterboxed data and a tiny end-to-end run that writes its box scores and reads photo files
of any format, colour and size."""

from __future__ import annotations

import math
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from configs import locate as locate_config
from configs import numbers as numbers_config
from support import metrics_rows, read_json, run_clis
from svhn_jax import boxes, config as config_lib, fileio, predict, tasks, train
from svhn_jax.datasets import located, synthetic_photos
from svhn_jax.errors import CheckpointError, ConfigError
from svhn_jax.tasks import locate

LOCATE = tasks.get("locate")
# 40 photos, 8 carved for validation: 4 steps of 8 an epoch.
OVERRIDES = {"data.synthetic.train": 40, "data.synthetic.test": 8, "data.val_size": 8,
             "train.total_steps": 8, "train.warmup_steps": 1, "train.eval_every_steps": 4,
             "train.batch_size": 8, "train.eval_batch_size": 16}


def logits_of(*corners) -> np.ndarray:
  """float32 (N, 5) logits whose box is each of `corners` (x0, y0, x1, y1), confidence logit 0."""
  rows = []
  for x0, y0, x1, y1 in corners:
    rows.append([(x0 + x1) / 2 - 0.5, (y0 + y1) / 2 - 0.5, x1 - x0 - 0.5, y1 - y0 - 0.5, 0.0])
  return np.asarray(rows, np.float32)


def test_zero_logits_are_the_middle_half_of_the_letterbox():
  zeros = np.zeros((2, 5), np.float32)
  middle = [[0.25, 0.25, 0.75, 0.75]] * 2
  np.testing.assert_allclose(locate.predicted_boxes(zeros), middle)
  np.testing.assert_allclose(locate.predicted_boxes(jnp.asarray(zeros)), middle)
  np.testing.assert_allclose(locate.confidences(zeros), [0.5, 0.5])
  # A negative size is a point, never a box inside out.
  np.testing.assert_allclose(locate.predicted_boxes(np.array([[0, 0, -1, 0, 0]], np.float32)),
                             [[0.5, 0.25, 0.5, 0.75]])


def test_the_loss_of_hand_made_predictions():
  label = np.array([[0.25, 0.25, 0.75, 0.75], [0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.76]],
                   np.float32)
  logits = logits_of([0.25, 0.25, 0.75, 0.75], [0.25, 0.25, 0.75, 0.75],
                     [0.25, 0.25, 0.75, 0.75])
  # Exact: no smooth-L1, GIoU 1; the confidence's cross-entropy against IoU 1 at logit 0: log 2.
  exact = math.log(2)
  # Off by 0.25 on every corner: smooth-L1 0.25 - BETA / 2 each; IoU 1/7, hull 0.75^2, union
  # 0.4375; the confidence's target 1/7 at logit 0 still costs log 2.
  iou = 1 / 7
  giou = iou - (0.5625 - 0.4375) / 0.5625
  off = 5 * 4 * (0.25 - locate.BETA / 2) + 2 * (1 - giou) + math.log(2)
  # Off by 0.01 on one corner, inside smooth-L1's quadratic zone: 0.5 * 0.01^2 / BETA; IoU
  # 0.25 / 0.255 (nested), GIoU the same.
  nested = 0.25 / 0.255
  near = 5 * 0.5 * 0.01 ** 2 / locate.BETA + 2 * (1 - nested) + math.log(2)
  losses = np.asarray(locate.box_losses(jnp.asarray(logits), jnp.asarray(label)))
  np.testing.assert_allclose(losses, [exact, off, near], rtol=1e-5)
  np.testing.assert_allclose(LOCATE.loss(jnp.asarray(logits), jnp.asarray(label)),
                             np.mean([exact, off, near]), rtol=1e-5)
  # A confident, right confidence costs almost nothing.
  sure = logits.copy()
  sure[0, 4] = 30.0
  assert float(locate.box_losses(jnp.asarray(sure[:1]), jnp.asarray(label[:1]))[0]) < 1e-6
  # Found: IoU >= 0.5 for the first and the third.
  assert int(LOCATE.correct(jnp.asarray(logits), jnp.asarray(label))) == 2
  metrics = LOCATE.metrics(jnp.asarray(logits), jnp.asarray(label))
  np.testing.assert_allclose(metrics["accuracy"], 2 / 3, rtol=1e-6)
  scores = locate.box_scores(logits, label)
  np.testing.assert_allclose(scores["mean_iou"], (1 + iou + nested) / 3, rtol=1e-6)
  assert scores["iou_at_least_0.7"] == scores["accuracy"] == pytest.approx(2 / 3)
  assert scores["num_examples"] == 3 and scores["mean_confidence"] == pytest.approx(0.5)


def test_the_confidence_does_not_move_the_box():
  label = jnp.asarray([[0.0, 0.0, 0.5, 0.5]])
  logits = jnp.asarray(logits_of([0.2, 0.2, 0.6, 0.6]))

  def box_only(z):
    found = locate.raw_boxes(z)
    return (locate.L1_WEIGHT * jnp.sum(locate.smooth_l1(found - label))
            + locate.GIOU_WEIGHT * (1 - boxes.giou(found, label)[0]))

  grads = jax.jit(lambda z: (jax.grad(lambda v: locate.box_losses(v, label)[0])(z),
                             jax.grad(box_only)(z)))
  with_confidence, without = grads(logits)
  np.testing.assert_allclose(with_confidence[0, :4], without[0, :4], rtol=1e-5)
  assert float(with_confidence[0, 4]) != 0


def validated(**changes):
  config = locate_config.get_config()
  config.update_from_flattened_dict(changes)
  config_lib.validate(config)


def test_the_locators_config_rules():
  validated()
  validated(**{"model.name": "wrn", "train.augment.distort.contrast": 0.3})
  for field, value, match in (
      ("model.name", "cnn2", "config.model.name='cnn2'"),
      ("data.source", "study", "config.data.source='study'"),
      ("train.augment.translate", 2, "config.train.augment.translate=2"),
      ("train.augment.distort.rotation", 5.0, "distort.rotation=5.0"),
      ("train.augment.num_ops", 2, "num_ops=2"),
      ("train.label_smoothing", 0.1, "label_smoothing"),
      ("data.numbers.jitter", False, "only read with config.task=number")):
    with pytest.raises(ConfigError, match=match):
      validated(**{field: value})


def test_photo_arrays_letterbox_each_photo_with_its_number_box():
  pairs = list(synthetic_photos.generate(3, seed=5, split="test"))
  images, labels = located.photo_arrays(pairs, color="rgb")
  assert images.shape == (3, 54, 54, 3) and labels.dtype == np.float32
  for (photo, pixels), label in zip(pairs, labels):
    geometry = boxes.letterbox_geometry((pixels.shape[1], pixels.shape[0]), 54)
    union = boxes.clip_corners(boxes.union_box(photo.boxes), (pixels.shape[1], pixels.shape[0]))
    np.testing.assert_allclose(boxes.from_letterbox(label, geometry), union, atol=1e-3)
    assert (0 <= label).all() and (label <= 1).all()


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
  return tmp_path_factory.mktemp("locate_cache")


@pytest.fixture(scope="module")
def finished(cache, tmp_path_factory) -> Path:
  config = locate_config.get_config()
  config.update_from_flattened_dict({**OVERRIDES, "data.cache_dir": str(cache)})
  workdir = tmp_path_factory.mktemp("locate") / "run"
  train.train_and_evaluate(config, workdir)
  return workdir


@pytest.fixture(scope="module")
def reader(cache, tmp_path_factory) -> Path:
  """A numbers run of 2 steps on the same generated photos (made once, in the shared cache):
  what it reads does not matter here, only that a locator's boxes reach it."""
  config = numbers_config.get_config()
  config.update_from_flattened_dict({**OVERRIDES, "data.cache_dir": str(cache),
                                     "train.total_steps": 2, "train.eval_every_steps": 2})
  workdir = tmp_path_factory.mktemp("reader") / "run"
  from svhn_jax.tasks import number
  with pytest.MonkeyPatch.context() as patch:  # its scores at other margins and figures: unused
    patch.setattr(number.NumberTask, "extra_tests", lambda self, config: {})
    patch.setattr(number.NumberTask, "write_figures", lambda self, *args: None)
    train.train_and_evaluate(config, workdir)
  return workdir


def test_a_tiny_locator_run_writes_its_box_scores_and_figure(finished):
  scores = read_json(finished / "test_metrics.json")
  for key in ("mean_iou", "iou_at_least_0.5", "iou_at_least_0.7", "mean_confidence"):
    assert 0 <= scores[key] <= 1, key
  assert scores["accuracy"] == scores["iou_at_least_0.5"] and scores["num_examples"] == 8
  assert [row["step"] for row in metrics_rows(finished)] == [4, 8]
  assert read_json(finished / "config.json")["task"] == "locate"
  assert (finished / "figures" / "located.png").is_file()


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
  """One generated photo saved in several formats, modes and sizes."""
  folder = tmp_path_factory.mktemp("photos")
  photo, image = next(synthetic_photos.generate(1, seed=7, split="test"))
  rgb = Image.fromarray(image)
  paths = {"colour_png": folder / "colour.png", "grey_jpeg": folder / "grey.jpg",
           "odd_png": folder / "odd.png", "tiny_png": folder / "tiny.png",
           "tall_jpeg": folder / "tall.jpeg"}
  rgb.save(paths["colour_png"])
  rgb.convert("L").save(paths["grey_jpeg"], quality=90)
  rgb.resize((131, 37)).save(paths["odd_png"])
  rgb.resize((7, 5)).save(paths["tiny_png"])
  rgb.resize((33, 211)).save(paths["tall_jpeg"])
  return paths


def test_a_locator_reads_photo_files_of_any_format_colour_and_size(finished, photos):
  names = ("colour_png", "grey_jpeg", "odd_png", "tiny_png", "tall_jpeg")
  task, answers = predict.read_files(str(finished), [str(photos[n]) for n in names])
  assert task is LOCATE and len(answers) == len(names)
  for name, answer in zip(names, answers):
    width, height = Image.open(photos[name]).size
    left, top, box_w, box_h = answer["box"]
    assert set(answer) == {"box", "confidence"} and 0 <= answer["confidence"] <= 1
    assert 0 <= left <= left + box_w <= width + 1e-6 and 0 <= top <= top + box_h <= height + 1e-6
  line = LOCATE.answer_line("a.png", {"box": [1, 2.5, 30, 12.25], "confidence": 0.5})
  assert line == "a.png: box 1.0,2.5,30.0,12.2 (confidence 50.0%)"
  with pytest.raises(ConfigError, match="--box: .* locator run"):
    predict.read_files(str(finished), [str(photos["colour_png"])], box="1,2,3,4")


def test_locate_then_read_crops_the_box_found_with_the_readers_margin(finished, reader, photos,
                                                                     monkeypatch, tmp_path):
  from svhn_jax.tasks import number
  names = ("colour_png", "grey_jpeg", "odd_png", "tiny_png", "tall_jpeg")
  paths = [str(photos[n]) for n in names]
  found = predict.read_files(str(finished), paths)[1]
  # The reader crops each photo at the box found, widened by its eval_margin (0.15 a side).
  cropped = []
  crop = number.number_crop
  monkeypatch.setattr(number, "number_crop",
                      lambda path, color, box, margin, **kw: cropped.append((path, box, margin))
                      or crop(path, color, box, margin, **kw))
  task, answers = predict.read_files(str(reader), paths, locator=str(finished))
  assert [(p, list(b), m) for p, b, m in cropped] == [(p, f["box"], 0.15)
                                                      for p, f in zip(paths, found)]
  alone = predict.read_files(str(reader), paths, box=None)[1]
  for answer, where in zip(answers, found):
    assert answer["box"] == where["box"] and answer["box_confidence"] == where["confidence"]
    assert {"number", "probability", "digits"} <= set(answer)
  assert len(alone) == len(answers)
  lines = predict.lines(task, paths[:1], answers[:1], as_json=False)
  assert lines[0].startswith(f"{paths[0]}: ") and "[box " in lines[0] and "confidence" in lines[0]
  # --box overrides the locator: read at that box, no located box in the answer.
  cropped.clear()
  given = predict.read_files(str(reader), paths[:1], locator=str(finished), box="1,2,30,20")[1]
  assert "box_confidence" not in given[0] and list(cropped[0][1]) == [1, 2, 30, 20]
  # A locator that is no locator run, or no run at all: one line each.
  with pytest.raises(ConfigError, match=r"^--locator=.* holds a run of config\.task=number, "
                     "which finds no boxes"):
    predict.read_files(str(reader), paths, locator=str(reader))
  with pytest.raises(CheckpointError, match=r"^--locator=.*: no such folder"):
    predict.read_files(str(reader), paths, locator=str(tmp_path / "missing"))
  with pytest.raises(CheckpointError, match="holds no trained run"):
    predict.read_files(str(reader), paths, locator=str(tmp_path))


def fake_run(folder: Path, config) -> Path:
  """A workdir that holds `config` as a finished run's config.json and an empty checkpoints/:
  enough for the checks made before any weights are read."""
  folder.mkdir(parents=True)
  (folder / "checkpoints").mkdir()
  fileio.write_json(folder / "config.json", config_lib.to_dict(config))
  return folder


def test_the_cli_refuses_a_digit_run_or_a_missing_workdir_as_locator_in_one_line(tmp_path):
  from configs import cnn2
  reader = fake_run(tmp_path / "reader", numbers_config.get_config())
  digits = fake_run(tmp_path / "digits", cnn2.get_config())
  photo = tmp_path / "photo.png"
  Image.fromarray(np.zeros((20, 40), np.uint8)).save(photo)
  wants = {str(digits): rf"^error: --locator={digits} holds a run of config\.task=digit, which "
                        r"finds no boxes; expected the workdir of a locator run",
           str(tmp_path / "none"): rf"^error: --locator={tmp_path / 'none'}: no such folder",
           "": r"^error: --locator=: no such folder"}
  results = run_clis([["svhn_jax.predict", f"--workdir={reader}", f"--locator={locator}",
                        str(photo)] for locator in wants])
  for result, want in zip(results, wants.values()):
    assert result.returncode != 0 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert re.match(want, result.stderr), result.stderr


def test_the_locate_then_read_benchmark_scores_a_format1_split(finished, reader, cache, tmp_path):
  from benchmarks import locate_then_read
  test = cache / f"photos_v{synthetic_photos.VERSION}_40_8_seed0" / "test.tar.gz"
  figure = tmp_path / "located.png"
  scores = locate_then_read.measure(str(reader), str(finished), str(test), limit=5,
                                    figure=str(figure))
  assert scores["photos"] == 5 and figure.is_file()
  for key in ("read_located", "read_true_box", "mean_iou", "iou_at_least_0.5",
              "iou_at_least_0.7"):
    assert 0 <= scores[key] <= 1, key
  assert sum(row["photos"] for row in scores["by_length"].values()) == 5
  assert all({"read_true_box", "read_located"} <= set(row) for row in scores["by_length"].values())
  assert locate_then_read.true_number([1, 10, 7]) == "107"
  assert locate_then_read.true_number([1, 2, 3, 4, 5, 6]) == "12345+"
  # Without a locator: the reader at the true box only, the same figure as above.
  alone = locate_then_read.measure(str(reader), None, str(test), limit=5)
  assert set(alone) == {"read_true_box", "by_length", "photos"}
  assert alone["read_true_box"] == scores["read_true_box"]


def test_the_scene_style_puts_a_smaller_number_in_the_photo_and_names_its_own_folder(tmp_path):
  from svhn_jax.datasets import synthetic
  assert tuple(synthetic_photos.STYLES) == config_lib.PHOTO_STYLES
  assert synthetic_photos.STYLES["number"] is synthetic_photos.STYLE

  def widths(style):
    shares = []
    for photo, image in synthetic_photos.generate(12, seed=3, style=style):
      union = boxes.union_box(photo.boxes)
      shares.append((union[2] - union[0]) / image.shape[1])
    return np.median(shares)

  assert widths(synthetic_photos.SCENE_STYLE) < 0.6 * widths(synthetic_photos.STYLE)
  config = locate_config.get_config()
  config.update_from_flattened_dict({"data.cache_dir": str(tmp_path), "data.synthetic.train": 2,
                                     "data.synthetic.test": 1})
  # The scene style's version 2 (strings of letters) in its name: version 1's photos not reused.
  assert synthetic.photos_folder(config.data).name == "photos_v2_scene_2_1_seed0"
  # The number style's photos keep their folder name, and their bytes: the same photo whether
  # the scene style exists or not (its default fields are STYLE's).
  config.data.synthetic.photo_style = "number"
  assert synthetic.photos_folder(config.data).name == "photos_v1_2_1_seed0"


def test_locate_then_read_refuses_a_reader_that_is_no_numbers_run_naming_reader(tmp_path):
  from benchmarks import locate_then_read
  from configs import cnn2
  digits = fake_run(tmp_path / "digits", cnn2.get_config())
  with pytest.raises(ConfigError, match=rf"^--reader={digits} holds a run of config\.task=digit; "
                                        r"expected the workdir of a numbers run"):
    locate_then_read.measure(str(digits), str(tmp_path / "none"), str(tmp_path / "photos"))
