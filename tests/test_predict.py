"""predict reads real SVHN images as the study's greyscale crops and prints the run's digits."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from svhn_jax import predict, train

from conftest import SHARED_DATA
from test_train import tiny_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def crops() -> dict:
  return dict(np.load(SHARED_DATA / "svhn_crops_12.npz"))


def test_colour_crops_read_as_the_study_greyscale(crops, tmp_path):
  for i in range(len(crops["y"])):
    Image.fromarray(crops["X_rgb"][i]).save(tmp_path / f"{i}.png")
    np.testing.assert_array_equal(predict.load_image(tmp_path / f"{i}.png"), crops["X_grey"][i])


def test_a_whole_photo_is_resized_to_a_crop():
  image = predict.load_image(SHARED_DATA / "house_numbers" / "2.png")
  assert image.shape == (32, 32) and image.dtype == np.float32
  assert 0 <= image.min() < image.max() <= 255


def test_cli_prints_each_files_digit_and_probability(crops, tiny_h5, tmp_path):
  workdir = tmp_path / "run"
  config = tiny_config("ann1", tiny_h5, epochs=1)
  train.train_and_evaluate(config, workdir)
  paths = []
  for i in range(3):
    paths.append(tmp_path / f"crop{i}.png")
    Image.fromarray(crops["X_rgb"][i]).save(paths[-1])
  result = subprocess.run(
      [sys.executable, "-m", "svhn_jax.predict", f"--workdir={workdir}", *map(str, paths)],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  rows = [line.split("\t") for line in result.stdout.splitlines()]
  assert [row[0] for row in rows] == [str(p) for p in paths]
  expected = predict.probabilities(config, workdir, np.stack(crops["X_grey"][:3]).astype(np.float32))
  assert [int(row[1]) for row in rows] == list(expected.argmax(axis=1))
  assert [float(row[2]) for row in rows] == pytest.approx(expected.max(axis=1), abs=1e-3)
