"""Whole house numbers end to end, on a few generated photos: a numbers run writes its scores and
figures, a run killed mid-epoch resumes to the same end, and `svhn_jax.read` reads photos of any
format, colour and size, whole or by a box."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import tarfile
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

import official_files as files
from configs import numbers
from support import metrics_rows, read_json, run_cli, start_paused, table_rows
from svhn_jax import augment, checkpoint, house_numbers, inference, predict, report, train
from svhn_jax.datasets import numbers as number_data
from svhn_jax.datasets import photos as full_photos
from svhn_jax.datasets import sources, synthetic_photos
from svhn_jax.tasks import number

EPOCHS = 2
# 80 photos, 16 carved for validation: 4 steps of 16 per epoch; configs/numbers.py counts steps.
# The run reads with the config's column reader (CTC) and trains on its distorted, squared crops,
# so that every test of this module covers them at no extra cost (the positional sizes' shapes
# and counts are tests/test_tasks.py's).
DISTORT = {"scale": 0.1, "aspect": 0.15, "rotation": 5.0, "shear": 0.15, "contrast": 0.3,
           "blur": 0.8}  # color leaves grey crops as they are (tests/test_augment_distort.py)
OVERRIDES = {"data.synthetic.train": 80, "data.synthetic.test": 24, "data.val_size": 16,
             "train.total_steps": 4 * EPOCHS, "train.warmup_steps": 1,
             "train.eval_every_steps": 4, "train.batch_size": 16, "train.eval_batch_size": 32,
             "model.reader.size": "ctc",
             **{f"train.augment.distort.{name}": value for name, value in DISTORT.items()}}


def numbers_config(cache: Path):
  config = numbers.get_config()
  config.update_from_flattened_dict({**OVERRIDES, "data.cache_dir": str(cache)})
  return config


def command(module: str, cache: Path, workdir: Path) -> list[str]:
  return [sys.executable, "-m", module, "--config=configs/numbers.py", f"--workdir={workdir}",
          f"--config.data.cache_dir={cache}",
          *(f"--config.{field}={value}" for field, value in OVERRIDES.items())]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
  return tmp_path_factory.mktemp("numbers_cache")


DISTORTED = []  # the ranges of each call of augment.distort while `finished` trained


@pytest.fixture(scope="module")
def finished(cache, tmp_path_factory) -> Path:
  workdir = tmp_path_factory.mktemp("numbers") / "run"
  distort = augment.distort

  def recorded(images, key, **ranges):
    DISTORTED.append(ranges)
    return distort(images, key, **ranges)

  with pytest.MonkeyPatch.context() as patch:
    patch.setattr(augment, "distort", recorded)
    train.train_and_evaluate(numbers_config(cache), workdir)
  return workdir


def test_a_numbers_run_writes_its_scores_and_figures(finished, cache):
  # The photos were made once in format 1's layout and read through its loader.
  photos = cache / f"photos_v{synthetic_photos.VERSION}_80_24_seed0"
  assert (photos / "train.tar.gz").is_file() and (photos / "test.tar.gz").is_file()
  assert list((cache / "numbers").glob("*.npz"))
  scores = read_json(finished / "test_metrics.json")
  for key in ("sequence_accuracy", "digit_accuracy", "length_accuracy", "coverage_at_98"):
    assert 0 <= scores[key] <= 1, key
  assert scores["accuracy"] == scores["sequence_accuracy"] and scores["num_examples"] == 24
  confusion = np.asarray(scores["length_confusion_matrix"])
  assert confusion.shape == (7, 7) and confusion.sum() == 24
  assert set(scores["accuracy_by_margin"]) == {"0.15", "0.3", "0.5", "1"}
  assert sum(row["count"] for row in scores["accuracy_by_length"].values()) == 24
  assert scores["accuracy_by_margin"]["0.15"] == scores["sequence_accuracy"]
  assert scores["epochs_run"] == EPOCHS and scores["steps_run"] == 4 * EPOCHS
  rows = metrics_rows(finished)
  assert [(row["step"], row["epoch"]) for row in rows] == [(4, 1), (8, 2)]
  assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr"} <= set(rows[0])
  assert read_json(finished / "config.json")["task"] == "number"
  summary = (finished / "model_summary.txt").read_text()
  assert "(None, 14, 256)" in summary and "(None, 154)" in summary  # 14 columns, 11 classes each
  assert DISTORTED and DISTORTED[0] == DISTORT  # the train step distorted its crops
  for figure in ("curves", "numbers_read", "accuracy_by_length", "coverage"):
    assert (finished / "figures" / f"{figure}.png").is_file(), figure


def test_svhn_full_reads_a_folder_of_official_archives(finished, cache):
  config = numbers_config(cache)
  generated, _ = sources.load_numbers(config.data)
  config.data.source = "svhn_full"
  config.data.path = str(cache / f"photos_v{synthetic_photos.VERSION}_80_24_seed0")
  official, where = sources.load_numbers(config.data)
  assert where == Path(config.data.path)
  for ours, theirs in zip(generated, official):
    np.testing.assert_array_equal(ours.images, theirs.images)
    np.testing.assert_array_equal(ours.labels, theirs.labels)
  assert official.train.images.shape == (64, 64, 64) and official.test.labels.shape == (24, 6)


@pytest.mark.parametrize("how", ["rgba", "exif_jpeg", "palette", "la", "i16"])
def test_number_crops_of_photos_in_every_mode_are_reads(tmp_path, how):
  """The number task reads format-1 photos as `read` does (transparency over white, EXIF
  orientation, palette, 16-bit): its crops of the photos equal those of the same photos saved as
  plain 8-bit RGB, and `read`'s crops of each file with the photo's box."""
  config = numbers.get_config()
  config.data.update({"source": "svhn_full", "cache_dir": str(tmp_path / "cache")})
  pairs = files.photos_on_white(3, seed=7)
  suffix = ".jpg" if "jpeg" in how else ".png"
  renamed = [(photo._replace(name=photo.name.replace(".png", suffix)),
              files.photo_file(image, how)) for photo, image in pairs]
  plain = [(photo, files.grey_of(image) if how in files.GREY else image)
           for photo, image in pairs]
  for name, photos in (("mode", renamed), ("plain", plain)):
    (tmp_path / name).mkdir()
    files.write_full_tar(tmp_path / name / "test.tar.gz", "test", photos)
  folder = full_photos.open_full(tmp_path / "mode" / "test.tar.gz").folder
  for color in ("grey", "rgb"):
    config.data.color = color
    got = number_data.test_at_margin(config.data, tmp_path / "mode" / "test.tar.gz", 0.15)
    want = number_data.test_at_margin(config.data, tmp_path / "plain" / "test.tar.gz", 0.15)
    difference = np.abs(got.images.astype(int) - want.images)
    assert difference.mean() < 4 if how in files.LOSSY else not difference.any()
    np.testing.assert_array_equal(got.labels, want.labels)
  # In colour: `read` takes grey before the resize, training after it (a level apart at most).
  for i, (photo, _) in enumerate(renamed):
    union = house_numbers.number_box(photo.boxes, 0)
    np.testing.assert_array_equal(
        got.images[i], number.number_crop(str(folder / photo.name), "rgb", union, 0.15))


def test_the_number_task_finds_a_split_at_any_depth(tmp_path):
  """As inspect and the digit task do: SVHN/test/digitStruct.mat in the archive, or its folder
  extracted and given from above."""
  config = numbers.get_config()
  config.data.update({"source": "svhn_full", "cache_dir": str(tmp_path / "cache")})
  archive = files.write_full_tar(tmp_path / "test.tar.gz", "SVHN/test",
                                 files.sample_photos(3, seed=4))
  from_archive = number_data.test_at_margin(config.data, archive, 0.15)
  with tarfile.open(archive) as tar:
    tar.extractall(tmp_path / "x", filter="data")
  from_folder = number_data.test_at_margin(config.data, tmp_path / "x", 0.15)
  np.testing.assert_array_equal(from_folder.images, from_archive.images)
  assert from_archive.images.shape == (3, 64, 64)


def outcome(workdir: Path) -> dict:
  """What a finished run leaves that must not depend on interruptions (times aside)."""
  best = checkpoint.Checkpoints(workdir)
  try:
    like = inference.load_run(workdir).weights
    weights = best.restore_weights(like)
  finally:
    best.close()
  return {"metrics": metrics_rows(workdir), "test": read_json(workdir / "test_metrics.json"),
          "best": jax.tree.map(np.asarray, weights)}


# Slow (about 15 s; tests/test_interruptions.py covers a killed run resuming to the same end):
# `pytest -m slow` runs it.
@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_same_end(finished, cache, tmp_path):
  workdir = tmp_path / "run"
  proc = start_paused(command("tests.pausing_main", cache, workdir), "global_step:6",
                      tmp_path / "run.log")
  proc.send_signal(signal.SIGKILL)
  assert proc.wait(timeout=60) == -signal.SIGKILL
  proc.stdout.close()
  assert len(metrics_rows(workdir)) == 1 and not (workdir / "test_metrics.json").exists()
  train.train_and_evaluate(numbers_config(cache), workdir)
  resumed, whole = outcome(workdir), outcome(finished)
  assert resumed["metrics"] == whole["metrics"] and resumed["test"] == whole["test"]
  jax.tree.map(np.testing.assert_array_equal, resumed["best"], whole["best"])


def test_error_analysis_reports_a_numbers_runs_misreads(finished, tmp_path):
  # --threshold=0: every misread is a high-confidence one, so each section has content.
  result = run_cli("experiments.error_analysis", f"--workdir={finished}",
                   f"--results_dir={tmp_path}", "--threshold=0")
  assert result.returncode == 0, result.stderr[-3000:]
  text = (tmp_path / "report.md").read_text()
  scores = read_json(finished / "test_metrics.json")
  n = scores["num_examples"]
  wrong = n - round(scores["sequence_accuracy"] * n)
  assert (f"Sequence accuracy {report.percent(scores['sequence_accuracy'])}: {wrong} of {n} "
          "test photos misread") in text
  assert f"best step {scores['best_step']} of {4 * EPOCHS}" in text
  assert [[int(c) for c in row[1:]] for row in table_rows(text, "true length")] == \
      scores["length_confusion_matrix"]
  kinds = table_rows(text, "kind of misread")
  assert len(kinds) == 4 and len({row[0] for row in kinds}) == 4
  assert sum(int(row[1]) for row in kinds) == wrong
  assert f"{wrong} of {wrong} misreads" in text
  assert len(table_rows(text, "test photo")) == min(wrong, 10)
  figures = [tmp_path / link for link in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)]
  names = {path.name for path in figures}
  assert {"numbers_read.png", "accuracy_by_length.png", "coverage.png"} <= names
  assert ({"misread.png", "confident_misreads.png"} <= names) == (wrong > 0)
  for path in figures:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
  """One generated photo (its digit boxes known) saved in several formats, modes and sizes."""
  folder = tmp_path_factory.mktemp("photos")
  photo, image = next(synthetic_photos.generate(1, seed=7, split="test"))
  rgb = Image.fromarray(image)
  paths = {"colour_png": folder / "colour.png", "grey_jpeg": folder / "grey.jpg",
           "transparent_png": folder / "transparent.png", "odd_png": folder / "odd.png",
           "tiny_png": folder / "tiny.png"}
  rgb.save(paths["colour_png"])
  rgb.convert("L").save(paths["grey_jpeg"], quality=90)
  rgb.convert("RGBA").save(paths["transparent_png"])
  rgb.resize((131, 37)).save(paths["odd_png"])
  rgb.resize((7, 5)).save(paths["tiny_png"])
  box = house_numbers.number_box(photo.boxes, 0.0)
  return {**paths, "box": box, "labels": photo.labels}


def test_read_gives_each_photos_number_probability_and_digits(finished, photos):
  paths = [str(photos[name]) for name in ("colour_png", "grey_jpeg", "transparent_png",
                                           "odd_png", "tiny_png")]
  readings = predict.read_files(str(finished), paths)[1]
  assert len(readings) == len(paths)
  for r in readings:
    assert set(r) == {"number", "probability", "length", "length_probability", "digits"}
    assert 0 <= r["probability"] <= r["length_probability"] <= 1
    assert len(r["digits"]) == min(r["length"], 5) and len(r["number"]) >= len(r["digits"])
    assert r["number"].startswith("".join(str(d["digit"]) for d in r["digits"]))
  # The same pixels read the same, whatever the file's format and mode.
  assert readings[2] == readings[0]


def test_a_box_crops_the_number_with_the_runs_margin(finished, photos):
  box = photos["box"]
  path = str(photos["colour_png"])
  pixels = np.asarray(Image.open(path).convert("L"))
  want = house_numbers.crop_number(
      pixels, house_numbers.number_box(box[None], 0.15, pixels.shape[::-1]))
  np.testing.assert_array_equal(number.number_crop(path, "grey", box, 0.15), want)
  whole = house_numbers.crop_number(pixels, np.array([0, 0, *pixels.shape[::-1]], float))
  np.testing.assert_array_equal(number.number_crop(path, "grey"), whole)
  assert len(predict.read_files(str(finished), [path], box=box)[1]) == 1


def test_the_read_cli_prints_one_json_object_per_photo(finished, photos):
  paths = [str(photos["colour_png"]), str(photos["grey_jpeg"])]
  box = ",".join(f"{v:g}" for v in photos["box"])
  result = run_cli("svhn_jax.read", f"--workdir={finished}", "--json", f"--box={box}", *paths)
  assert result.returncode == 0, result.stderr[-3000:]
  objects = [json.loads(line) for line in result.stdout.splitlines()]
  assert [o["file"] for o in objects] == paths
  readings = predict.read_files(str(finished), paths, box=box)[1]
  assert [{k: v for k, v in o.items() if k != "file"} for o in objects] == readings


def test_read_prints_a_line_per_photo():
  reading = {"number": "127", "probability": 0.5, "length": 3, "length_probability": 0.9,
             "digits": [{"digit": 1, "probability": 0.99}, {"digit": 2, "probability": 0.8},
                        {"digit": 7, "probability": 0.625}]}
  nothing = {"number": "", "probability": 0.4, "length": 0, "length_probability": 0.4,
             "digits": []}
  assert predict.lines(number.NUMBER, ["a.png", "b.jpg"], [reading, nothing], as_json=False) == [
      "a.png: 127 (50.0%)  length 3 90.0%; digits: 1 99.0%, 2 80.0%, 7 62.5%",
      "b.jpg: (no number) (40.0%)  length 0 40.0%; digits: -"]
  assert json.loads(predict.lines(number.NUMBER, ["a.png"], [reading], as_json=True)[0]) == {
      "file": "a.png", **reading}


def test_a_replaced_photo_in_a_folder_is_cropped_again(tmp_path, monkeypatch):
  """The number crops of an extracted folder are keyed by digitStruct.mat and every photo: a PNG
  replaced under its name and mtime is noticed; an unchanged folder is not cropped again,
  and the first contents' crops are kept for when the photo is put back."""
  folder = tmp_path / "test"
  folder.mkdir()
  pairs = files.sample_photos(4, seed=3)
  files.write_digit_struct(folder / "digitStruct.mat", [photo for photo, _ in pairs])
  for photo, image in pairs:
    Image.fromarray(image).save(folder / photo.name)
  second = folder / pairs[1][0].name
  original = second.read_bytes()
  data_cfg = numbers_config(tmp_path / "cache").data
  data_cfg.source = "svhn_full"
  cropped = []
  arrays = house_numbers.number_arrays
  monkeypatch.setattr(house_numbers, "number_arrays",
                      lambda split, **kw: (cropped.append(len(split)), arrays(split, **kw))[1])

  before = number_data.test_at_margin(data_cfg, folder, 0.15)
  was = second.stat()
  Image.fromarray(255 - pairs[1][1]).save(second)
  os.utime(second, ns=(was.st_atime_ns, was.st_mtime_ns))
  after = number_data.test_at_margin(data_cfg, folder, 0.15)
  again = number_data.test_at_margin(data_cfg, folder, 0.15)
  second.write_bytes(original)
  restored = number_data.test_at_margin(data_cfg, folder, 0.15)

  assert cropped == [4, 4]
  assert not np.array_equal(after.images[1], before.images[1])
  np.testing.assert_array_equal(after.images[[0, 2, 3]], before.images[[0, 2, 3]])
  np.testing.assert_array_equal(again.images, after.images)
  np.testing.assert_array_equal(restored.images, before.images)


def test_the_epoch_counted_numbers_config_of_before_is_its_overrides():
  """configs/numbers.py counts steps since issue 30 and reads with CTC; SMALL_POSITIONAL and
  EPOCH_COUNTED give back the configs README's earlier results were run with, field for field
  (written out here as they were)."""
  from configs import default
  config = numbers.get_config()
  assert (config.train.epochs, config.train.total_steps, config.train.warmup_steps,
          config.train.eval_every_steps) == (None, 2400, 100, 250)
  assert config.model.reader.size == "ctc" and config.data.numbers.min_aspect == 1.0
  before = default.get_config()
  before.task, before.model.name, before.data.source = "number", "multidigit", "synthetic"
  before.data.synthetic.update({"train": 24_000, "test": 3_000})
  before.data.val_size = 2_000
  before.train.update({"epochs": None, "total_steps": 2_000, "warmup_steps": 100,
                       "eval_every_steps": 250, "batch_size": 128, "learning_rate": 2e-3,
                       "schedule": "onecycle", "warmup_epochs": 0.0, "eval_batch_size": 128})
  config.update_from_flattened_dict(numbers.SMALL_POSITIONAL)
  assert config.to_dict() == before.to_dict()
  config.update_from_flattened_dict(numbers.EPOCH_COUNTED)
  before.train.update({"epochs": 7, "total_steps": None, "warmup_steps": None,
                       "eval_every_steps": None, "warmup_epochs": 0.5})
  assert config.to_dict() == before.to_dict()

