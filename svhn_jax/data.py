"""The data every loader returns and training takes: `Split` and `Dataset` of images and
labels, and their `fingerprint`. The loaders are `svhn_jax.datasets`' (one per source).

Command line: `python -m svhn_jax.data inspect FILE` lists every dataset in an HDF5 file, or says
what an official SVHN file holds and how it loads (`svhn_jax.datasets.describe`).
"""

from __future__ import annotations

import hashlib
import sys
from typing import NamedTuple

import numpy as np

SPLITS = ("train", "val", "test")
IMAGE_SHAPE = (32, 32)


class Split(NamedTuple):
  """Images and labels of one split, as numpy arrays on the host or arrays on the devices.

  Loaded: images (N, H, W[, C]) pixel values 0..255, uint8 where the file's values are whole
  numbers, else float32 (digit crops are 32x32, a numbers run's 64x64); labels as the task's
  `load` gives them: int32 (N,) 0..9 for digits, int32 (N, 6) for numbers, per sample whatever
  a task defines (a box task's float32 (N, 4)). After `input_pipeline.prepare`, see there.
  """

  images: np.ndarray
  labels: np.ndarray


class Dataset(NamedTuple):
  train: Split
  val: Split
  test: Split


def fingerprint(dataset: Dataset) -> str:
  """A BLAKE2b hash of every split's shapes, dtypes and contents: the same data, wherever it
  was read from, has the same fingerprint (a resumed run checks it)."""
  digest = hashlib.blake2b(digest_size=16)
  for split in dataset:
    for array in split:
      array = np.ascontiguousarray(array)
      digest.update(f"{array.shape}{array.dtype}".encode())
      digest.update(array.reshape(-1).view(np.uint8))
  return digest.hexdigest()



if __name__ == "__main__":
  from svhn_jax.datasets import describe
  sys.exit(describe.main())
