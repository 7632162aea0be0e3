"""Report building blocks: reading a workdir, formatting, tables."""

import json
from pathlib import Path

from svhn_jax import report, stats


def fake_run(path, seed, test_accuracy, rows=((0.5, 0.4), (0.7, 0.6), (0.8, 0.55))):
  path.mkdir(parents=True)
  (path / "config.json").write_text(json.dumps({"seed": seed, "train": {}, "data": {}}))
  (path / "metrics.jsonl").write_text("".join(
      json.dumps({"epoch": k + 1, "accuracy": a, "val_accuracy": v}) + "\n"
      for k, (a, v) in enumerate(rows)))
  per_class = {name: {"precision": 0.5, "recall": 0.25, "f1-score": 1 / 3, "support": 7}
               for name in (*map(str, range(10)), "macro avg", "weighted avg")}
  (path / "test_metrics.json").write_text(json.dumps({
      "accuracy": test_accuracy, "best_epoch": 2, "epochs_run": 3,
      "classification_report": per_class}))
  return report.read_run(path)


def test_read_run_takes_train_and_val_accuracy_from_the_best_epoch(tmp_path):
  run = fake_run(tmp_path / "a", 3, 0.625)
  assert (run.train_accuracy, run.val_accuracy, run.test_accuracy) == (0.7, 0.6, 0.625)


def test_per_seed_and_summary_rows_show_the_runs_numbers(tmp_path):
  runs = [fake_run(tmp_path / str(s), s, acc) for s, acc in ((0, 0.6), (1, 0.7))]
  assert report.per_seed_rows({"M": runs}) == [
      ["M", "0", "2/3", "70.00%", "60.00%", "60.00%"],
      ["M", "1", "2/3", "70.00%", "60.00%", "70.00%"]]
  (row,) = report.seed_summary_rows({"M": runs})
  s = stats.summary([0.6, 0.7])
  assert row[:5] == ["M", "2", "70.00% ± 0.00", "60.00% ± 0.00", "65.00% ± 7.07"]
  assert row[5] == f"[{report.percent(s.ci_low)}, {report.percent(s.ci_high)}]"
  assert report.per_class_rows(runs)[0] == ["0", "0.5000 ± 0.0000", "0.2500 ± 0.0000",
                                            "0.3333 ± 0.0000", "7"]


def test_formats():
  assert report.percent(0.12345) == "12.35%" and report.points(-0.0125) == "-1.25 pp"
  assert report.p_value(0.00001) == "< 0.0001" and report.p_value(0.0312) == "0.0312"
  assert report.mean_std(stats.summary([0.5])) == "50.00%"
  assert report.interval(stats.summary([0.5])) == "n/a"
  assert report.table(("a", "b"), [[1, 2]]) == "| a | b |\n|---|---|\n| 1 | 2 |"


def test_image_links_are_relative_to_the_report(tmp_path):
  link = report.image(tmp_path / "runs" / "x" / "f.png", tmp_path / "out", "x")
  assert link == "![x](../runs/x/f.png)"


def test_data_text_names_the_file_or_the_generator():
  # A config.json without a task (written before it existed) is a digit run's.
  data_text = lambda data: report.data_text({"data": data})
  assert data_text({"path": "/d.h5", "preprocess": "raw"}) == "`/d.h5`, preprocessing `raw`"
  synthetic = {"path": "", "source": "synthetic", "preprocess": "mask",
               "synthetic": {"train": 8000, "val": 2000, "test": 2000, "seed": 0}}
  assert data_text(synthetic).startswith("synthetic, 8,000 / 2,000 / 2,000")
  assert "(generator version 1, seed 0)" in data_text(synthetic)  # before version 2
  synthetic["synthetic"]["version"] = 2
  assert "(generator version 2, seed 0)" in data_text(synthetic)
  synthetic["train_on_val"], synthetic["val_size"] = True, 400
  assert data_text(synthetic).endswith(
      "training on the training and validation images together (400 held out for validation)")


def test_data_text_is_the_runs_tasks():
  from configs import numbers
  config = numbers.get_config().to_dict()
  assert report.data_text(config).startswith("generated photos, ")
  assert "test numbers cropped with a margin of 0.15 of their box per side" in report.data_text(
      config)


def test_settings_say_each_models_schedule_and_stopping():
  from configs import cnn2, wrn_cpu
  study, wrn = cnn2.get_config().to_dict(), wrn_cpu.get_config().to_dict()
  study["data"] = wrn["data"] = {"path": "/d.h5", "preprocess": "raw"}
  groups = {"cnn2": [report.Run(Path("cnn2"), study, [], {})],
            "wrn_cpu": [report.Run(Path("wrn_cpu"), wrn, [], {})]}
  text = report.settings_text(groups, [0])
  assert text.startswith("Data: `/d.h5`, preprocessing `raw`. Seeds: 0. ")
  assert ("cnn2: at most 30 epochs, batch 128, adam at learning rate 0.001, multiplied by 0.5 "
          "when validation loss has not improved for 3 epochs, early stopping on validation "
          "accuracy (patience 5, best weights restored)") in text
  assert ("wrn_cpu: at most 20 epochs, batch 128, sgd at learning rate 0.05 on a cosine "
          "schedule, no early stopping (the last epoch's weights)") in text


def test_write_replaces_the_report_whole(tmp_path):
  path = report.write(tmp_path / "r" / "report.md", "# x\n\n")
  assert path.read_text() == "# x\n"
  assert [p.name for p in path.parent.iterdir()] == ["report.md"]


def test_a_step_counted_runs_best_is_its_step_and_an_epoch_counted_runs_its_epoch():
  from svhn_jax import report
  assert report.best_of_run({"best_epoch": 285.7143, "epochs_run": 285.7143, "best_step": 1750,
                             "steps_run": 2000}) == "step 1750/2000"
  assert report.best_of_run({"best_epoch": 7, "epochs_run": 12}) == "7/12"
