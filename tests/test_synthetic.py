"""The synthetic SVHN-like generator: determinism, layout, and the statistics the study uses."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
from pathlib import Path

import ml_collections
import numpy as np
import pytest

from configs import default
from svhn_jax import transforms
from svhn_jax.datasets import base, study_h5, synthetic

REPO = Path(__file__).resolve().parents[1]
VERSIONS = sorted(synthetic.STYLES)

# sha256 of the images' then the labels' bytes of generate(300, seed=7, version=v): version 1's
# computed before version 2 was added, version 2's when it was first calibrated, version 3's
# when it was calibrated (README.md), versions 4's and 5's when they were first measured. Each
# version must keep giving these bits; a different generator is a new version.
SHA256 = {1: "2c46ae2026e46408da4144b8cfd1779c864e3b47999994b60e0337a1af1115ea",
          2: "ff03fb5b9f78fd91495af431c8dff0ddb45091adc8fcfaf2734b998e6b508344",
          3: "9a8ecadf7c08a8e7c1d367b43cd385e436cafdc498a24e8f94720744ffdafcf9",
          4: "74a0a585851af398e34dca661d159100a0bcca40e96c5ff3bbb322c0ef38995d",
          5: "701777d9ba988ad75e5b5cacc17e94a424d7e48618a0cef3fe91dd5c5eaf1470"}


@pytest.fixture(scope="module", params=VERSIONS, ids=lambda v: f"v{v}")
def sample(request) -> tuple[np.ndarray, np.ndarray]:
  return synthetic.generate(1000, seed=0, version=request.param)


@pytest.mark.parametrize("version", VERSIONS)
def test_each_version_is_unchanged(version):
  images, labels = synthetic.generate(300, seed=7, version=version)
  assert hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest() == SHA256[version]


def test_version_1_is_the_default_style_and_version_5_the_default_version():
  assert synthetic.STYLES[1] == synthetic.STYLE == synthetic.Style()
  assert synthetic.VERSION == 5 and max(synthetic.STYLES) == 5
  assert default.get_config().data.synthetic.version == synthetic.VERSION
  images, _ = synthetic.generate(20, seed=1)
  np.testing.assert_array_equal(images, synthetic.generate(20, seed=1, version=5)[0])


def test_version_3_is_version_2_with_stix_fonts_added():
  assert synthetic.STYLES[3] == dataclasses.replace(
      synthetic.STYLES[2], fonts=synthetic.FONTS + synthetic.STIX_FONTS)
  assert len(synthetic.STYLES[3].fonts) == 16
  for name in synthetic.STIX_FONTS:  # every face draws all ten digits, each with ink
    glyphs = synthetic.font_glyphs(name)
    assert len(glyphs) == 10 and all(np.asarray(g).max() > 0 for g in glyphs)


def test_version_4_is_version_3_with_fewer_hue_only_crops_and_more_clutter():
  assert synthetic.STYLES[4] == dataclasses.replace(
      synthetic.STYLES[3], hue_only=0.015, clutter=0.7, off_centre=0.06)


def test_version_5_is_version_4_with_more_blur_and_digits_nearer_the_centre():
  assert synthetic.STYLES[5] == dataclasses.replace(
      synthetic.STYLES[4], blur=(0.33, 3.0), blur_log=False, shift=3.0)


@pytest.mark.parametrize("version", VERSIONS)
def test_same_seed_gives_identical_bits(version):
  first = synthetic.generate(40, seed=3, version=version)
  second = synthetic.generate(40, seed=3, version=version)
  np.testing.assert_array_equal(first[0], second[0])
  np.testing.assert_array_equal(first[1], second[1])


@pytest.mark.parametrize("version", VERSIONS)
def test_different_seeds_give_different_crops(version):
  images_a, _ = synthetic.generate(40, seed=3, version=version)
  images_b, _ = synthetic.generate(40, seed=4, version=version)
  assert not np.any(np.all(images_a == images_b, axis=(1, 2)))


def test_versions_share_labels_but_not_crops():
  images_1, labels_1 = synthetic.generate(40, seed=3, version=1)
  images_2, labels_2 = synthetic.generate(40, seed=3, version=2)
  images_3, labels_3 = synthetic.generate(40, seed=3, version=3)
  np.testing.assert_array_equal(labels_1, labels_2)
  np.testing.assert_array_equal(labels_2, labels_3)
  assert not np.any(np.all(images_1 == images_2, axis=(1, 2)))
  # Version 3 changes only the set of fonts: a crop whose font draw lands on the same DejaVu
  # face stays the same (5 of these 40), the others differ.
  same = np.all(images_2 == images_3, axis=(1, 2))
  assert 0 < same.sum() < 10
  images_4, labels_4 = synthetic.generate(40, seed=3, version=4)
  np.testing.assert_array_equal(labels_3, labels_4)
  # Version 4 changes three stages' shares: a crop that none of them reaches stays the same.
  same = np.all(images_3 == images_4, axis=(1, 2))
  assert 0 < same.sum() < 30
  images_5, labels_5 = synthetic.generate(40, seed=3, version=5)
  np.testing.assert_array_equal(labels_4, labels_5)
  # Version 5 redraws every crop's blur and shift.
  assert not np.any(np.all(images_4 == images_5, axis=(1, 2)))


def test_an_unknown_version_is_refused():
  with pytest.raises(ValueError,
                     match=r"^no synthetic generator version 6; expected one of 1, 2, 3, 4, 5$"):
    synthetic.generate(5, seed=0, version=6)


def test_shapes_dtypes_and_ranges(sample):
  images, labels = sample
  assert images.shape == (1000, 32, 32) and images.dtype == np.float32
  assert labels.shape == (1000,) and labels.dtype == np.uint8
  assert images.min() >= 0 and images.max() <= 255
  np.testing.assert_array_equal(images, np.rint(images))  # whole grey levels, as the study's
  assert set(np.unique(labels)) == set(range(10))


@pytest.mark.parametrize("version", VERSIONS)
def test_classes_balanced_and_shuffled(version):
  _, labels = synthetic.generate(305, seed=1, version=version)
  counts = np.bincount(labels, minlength=10)
  assert counts.max() - counts.min() <= 1
  assert not np.array_equal(labels, np.arange(305) % 10)


def test_dark_background_share_is_svhn_like(sample):
  images, _ = sample
  assert 0.6 <= np.mean(images.mean(axis=(1, 2)) < 128) <= 0.8


def test_version_2_has_more_faint_crops_than_version_1():
  faint = {v: np.mean(synthetic.generate(400, seed=5, version=v)[0].std(axis=(1, 2)) < 15)
           for v in VERSIONS}
  assert faint[2] > 2 * faint[1], faint


def test_hue_only_pairs_differ_in_colour_far_more_than_in_grey():
  style = synthetic.STYLES[2]
  rng = np.random.default_rng(0)
  background, step = synthetic.hue_pairs(np.full(500, 120.0), rng, style)
  # Clipping a colour to 0..255 can widen the luma step past hue_luma, rarely.
  assert np.mean(np.abs(step) <= style.hue_luma + 1e-9) > 0.9
  assert np.all((background >= 0) & (background <= 255))


def test_low_resolution_and_jpeg_keep_flat_images_flat():
  style = dataclasses.replace(synthetic.STYLES[2], lowres=1.0, jpeg=1.0)
  flat = np.full((8, 32, 32), 77.0)
  rng = np.random.default_rng(0)
  np.testing.assert_allclose(synthetic.low_resolution(flat, rng, style), flat, atol=1e-9)
  compressed = synthetic.jpeg(flat, rng, style)
  # Only the DC coefficient is left, rounded to its quantizer step, an eighth of it per pixel.
  step = synthetic.jpeg_table(np.array([style.jpeg_quality[0]]))[0, 0, 0]
  assert np.ptp(compressed, axis=(1, 2)).max() < 1e-9
  assert np.abs(compressed - flat).max() <= step / 16 + 1e-9


def test_resize_matrices_keep_each_rows_total():
  for source, target in ((32, 13), (13, 32), (32, 32)):
    np.testing.assert_allclose(synthetic.resize_matrix(source, target).sum(axis=1), 1.0)


def test_jpeg_at_quality_50_uses_the_standard_table():
  np.testing.assert_array_equal(synthetic.jpeg_table(np.array([50.0]))[0],
                                synthetic.JPEG_LUMINANCE)


def test_dct_matrix_is_orthonormal():
  c = synthetic.dct_matrix()
  np.testing.assert_allclose(c @ c.T, np.eye(8), atol=1e-12)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_cache_file_is_named_by_the_configured_version(tmp_path, version):
  cfg = ml_collections.ConfigDict(dict(
      source="synthetic", path="", cache_dir=str(tmp_path), color="grey",
      synthetic=dict(train=6, val=4, test=5, seed=3, version=version)))
  path = base.get(cfg).file(cfg)
  assert path == tmp_path / f"synthetic_v{version}_6_4_5_seed3.h5"
  images, labels = synthetic.generate(6, seed=int(np.random.SeedSequence(3).generate_state(3)[0]),
                                      version=version)
  train = study_h5.load(path).train
  np.testing.assert_array_equal(train.images, images.astype(np.uint8))
  np.testing.assert_array_equal(train.labels, labels)


def dark_share(dark: float) -> float:
  style = dataclasses.replace(synthetic.STYLE, dark=dark)
  images, _ = synthetic.generate(100, seed=2, style=style)
  return float(np.mean(images.mean(axis=(1, 2)) < 128))


def test_dark_share_follows_the_style_knob():
  assert dark_share(1.0) > 0.85 and dark_share(0.0) < 0.15


def test_centre_digit_dominates_the_centre_for_every_class(sample, request):
  images, labels = sample
  # Grey levels by which the centre's mean stroke map must exceed the sides': version 2's
  # (and later ones') lower contrast and closer neighbours narrow the gap.
  margin = {1: 10, 2: 2, 3: 2, 4: 2, 5: 2}[request.node.callspec.params["sample"]]
  strokes = 255 - transforms.normalize_background(images)
  for digit in range(10):
    mean = strokes[labels == digit].mean(axis=0)
    centre = mean[8:24, 12:20].mean()
    sides = np.concatenate([mean[:, :4], mean[:, -4:]], axis=1).mean()
    assert centre > sides + margin, (digit, centre, sides)


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


@pytest.mark.parametrize("version", VERSIONS)
def test_write_gives_a_loadable_file_with_distinct_splits(tmp_path, version):
  path = synthetic.write(tmp_path / "s.h5", train=30, val=20, test=10, seed=1, version=version)
  dataset = study_h5.load(path)
  assert [len(split.labels) for split in dataset] == [30, 20, 10]
  for split in dataset:
    assert split.images.shape[1:] == (32, 32)
    assert split.labels.min() >= 0 and split.labels.max() <= 9
  train, test = dataset.train.images.reshape(30, -1), dataset.test.images.reshape(10, -1)
  assert not (train[:, None, :] == test[None, :, :]).all(axis=-1).any()


def test_cli_writes_file_and_preview(tmp_path):
  out, preview = tmp_path / "cli.h5", tmp_path / "preview.png"
  result = subprocess.run(
    [sys.executable, "-m", "svhn_jax.datasets.synthetic", "--out", str(out), "--train", "20",
     "--val", "10", "--test", "10", "--seed", "5", "--version", "1", "--preview", str(preview)],
    cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 0, result.stderr
  assert "synthetic train: 20/20" in result.stderr
  train = study_h5.load(out).train
  assert [len(split.labels) for split in study_h5.load(out)] == [20, 10, 10]
  seed = int(np.random.SeedSequence(5).generate_state(3)[0])
  np.testing.assert_array_equal(train.images, synthetic.generate(20, seed=seed, version=1)[0])
  assert preview.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_refuses_a_negative_count(tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_info:
    synthetic.main(["--out", str(tmp_path / "x.h5"), "--train", "-5", "--val", "1", "--test", "1"])
  assert exit_info.value.code == 2
  assert "argument --train: expected a whole number of at least 0, got '-5'" in capsys.readouterr().err
