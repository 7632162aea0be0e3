"""The study's mask ablation, over seeds: CNN2 on raw inputs against background-normalized inputs
times a data-driven spatial mask (built from training images only, applied to every split).

  python -m experiments.mask_ablation --seeds=5
  python -m experiments.mask_ablation --config.data.path=SVHN_single_grey1.h5 --seeds=5

Both arms use the same seeds, so each seed gives one paired difference, and a paired t-test says
whether the mask's effect on test accuracy is distinguishable from seed noise. Writes report.md
and figures/ into --results_dir; finished runs in --runs_dir are reused.
"""

from pathlib import Path

import numpy as np
from absl import app, flags

from configs import study
from experiments import seeded
from svhn_jax import cli, plots, report, stats, transforms
from svhn_jax.datasets import sources
from svhn_jax import config as config_lib

FLAGS = flags.FLAGS
seeded.define_flags("configs/mask_ablation.py", "results/mask_ablation", "arm")
flags.DEFINE_float("alpha", 0.05, "Significance level of the paired test.")

ARMS = ("raw", "mask")


def run_arms(config, model: str, seeds: list[int], runs_dir: Path, mode: str) -> dict:
  """Trains (or reuses) both arms of one model; returns each arm's runs as read from disk."""
  return {arm: seeded.trained_runs(config, model, seeds, runs_dir, mode, preprocess=arm)
          for arm in ARMS}


def mask_figure(arms: dict, out: Path, model: str) -> Path:
  """The mask as the first masked run saved it, the mean map it was built from, one sample."""
  first = arms["mask"][0]
  # Through from_dict: a config.json written before newer data fields reads with their defaults.
  train = sources.load(config_lib.from_dict(first.config).data)[0].train
  mask = np.load(first.workdir / "mask.npy")
  strokes = 255 - transforms.normalize_background(train.images)
  sample = train.images[0]
  masked = transforms.apply_mask(transforms.normalize_background(sample[None]), mask)[0]
  return plots.mask_panels(strokes.mean(axis=0), mask, sample, masked,
                           out / "figures" / f"{model}_mask.png")


def paired_table(arms: dict) -> str:
  rows = [[str(r.config["seed"]), report.percent(r.test_accuracy),
           report.percent(m.test_accuracy), report.points(m.test_accuracy - r.test_accuracy)]
          for r, m in zip(arms["raw"], arms["mask"])]
  return report.table(("seed", "raw test accuracy", "masked test accuracy", "difference"), rows)


def verdict(test: stats.PairedTest, alpha: float) -> str:
  if np.isnan(test.p):
    reason = ("one seed gives no spread to test against" if test.n < 2
              else "every seed moved by exactly the same amount, so the t statistic is undefined")
    return f"Not testable: {reason}. Run more seeds (--seeds)."
  direction = "raises" if test.mean_diff > 0 else "lowers"
  if test.significant(alpha):
    return (f"**Significant** at the {alpha:g} level: the mask {direction} test accuracy by "
            f"{report.points(test.mean_diff)} on average (p = {report.p_value(test.p)}).")
  return (f"**Not significant** at the {alpha:g} level (p = {report.p_value(test.p)}): over "
          f"{test.n} seeds, the mean change of {report.points(test.mean_diff)} is within seed "
          "noise.")


def model_section(model: str, arms: dict, out: Path, alpha: float) -> str:
  test = stats.paired_t_test([r.test_accuracy for r in arms["raw"]],
                             [m.test_accuracy for m in arms["mask"]])
  curves = plots.curves_by_group({arm: [r.history for r in runs] for arm, runs in arms.items()},
                                 out / "figures" / f"{model}_curves.png",
                                 title=f"{model.upper()}: raw against masked inputs")
  return "\n\n".join([
      f"## {model.upper()}",
      "### The mask",
      "The mean of the background-normalized training images, inverted so that strokes are "
      "bright, min-max scaled to [0, 1]: where training digits tend to be drawn. Every split "
      "is background-normalized (dark crops inverted) and multiplied by it.",
      report.image(mask_figure(arms, out, model), out, "mask"),
      "### Accuracy",
      report.table(report.SEED_SUMMARY_HEADERS,
                   report.seed_summary_rows({f"{model.upper()} {a}": runs
                                             for a, runs in arms.items()})),
      paired_table(arms),
      "### The mask's effect",
      report.table(("mean difference (masked - raw)", "std of differences", "95% CI", "t",
                    "p (paired, two-sided)", "seeds"),
                   [[report.points(test.mean_diff),
                     "n/a" if np.isnan(test.std_diff) else f"{100 * test.std_diff:.2f} pp",
                     report.interval(test, report.points),
                     "n/a" if np.isnan(test.t) else f"{test.t:.3f}",
                     report.p_value(test.p), str(test.n)]]),
      verdict(test, alpha),
      "### Curves",
      report.image(curves, out, "training curves, raw against masked"),
  ])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  config, out, runs_dir, seeds = seeded.settings()
  names = study.model_names(config)
  seeded.check_runs(config, [(m, arm) for m in names for arm in ARMS], seeds, runs_dir)
  per_model = {m: run_arms(config, m, seeds, runs_dir, FLAGS.multiseed) for m in names}
  settings = report.settings_text(
      {f"{m.upper()} {a}": runs for m, arms in per_model.items() for a, runs in arms.items()},
      seeds)
  sections = [model_section(m, arms, out, FLAGS.alpha) for m, arms in per_model.items()]
  print(report.write(out / "report.md",
                     "\n\n".join(["# Mask ablation", settings, *sections])))


if __name__ == "__main__":
  cli.run(main, schema=config_lib.STUDY_SCHEMA)
