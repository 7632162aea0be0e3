"""Each experiment script, run as a user would with the smallest settings, writes a report whose
numbers are those in its run folders; the prediction CLI reads a run those scripts trained."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import h5py
import ml_collections
import numpy as np
import pytest

from support import ROOT, SHARED_DATA, table_rows
from svhn_jax import data, data_stats, evaluate, inference, multiseed, report, stats
from svhn_jax.datasets import sources, synthetic

# The Keras study's SVHN test accuracies, as experiments/calibrate.py sets them against.
STUDY_SVHN = {"ann1": 0.6357, "cnn1": 0.8730}
# A dense model, vmapped on the CPU, and a convolutional one, looped: named on the command line
# as a list, `--config.models=ann1,cnn2`.
MODELS = ("ann1", "cnn2")
SEEDS = (0, 1)


def run_script(module: str, *flags: str) -> str:
  env = {**os.environ, "PYTHONPATH": str(ROOT)}
  done = subprocess.run([sys.executable, "-m", module, *flags], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)
  assert done.returncode == 0, done.stderr[-3000:]
  return done.stdout


def smallest(path: Path) -> list[str]:
  return [f"--config.data.path={path}", "--config.train.epochs=1",
          "--config.train.batch_size=64", "--config.train.eval_batch_size=64",
          f"--seeds={len(SEEDS)}"]


def linked_images(markdown: str, folder: Path) -> list[Path]:
  return [folder / link for link in re.findall(r"!\[[^]]*\]\(([^)]+)\)", markdown)]


@pytest.fixture(scope="module")
def compared(tiny_h5, tmp_path_factory):
  out = tmp_path_factory.mktemp("compare")
  run_script("experiments.compare_models", *smallest(tiny_h5), f"--results_dir={out}",
             f"--config.models={','.join(MODELS)}")
  return out


def runs_of(runs_dir: Path, group: str) -> list[report.Run]:
  return [report.read_run(multiseed.seed_workdir(runs_dir / group, s)) for s in SEEDS]


def test_compare_models_reports_its_runs(compared):
  text = (compared / "report.md").read_text()
  groups = {m: runs_of(compared / "runs", m) for m in MODELS}
  assert table_rows(text, "run") == report.per_seed_rows({m.upper(): r for m, r in groups.items()})
  results = {row[0]: row for row in table_rows(text, "model")}
  for name, runs in groups.items():
    test = stats.summary([r.test_accuracy for r in runs])
    assert results[name.upper()][5:7] == [report.mean_std(test), report.interval(test)]
  best = max(groups, key=lambda m: np.mean([r.test_accuracy for r in groups[m]]))
  assert f"## The best model: {best.upper()}" in text
  assert table_rows(text, "digit") == report.per_class_rows(groups[best])
  timing = table_rows(text, "model | how the seeds trained")
  assert [row[0] for row in timing] == [m.upper() for m in MODELS]
  assert [row[1] for row in timing] == ["vmap", "loop"] and all(float(row[3]) > 0 for row in timing)
  assert not any((compared / "runs" / other).exists() for other in ("ann2", "cnn1"))
  assert all(path.is_file() for path in linked_images(text, compared))


def test_mask_ablation_reports_its_paired_runs_and_reuses_the_raw_ones(tiny_h5, compared,
                                                                        tmp_path):
  raw_before = (compared / "runs" / "cnn2" / "multiseed.json").read_text()
  run_script("experiments.mask_ablation", *smallest(tiny_h5), f"--results_dir={tmp_path}",
             f"--runs_dir={compared / 'runs'}")
  assert (compared / "runs" / "cnn2" / "multiseed.json").read_text() == raw_before
  text = (tmp_path / "report.md").read_text()
  raw, masked = runs_of(compared / "runs", "cnn2"), runs_of(compared / "runs", "cnn2_mask")
  assert table_rows(text, "seed") == [
      [str(r.config["seed"]), report.percent(r.test_accuracy), report.percent(m.test_accuracy),
       report.points(m.test_accuracy - r.test_accuracy)] for r, m in zip(raw, masked)]
  test = stats.paired_t_test([r.test_accuracy for r in raw], [m.test_accuracy for m in masked])
  (effect,) = table_rows(text, "mean difference (masked - raw)")
  assert effect[0] == report.points(test.mean_diff) and effect[4] == report.p_value(test.p)
  assert "Not testable" in text or "significant** at the 0.05 level" in text
  assert all(path.is_file() for path in linked_images(text, tmp_path))
  mask = np.load(masked[0].workdir / "mask.npy")
  assert mask.shape == (32, 32) and mask.min() == 0 and mask.max() == 1


def test_error_analysis_reports_the_runs_test_scores(compared, tmp_path):
  workdir = multiseed.seed_workdir(compared / "runs" / "cnn2", 0)
  run_script("experiments.error_analysis", f"--workdir={workdir}", f"--results_dir={tmp_path}",
             "--threshold=0.1")
  text = (tmp_path / "report.md").read_text()
  run = report.read_run(workdir)
  confusion = np.asarray(run.test["confusion_matrix"])
  wrong = int(confusion.sum() - np.trace(confusion))
  assert (f"Test accuracy {report.percent(run.test_accuracy)}: {wrong} of {confusion.sum()} "
          "test images misclassified") in text
  assert [tuple(map(int, row[:3])) for row in table_rows(text, "true digit")] == \
      evaluate.confused_pairs(confusion)
  assert table_rows(text, "digit") == report.per_class_rows([run])
  assert all(path.is_file() for path in linked_images(text, tmp_path))


def test_stage_accuracy_scores_each_run_on_each_stages_crops(compared, tmp_path):
  from experiments import stage_accuracy
  workdirs = [multiseed.seed_workdir(compared / "runs" / m, 0) for m in MODELS]
  out = run_script("experiments.stage_accuracy", f"--workdirs={','.join(map(str, workdirs))}",
                   "--version=3", "--crops=40", "--seed=5", f"--results_dir={tmp_path}")
  rows = table_rows((tmp_path / "report.md").read_text(), "crops")
  style = synthetic.style_of(3)
  assert [row[:2] for row in rows] == [[name, share] for name, share, _ in
                                       stage_accuracy.stages(style)]
  assert rows[2][1] == "7.00%" and rows[3][1] == "4.00%"  # version 3's hue-only, off-centre
  images, labels = synthetic.generate(40, seed=5, version=3)
  for column, workdir in enumerate(workdirs, start=2):
    logits = inference.run_logits(inference.load_run(workdir), images)
    assert rows[0][column] == report.percent(np.mean(logits.argmax(-1) == labels))
  assert "| crops | share of version 3's | ann1/seed_0 | cnn2/seed_0 |" in out
  assert rows[1][1] == "89.28%"  # (1 - 7%) (1 - 4%): the two stages are drawn independently


@pytest.mark.parametrize("task, color", [("number", "grey"), ("digit", "rgb")])
def test_stage_accuracy_refuses_a_run_that_is_not_a_digit_run_on_grey_crops(
    monkeypatch, tmp_path, task, color):
  from experiments import stage_accuracy
  from svhn_jax.errors import ConfigError
  config = ml_collections.ConfigDict({"task": task, "data": {"color": color}})
  monkeypatch.setattr(inference, "load_run", lambda w: inference.LoadedRun(config, None, {}, None))
  with pytest.raises(ConfigError, match=rf"^--workdirs: {tmp_path} is a task={task}, "
                                        rf"data.color={color} run; expected a digit run"):
    stage_accuracy.checked_run(str(tmp_path))


def test_stage_accuracy_refuses_a_workdir_that_is_no_folder_in_one_line(tmp_path):
  from experiments import stage_accuracy
  from svhn_jax.errors import ConfigError
  (tmp_path / "file").touch()
  for name, found in (("file", "is a file"), ("nope", "no such folder")):
    with pytest.raises(ConfigError, match=rf"^--workdirs: {tmp_path / name}: {found}; expected "
                                          r"the workdir of a run trained with"):
      stage_accuracy.checked_run(str(tmp_path / name))


def test_stage_accuracy_blur_share_is_the_drawn_sigmas_share_above_2_px():
  from experiments import stage_accuracy
  log_uniform = synthetic.style_of(3)  # log-uniform on (0.33, 2.5)
  assert stage_accuracy.blur_share(log_uniform) == pytest.approx(
      np.log(2.5 / 2.0) / np.log(2.5 / 0.33))
  assert stage_accuracy.blur_share(synthetic.style_of(1)) == 0.0  # uniform on (0.3, 1.5)
  uniform = synthetic.Style(blur=(1.0, 3.0))
  assert stage_accuracy.blur_share(uniform) == pytest.approx(0.5)


def test_eda_reports_the_files_numbers(tiny_h5, tmp_path):
  run_script("experiments.eda", f"--config.data.path={tiny_h5}", f"--results_dir={tmp_path}")
  text = (tmp_path / "report.md").read_text()
  with h5py.File(tiny_h5) as f:
    counts = {s: data_stats.class_counts(f[f"y_{s}"][()]) for s in data.SPLITS}
    dark = {s: data_stats.dark_share(f[f"X_{s}"][()]) for s in data.SPLITS}
  assert [row[1:4] for row in table_rows(text, "digit")] == [
      [str(counts[s][d]) for s in data.SPLITS] for d in range(10)]
  assert table_rows(text, "split") == [
      [s, str(counts[s].sum()), f"{data_stats.imbalance_ratio(counts[s]):.3f}",
       report.percent(dark[s])]
      for s in data.SPLITS]
  assert all(path.is_file() for path in linked_images(text, tmp_path))


def test_predict_cli_reads_digits_with_a_trained_run(compared, tmp_path):
  workdir = multiseed.seed_workdir(compared / "runs" / "cnn2", 0)
  files = []
  if (SHARED_DATA / "svhn_crops_12.npz").exists():
    from PIL import Image
    for k, rgb in enumerate(np.load(SHARED_DATA / "svhn_crops_12.npz")["X_rgb"][:3]):
      Image.fromarray(rgb).save(tmp_path / f"crop{k}.jpg")
      files.append(str(tmp_path / f"crop{k}.jpg"))
  files += [str(p) for p in sorted((SHARED_DATA / "house_numbers").glob("*.png"))[:1]]
  if not files:
    pytest.skip("the shared SVHN samples are not here")
  out = run_script("svhn_jax.predict", f"--workdir={workdir}", "--json", *files)
  records = [json.loads(line) for line in out.splitlines()]
  assert [r["file"] for r in records] == files
  for r in records:
    assert r["digit"] == int(np.argmax(r["probabilities"]))
    assert r["probability"] == pytest.approx(max(r["probabilities"]), abs=1e-6)


def test_predictions_on_the_test_split_reproduce_the_runs_accuracy(compared):
  """A masked run, trained by the mask ablation (or a raw one, if it did not run)."""
  workdir = multiseed.seed_workdir(compared / "runs" / "cnn2_mask", 0)
  if not workdir.exists():
    workdir = multiseed.seed_workdir(compared / "runs" / "cnn2", 0)
  run = inference.load_run(workdir)
  test = sources.load(ml_collections.ConfigDict(run.config.data))[0].test
  probs = inference.predict_probs(run, test.images)
  want = json.loads((workdir / "test_metrics.json").read_text())["accuracy"]
  assert float((probs.argmax(-1) == test.labels).mean()) == want


# Slow (about 30 s; experiments/calibrate.py is run by hand when the generator changes): `pytest
# -m slow` runs it.
@pytest.mark.slow
def test_calibrate_sets_each_models_proxy_accuracy_against_svhns(tmp_path):
  """Two models (one vmapped, one looped) on a few hundred generated crops, 1 epoch, 2 seeds,
  and the mask ablation's masked arm of the convolutional one."""
  out = tmp_path / "calibrate"
  stdout = run_script("experiments.calibrate", "--config.models=ann1,cnn1",
                      "--config.data.synthetic.train=300", "--config.data.synthetic.val=100",
                      "--config.data.synthetic.test=100", f"--config.data.cache_dir={tmp_path}",
                      "--config.train.epochs=1", "--config.train.batch_size=64",
                      f"--seeds={len(SEEDS)}", f"--results_dir={out}")
  assert (tmp_path / f"synthetic_v{synthetic.VERSION}_300_100_100_seed0.h5").is_file()
  text = (out / "report.md").read_text()
  groups = {m: runs_of(out / "runs", m) for m in ("ann1", "cnn1")}
  masked = runs_of(out / "runs", "cnn1_mask")
  rows = table_rows(text, "model | seeds")
  assert [row[:2] for row in rows] == [["ANN1", "2"], ["CNN1", "2"]]
  for row, (name, runs) in zip(rows, groups.items()):
    test = stats.summary([r.test_accuracy for r in runs])
    half = 100 * (test.ci_high - test.mean)
    assert row[2] == f"{report.percent(test.mean)} ± {half:.2f}"
    assert row[3] == report.percent(STUDY_SVHN[name])
    difference = test.mean - STUDY_SVHN[name]
    assert row[4] == report.points(difference)
    assert row[5] == ("yes" if abs(difference) <= 0.03 else "no")
    assert all(r.config["data"]["synthetic"]["version"] == synthetic.VERSION for r in runs)
  raw = np.mean([r.test_accuracy for r in groups["cnn1"]])
  mask = np.mean([m.test_accuracy for m in masked])
  line = next(l for l in text.splitlines() if l.startswith("Mask ablation (CNN1, 2 seeds)"))
  assert f"raw {report.percent(raw)}, masked {report.percent(mask)}" in line
  assert ("masked below raw" in line) == (mask < raw)
  assert ("the same direction as SVHN" in line) == (mask < raw)
  assert ("the opposite direction to SVHN" in line) == (mask >= raw)
  assert "SVHN: raw 87.30%, masked 87.11%" in line
  assert f"generator version {synthetic.VERSION}" in text
  # The table and the mask line are also what the command prints.
  assert line in stdout and "| ANN1 | 2 |" in stdout
  assert [m.config["data"]["preprocess"] for m in masked] == ["mask", "mask"]


def test_calibrate_refuses_a_mask_model_it_does_not_train(tmp_path):
  env = {**os.environ, "PYTHONPATH": str(ROOT)}
  done = subprocess.run([sys.executable, "-m", "experiments.calibrate", "--config.models=ann1",
                         "--mask_model=cnn2", f"--results_dir={tmp_path}"], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 1
  assert done.stderr.strip().splitlines()[-1] == (
      "error: --mask_model=cnn2: expected one of the models trained, ann1")
  assert not (tmp_path / "runs").exists()
