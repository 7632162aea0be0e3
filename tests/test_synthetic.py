"""The synthetic SVHN-like generator: determinism, layout, and the statistics the study uses."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from svhn_jax import data, synthetic, transforms

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sample() -> tuple[np.ndarray, np.ndarray]:
  return synthetic.generate(1000, seed=0)


def test_same_seed_gives_identical_bits():
  first, second = synthetic.generate(40, seed=3), synthetic.generate(40, seed=3)
  np.testing.assert_array_equal(first[0], second[0])
  np.testing.assert_array_equal(first[1], second[1])


def test_different_seeds_give_different_crops():
  images_a, _ = synthetic.generate(40, seed=3)
  images_b, _ = synthetic.generate(40, seed=4)
  assert not np.any(np.all(images_a == images_b, axis=(1, 2)))


def test_shapes_dtypes_and_ranges(sample):
  images, labels = sample
  assert images.shape == (1000, 32, 32) and images.dtype == np.float32
  assert labels.shape == (1000,) and labels.dtype == np.uint8
  assert images.min() >= 0 and images.max() <= 255
  assert set(np.unique(labels)) == set(range(10))


def test_classes_balanced_and_shuffled():
  _, labels = synthetic.generate(305, seed=1)
  counts = np.bincount(labels, minlength=10)
  assert counts.max() - counts.min() <= 1
  assert not np.array_equal(labels, np.arange(305) % 10)


def test_dark_background_share_is_svhn_like(sample):
  images, _ = sample
  assert 0.6 <= np.mean(images.mean(axis=(1, 2)) < 128) <= 0.8


def dark_share(dark: float) -> float:
  style = dataclasses.replace(synthetic.STYLE, dark=dark)
  images, _ = synthetic.generate(100, seed=2, style=style)
  return float(np.mean(images.mean(axis=(1, 2)) < 128))


def test_dark_share_follows_the_style_knob():
  assert dark_share(1.0) > 0.85 and dark_share(0.0) < 0.15


def test_centre_digit_dominates_the_centre_for_every_class(sample):
  images, labels = sample
  strokes = 255 - transforms.normalize_background(images)
  for digit in range(10):
    mean = strokes[labels == digit].mean(axis=0)
    centre = mean[8:24, 12:20].mean()
    sides = np.concatenate([mean[:, :4], mean[:, -4:]], axis=1).mean()
    assert centre > sides + 10, (digit, centre, sides)


def test_brightness_alone_does_not_tell_the_digit(sample):
  images, labels = sample
  means = images.mean(axis=(1, 2))
  per_class = np.array([means[labels == d].mean() for d in range(10)])
  assert per_class.max() - per_class.min() < 0.5 * means.std()


def test_crops_vary_in_contrast_and_background(sample):
  images, _ = sample
  backgrounds = np.median(images, axis=(1, 2))
  spreads = images.std(axis=(1, 2))
  assert backgrounds.min() < 60 and backgrounds.max() > 190
  assert spreads.min() < 20 and spreads.max() > 50


def test_progress_reports_every_chunk(monkeypatch):
  monkeypatch.setattr(synthetic, "CHUNK", 16)
  seen = []
  images, _ = synthetic.generate(40, seed=0, progress=seen.append)
  assert seen == [16, 32, 40] and images.shape == (40, 32, 32)


def test_negative_count_is_refused():
  with pytest.raises(ValueError, match="-1"):
    synthetic.generate(-1, seed=0)


def test_write_gives_a_loadable_file_with_distinct_splits(tmp_path):
  path = synthetic.write(tmp_path / "s.h5", train=30, val=20, test=10, seed=1)
  dataset = data.load(path)
  assert [len(split.labels) for split in dataset] == [30, 20, 10]
  for split in dataset:
    assert split.images.shape[1:] == (32, 32)
    assert split.labels.min() >= 0 and split.labels.max() <= 9
  train, test = dataset.train.images.reshape(30, -1), dataset.test.images.reshape(10, -1)
  assert not (train[:, None, :] == test[None, :, :]).all(axis=-1).any()


def test_cli_writes_file_and_preview(tmp_path):
  out, preview = tmp_path / "cli.h5", tmp_path / "preview.png"
  result = subprocess.run(
    [sys.executable, "-m", "svhn_jax.synthetic", "--out", str(out), "--train", "20",
     "--val", "10", "--test", "10", "--seed", "5", "--preview", str(preview)],
    cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 0, result.stderr
  assert "synthetic train: 20/20" in result.stderr
  assert [len(split.labels) for split in data.load(out)] == [20, 10, 10]
  assert preview.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_refuses_a_negative_count(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    synthetic.main(["--out", str(tmp_path / "x.h5"), "--train", "-5", "--val", "1", "--test", "1"])
  assert exit_info.value.code == 2
  assert "expected a count >= 0" in capsys.readouterr().err
