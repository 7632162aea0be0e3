"""The locator (config.task=locate, issue 31): its loss on hand-made predictions, its config rules,
the letterboxed data and a tiny end-to-end run that writes its box scores and reads photo files
of any format, colour and size."""

from __future__ import annotations

import json
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
  reader = fake_run(tmp_path / "reader", numbers_config.get_config())
  with pytest.raises(ConfigError, match=r"^--refine_passes=0: the locator's passes; give it with "
                                        "--locator"):
    locate_then_read.measure(str(reader), None, str(tmp_path / "photos"), refine_passes=0)
  # Refused before any photo is read: a missing reader, a figure without a locator or nowhere.
  from svhn_jax.errors import CheckpointError
  with pytest.raises(CheckpointError, match=r"^--reader=.*nope: no such folder"):
    locate_then_read.measure(str(tmp_path / "nope"), None, str(tmp_path / "photos"))
  with pytest.raises(ConfigError, match=r"^--figure=f\.png: the figure draws the boxes a locator"):
    locate_then_read.measure(str(reader), None, str(tmp_path / "photos"), figure="f.png")
  for bad in (tmp_path, tmp_path / "no_folder" / "f.png"):
    with pytest.raises(ConfigError, match=r"^--figure=.*: expected a PNG file's path"):
      locate_then_read.measure(str(reader), str(tmp_path / "loc"), str(tmp_path / "photos"),
                               figure=str(bad))


# Coarse to fine: the zoomed training views (datasets/located.py) and the refining pass
# (tasks/locate.py's locate_photos).

def test_a_context_window_is_the_box_times_a_factor_in_whole_pixels_cut_to_the_photo():
  window = boxes.context_window
  # The docstring's: 2x centred, then (3, 4) with the box at the left and the bottom, cut.
  assert window([10, 20, 30, 30], (100, 50), 2).tolist() == [0, 15, 40, 35]
  assert window([10, 20, 30, 30], (100, 50), (3, 4), (0, 1)).tolist() == [10, 0, 70, 30]
  # Outward to whole pixels: 2.5 x (20 x 10) centred on (80, 40, 100, 50) is [65, 115] x
  # [32.5, 57.5], so y [32, 58].
  assert window([80, 40, 100, 50], (200, 100), 2.5).tolist() == [65, 32, 115, 58]
  # At least min_size a side: a 2-pixel box in a 16-pixel window.
  assert window([50, 50, 52, 52], (200, 100), 2.5, min_size=16).tolist() == [43, 43, 59, 59]
  # A box outside the photo: the photo's nearest pixel, never an empty window.
  assert window([210, 20, 230, 30], (200, 100), 1).tolist() == [199, 20, 200, 30]
  for bad, match in (({"factor": 0.5}, "factor"), ({"place": (0, 2)}, "place"),
                     ({"min_size": -1.0}, "min_size")):
    with pytest.raises(ValueError, match=f"context_window: {match}"):
      window([10, 20, 30, 30], (100, 50), **{"factor": 2, **bad})
  with pytest.raises(ValueError, match="context_window: box"):
    window([10, 20, 30], (100, 50), 2)
  box = np.array([70.0, 35.5, 101.25, 50.0])
  np.testing.assert_array_equal(boxes.to_window(box, [65, 32, 115, 58]), [5, 3.5, 36.25, 18])
  np.testing.assert_array_equal(boxes.from_window(boxes.to_window(box, [65, 32, 115, 58]),
                                                  [65, 32, 115, 58]), box)
  photo = np.arange(100 * 200).reshape(100, 200)
  np.testing.assert_array_equal(boxes.window_pixels(photo, [65, 32, 115, 58]),
                                photo[32:58, 65:115])


# The hand-computed case shared by the zoomed view and the refining pass: a 200 x 100 photo, its
# number's box (80, 40, 100, 50), the window 2.5 times it, (65, 32, 115, 58): 50 x 26 pixels,
# letterboxed at 54 / 50 = 1.08 across, 28 / 26 down (28 rows, 13 above).
_PHOTO_SIZE = (200, 100)
_NUMBER = [80.0, 40.0, 100.0, 50.0]
_WINDOW = [65, 32, 115, 58]


def _photo_with_number():
  from svhn_jax.datasets.photos import Photo
  pixels = np.random.default_rng(0).integers(0, 256, (100, 200, 3), dtype=np.uint8)
  photo = Photo("1.png", np.array([1, 2], np.int32),
                np.array([[80, 40, 10, 10], [90, 42, 10, 8]], np.float32))
  return photo, pixels


def test_a_zoomed_view_is_the_letterboxed_window_with_the_number_box_in_its_shares(monkeypatch):
  photo, pixels = _photo_with_number()
  monkeypatch.setattr(located, "zoom_window", lambda union, size, rng: np.array(_WINDOW))
  images, labels = located.photo_arrays([(photo, pixels)], color="rgb", zoom_views=1)
  assert images.shape == (2, 54, 54, 3) and labels.shape == (2, 4)
  np.testing.assert_array_equal(images[1], boxes.letterbox(pixels[32:58, 65:115], 54, "rgb")[0])
  # In the window the number is (15, 8, 35, 18): x 15 x 1.08 / 54 = 0.3 and 0.7; y (8 x 28 / 26
  # + 13) / 54 and (18 x 28 / 26 + 13) / 54.
  want = [0.3, (8 * 28 / 26 + 13) / 54, 0.7, (18 * 28 / 26 + 13) / 54]
  np.testing.assert_allclose(labels[1], want, rtol=1e-6)
  # The whole photo's row is as without views.
  alone = located.photo_arrays([(photo, pixels)], color="rgb")
  np.testing.assert_array_equal(images[:1], alone[0])
  np.testing.assert_array_equal(labels[:1], alone[1])


def test_zoomed_views_are_seeded_and_none_gives_the_arrays_of_before():
  import hashlib
  pairs = list(synthetic_photos.generate(3, seed=5, split="test"))
  digest = lambda arrays: hashlib.sha1(arrays[0].tobytes() + arrays[1].tobytes()).hexdigest()
  # Without views: each photo's letterbox alone, as before zoomed views existed, whatever seed.
  for color in ("rgb", "grey"):
    images, labels = located.photo_arrays(pairs, color=color, zoom_views=0, seed=(9,))
    for i, (photo, pixels) in enumerate(pairs):
      np.testing.assert_array_equal(images[i], boxes.letterbox(pixels, located.SIZE, color)[0])
    assert digest((images, labels)) == digest(located.photo_arrays(pairs, color=color))
  ids = [4, 7, 11]
  first = located.photo_arrays(pairs, color="grey", zoom_views=2, seed=(3, 1), ids=ids)
  again = located.photo_arrays(pairs, color="grey", zoom_views=2, seed=(3, 1), ids=ids)
  other = located.photo_arrays(pairs, color="grey", zoom_views=2, seed=(4, 1), ids=ids)
  assert first[0].shape == (9, 54, 54) and digest(first) == digest(again)
  assert digest(first) != digest(other)
  np.testing.assert_array_equal(first[1][:3], other[1][:3])  # the whole photos: no draws
  # Each view (photo-major after the whole photos) is the documented draw's window, and its
  # label maps back to the number's box in the photo.
  for i, (photo, pixels) in enumerate(pairs):
    size = (pixels.shape[1], pixels.shape[0])
    union = boxes.clip_corners(boxes.union_box(photo.boxes), size)
    for view in range(2):
      window = located.zoom_window(union, size, np.random.default_rng([3, 1, ids[i], view]))
      image, geometry = boxes.letterbox(boxes.window_pixels(pixels, window), 54, "grey")
      row = 3 + 2 * i + view
      np.testing.assert_array_equal(first[0][row], image)
      back = boxes.from_window(boxes.from_letterbox(first[1][row], geometry), window)
      np.testing.assert_allclose(back, union, atol=0.05)
      sides = (window[2:] - window[:2]) / (union[2:] - union[:2])
      assert (window[:2] <= union[:2]).all() and (union[2:] <= window[2:]).all()
      # 1.5-5x the number, widened to whole pixels, cut to the photo, at least 16 pixels.
      assert ((sides <= 5 + 2 / (union[2:] - union[:2]))
              | (window[2:] - window[:2] <= located.ZOOM_MIN_PIXELS + 1)).all()
  with pytest.raises(ValueError, match="zoom_views"):
    located.photo_arrays(pairs, zoom_views=-1)


def test_the_locators_data_adds_zoomed_training_views_and_keeps_validation_and_test(cache):
  from svhn_jax.datasets import sources
  config = locate_config.get_config()
  config.update_from_flattened_dict({**OVERRIDES, "data.cache_dir": str(cache)})
  assert config.data.locate.zoom_views == 1
  zoomed, _ = sources.load_located(config.data)
  config.data.locate.zoom_views = 0
  whole, _ = sources.load_located(config.data)
  assert len(whole.train.images) == 32 and len(zoomed.train.images) == 64
  np.testing.assert_array_equal(zoomed.train.images[:32], whole.train.images)
  np.testing.assert_array_equal(zoomed.train.labels[:32], whole.train.labels)
  for name in ("val", "test"):
    np.testing.assert_array_equal(getattr(zoomed, name).images, getattr(whole, name).images)
  assert ((0 <= zoomed.train.labels) & (zoomed.train.labels <= 1)).all()
  # A zoomed view shows the number larger than the whole photo does.
  area = lambda labels: (labels[:, 2] - labels[:, 0]) * (labels[:, 3] - labels[:, 1])
  assert np.median(area(zoomed.train.labels[32:])) > 2 * np.median(area(whole.train.labels))
  with pytest.raises(ConfigError, match=r"^config\.data\.locate\.zoom_views=9: expected a whole "
                     "number of at least 0 at most 8$"):
    validated(**{"data.locate.zoom_views": 9})
  numbers = numbers_config.get_config()
  numbers.data.locate.zoom_views = 1
  with pytest.raises(ConfigError, match=r"^config\.data\.locate\.zoom_views=1: only read with "
                     "config.task=locate"):
    config_lib.validate(numbers)


def _letterbox_logits(corners, photo_size, window, confidence_logit=0.0):
  """The logits (1, 5) of a locator that finds `corners` (photo pixels) in the letterbox of
  `window` of a photo of `photo_size`."""
  geometry = boxes.letterbox_geometry((window[2] - window[0], window[3] - window[1]), 54)
  shares = boxes.to_letterbox(boxes.to_window(corners, window), geometry)
  logits = logits_of(shares).astype(np.float64)
  logits[:, 4] = confidence_logit
  return logits


def test_the_refining_pass_looks_at_a_window_around_the_first_box_and_maps_back():
  _, pixels = _photo_with_number()
  seen = []
  # Pass 1 (the whole photo, letterboxed at 0.27 with 13 rows above) finds the number's box;
  # pass 2 the middle half of its window's letterbox: x 13.5 / 1.08 = 12.5 and 40.5 / 1.08 =
  # 37.5, y (13.5 - 13) x 26 / 28 and (40.5 - 13) x 26 / 28 in the window.
  passes = [_letterbox_logits(_NUMBER, _PHOTO_SIZE, [0, 0, 200, 100], 1.0),
            np.array([[0.0, 0.0, 0.0, 0.0, 2.0]])]

  def fake(images):
    seen.append(images)
    return passes[len(seen) - 1]

  found, confidence = locate.locate_photos(fake, [pixels], "grey", refine=1)
  np.testing.assert_array_equal(seen[0][0], boxes.letterbox(pixels, 54, "grey")[0])
  np.testing.assert_array_equal(seen[1][0], boxes.letterbox(pixels[32:58, 65:115], 54, "grey")[0])
  want = [65 + 12.5, 32 + 0.5 * 26 / 28, 65 + 37.5, 32 + 27.5 * 26 / 28]
  np.testing.assert_allclose(found[0], want, rtol=1e-9)
  np.testing.assert_allclose(confidence, [1 / (1 + math.exp(-2))])
  assert locate.refine_window(np.array(_NUMBER), _PHOTO_SIZE).tolist() == _WINDOW
  # One pass: the first box and its confidence, the model called once.
  seen.clear()
  found, confidence = locate.locate_photos(fake, [pixels], "grey", refine=0)
  np.testing.assert_allclose(found[0], _NUMBER, atol=1e-9)
  np.testing.assert_allclose(confidence, [1 / (1 + math.exp(-1))])
  assert len(seen) == 1
  with pytest.raises(ValueError, match="refine"):
    locate.locate_photos(fake, [pixels], "grey", refine=-1)


def test_predict_reads_the_refined_box_and_refine_passes_0_the_first(monkeypatch, tmp_path):
  from svhn_jax import inference
  _, pixels = _photo_with_number()
  path = tmp_path / "photo.png"
  Image.fromarray(pixels).save(path)
  workdir = fake_run(tmp_path / "locator", locate_config.get_config())
  calls = []

  def run_logits(run, images):
    calls.append(len(images))
    return (_letterbox_logits(_NUMBER, _PHOTO_SIZE, [0, 0, 200, 100], 1.0) if len(calls) == 1
            else np.array([[0.0, 0.0, 0.0, 0.0, 2.0]]))

  monkeypatch.setattr(inference, "load_run", lambda workdir: "weights")
  monkeypatch.setattr(inference, "run_logits", run_logits)
  task, answers = predict.read_files(str(workdir), [str(path)], refine_passes=1)
  assert task is LOCATE and calls == [1, 1]
  left, top = 77.5, 32 + 0.5 * 26 / 28
  np.testing.assert_allclose(answers[0]["box"], [left, top, 25, 32 + 27.5 * 26 / 28 - top],
                             atol=0.006)
  assert answers[0]["confidence"] == pytest.approx(1 / (1 + math.exp(-2)))
  calls.clear()
  predict.read_files(str(workdir), [str(path)])  # by default, two passes after the first
  assert calls == [1, 1, 1] and locate.REFINE_PASSES == 2
  calls.clear()
  _, answers = predict.read_files(str(workdir), [str(path)], refine_passes=0)
  assert calls == [1] and answers[0]["box"] == pytest.approx([80, 40, 20, 10], abs=0.006)
  with pytest.raises(ConfigError, match=r"^--refine_passes=-1: expected a whole number"):
    predict.read_files(str(workdir), [str(path)], refine_passes=-1)
  reader = fake_run(tmp_path / "reader", numbers_config.get_config())
  with pytest.raises(ConfigError, match=r"^--refine_passes=0: --workdir=.* holds a run of "
                     r"config\.task=number, which finds no boxes; give it with --locator"):
    predict.read_files(str(reader), [str(path)], refine_passes=0)


def test_a_locator_reads_any_photo_file_in_one_or_three_passes(finished, photos):
  names = ("colour_png", "grey_jpeg", "odd_png", "tiny_png", "tall_jpeg")
  for refine in (0, 2):
    _, answers = predict.read_files(str(finished), [str(photos[n]) for n in names],
                                    refine_passes=refine)
    for name, answer in zip(names, answers):
      width, height = Image.open(photos[name]).size
      left, top, box_w, box_h = answer["box"]
      assert set(answer) == {"box", "confidence"} and 0 <= answer["confidence"] <= 1
      assert 0 <= left <= left + box_w <= width + 1e-6
      assert 0 <= top <= top + box_h <= height + 1e-6
  results = run_clis([["svhn_jax.predict", f"--workdir={finished}", "--json",
                       "--refine_passes=0", str(photos["odd_png"])],
                      ["svhn_jax.predict", f"--workdir={finished}", "--refine_passes=-2",
                       str(photos["odd_png"])]])
  assert results[0].returncode == 0
  assert set(json.loads(results[0].stdout)) == {"file", "box", "confidence"}
  assert results[1].returncode != 0 and results[1].stdout == ""
  assert len(results[1].stderr.strip().splitlines()) == 1, results[1].stderr
  assert results[1].stderr.startswith("error: --refine_passes=-2: expected a whole number")
