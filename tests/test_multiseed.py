"""Seeds trained vmapped against the same seeds trained one by one, and reusing seed workdirs."""

import json
import shutil

import numpy as np
import pytest

from configs import ann1, ann2, cnn1, cnn2
from svhn_jax import multiseed
from svhn_jax.errors import ConfigError
from test_train import metrics_rows as rows

CONFIGS = {"ann1": ann1, "ann2": ann2, "cnn1": cnn1, "cnn2": cnn2}
SEEDS = (3, 4)


def quick_config(name, path):
  """Tiny data, a last partial batch, and callbacks that act within a few epochs: the rate
  halves every epoch after the first, and a seed stops once its validation accuracy gains
  less than 3 points, so seeds stop on different epochs."""
  config = CONFIGS[name].get_config()
  config.data.path = str(path)
  config.train.epochs = 5
  config.train.batch_size = 40
  config.train.eval_batch_size = 50
  config.train.early_stopping.patience = 1
  config.train.early_stopping.min_delta = 0.03
  config.train.plateau.patience = 1
  config.train.plateau.min_delta = 10.0
  # The vmapped seeds step batch by batch; so must the separate runs they are compared with.
  config.train.scan_epoch = "false"
  # The reference layers: the fused ones sum in another order under vmap, and a bias feeding
  # BatchNorm has a true gradient of zero, so Adam turns that rounding into full-size steps.
  config.model.impl = "flax"
  return config


def test_memory_helpers_select_per_seed():
  a = {"w": np.zeros((2, 3)), "n": np.zeros(2, np.int32)}
  b = {"w": np.ones((2, 3)), "n": np.ones(2, np.int32)}
  mixed = multiseed.where_seeds([True, False], b, a)
  assert mixed["w"].tolist() == [[1, 1, 1], [0, 0, 0]] and mixed["n"].tolist() == [1, 0]
  stacked = multiseed.stack([a, b])
  assert stacked["w"].shape == (2, 2, 3)
  assert multiseed.unstack(stacked, 1)["w"].tolist() == b["w"].tolist()


def test_auto_mode_vmaps_dense_models_and_loops_convolutions_on_the_cpu(tiny_h5):
  assert multiseed.chosen_mode("auto", quick_config("ann2", tiny_h5), 3) == "vmap"
  assert multiseed.chosen_mode("auto", quick_config("cnn1", tiny_h5), 3) == "loop"
  assert multiseed.chosen_mode("auto", quick_config("ann2", tiny_h5), 1) == "loop"
  assert multiseed.chosen_mode("vmap", quick_config("cnn1", tiny_h5), 3) == "vmap"
  no_checkpoints = quick_config("ann2", tiny_h5)
  no_checkpoints.checkpoint.enabled = False
  assert multiseed.chosen_mode("auto", no_checkpoints, 3) == "loop"
  with pytest.raises(ConfigError):
    multiseed.chosen_mode("vmap", no_checkpoints, 3)


@pytest.fixture(scope="module", params=["ann2", "cnn1"])
def vmapped_and_looped(request, tiny_h5, tmp_path_factory):
  """ann2 has BatchNorm and dropout; cnn1 has convolutions, which vmap batches into grouped
  ones. (cnn2 is left out: its conv biases feed BatchNorm, so their gradient is zero up to
  rounding, and Adam scales that rounding noise to full-size steps; vmapped and looped runs
  then part within an epoch, as two looped runs on different hardware would.)"""
  config = quick_config(request.param, tiny_h5)
  root = tmp_path_factory.mktemp(request.param)
  multiseed.train_seeds(config, SEEDS, root / "vmap", mode="vmap")
  multiseed.train_seeds(config, SEEDS, root / "loop", mode="loop")
  return config, root


def test_vmapped_seeds_give_the_metrics_of_separate_runs(vmapped_and_looped):
  _, root = vmapped_and_looped
  for seed in SEEDS:
    vmapped, looped = (multiseed.seed_workdir(root / m, seed) for m in ("vmap", "loop"))
    a, b = rows(vmapped), rows(looped)
    assert [(r["epoch"], r["lr"]) for r in a] == [(r["epoch"], r["lr"]) for r in b]
    for ra, rb in zip(a, b):
      for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert ra[key] == pytest.approx(rb[key], rel=1e-4, abs=1e-5), (seed, ra["epoch"], key)
    test_a, test_b = (json.loads((w / "test_metrics.json").read_text())
                      for w in (vmapped, looped))
    assert test_a["best_epoch"] == test_b["best_epoch"]
    assert test_a["accuracy"] == pytest.approx(test_b["accuracy"], abs=1e-9)
    assert test_a["loss"] == pytest.approx(test_b["loss"], rel=1e-4)
    assert test_a["confusion_matrix"] == test_b["confusion_matrix"]
  timing = [multiseed.read_timing(root / m) for m in ("vmap", "loop")]
  assert [t["mode"] for t in timing] == ["vmap", "loop"]
  assert all(t["seeds"] == list(SEEDS) and t["seconds"] > 0 for t in timing)


def test_the_seeds_stopped_on_different_epochs_with_falling_rates(vmapped_and_looped):
  """What makes the comparison above a test of the per-seed callbacks."""
  _, root = vmapped_and_looped
  a, b = (rows(multiseed.seed_workdir(root / "vmap", s)) for s in SEEDS)
  assert len(a) != len(b)
  assert a[0]["loss"] != b[0]["loss"]
  longer = max(a, b, key=len)
  assert [r["lr"] for r in longer][1:3] == [longer[0]["lr"], longer[0]["lr"] / 2]


def test_finished_seeds_are_reused_and_new_ones_trained(vmapped_and_looped, tmp_path):
  config, root = vmapped_and_looped
  group = tmp_path / "group"
  shutil.copytree(root / "vmap", group)
  before = {s: rows(multiseed.seed_workdir(group, s)) for s in SEEDS}
  timing = multiseed.read_timing(group)
  multiseed.train_seeds(config, SEEDS, group)
  assert multiseed.read_timing(group) == timing
  assert {s: rows(multiseed.seed_workdir(group, s)) for s in SEEDS} == before
  reports = multiseed.train_seeds(config, (*SEEDS, 5), group)
  assert len(reports) == 3
  assert multiseed.read_timing(group) | {"seconds": 0} == {"mode": "loop", "seeds": [5],
                                                          "seconds": 0}
  assert {s: rows(multiseed.seed_workdir(group, s)) for s in SEEDS} == before


def test_a_workdir_of_other_settings_is_not_reused(vmapped_and_looped):
  config, root = vmapped_and_looped
  config = multiseed.seed_config(config, config.seed)
  config.train.epochs += 1
  with pytest.raises(ConfigError, match="train.epochs"):
    multiseed.train_seeds(config, SEEDS, root / "vmap")


def test_seeds_that_do_not_fit_train_one_at_a_time(tiny_h5, tmp_path, monkeypatch):
  monkeypatch.setattr(multiseed, "free_memory", lambda: 1)
  config = quick_config("ann1", tiny_h5)
  config.train.epochs = 1
  reports = multiseed.train_seeds(config, SEEDS, tmp_path, mode="vmap")
  assert multiseed.read_timing(tmp_path)["mode"] == "loop" and len(reports) == 2


def test_a_half_finished_seed_is_resumed_not_restarted(vmapped_and_looped, tmp_path):
  config, root = vmapped_and_looped
  group = tmp_path / "group"
  shutil.copytree(root / "vmap", group)
  workdir = multiseed.seed_workdir(group, SEEDS[0])
  scores = (workdir / "test_metrics.json").read_text()
  history = rows(workdir)
  (workdir / "test_metrics.json").unlink()
  multiseed.train_seeds(config, SEEDS, group, mode="vmap")
  assert multiseed.read_timing(group)["seeds"] == [SEEDS[0]]
  assert rows(workdir) == history
  assert json.loads((workdir / "test_metrics.json").read_text()) == json.loads(scores)
