"""The task interface holds: no code outside svhn_jax/tasks/ compares config.task with a name or
names a task's class; the compiled step imports no plotting or file loading; and a task added as
one module (tests/toy_task.py, named by a 'module:attribute' spec) trains through the one trainer
and reads files through the one predict path."""

from __future__ import annotations

import ast
import json
import subprocess
import sys

import ml_collections
import numpy as np
import pytest
from PIL import Image

import toy_source
from support import ROOT, read_json, run_clis, tiny_config, tiny_dataset
from svhn_jax import predict, tasks, train

TASKS_DIR = ROOT / "svhn_jax" / "tasks"
SCANNED = ("svhn_jax", "experiments", "benchmarks")


def task_names() -> set[str]:
  return set(tasks.REGISTRY.names())


def task_classes() -> set[str]:
  """The classes the task modules define, but the `base.Task` protocol (the interface)."""
  names = set()
  for path in TASKS_DIR.glob("*.py"):
    if path.name != "base.py":
      names |= {n.name for n in ast.walk(ast.parse(path.read_text()))
                if isinstance(n, ast.ClassDef)}
  return names


def names_task(node: ast.AST) -> bool:
  """Whether an expression involves something named task (config.task, task, 'task' key)."""
  for sub in ast.walk(node):
    if isinstance(sub, ast.Name) and "task" in sub.id.lower():
      return True
    if isinstance(sub, ast.Attribute) and "task" in sub.attr.lower():
      return True
    if isinstance(sub, ast.Constant) and sub.value == "task":
      return True
  return False


def strings(node: ast.AST) -> set[str]:
  return {sub.value for sub in ast.walk(node)
          if isinstance(sub, ast.Constant) and isinstance(sub.value, str)}


def violations(source: str, label: str, names: set[str], classes: set[str]) -> list[str]:
  """'label:line: what' for each comparison of a task with a task name and each reference to a
  task class in the Python `source`."""
  found = []
  for node in ast.walk(ast.parse(source, label)):
    where = f"{label}:{getattr(node, 'lineno', '?')}"
    if isinstance(node, ast.Compare):
      operands = [node.left, *node.comparators]
      if any(names_task(o) for o in operands) and any(strings(o) & names for o in operands):
        found.append(f"{where}: compares a task with a name ({ast.unparse(node)})")
    elif isinstance(node, ast.Name) and node.id in classes:
      found.append(f"{where}: refers to the task class {node.id}")
    elif isinstance(node, ast.Attribute) and node.attr in classes:
      found.append(f"{where}: refers to the task class {node.attr}")
    elif isinstance(node, ast.ImportFrom) and any(a.name in classes for a in node.names):
      found.append(f"{where}: imports a task class")
  return found


def test_no_task_name_comparison_or_task_class_outside_the_tasks_package():
  names, classes = task_names(), task_classes()
  assert {"DigitTask", "NumberTask"} <= classes
  found = []
  for folder in SCANNED:
    for path in sorted((ROOT / folder).rglob("*.py")):
      if TASKS_DIR not in path.parents:
        found += violations(path.read_text(), str(path.relative_to(ROOT)), names, classes)
  assert not found, "\n".join(found)


def test_the_walk_finds_what_it_looks_for():
  source = ("if config.task == 'number':\n  pass\n"
            "ok = task in ('digit', 'x')\n"
            "same = 'digit' != run.config['task']\n"
            "fine = model == 'digit' or task == 'parity'\n"
            "from svhn_jax.tasks.digit import DigitTask\n"
            "isinstance(t, tasks.number.NumberTask)\n")
  found = violations(source, "bad.py", task_names(), task_classes())
  assert sorted(line.split(":")[1] for line in found) == ["1", "3", "4", "6", "7"], found


def test_the_compiled_step_and_the_config_import_no_plotting_or_file_loading():
  code = ("import sys\n"
          "import svhn_jax.config\n"
          "light = [m for m in sys.modules if m in ('jax', 'flax', 'svhn_jax.tasks.digit')]\n"
          "import svhn_jax.steps\n"
          "heavy = [m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'h5py', 'PIL')\n"
          "         or m.startswith('svhn_jax.datasets.')\n"
          "         or m in ('svhn_jax.images', 'svhn_jax.plots', 'svhn_jax.tasks.digit',\n"
          "                  'svhn_jax.tasks.number')]\n"
          "print(light, heavy)\n")
  done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                        timeout=120)
  assert done.returncode == 0, done.stderr[-3000:]
  assert done.stdout.strip() == "[] []", done.stdout


def test_a_task_named_by_spec_trains_through_the_trainer_and_reads_files(tiny_h5, tmp_path):
  config = tiny_config("ann1", tiny_h5, epochs=1)
  config.task = "tests.toy_task:PARITY"
  workdir = tmp_path / "parity"
  report = train.train_and_evaluate(config, workdir)
  assert set(report) >= {"accuracy", "loss", "best_epoch"}
  assert read_json(workdir / "config.json")["task"] == "tests.toy_task:PARITY"
  test = tiny_dataset().test
  paths = []
  for i in range(3):
    paths.append(str(tmp_path / f"crop{i}.png"))
    Image.fromarray(np.asarray(test.images[i]).astype(np.uint8)).save(paths[-1])
  task, answers = predict.read_files(str(workdir), paths)
  assert task.name == "parity" and len(answers) == 3
  assert all(a["parity"] in ("even", "odd") and 0.5 <= a["probability"] <= 1 for a in answers)
  lines = predict.lines(task, paths, answers, as_json=False)
  assert lines[0] == f"{paths[0]}: {answers[0]['parity']} ({answers[0]['probability']:.1%})"
  assert json.loads(predict.lines(task, paths, answers, as_json=True)[1])["file"] == paths[1]


def test_a_toy_task_model_and_source_train_resume_and_predict_from_separate_processes(tmp_path):
  """Issue 28's extension check: a task (parity), a model (an MLP) and a data source (scikit-learn's
  digits), each one module under tests/ named by its 'module:attribute' spec, with no edit to the
  package; the registries import them in each process: train one epoch, resume to a second, and
  read two files through the one predict CLI."""
  workdir = tmp_path / "run"
  args = ["--config=configs/ann1.py", f"--workdir={workdir}",
          "--config.task=tests.toy_task:PARITY", "--config.model.name=tests.toy_model:MODEL",
          "--config.data.source=tests.toy_source:SOURCE", "--config.train.batch_size=100",
          "--config.train.eval_batch_size=500"]
  paths = [str(tmp_path / f"crop{i}.png") for i in range(2)]
  crops, labels = _toy_test_crops(2)
  for crop, path in zip(crops, paths):
    Image.fromarray(crop).save(path)
  first, second, read = run_clis([
      ["svhn_jax.main", *args, "--config.train.epochs=1"],
      ["svhn_jax.main", *args, "--config.train.epochs=2"],
      ["svhn_jax.predict", f"--workdir={workdir}", "--json", *paths]], in_order=True)
  assert first.returncode == 0, first.stderr[-3000:]
  assert second.returncode == 0, second.stderr[-3000:]
  assert f"Resuming {workdir} after epoch 1" in second.stderr
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert [row["epoch"] for row in rows] == [1, 2]
  saved = read_json(workdir / "config.json")
  assert (saved["task"], saved["model"]["name"], saved["data"]["source"]) == (
      "tests.toy_task:PARITY", "tests.toy_model:MODEL", "tests.toy_source:SOURCE")
  # The MLP's 2 logits: Flatten, Dense(1024 -> 8), Dense(8 -> 2).
  assert "Total params: 8,218" in (workdir / "model_summary.txt").read_text()
  assert read.returncode == 0, read.stderr[-3000:]
  answers = [json.loads(line) for line in read.stdout.splitlines()]
  assert [a["file"] for a in answers] == paths
  assert all(a["parity"] in ("even", "odd") and 0.5 <= a["probability"] <= 1 for a in answers)


def _toy_test_crops(n):
  test = toy_source.SOURCE.digits(ml_collections.ConfigDict({"color": "grey"}))[0].test
  return np.asarray(test.images[:n]), np.asarray(test.labels[:n])


def test_the_config_fields_a_task_reads_follow_its_kind_of_data():
  from configs import ann1
  from svhn_jax import config as config_lib
  from svhn_jax.errors import ConfigError
  config = ann1.get_config()
  config.task = "tests.toy_task:PARITY"
  config.data.synthetic.val = 100  # the digit crops' field: read by a task on digit crops
  config_lib.validate(config)
  config.data.numbers.jitter = False
  with pytest.raises(ConfigError, match=r"^config\.data\.numbers\.jitter=False: only read with "
                     r"config\.task=number \(this run has config\.task=tests\.toy_task:PARITY\)"):
    config_lib.validate(config)


def test_a_model_is_built_with_a_sample_of_its_training_input(tiny_h5, tmp_path, monkeypatch):
  """`models.build` gets the model input of the first training images, float32 in [0, 1], for
  a model that initializes from the data's statistics."""
  from svhn_jax import models
  seen = []
  build = models.build

  def recording(*args, sample=None, **kwargs):
    seen.append(np.asarray(sample))
    return build(*args, sample=sample, **kwargs)

  monkeypatch.setattr(models, "build", recording)
  config = tiny_config("ann1", tiny_h5, epochs=1)
  train.train_and_evaluate(config, tmp_path / "run")
  train_images = tiny_dataset().train.images
  (sample,) = seen
  n = min(train.MODEL_SAMPLE, len(train_images))
  assert sample.shape == (n, 32, 32, 1) and sample.dtype == np.float32
  np.testing.assert_allclose(sample[..., 0], np.asarray(train_images[:n], np.float32) / 255,
                             rtol=1e-6)
