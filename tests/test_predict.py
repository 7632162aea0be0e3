"""Image files to crops as the study's data was made, and the prediction CLI's output."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import SHARED_DATA
from svhn_jax import predict, train
from svhn_jax.errors import DataError
from test_train import tiny_config

ROOT = Path(__file__).resolve().parents[1]

CROPS = SHARED_DATA / "svhn_crops_12.npz"


@pytest.mark.skipif(not CROPS.exists(), reason="the shared SVHN samples are not here")
def test_real_colour_crops_become_the_studys_greyscale(tmp_path):
  crops = np.load(CROPS)
  for k, (rgb, grey) in enumerate(zip(crops["X_rgb"], crops["X_grey"])):
    Image.fromarray(rgb).save(tmp_path / f"{k}.png")
    np.testing.assert_array_equal(predict.load_image(tmp_path / f"{k}.png"), grey)


def test_other_sizes_are_widened_to_a_square_then_resized(tmp_path):
  bar = np.zeros((16, 32), np.uint8)
  bar[:, 12:20] = 255
  Image.fromarray(bar).save(tmp_path / "wide.png")
  crop = predict.load_image(tmp_path / "wide.png")
  assert crop.shape == (32, 32)
  assert (crop[:, 14:18] == 255).all() and (crop[:, :8] == 0).all()
  Image.fromarray(np.full((300, 120, 3), 90, np.uint8)).save(tmp_path / "big.jpg")
  np.testing.assert_allclose(predict.load_image(tmp_path / "big.jpg"), 90, atol=2)


def test_16_bit_greyscale_is_rescaled_not_clipped(tmp_path):
  Image.fromarray(np.full((32, 32), 65535, np.uint16)).save(tmp_path / "deep.png")
  np.testing.assert_allclose(predict.load_image(tmp_path / "deep.png"), 255)


def test_a_file_that_is_not_an_image_is_a_data_error(tmp_path):
  (tmp_path / "notes.png").write_text("not an image")
  with pytest.raises(DataError, match="not an image"):
    predict.load_image(tmp_path / "notes.png")
  with pytest.raises(DataError, match="no such file"):
    predict.load_image(tmp_path / "missing.png")


def test_output_lines():
  probs = np.array([[0.1, 0.7, 0.2] + [0] * 7])
  assert predict.lines(["a.png"], probs, False) == ["a.png: 1 (70.0%)"]
  record = json.loads(predict.lines(["a.png"], probs, True)[0])
  assert (record["file"], record["digit"], record["probability"]) == ("a.png", 1, 0.7)
  assert len(record["probabilities"]) == 10


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="the shared SVHN samples are not here")
def test_a_whole_photo_is_resized_to_a_crop():
  image = predict.load_image(SHARED_DATA / "house_numbers" / "2.png")
  assert image.shape == (32, 32) and image.dtype == np.float32
  assert 0 <= image.min() < image.max() <= 255


def test_cli_prints_each_files_digit_and_probability(tiny_h5, tmp_path):
  # Colour crops of the study's shape; whether they look like digits is not what is tested.
  rgb = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
  workdir = tmp_path / "run"
  config = tiny_config("ann1", tiny_h5, epochs=1)
  train.train_and_evaluate(config, workdir)
  paths = []
  for i in range(3):
    paths.append(tmp_path / f"crop{i}.png")
    Image.fromarray(rgb[i]).save(paths[-1])
  result = subprocess.run(
      [sys.executable, "-m", "svhn_jax.predict", f"--workdir={workdir}", "--json",
       *map(str, paths)], cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  records = [json.loads(line) for line in result.stdout.splitlines()]
  assert [r["file"] for r in records] == [str(p) for p in paths]
  greys = np.stack([predict.load_image(p) for p in paths])
  expected = predict.probabilities(config, workdir, greys)
  assert [r["digit"] for r in records] == list(expected.argmax(axis=1))
  assert [r["probability"] for r in records] == pytest.approx(expected.max(axis=1), abs=1e-6)
