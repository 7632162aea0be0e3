"""Several seeds of a run: trained vmapped (`train.train_seeds`) they give what separate
`train.train_and_evaluate` runs give, on a fixed schedule of epochs; finished seeds are reused,
half-finished ones resumed, and seeds that do not fit in memory trained one at a time."""

import json
import shutil

import pytest

from support import metrics_rows, read_json, tiny_config
from svhn_jax import callbacks, multiseed
from svhn_jax import config as config_lib
from svhn_jax.errors import ConfigError

SEEDS = (3, 4)
EPOCHS = 3


def quick_config(name, path):
  """The tiny file in batches of 40 (a last batch of 32), step by step as the vmapped seeds
  step, on the plain layers (the fused ones sum in another order under vmap). The rate halves
  after every epoch but the first: no validation loss improves by 10.

  Adam's epsilon is 1e-3, not Keras's 1e-7: a bias that feeds BatchNorm through an always-active
  ReLU has a gradient of rounding noise, which Adam with a tiny epsilon turns into steps of the
  learning rate's size, either way; two code paths would then part by more than rounding."""
  config = tiny_config(name, path, epochs=EPOCHS, batch_size=40, scan_epoch=False,
                       adam_eps=1e-3)
  config.model.impl = "flax"
  config.train.early_stopping.patience = EPOCHS
  config.train.plateau.patience = 1
  config.train.plateau.min_delta = 10.0
  return config


def first_seed_stops_after_epoch_2():
  """An early-stopping update on a fixed schedule, the same for vmapped and looped seeds (they
  reach epoch 2 in the order of SEEDS): every epoch is the best so far, and the first run to
  finish epoch 2 stops there. Stops decided by validation accuracy could differ between two
  code paths by float rounding; these cannot."""
  finished = []

  def update(state, value, epoch, *, patience, min_delta):
    finished.append(epoch)
    return callbacks.EarlyStopping(best=value, best_epoch=epoch, wait=0,
                                   stop=epoch == 1 and finished.count(1) == 1)

  return update


@pytest.fixture(scope="module", params=["ann2", "cnn1"])
def vmapped_and_looped(request, tiny_h5, tmp_path_factory):
  """The same seeds trained vmapped and one by one. ann2 has BatchNorm and dropout; cnn1 has
  convolutions, which vmap batches into grouped ones."""
  config = quick_config(request.param, tiny_h5)
  root = tmp_path_factory.mktemp(request.param)
  for mode in ("vmap", "loop"):
    with pytest.MonkeyPatch.context() as patch:
      patch.setattr(callbacks, "early_stopping_update", first_seed_stops_after_epoch_2())
      multiseed.train_seeds(config, SEEDS, root / mode, mode=mode)
  return config, root


def test_vmapped_seeds_give_the_metrics_of_separate_runs(vmapped_and_looped):
  _, root = vmapped_and_looped
  for seed in SEEDS:
    vmapped, looped = (multiseed.seed_workdir(root / m, seed) for m in ("vmap", "loop"))
    a, b = metrics_rows(vmapped), metrics_rows(looped)
    assert [(r["epoch"], r["lr"]) for r in a] == [(r["epoch"], r["lr"]) for r in b]
    for ra, rb in zip(a, b):
      for key in ("loss", "val_loss"):
        assert ra[key] == pytest.approx(rb[key], rel=1e-4), (seed, ra["epoch"], key)
      for key in ("accuracy", "val_accuracy"):
        # A sample whose top two logits tie to float precision may flip: allow one.
        assert abs(ra[key] - rb[key]) <= 1 / 64 + 1e-9, (seed, ra["epoch"], key)
    test_a, test_b = (read_json(w / "test_metrics.json") for w in (vmapped, looped))
    assert (test_a["best_epoch"], test_a["epochs_run"]) == (test_b["best_epoch"],
                                                            test_b["epochs_run"])
    assert test_a["loss"] == pytest.approx(test_b["loss"], rel=1e-4)
    assert abs(test_a["accuracy"] - test_b["accuracy"]) <= 1 / 64 + 1e-9
  timing = [multiseed.read_timing(root / m) for m in ("vmap", "loop")]
  assert [t["mode"] for t in timing] == ["vmap", "loop"]
  assert all(t["seeds"] == list(SEEDS) and t["seconds"] > 0 for t in timing)


def test_each_vmapped_seed_keeps_its_own_callbacks(vmapped_and_looped):
  """The first seed stopped after epoch 2 while the program trained the second to epoch 3: its
  later epoch is neither recorded nor saved, and each seed's rate fell on its own schedule."""
  _, root = vmapped_and_looped
  first, second = (multiseed.seed_workdir(root / "vmap", s) for s in SEEDS)
  rows = [metrics_rows(first), metrics_rows(second)]
  lr = rows[1][0]["lr"]
  assert [[r["lr"] for r in seed_rows] for seed_rows in rows] == [[lr, lr], [lr, lr, lr / 2]]
  assert rows[0][0]["loss"] != rows[1][0]["loss"]
  for workdir, epochs in ((first, 2), (second, 3)):
    assert read_json(workdir / "test_metrics.json")["epochs_run"] == epochs
    assert sorted(p.name for p in (workdir / "checkpoints" / "latest").iterdir()) == [str(epochs)]


def test_finished_seeds_are_reused_and_new_ones_trained(vmapped_and_looped, tmp_path):
  config, root = vmapped_and_looped
  group = tmp_path / "group"
  shutil.copytree(root / "vmap", group)
  before = {s: metrics_rows(multiseed.seed_workdir(group, s)) for s in SEEDS}
  timing = multiseed.read_timing(group)
  reports = multiseed.train_seeds(config, SEEDS, group)
  assert multiseed.read_timing(group) == timing
  assert reports == [read_json(multiseed.seed_workdir(group, s) / "test_metrics.json")
                     for s in SEEDS]
  reports = multiseed.train_seeds(config, (*SEEDS, 5), group)
  assert len(reports) == 3 and reports[2]["epochs_run"] == EPOCHS
  assert multiseed.read_timing(group) | {"seconds": 0} == {"mode": "loop", "seeds": [5],
                                                          "seconds": 0}
  assert {s: metrics_rows(multiseed.seed_workdir(group, s)) for s in SEEDS} == before


def test_a_workdir_of_other_settings_is_not_reused(vmapped_and_looped):
  config, root = vmapped_and_looped
  config = multiseed.train.seed_config(config, config.seed)
  config.train.epochs += 1
  with pytest.raises(ConfigError) as e:
    multiseed.train_seeds(config, SEEDS, root / "vmap")
  assert str(e.value) == (
      f"{multiseed.seed_workdir(root / 'vmap', SEEDS[0])} holds a run made with other settings "
      "(train.epochs). Use another --runs_dir (or --results_dir, where the runs go under it), "
      "or delete that workdir to train it again.")


def test_a_half_finished_seed_is_resumed_not_restarted(vmapped_and_looped, tmp_path):
  config, root = vmapped_and_looped
  group = tmp_path / "group"
  shutil.copytree(root / "vmap", group)
  workdir = multiseed.seed_workdir(group, SEEDS[0])
  scores = read_json(workdir / "test_metrics.json")
  history = metrics_rows(workdir)
  (workdir / "test_metrics.json").unlink()
  multiseed.train_seeds(config, SEEDS, group, mode="vmap")
  assert multiseed.read_timing(group) | {"seconds": 0} == {"mode": "loop", "seeds": [SEEDS[0]],
                                                          "seconds": 0}
  assert metrics_rows(workdir) == history
  assert read_json(workdir / "test_metrics.json") == scores


def test_seeds_that_do_not_fit_train_one_at_a_time(tiny_h5, tmp_path, monkeypatch):
  monkeypatch.setattr(multiseed, "free_memory", lambda: 1)
  # ANN2, whose looped steps the fixture above compiled already.
  config = quick_config("ann2", tiny_h5)
  config.train.epochs = 1
  reports = multiseed.train_seeds(config, SEEDS, tmp_path, mode="vmap")
  assert multiseed.read_timing(tmp_path)["mode"] == "loop"
  assert reports == [read_json(multiseed.seed_workdir(tmp_path, s) / "test_metrics.json")
                     for s in SEEDS]
  assert read_json(multiseed.seed_workdir(tmp_path, 4) / "config.json")["seed"] == 4


def test_auto_mode_vmaps_dense_models_and_loops_convolutions_on_the_cpu(tiny_h5):
  assert multiseed.chosen_mode("auto", quick_config("ann2", tiny_h5), 3) == "vmap"
  assert multiseed.chosen_mode("auto", quick_config("cnn1", tiny_h5), 3) == "loop"
  assert multiseed.chosen_mode("auto", quick_config("ann2", tiny_h5), 1) == "loop"
  assert multiseed.chosen_mode("vmap", quick_config("cnn1", tiny_h5), 3) == "vmap"
  assert multiseed.chosen_mode("loop", quick_config("ann1", tiny_h5), 3) == "loop"


@pytest.mark.parametrize("mode, seeds, expected", [
    ("fast", SEEDS, "--multiseed='fast': expected one of auto, vmap, loop"),
    ("auto", (), "seeds []: expected distinct seeds, at least one"),
    ("auto", (3, 3), "seeds [3, 3]: expected distinct seeds, at least one"),
])
def test_a_bad_mode_or_seed_list_is_refused(mode, seeds, expected, tiny_h5, tmp_path):
  with pytest.raises(ConfigError) as e:
    multiseed.train_seeds(quick_config("ann1", tiny_h5), seeds, tmp_path, mode=mode)
  assert str(e.value) == expected


def test_free_memory_is_known_on_this_machine():
  assert multiseed.free_memory() > 2**20


def test_a_loop_stopped_between_seeds_still_records_the_finished_ones(tmp_path, monkeypatch):
  """The timing file names the seeds that finished, so a report of those says how long they
  took (benchmarks/gpu_wrn.sh reports a comparison cut short by its time limit)."""
  def train_and_evaluate(config, workdir):
    if config.seed == 1:
      raise KeyboardInterrupt
    workdir.mkdir(parents=True)

  monkeypatch.setattr(multiseed.train, "train_and_evaluate", train_and_evaluate)
  with pytest.raises(KeyboardInterrupt):
    multiseed.train_seeds(tiny_config("cnn1", tmp_path / "unread.h5"), [0, 1], tmp_path / "g",
                          mode="loop")
  timing = multiseed.read_timing(tmp_path / "g")
  assert timing["mode"] == "loop" and timing["seeds"] == [0] and timing["seconds"] >= 0


def test_a_workdir_differing_only_in_a_setting_neither_run_reads_is_reused(tmp_path):
  """An older run's config.json may hold a value its run ignored (momentum under Adam, the
  generated data's sizes beside a data file): reusing it changes nothing."""
  config = tiny_config("ann1", tmp_path / "d.h5")
  saved = config_lib.to_dict(config)
  saved["train"]["momentum"], saved["data"]["synthetic"]["train"] = 0.95, 8_000
  (tmp_path / "config.json").write_text(json.dumps(saved))
  multiseed.check_reusable(tmp_path, config)
  config.train.optimizer = "sgd"
  with pytest.raises(ConfigError, match=r"\(train\.momentum, train\.optimizer\)"):
    multiseed.check_reusable(tmp_path, config)
