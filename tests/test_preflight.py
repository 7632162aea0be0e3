"""Rerunning a workdir: a config that would change what the run computes, or other data, is
refused in one line before anything is written and before JAX starts; what only changes how it
computes continues the run; --restart starts it over."""

import re
import shutil

import numpy as np
import pytest

from support import (metrics_rows, read_json, run_cli, run_clis, snapshot, tiny_config,
                     tiny_dataset, without_jax_backend)
from svhn_jax import data, preflight, train
from svhn_jax.datasets import study_h5
from svhn_jax.errors import CheckpointError, ConfigError

START_OVER = ("use another --workdir, or rerun with --restart to discard it and start over")


def main_args(workdir, h5, *overrides: str) -> list[str]:
  """The command line that trained `support.tiny_config('ann1', h5)` in `workdir`."""
  return ["--config=configs/ann1.py", f"--workdir={workdir}", f"--config.data.path={h5}",
          "--config.train.epochs=2", "--config.train.batch_size=32",
          "--config.train.eval_batch_size=50", *overrides]


def run_files(workdir) -> dict[str, bytes]:
  """What a run wrote, without the lock's record of who last held it."""
  return {k: v for k, v in snapshot(workdir).items() if k != ".lock.owner"}


# name: (the override, the one line it is refused with).
RERUNS = {
    # The bug this pins: a typo on a finished masked run rewrote its config.json.
    "preprocess_typo": ("--config.data.preprocess=masks",
                        "error: config.data.preprocess='masks': expected one of raw, mask"),
    "preprocess_changed": ("--config.data.preprocess=raw",
                           "error: {workdir} holds a run made with other settings "
                           "(data.preprocess: 'mask' -> 'raw'); resuming it would mix two setups: "
                           f"{START_OVER}"),
    "batch_size_changed": ("--config.train.batch_size=64",
                           "error: {workdir} holds a run made with other settings "
                           "(train.batch_size: 32 -> 64); resuming it would mix two setups: "
                           f"{START_OVER}"),
}


@pytest.fixture(scope="module")
def reruns(finished_run, tiny_h5, tmp_path_factory) -> dict:
  """name: (the workdir, its files before, the command's result), each rerun on its own copy of
  the finished masked run, the commands run from one Python start (support.run_clis), with JAX
  unable to start."""
  workdirs = {name: shutil.copytree(finished_run("ann1", "mask"),
                                    tmp_path_factory.mktemp(name) / "run") for name in RERUNS}
  before = {name: run_files(workdir) for name, workdir in workdirs.items()}
  results = run_clis([["svhn_jax.main", *main_args(workdirs[name], tiny_h5,
                                                   "--config.data.preprocess=mask", override)]
                      for name, (override, _) in RERUNS.items()], env=without_jax_backend())
  return {name: (workdirs[name], before[name], result)
          for name, result in zip(RERUNS, results)}


@pytest.mark.parametrize("name", RERUNS)
def test_a_rerun_that_would_change_the_run_is_refused_and_writes_nothing(name, reruns):
  """Through the command line, with JAX unable to start: the refusal comes before it."""
  workdir, before, result = reruns[name]
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [RERUNS[name][1].format(workdir=workdir)]
  assert run_files(workdir) == before


def test_what_only_changes_how_the_run_computes_continues_it(copied_run, tiny_h5):
  """More epochs, other chunk sizes, the other layer path, the data file moved: the run goes on
  from its checkpoint, its first epochs kept as they were."""
  workdir = copied_run("ann1")
  moved = shutil.copy(tiny_h5, workdir.parent / "moved.h5")
  config = tiny_config("ann1", moved, epochs=3, eval_batch_size=20, scan_epoch=False)
  config.model.impl = "flax"
  preflight.check_run(config, workdir)
  before = metrics_rows(workdir)
  train.train_and_evaluate(config, workdir)
  rows = metrics_rows(workdir)
  assert [row["epoch"] for row in rows] == [1, 2, 3] and rows[:2] == before
  assert read_json(workdir / "data.json")["path"] == str(moved)


def test_other_data_is_refused(copied_run, tiny_h5, tmp_path):
  workdir = copied_run("ann1")
  other = tiny_dataset()
  labels = other.test.labels.copy()
  labels[0] = (labels[0] + 1) % 10
  other = other._replace(test=other.test._replace(labels=labels))
  other_h5 = study_h5.save_h5(tmp_path / "other.h5", other)
  with pytest.raises(ConfigError) as e:
    preflight.check_run(tiny_config("ann1", other_h5), workdir)
  was = read_json(workdir / "data.json")["fingerprint"]
  assert str(e.value) == (
      f"{workdir} was trained on other data ({tiny_h5}, fingerprint {was}; this config's data "
      f"has {data.fingerprint(study_h5.load(other_h5))}); {START_OVER}")
  # Restarting compares nothing with the old run.
  preflight.check_run(tiny_config("ann1", other_h5), workdir, restart=True)


def test_a_config_json_that_is_not_json_is_refused(copied_run, tiny_h5):
  workdir = copied_run("ann1")
  (workdir / "config.json").write_text("{cut sho")
  with pytest.raises(CheckpointError, match=rf"config\.json is not the JSON config a run writes "
                                            rf"\(.*\); {re.escape(START_OVER)}$"):
    preflight.check_run(tiny_config("ann1", tiny_h5), workdir)


def test_restart_trains_the_workdir_from_scratch(copied_run, tiny_h5):
  workdir = copied_run("ann1")
  before = metrics_rows(workdir)
  result = run_cli("svhn_jax.main", *main_args(workdir, tiny_h5, "--config.train.batch_size=64",
                                               "--restart"))
  assert result.returncode == 0, result.stderr[-3000:]
  assert read_json(workdir / "config.json")["train"]["batch_size"] == 64
  rows = metrics_rows(workdir)
  assert [row["epoch"] for row in rows] == [1, 2]
  assert not np.isclose(rows[0]["loss"], before[0]["loss"])
  assert "Resuming" not in result.stderr


def test_muon_on_a_model_without_convolutions_is_refused_before_anything_is_written(tiny_h5,
                                                                                  tmp_path):
  config = tiny_config("ann1", tiny_h5)
  config.train.optimizer = "muon"
  with pytest.raises(ConfigError, match=r"^config\.train\.optimizer=muon: config\.model\.name="
                                        r"ann1 has no convolution filters for Muon"):
    preflight.check_run(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()
  config = tiny_config("cnn1", tiny_h5)
  config.train.optimizer = "muon"
  preflight.check_optimizer_fits_model(config)
