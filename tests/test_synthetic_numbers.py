"""benchmarks/synthetic_numbers.py: a length-stratified test split of the generator's photos."""

import numpy as np
import pytest

from benchmarks import synthetic_numbers
from svhn_jax import house_numbers
from svhn_jax.datasets import photos, synthetic_photos
from svhn_jax.errors import DataError


def test_the_stratified_split_has_n_photos_of_each_length_and_the_same_bytes_again(tmp_path):
  first = synthetic_numbers.write(tmp_path / "a", per_length=2, seed=3)
  again = synthetic_numbers.write(tmp_path / "b", per_length=2, seed=3)
  split = photos.open_full(first)
  lengths = [house_numbers.number_labels(p.labels)[0] for p in split.photos]
  assert lengths == [1, 2, 3, 4, 5] * 2
  for a, b in zip(sorted(first.iterdir()), sorted(again.iterdir())):
    assert a.read_bytes() == b.read_bytes(), a.name
  # No photo repeats one of the generator's own test photos (its split index seeds them).
  own = [image for _, image in synthetic_photos.generate(10, seed=3, split="test")]
  mine = [image for _, image in synthetic_numbers.generate(2, seed=3)]
  assert not any(a.shape == b.shape and np.array_equal(a, b) for a in own for b in mine)
  with pytest.raises(DataError, match="test already exists"):
    synthetic_numbers.write(tmp_path / "a", per_length=1)
  (tmp_path / "file").write_text("x")
  with pytest.raises(DataError, match="a file, not a folder"):
    synthetic_numbers.write(tmp_path / "file", per_length=1)
