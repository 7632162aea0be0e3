"""A length-stratified test split of the generator's house-number photos, for per-length figures
(issue 30: 4- and 5-digit numbers read nearly as well as short ones).

  python -m benchmarks.synthetic_numbers --out=DIR                  # 5 x 300 test photos
  python -m benchmarks.locate_then_read --reader=RUN --photos=DIR/test   # read at the true box

The synthetic photos a numbers run tests on (configs/numbers.py: 3,000, seed 0) have the
generator's length shares (`synthetic_photos.PhotoStyle.lengths`: 16, 50, 24, 7, 2.5 and 0.5% for
1 to 6 digits), so about 75 of them hold five digits: too few for a per-length figure. This writes
a test split of exactly N photos per length 1-5 (photo i has 1 + i mod 5 digits) in the
generator's style otherwise (`synthetic_photos.STYLE`, or the scene style with --style=scene),
as format 1 (PNGs and a v7.3 digitStruct.mat through `synthetic_photos.write_photos`). Photo i
draws everything from a generator seeded by (seed, STREAM, i, synthetic_photos.VERSION); STREAM
is no split's index, so no photo repeats a training or test photo of the generator's own splits.
The same arguments give the same bytes.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from svhn_jax import cli
from svhn_jax.datasets import synthetic_photos
from svhn_jax.datasets.digit_struct import Photo
from svhn_jax.errors import DataError

log = logging.getLogger(__name__)

MAX_LENGTH = 5
# The generator's splits seed photo i of split s by (seed, s, i, VERSION), s = 0, 1, 2
# (synthetic_photos.photo_rng); this stream is none of them.
STREAM = 7


def generate(per_length: int, seed: int = 0, style: synthetic_photos.PhotoStyle =
             synthetic_photos.STYLE) -> Iterator[tuple[Photo, np.ndarray]]:
  """Yields 5 x `per_length` photos (Photo named f"{i + 1}.png", uint8 (H, W, 3) RGB), photo i
  holding a number of 1 + i mod 5 digits, otherwise drawn as `style` draws them. Raises
  ValueError for a negative `per_length`."""
  if per_length < 0:
    raise ValueError(f"generate: per_length={per_length}; expected a count >= 0")
  styles = [dataclasses.replace(style, lengths=tuple(float(k == length) for k in range(6)))
            for length in range(MAX_LENGTH)]
  for i in range(MAX_LENGTH * per_length):
    rng = np.random.default_rng([seed, STREAM, i, synthetic_photos.VERSION])
    labels, boxes, image = synthetic_photos.generate_photo(rng, styles[i % MAX_LENGTH])
    yield Photo(f"{i + 1}.png", labels, boxes), image


def write(out: str | Path, per_length: int, seed: int = 0, style_name: str = "number",
          layout: str = "folder") -> Path:
  """Writes the stratified split as `out`/test (or test.tar.gz for layout "tar"); returns its
  path. Raises DataError, before anything is written, when `out` is a file or already holds a
  test split. `style_name`: a key of synthetic_photos.STYLES."""
  out = Path(out)
  if out.exists() and not out.is_dir():
    raise DataError(f"--out={out}: a file, not a folder; expected a folder to write test/ into")
  taken = [out / name for name in ("test", "test.tar.gz") if (out / name).exists()]
  if taken:
    raise DataError(f"{taken[0]} already exists; remove it or write elsewhere (--out)")
  count = MAX_LENGTH * per_length
  start = time.perf_counter()

  def logged():
    for i, photo in enumerate(generate(per_length, seed, synthetic_photos.STYLES[style_name])):
      if (i + 1) % 500 == 0 or i + 1 == count:
        log.info("stratified synthetic test: %d/%d photos (%.1f s)", i + 1, count,
                 time.perf_counter() - start)
      yield photo

  return synthetic_photos.write_photos(out, "test", logged(), layout=layout)


def main(argv: Sequence[str] | None = None) -> None:
  parser = cli.ArgumentParser(prog="python -m benchmarks.synthetic_numbers",
                              description=" ".join(__doc__.split("\n\n")[0].split()))
  parser.add_argument("--out", required=True, help="folder to write test/ into")
  parser.add_argument("--per-length", type=cli.whole_number(1), default=300,
                      help="test photos of each length 1-5 (default 300: 1,500 in all)")
  parser.add_argument("--seed", type=cli.whole_number(0), default=0, help="default 0")
  parser.add_argument("--style", choices=tuple(synthetic_photos.STYLES), default="number",
                      help="the generator's photo style (config.data.synthetic.photo_style)")
  parser.add_argument("--layout", choices=synthetic_photos.LAYOUTS, default="folder",
                      help="folder: test/ (default); tar: test.tar.gz")
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(message)s")
  with cli.user_errors():
    log.info("wrote %s", write(args.out, args.per_length, args.seed, args.style, args.layout))


if __name__ == "__main__":
  main()
