"""Shared fixtures: small real and synthetic datasets in the study's HDF5 layout."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from svhn_jax import data

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "svhn_samples"


def digits_dataset(train: int = 1200, val: int = 300, seed: int = 0) -> data.Dataset:
  """scikit-learn's 1,797 real handwritten digits, resized 8x8 -> 32x32 to 0..255, split 3 ways."""
  from sklearn.datasets import load_digits

  digits = load_digits()
  images = np.stack([
      np.asarray(Image.fromarray((img * (255 / 16)).astype(np.float32))
                 .resize((32, 32), Image.BILINEAR))
      for img in digits.images
  ]).clip(0, 255)
  order = np.random.default_rng(seed).permutation(len(images))
  images, labels = images[order], digits.target[order].astype(np.int32)
  cut = (slice(0, train), slice(train, train + val), slice(train + val, None))
  return data.Dataset(*(data.Split(images[c], labels[c]) for c in cut))


@pytest.fixture(scope="session")
def digits_h5(tmp_path_factory) -> Path:
  return data.save_h5(tmp_path_factory.mktemp("digits") / "digits.h5", digits_dataset())


@pytest.fixture(scope="session")
def tiny_h5(tmp_path_factory) -> Path:
  """A few hundred digits: enough for a model to move, small enough for a seconds-long run."""
  full = digits_dataset()
  tiny = data.Dataset(*(data.Split(s.images[:n], s.labels[:n])
                        for s, n in zip(full, (192, 64, 64))))
  return data.save_h5(tmp_path_factory.mktemp("tiny") / "tiny.h5", tiny)
