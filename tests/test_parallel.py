"""Data parallelism: 4 devices, or 2 processes, train a run as 1 device does and share checkpoints.

A process's CPU device count is fixed when JAX starts (XLA_FLAGS), so the 4-device and
2-process runs happen in subprocesses; this process, with its single CPU device, trains the
reference. Runs are compared over a fixed number of epochs, early stopping off. Sums over a
split batch add in another order, so losses agree to rounding: Adam's epsilon is raised from
Keras's 1e-7 to 1e-3 so that a gradient of pure rounding noise (a bias feeding BatchNorm
through an always-active ReLU) makes no step, where a tiny epsilon turns it into a step of the
learning rate's size.
"""

import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
from jax.sharding import AbstractMesh

from support import ROOT, metrics_rows, read_json
from svhn_jax import data, parallel, train
from svhn_jax.datasets import study_h5
from svhn_jax.errors import ConfigError

TIMEOUT_S = 300
# 190 samples in batches of 32 end with a batch of 30, which does not split over 4 devices: the
# replicated last batch is tested too.
TRAIN_SAMPLES, BATCH, EVAL_BATCH = 190, 32, 50


@pytest.fixture(scope="module")
def odd_h5(tiny_h5, tmp_path_factory) -> Path:
  tiny = study_h5.load(tiny_h5)
  split = data.Split(tiny.train.images[:TRAIN_SAMPLES], tiny.train.labels[:TRAIN_SAMPLES])
  return study_h5.save_h5(tmp_path_factory.mktemp("odd") / "odd.h5", tiny._replace(train=split))


def overrides(h5: Path, epochs: int) -> dict:
  return {"data.path": str(h5), "train.epochs": epochs, "train.batch_size": BATCH,
          "train.eval_batch_size": EVAL_BATCH, "train.adam_eps": 1e-3,
          "train.early_stopping.patience": 100}


def run_here(model: str, h5: Path, epochs: int, workdir: Path) -> None:
  """Trains (or resumes) configs/<model>.py in this process, on its one CPU device."""
  config = importlib.import_module(f"configs.{model}").get_config()
  config.update_from_flattened_dict(overrides(h5, epochs))
  train.train_and_evaluate(config, workdir)


@pytest.fixture(scope="module")
def reference(odd_h5, tmp_path_factory):
  """`reference(model)`: the workdirs of `model`'s run on one device after its first epoch, kept
  as it was, and after its second, resumed from it; each trained once."""
  runs = {}

  def get(model: str) -> tuple[Path, Path]:
    if model not in runs:
      root = tmp_path_factory.mktemp(f"one_device_{model}")
      run_here(model, odd_h5, 1, root / "after_one")
      shutil.copytree(root / "after_one", root / "after_two")
      run_here(model, odd_h5, 2, root / "after_two")
      runs[model] = root / "after_one", root / "after_two"
    return runs[model]

  return get


def assert_same_run(workdir: Path, reference: Path) -> None:
  """The same epochs, rates, losses and accuracies, and test scores. Each comparison spans one
  epoch computed on other devices from the same state: a max pool whose two largest inputs
  differ by rounding sends a gradient elsewhere, so runs that differ from their first epoch on
  part by more than rounding in the next."""
  rows, expected = metrics_rows(workdir), metrics_rows(reference)
  assert [(r["epoch"], r["lr"]) for r in rows] == [(r["epoch"], r["lr"]) for r in expected]
  for row, want in zip(rows, expected):
    for key in ("loss", "val_loss"):
      np.testing.assert_allclose(row[key], want[key], rtol=1e-4, err_msg=key)
    for key in ("accuracy", "val_accuracy"):
      # A sample whose top two logits tie to float precision may flip: allow one in 64.
      assert abs(row[key] - want[key]) <= 1 / 64 + 1e-9, (key, row, want)
  test, want = (read_json(w / "test_metrics.json") for w in (workdir, reference))
  np.testing.assert_allclose(test["loss"], want["loss"], rtol=1e-4)
  assert abs(test["accuracy"] - want["accuracy"]) <= 1 / 64 + 1e-9


def child_env(devices: int) -> dict:
  """`devices` CPU devices; the session's compilation cache (tests/conftest.py) is inherited."""
  env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}  # loopback gRPC
  env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu",
             PYTHONPATH=str(ROOT))
  return env


def failure(what: str, logs: list[str]) -> str:
  return f"{what}\n" + "\n".join(f"----- output {i}:\n{log[-4000:]}" for i, log in enumerate(logs))


# Runs in a subprocess with 4 CPU devices: checks that a step is data parallel (each device
# computes 8 of the 32 rows; gradients and BatchNorm statistics are all-reduced) on ANN2, which has
# BatchNorm and Dropout and compiles faster than CNN2, and that sharded dropout bits equal
# unsharded ones; then trains or resumes CNN2 for each (workdir, config overrides) of argv[1].
FOUR_DEVICES = """
import json, logging, sys
import jax, numpy as np
from configs import cnn2
from svhn_jax import models, parallel, recipes, steps, tasks, train
from svhn_jax.data import Split
from svhn_jax.trainer import Trainer

mesh = parallel.make_mesh()
assert mesh.size == 4, mesh
tx = recipes.adam(1e-3, 1e-7)
graphdef, state = steps.init_state(models.create_model("ann2", seed=0), tx)
trainer = Trainer(graphdef, tx, batch_size=32, eval_batch_size=50, mesh=mesh,
                  task=tasks.get("digit"))
data = Split(*parallel.replicate((np.zeros((64, 32, 32), np.uint8), np.zeros(64, np.int32)),
                                 mesh))
# The first step's mesh inputs as shapes and shardings (the rest as they are: keys and step
# numbers are not on the mesh), to ask XLA what it compiled for them.
step, seen = trainer._step, []
on_mesh = lambda x: isinstance(getattr(x, "sharding", None), jax.sharding.NamedSharding)
abstract = lambda x: (jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
                      if on_mesh(x) else x)
trainer._step = lambda *args: seen.append(jax.tree.map(abstract, args)) or step(*args)
trainer.train_epoch(parallel.replicate(state, mesh), data, jax.random.key(0), 0)
hlo = step.lower(*seen[0]).compile().as_text()
assert "all-reduce" in hlo and "f32[8,1024]" in hlo and "f32[32,1024]" not in hlo
bits = lambda key: jax.random.bernoulli(key, 0.5, (32, 64))
split = jax.jit(bits, out_shardings=parallel.rows(mesh, 32))(jax.random.key(3))
assert split.sharding.spec == jax.sharding.PartitionSpec("data"), split.sharding
assert np.array_equal(np.asarray(split), np.asarray(jax.jit(bits)(jax.random.key(3))))

logging.getLogger().setLevel(logging.INFO)
for workdir, overrides in json.loads(sys.argv[1]):
  config = cnn2.get_config()
  config.update_from_flattened_dict(overrides)
  train.train_and_evaluate(config, workdir)
print("four devices ok")
"""


def test_four_devices_train_as_one_and_share_checkpoints(odd_h5, reference, tmp_path):
  """CNN2 (fused layers, BatchNorm, Dropout) on 4 devices: its first epoch is the first epoch on
  1 device, and a second epoch resumed from 1 device's checkpoint is the second on 1 device; a
  4-device checkpoint resumes on 1 device."""
  after_one, after_two = reference("cnn2")
  four_then_one = tmp_path / "four_then_one"
  one_then_four = Path(shutil.copytree(after_one, tmp_path / "one_then_four"))
  jobs = [(str(four_then_one), overrides(odd_h5, 1)), (str(one_then_four), overrides(odd_h5, 2))]
  child = subprocess.run(
      [sys.executable, "-c", FOUR_DEVICES, json.dumps(jobs)], cwd=ROOT, env=child_env(4),
      capture_output=True, text=True, timeout=TIMEOUT_S)
  log = child.stdout + child.stderr
  assert child.returncode == 0 and "four devices ok" in log, failure("4-device run failed", [log])
  assert "data parallel over 4 cpu device(s) in 1 process(es)" in log, failure("no mesh log", [log])
  assert_same_run(four_then_one, after_one)
  assert_same_run(one_then_four, after_two)
  first = metrics_rows(four_then_one)
  run_here("cnn2", odd_h5, 2, four_then_one)
  rows = metrics_rows(four_then_one)
  assert [row["epoch"] for row in rows] == [1, 2] and rows[0] == first[0]


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def run_two_processes(h5: Path, epochs: int, workdir: Path) -> list[str]:
  """The CLI on ANN2, 2 processes of one CPU device each, joined on a loopback coordinator."""
  address = f"127.0.0.1:{free_port()}"
  flags = [f"--config.{k}={v}" for k, v in overrides(h5, epochs).items()]
  logs = [workdir.parent / f"{workdir.name}.{i}.log" for i in range(2)]
  deadline = time.monotonic() + TIMEOUT_S
  with ExitStack() as files:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "svhn_jax.main", "--config=configs/ann2.py",
             f"--workdir={workdir}", f"--coordinator_address={address}", "--num_processes=2",
             f"--process_id={i}", *flags],
            cwd=ROOT, env=child_env(1), stdout=files.enter_context(log.open("w")),
            stderr=subprocess.STDOUT)
        for i, log in enumerate(logs)
    ]
    try:
      codes = [proc.wait(timeout=max(1.0, deadline - time.monotonic())) for proc in procs]
    except subprocess.TimeoutExpired:
      codes = f"none: killed after {TIMEOUT_S} s"
    finally:
      # A process whose peer died waits for it until JAX's heartbeat timeout: end both.
      for proc in procs:
        proc.kill()
        proc.wait()
  texts = [log.read_text() for log in logs]
  assert codes == [0, 0], failure(f"2-process run: exit codes {codes}", texts)
  return texts


# Slow (about 30 s; the four-device test covers sharded training and checkpoints in one process):
# `pytest -m slow` runs it.
@pytest.mark.slow
def test_two_processes_train_as_one(reference, odd_h5, tmp_path):
  """ANN2 resumed by 2 processes from 1 device's first epoch: its second epoch is the one on 1
  device. Both processes restore and save the orbax checkpoints; process 0 alone writes the
  run's other files."""
  after_one, after_two = reference("ann2")
  workdir = Path(shutil.copytree(after_one, tmp_path / "two_processes"))
  logs = run_two_processes(odd_h5, 2, workdir)
  for i, log in enumerate(logs):
    assert f"data parallel over 2 cpu device(s) in 2 process(es), 1 in process {i}" in log, \
        failure("no mesh log", logs)
    assert f"Resuming {workdir} after epoch 1" in log, failure("process did not resume", logs)
  assert_same_run(workdir, after_two)
  assert sorted(p.name for p in (workdir / "checkpoints" / "latest").iterdir()) == ["2"]
  assert (workdir / "figures" / "curves.png").stat().st_size > 0


def test_mesh_and_batch_size_are_checked():
  assert dict(parallel.make_mesh().shape) == {"data": 1}
  with pytest.raises(ConfigError, match=r"^config\.mesh\.devices=2: expected -1 \(all 1 devices\)"):
    parallel.make_mesh(2)
  four = AbstractMesh((4,), ("data",))
  parallel.check_batch_size(32, four)
  with pytest.raises(ConfigError, match="batch_size=30 .* over 4 devices"):
    parallel.check_batch_size(30, four)
