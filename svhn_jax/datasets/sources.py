"""Loading what `config.data` asks for, through the source it names (`datasets.REGISTRY`): the
digit crops (`load`), the house numbers of whole photos (`load_numbers`) or those photos whole
with their number's box (`load_located`), and the holder that
hands them from preflight to training (`Loaded`). No task name is compared here: each task calls
the loader of its own data.
"""

from __future__ import annotations

from pathlib import Path

import ml_collections

from svhn_jax import data
from svhn_jax.datasets import base, located, numbers


class Loaded:
  """Splits as a loader returns them, their file and `data.fingerprint`, handed from preflight to
  training once: `take` empties the holder, so that no caller's frame keeps the host arrays
  alive after training has moved them to the devices (for all of format 2, 1.8 GB)."""

  def __init__(self, dataset: data.Dataset, path: Path, fingerprint: str | None = None):
    self.fingerprint = data.fingerprint(dataset) if fingerprint is None else fingerprint
    self._contents = (dataset, path, self.fingerprint)

  def take(self) -> tuple[data.Dataset, Path, str]:
    contents, self._contents = self._contents, None
    if contents is None:
      raise RuntimeError("the loaded data was already taken")
    return contents


def load(data_cfg: ml_collections.ConfigDict) -> tuple[data.Dataset, Path]:
  """The validated digit crops `config.data` asks for, in `config.data.color`, and where they
  came from (`Source.digits`): uint8 (N, 32, 32) grey or (N, 32, 32, 3) colour, int32 (N,)
  labels 0..9. Raises ConfigError for an unknown source or a colour it cannot give and
  DataError for bad files."""
  return base.get(data_cfg).digits(data_cfg)


def _photos(data_cfg: ml_collections.ConfigDict, split: str) -> Path:
  return base.get(data_cfg).photos(data_cfg, split)


def load_numbers(data_cfg: ml_collections.ConfigDict) -> tuple[data.Dataset, Path]:
  """The house numbers of the source's format-1 photos as train / validation / test
  (`numbers.load`): uint8 (N, 64, 64) grey or (N, 64, 64, 3) colour crops, int32 (N, 6) labels;
  and the folder the photos came from. Raises ConfigError for a source without photos and
  DataError for missing or unusable photo files."""
  train = [_photos(data_cfg, "train")]
  if data_cfg.use_extra:
    train.append(_photos(data_cfg, "extra"))
  test = _photos(data_cfg, "test")
  return numbers.load(data_cfg, train, test), test.parent


def load_located(data_cfg: ml_collections.ConfigDict) -> tuple[data.Dataset, Path]:
  """The source's format-1 photos whole, letterboxed, with their number's box as train /
  validation / test (`located.load`): uint8 (N, 54, 54) grey or (N, 54, 54, 3) colour, float32
  (N, 4) corners as shares of the letterbox; and the folder the photos came from. Raises as
  `load_numbers`."""
  train = [_photos(data_cfg, "train")]
  if data_cfg.use_extra:
    train.append(_photos(data_cfg, "extra"))
  test = _photos(data_cfg, "test")
  return located.load(data_cfg, train, test), test.parent


def number_test_at_margin(data_cfg: ml_collections.ConfigDict, margin: float) -> data.Split:
  """The test photos' house numbers cropped with `margin` per side (`numbers.test_at_margin`);
  made once, then read from the cache."""
  return numbers.test_at_margin(data_cfg, _photos(data_cfg, "test"), margin)
