"""Figures: drawn without pyplot, so importing svhn_jax.plots leaves matplotlib's backend alone,
and written whole as PNG files."""

import subprocess
import sys

import numpy as np

from support import ROOT
from svhn_jax import plots, stats

PNG = b"\x89PNG\r\n\x1a\n"

BACKEND_CHECK = """
import sys
import matplotlib
matplotlib.use("svg")
import svhn_jax.plots
assert "matplotlib.pyplot" not in sys.modules
svhn_jax.plots.training_curves([{"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.1,
                                 "val_accuracy": 0.4}], sys.argv[1])
assert "matplotlib.pyplot" not in sys.modules
print(matplotlib.get_backend())
"""


def test_importing_and_drawing_leave_the_backend_as_the_user_set_it(tmp_path):
  done = subprocess.run([sys.executable, "-c", BACKEND_CHECK, str(tmp_path / "c.png")], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr
  assert done.stdout == "svg\n"
  assert (tmp_path / "c.png").read_bytes()[:8] == PNG


def test_each_figure_is_a_png_file_and_nothing_else_is_left(tmp_path):
  history = [{"epoch": e, "loss": 1 / e, "accuracy": 0.5, "val_loss": 1.1 / e,
              "val_accuracy": 0.4} for e in (1, 2)]
  images = np.random.default_rng(0).uniform(0, 255, (3, 32, 32))
  summaries = [stats.summary([0.8, 0.9]), stats.summary([0.7])]
  paths = [
      plots.training_curves(history, tmp_path / "curves.png"),
      plots.confusion_matrix(np.eye(10, dtype=int) * 5, tmp_path / "confusion.png"),
      plots.image_grid(images, ["a", "b", "c"], tmp_path / "grid.png", cols=2,
                       borders=["red", "green", "red"]),
      plots.class_distribution({"train": np.arange(10), "test": np.ones(10)},
                               tmp_path / "classes.png"),
      plots.accuracy_bars(["A", "B"], summaries, [[0.8, 0.9], [0.7]], tmp_path / "bars.png"),
      plots.curves_by_group({"raw": [history], "mask": [history, history]},
                            tmp_path / "groups.png"),
      plots.mask_panels(images[0], np.ones((32, 32)), images[1], images[2],
                        tmp_path / "mask.png"),
  ]
  for path in paths:
    assert path.read_bytes()[:8] == PNG, path
  assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
