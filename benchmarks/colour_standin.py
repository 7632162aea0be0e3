"""Grey against colour on a format-2 stand-in whose stroke and background colours vary.

  python benchmarks/colour_standin.py --dir=/tmp/svhn_colour            # 10,000 + 2,000 crops

Writes SVHN format-2 files (train_32x32.mat, test_32x32.mat) whose digits are the synthetic
generator's ink masks painted in random colours: on --iso share of the crops the stroke and
background colours have nearly the same luma (0.299 R + 0.587 G + 0.114 B within +-6 grey
levels) but different hues, so greyscale loses the contrast that colour keeps; on the rest
they differ in luma by 40 or more. Then trains configs/cnn2.py on them with
config.data.color=grey and =rgb (--epochs epochs, val_size crops carved from train) and prints
each run's test accuracy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from svhn_jax import cli  # noqa: E402
from svhn_jax.datasets import cropped, synthetic  # noqa: E402

LUMA = np.array([0.299, 0.587, 0.114])


def colour_pairs(n: int, iso_share: float, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
  """(stroke, background) RGB colours (n, 3) in 0..255."""
  stroke = rng.uniform(0, 255, (n, 3))
  background = rng.uniform(0, 255, (n, 3))
  iso = rng.random(n) < iso_share
  for i in range(n):
    for _ in range(1000):
      gap = abs((stroke[i] - background[i]) @ LUMA)
      hue = np.abs(stroke[i] - background[i]).max()
      if (gap <= 6 and hue >= 90) if iso[i] else gap >= 40:
        break
      background[i] = rng.uniform(0, 255, 3)
  return stroke, background


def crops(n: int, seed: int, iso_share: float) -> tuple[np.ndarray, np.ndarray]:
  """uint8 colour crops (n, 32, 32, 3) and labels 0..9."""
  rng = np.random.default_rng(seed)
  labels = rng.permutation(np.arange(n) % 10).astype(np.uint8)
  masks = synthetic.ink(labels, rng, synthetic.STYLE)[..., None]
  stroke, background = colour_pairs(n, iso_share, rng)
  images = background[:, None, None] * (1 - masks) + stroke[:, None, None] * masks
  images += rng.normal(0, 6, images.shape)
  return np.clip(np.round(images), 0, 255).astype(np.uint8), labels


def main() -> None:
  parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dir", required=True, type=Path)
  parser.add_argument("--train", type=int, default=10_000, help="train file: train + validation")
  parser.add_argument("--val-size", type=int, default=2_000)
  parser.add_argument("--test", type=int, default=2_000)
  parser.add_argument("--iso", type=float, default=0.6)
  parser.add_argument("--epochs", type=int, default=10)
  args = parser.parse_args()
  args.dir.mkdir(parents=True, exist_ok=True)
  for name, count, seed in (("train", args.train, 1), ("test", args.test, 2)):
    cropped.write_mat(args.dir / f"{name}_32x32.mat", *crops(count, seed, args.iso))
  results = {}
  for colour in ("grey", "rgb"):
    workdir = args.dir / f"run_{colour}"
    subprocess.run(
        [sys.executable, "-m", "svhn_jax.main", "--config=configs/cnn2.py", f"--workdir={workdir}",
         "--restart", "--config.data.source=svhn_cropped", f"--config.data.path={args.dir}",
         f"--config.data.color={colour}", f"--config.data.val_size={args.val_size}",
         f"--config.data.cache_dir={args.dir / 'cache'}", f"--config.train.epochs={args.epochs}"],
        cwd=ROOT, check=True, capture_output=True)
    results[colour] = json.loads((workdir / "test_metrics.json").read_text())
  print(f"CNN2, {args.epochs} epochs, {args.train - args.val_size:,} train / {args.val_size:,} "
        f"validation / {args.test:,} test crops, {args.iso:.0%} with stroke and background of "
        "equal luma")
  for colour, scores in results.items():
    print(f"  {colour:4}  test accuracy {scores['accuracy']:.2%}  (best epoch "
          f"{scores['best_epoch']} of {scores['epochs_run']})")


if __name__ == "__main__":
  main()
