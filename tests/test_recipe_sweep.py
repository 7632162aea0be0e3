"""experiments/recipe_sweep.py at tiny sizes: one short step-counted run per size and seed, its
table and figure made of the runs on disk, its data sets the development set's first crops."""

import os
import re

import h5py
import numpy as np
import pytest

from support import ROOT, run_cli, table_rows
from benchmarks import real_digits
from experiments import recipe_sweep
from svhn_jax import multiseed, plots, report, stats
from svhn_jax.errors import ConfigError

SIZES = (30, 60)
SEEDS = (0, 1)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
  out = tmp_path_factory.mktemp("sweep")
  done = run_cli("experiments.recipe_sweep", f"--results_dir={out}", "--config.models=ann1",
                 f"--sizes={SIZES[1]},{SIZES[0]}", "--val=20", "--test=20",
                 f"--seeds={len(SEEDS)}",
                 "--config.train.total_steps=3", "--config.train.batch_size=8",
                 "--config.train.eval_batch_size=64", env={**os.environ, "PYTHONPATH": str(ROOT)})
  assert done.returncode == 0, done.stderr[-3000:]
  return out


def test_the_sweep_reports_its_runs_at_each_size(swept):
  text = (swept / "report.md").read_text()
  runs = {n: [report.read_run(multiseed.seed_workdir(swept / "runs" / f"n{n}" / "ann1", s))
              for s in SEEDS] for n in SIZES}
  for n, group in runs.items():
    assert [r.test["steps_run"] if "steps_run" in r.test else r.history[-1]["step"]
            for r in group] == [3, 3]
    assert not group[0].config["data"]["train_on_val"]
    with h5py.File(group[0].config["data"]["path"]) as f:
      assert (len(f["y_train"]), len(f["y_val"]), len(f["y_test"])) == (n, 20, 20)
  [row] = table_rows(text, "recipe")
  expected = []
  for n in SIZES:
    test = stats.summary([r.test_accuracy for r in runs[n]])
    expected.append(f"{report.mean_std(test)} {report.interval(test)}")
  assert row == ["ann1", *expected]
  assert "3 steps, batch 8" in text
  figures = re.findall(r"!\[[^]]*\]\(([^)]+)\)", text)
  assert figures == ["figures/accuracy_by_size.png"] and (swept / figures[0]).is_file()


def test_a_smaller_size_is_the_first_crops_of_the_larger(swept):
  small, large = (swept / "data" / f"{real_digits.stem(n, 20, 20, 0)}.h5" for n in SIZES)
  with h5py.File(small) as s, h5py.File(large) as b:
    np.testing.assert_array_equal(s["X_train"][:], b["X_train"][:SIZES[0]])
    for key in ("X_val", "y_val", "X_test", "y_test"):
      np.testing.assert_array_equal(s[key][:], b[key][:])


def test_sizes_are_distinct_whole_numbers():
  assert recipe_sweep.parse_sizes(["3000", "500"]) == [500, 3000]
  for bad in (["500", "500"], ["0"], ["x"], []):
    with pytest.raises(ConfigError, match=r"^--sizes=.*: expected distinct whole numbers"):
      recipe_sweep.parse_sizes(bad)


def test_the_figure_takes_one_seed_without_whiskers(tmp_path):
  path = plots.accuracy_by_size([10, 100], {"a": [[0.5], [0.7]], "b": [[0.4, 0.6], [0.8, 0.9]]},
                                tmp_path / "f.png")
  assert path.stat().st_size > 0


def test_the_sweeps_config_names_run_configs_that_train_on_the_training_crops():
  from configs import recipe_sweep as sweep_config
  from configs import study
  config = sweep_config.get_config()
  assert study.model_names(config) == ["cnn2_b32", "wrn_cpu", "wrn_small"]
  for name in config.models:
    assert study.run_config(config, name).data.train_on_val is False
  config.data.path = "x.h5"
  with pytest.raises(ConfigError, match=r"^config\.data\.path=x\.h5: the sweep sets it"):
    recipe_sweep.check_settings(config)


@pytest.mark.parametrize("models, error", [("nope", r"no run config configs/nope\.py"),
                                           ("numbers", r"is not a digit run")])
def test_a_recipe_the_sweep_cannot_run_is_refused_before_any_set_is_built(tmp_path, models,
                                                                          error):
  from configs import recipe_sweep as sweep_config
  config = sweep_config.get_config()
  config.models = [models]
  paths = recipe_sweep.dataset_paths(tmp_path / "data", [30, 60], 20, 20, 0)
  with pytest.raises(ConfigError, match=error):
    recipe_sweep.check_sweep(config, [30, 60], paths, [0], tmp_path / "runs")
  assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()
