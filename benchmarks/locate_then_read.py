"""Locate-then-read on whole photos, issue 31's measure: how many numbers a reader run reads when a
locator run finds their box, against how many it reads at the true box.

  python -m benchmarks.locate_then_read --reader=runs/numbers --locator=runs/locate \\
      --photos=DIR/test [--limit=500] [--figure=located.png] [--json]

--photos is a format-1 split (a folder with digitStruct.mat, or its .tar.gz): SVHN's test split,
the synthetic photos' (the cache's photos_v*/test.tar.gz) or benchmarks/real_numbers.py's
test/ (its --style=scene: the whole-photo development set). Each photo is read twice by the
reader (`svhn_jax.predict.read_files`): at the box the locator finds (--locator), and at the
true box (the union of its digit boxes, as a --box), both widened by the reader's eval_margin.
Prints (or with --json, one JSON object):

- read_located: the share of numbers read right from the located box (the whole number);
- read_true_box: the same at the true box; located_over_true: their ratio (issue 31 asks at
  least 0.80 read, and at least 0.90 of what the true box gives);
- mean_iou, iou_at_least_0.5, iou_at_least_0.7: the box found against the true one, in the
  photo's pixels (both cut to the photo);
- photos: how many were read.

--figure draws the first 24 photos with the true box (green), the box found (red) and the
number read from it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import numpy as np

from svhn_jax import boxes, cli, house_numbers
from svhn_jax.errors import ConfigError

log = logging.getLogger(__name__)
_FIGURE_PHOTOS = 24


def true_number(labels) -> str:
  """The number a photo's format-1 digit labels (10 for zero) spell, as a reader writes it."""
  from svhn_jax.tasks import number
  length, digits = house_numbers.number_labels(labels)
  return number.number_text(length, digits)


def measure(reader: str, locator: str, photos_path: str, limit: int | None = None,
            figure: str | None = None) -> dict:
  """The scores of the module's docstring for the first `limit` (None: all) photos of the
  format-1 split at `photos_path`, read by the numbers run `reader` at the boxes the locator run
  `locator` finds and at the true ones; `figure`, a PNG path to draw the first photos into.
  Raises as `svhn_jax.predict.read_files` and `photos.open_full` do."""
  from svhn_jax import inference, predict, tasks
  from svhn_jax.datasets import photos
  # Both runs checked from their config.json, before any photo or weight is read.
  config = inference.saved_config(reader)
  if not tasks.same(config, "number"):
    raise ConfigError(f"--reader={reader} holds a run of config.task={tasks.name_of(config)}; "
                      "expected the workdir of a numbers run (config.task=number, "
                      "configs/numbers.py)")
  predict.check_locator(locator)
  split = photos.open_full(photos_path)
  records = split.photos[:limit] if limit else split.photos
  paths = [str(split.folder / record.name) for record in records]
  sizes = [_size(path) for path in paths]
  true = np.array([boxes.clip_corners(boxes.union_box(r.boxes), size)
                   for r, size in zip(records, sizes)]).reshape(-1, 4)
  _, located = predict.read_files(reader, paths, locator=locator)
  _, at_true = predict.read_files(reader, paths, boxes=boxes.ltwh(true))
  wanted = [true_number(r.labels) for r in records]
  found = boxes.corners(np.array([a["box"] for a in located], np.float64).reshape(-1, 4))
  overlap = boxes.iou(found, true)
  right_located = np.array([a["number"] == w for a, w in zip(located, wanted)])
  right_true = np.array([a["number"] == w for a, w in zip(at_true, wanted)])
  if figure:
    _draw(figure, split, records, sizes, true, found, located, wanted)
  mean = lambda x: float(np.mean(x)) if len(x) else 0.0
  return {"read_located": mean(right_located), "read_true_box": mean(right_true),
          "located_over_true": (mean(right_located) / mean(right_true)
                                if right_true.any() else 0.0),
          "mean_iou": mean(overlap), "iou_at_least_0.5": mean(overlap >= 0.5),
          "iou_at_least_0.7": mean(overlap >= 0.7), "photos": len(paths)}


def _size(path: str) -> tuple[int, int]:
  from PIL import Image
  with Image.open(path) as image:
    return image.size


def _draw(path, split, records, sizes, true, found, located, wanted) -> None:
  from svhn_jax import plots
  shown = range(min(_FIGURE_PHOTOS, len(records)))
  scale = lambda box, size: np.asarray(box) / [size[0], size[1], size[0], size[1]]
  plots.boxes_grid([split.image(i) for i in shown], [scale(true[i], sizes[i]) for i in shown],
                   [scale(found[i], sizes[i]) for i in shown],
                   [f"read {located[i]['number'] or '-'} (true {wanted[i]})" for i in shown],
                   path, cols=6, title="Located (red) and true (green) boxes; the number read "
                   "from the located box")


def main(argv: Sequence[str] | None = None) -> None:
  parser = cli.ArgumentParser(prog="python -m benchmarks.locate_then_read",
                              description=" ".join(__doc__.split("\n\n")[0].split()))
  parser.add_argument("--reader", required=True, help="the workdir of a numbers run")
  parser.add_argument("--locator", required=True, help="the workdir of a locator run")
  parser.add_argument("--photos", required=True,
                      help="a format-1 split: a folder holding digitStruct.mat, or its .tar.gz")
  parser.add_argument("--limit", type=cli.whole_number(1), default=None,
                      help="read only the first N photos (default: all)")
  parser.add_argument("--figure", help="also draw the first 24 photos into this PNG")
  parser.add_argument("--json", action="store_true", help="print one JSON object")
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.INFO, format="%(message)s")
  with cli.user_errors():
    scores = measure(args.reader, args.locator, args.photos, args.limit, args.figure)
  if args.json:
    print(json.dumps(scores))
  else:
    for name, value in scores.items():
      print(f"{name:>20} {value:.4f}" if isinstance(value, float) else f"{name:>20} {value}")


if __name__ == "__main__":
  main()
