"""Model comparison with error bars: the study's ANN1, ANN2, CNN1 and CNN2, or any run configs
(configs/<name>.py, e.g. the Wide ResNet recipes), over several seeds.

  python -m experiments.compare_models --seeds=3
  python -m experiments.compare_models --config.models=cnn2,wrn_cpu --seeds=1
  python -m experiments.compare_models --config.data.path=SVHN_single_grey1.h5 --seeds=5
  python -m experiments.compare_models --config.train.epochs=2 --seeds=2   # a quick look

Each model's seeds train together (vmapped) or one after another (see svhn_jax/multiseed.py);
finished runs in --runs_dir are reused. Writes report.md and figures/ into --results_dir.
"""

from pathlib import Path

from absl import app, flags

from configs import study
from experiments import seeded
from svhn_jax import cli, models, multiseed, plots, report, stats
from svhn_jax import config as config_lib
from svhn_jax.models import study as study_models

FLAGS = flags.FLAGS
seeded.define_flags("configs/study.py", "results/compare_models", "model")

ARCHITECTURES = {
    "ann1": ("Dense 64-32-10, ReLU", "the baseline: a small MLP on raw pixels"),
    "ann2": ("Dense 256-128-Dropout(0.2)-64-64-32-BatchNorm-10, ReLU",
             "a deeper MLP, regularized by dropout and batch normalization"),
    "cnn1": ("Conv 16-32, MaxPool, Dense 32-10, LeakyReLU",
             "convolutions see local strokes; no regularization"),
    "cnn2": ("2 x [Conv-Conv-MaxPool-BatchNorm] (16-32, 32-64), Dense 32-Dropout(0.5)-10, "
             "LeakyReLU", "the deepest: batch normalization and dropout, fewest CNN weights"),
}


def describe(run) -> tuple[str, str]:
  """(architecture, key characteristic) of a run config: the study's words for its four
  models, else the model and recipe read from the config."""
  name, tc = run.model.name, run.train
  if name in ARCHITECTURES:
    architecture, character = ARCHITECTURES[name]
  else:
    m = run.model
    architecture = (f"WRN-{m.depth}-{m.width}, pre-activation residual blocks"
                    + (f", dropout {m.dropout:g}" if m.dropout else ""))
    character = "a wide residual network"
  if tc.optimizer != "adam" or tc.schedule != "plateau" or tc.weight_decay:
    extras = [tc.optimizer, f"{tc.schedule} schedule"]
    if tc.weight_decay:
      extras.append(f"weight decay {tc.weight_decay:g}")
    a = tc.augment
    augmentation = [k for k, on in (("translate", a.translate), ("cutout", a.cutout),
                                    ("RandAugment", a.num_ops)) if on]
    if augmentation:
      extras.append("+".join(augmentation))
    if tc.ema_decay:
      extras.append("EMA")
    if tc.tta:
      extras.append("TTA")
    character = f"{character}; {', '.join(extras)}"
  return architecture, character


def parameters(run) -> int:
  channels = 3 if run.data.color == "rgb" else 1
  return study_models.param_counts(models.build(run.model, seed=0, channels=channels))[0]


def run_groups(config, seeds: list[int], runs_dir: Path, mode: str) -> dict[str, list]:
  """Trains (or reuses) every config's seeds, all checked first; returns each config's runs as
  read from disk."""
  names = study.model_names(config)
  seeded.check_runs(config, [(name, None) for name in names], seeds, runs_dir)
  return {name: seeded.trained_runs(config, name, seeds, runs_dir, mode) for name in names}


def results_table(groups: dict[str, list]) -> str:
  rows = []
  for name, runs in groups.items():
    test = stats.summary([r.test_accuracy for r in runs])
    run = config_lib.from_dict(runs[0].config)
    architecture, character = describe(run)
    rows.append([name.upper(), architecture, f"{parameters(run):,}",
                 report.mean_std(stats.summary([r.train_accuracy for r in runs])),
                 report.mean_std(stats.summary([r.val_accuracy for r in runs])),
                 report.mean_std(test), report.interval(test), character])
  return report.table(("model", "architecture", "parameters", "train accuracy",
                       "validation accuracy", "test accuracy", "test 95% CI",
                       "key characteristic"), rows)


def timing_table(groups: dict[str, list], runs_dir: Path, config) -> str:
  rows = []
  for name in groups:
    timing = multiseed.read_timing(
        multiseed.group_dir(runs_dir, study.run_config(config, name), name))
    if timing:
      rows.append([name.upper(), timing["mode"], ", ".join(map(str, timing["seeds"])),
                   f"{timing['seconds']:.1f}"])
  return report.table(("model", "how the seeds trained", "seeds", "seconds"), rows)


def markdown(config, groups: dict[str, list], seeds: list[int], runs_dir: Path,
             out: Path) -> str:
  summaries = {name: stats.summary([r.test_accuracy for r in runs])
               for name, runs in groups.items()}
  bars = plots.accuracy_bars([n.upper() for n in groups], list(summaries.values()),
                             [[r.test_accuracy for r in runs] for runs in groups.values()],
                             out / "figures" / "test_accuracy.png")
  best = max(summaries, key=lambda name: summaries[name].mean)
  best_runs = groups[best]
  return "\n\n".join([
      "# Model comparison",
      report.settings_text({n.upper(): runs for n, runs in groups.items()}, seeds),
      "## Results",
      "Mean ± standard deviation over seeds; the 95% confidence interval of the mean test "
      "accuracy uses Student's t. Train and validation accuracy are those of the epoch whose "
      "weights were kept.",
      results_table(groups),
      report.image(bars, out, "test accuracy per model"),
      "## Every seed",
      report.table(report.PER_SEED_HEADERS,
                   report.per_seed_rows({n.upper(): runs for n, runs in groups.items()})),
      f"## The best model: {best.upper()}",
      f"Highest mean test accuracy: {report.mean_std(summaries[best])}. Per-class scores on "
      "the test split, mean ± standard deviation over its seeds:",
      report.table(report.PER_CLASS_HEADERS, report.per_class_rows(best_runs)),
      f"Seed {best_runs[0].config['seed']}: training curves and test confusion matrix.",
      report.image(best_runs[0].workdir / "figures" / "curves.png", out, "training curves"),
      report.image(best_runs[0].workdir / "figures" / "confusion_matrix.png", out,
                   "confusion matrix"),
      "## Training time",
      timing_table(groups, runs_dir, config),
  ])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  config, out, runs_dir, seeds = seeded.settings()
  groups = run_groups(config, seeds, runs_dir, FLAGS.multiseed)
  print(report.write(out / "report.md", markdown(config, groups, seeds, runs_dir, out)))


if __name__ == "__main__":
  cli.run(main, schema=config_lib.STUDY_SCHEMA)
