"""A toy data source, outside the package: scikit-learn's 1,797 bundled 8x8 digits (no download),
each pixel repeated 4x4 into a 32x32 grey crop. Named on the command line by its spec,
`--config.data.source=toy_source:SOURCE` (with tests/ on the path) or
`tests.toy_source:SOURCE` (from the repository root): no edit outside this module.
"""

from __future__ import annotations

from pathlib import Path

import ml_collections
import numpy as np
import sklearn.datasets

from svhn_jax import data
from svhn_jax.datasets import base

# The first TRAIN digits train, the next VAL validate, the rest (497) test.
TRAIN, VAL = 1000, 300


class Toy(base.Source):
  """Greyscale only; config.data's other fields (path, cache_dir, ...) are not read."""

  name = "toy"

  def digits(self, data_cfg: ml_collections.ConfigDict) -> tuple[data.Dataset, Path]:
    base.refuse_colour(data_cfg, self)
    bunch = sklearn.datasets.load_digits()
    # 0..16 grey levels to 0..255, each pixel a 4x4 block: uint8 (1797, 32, 32).
    images = np.kron(np.round(bunch.images * 255 / 16), np.ones((4, 4))).astype(np.uint8)
    labels = bunch.target.astype(np.int32)
    cuts = (slice(0, TRAIN), slice(TRAIN, TRAIN + VAL), slice(TRAIN + VAL, None))
    dataset = data.Dataset(*(data.Split(images[cut], labels[cut]) for cut in cuts))
    return dataset, Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"


SOURCE = Toy()


class ToyColour(Toy):
  """The same digits, also in colour (grey repeated in three channels): declaring `colors` is
  all it takes for a run of it to read config.data.color."""

  name = "toy_colour"
  colors = ("grey", "rgb")

  def digits(self, data_cfg: ml_collections.ConfigDict) -> tuple[data.Dataset, Path]:
    grey = ml_collections.ConfigDict({**data_cfg.to_dict(), "color": "grey"})
    dataset, path = super().digits(grey)
    if data_cfg.color == "rgb":
      dataset = data.Dataset(*(data.Split(np.repeat(s.images[..., None], 3, -1), s.labels)
                               for s in dataset))
    return dataset, path


COLOUR = ToyColour()
