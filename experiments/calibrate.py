"""How close the offline proxy is to SVHN: the study's four models and its mask ablation trained
on the synthetic data, each model's test accuracy set against the one the Keras study reported
on SVHN's test split.

  python -m experiments.calibrate                       # study sizes, generator version 5, 2 seeds
  python -m experiments.calibrate --config.data.synthetic.version=1 --seeds=1
  python -m experiments.calibrate --config.data.synthetic.train=8400 \\
      --config.data.synthetic.val=12000 --config.data.synthetic.test=3600   # a fifth, to tune

Each model trains with its study config (configs/<model>.py: epochs, batch size, learning rate,
early stopping, plateau schedule) over --seeds seeds through svhn_jax/multiseed.py; the mask
ablation adds the masked arm of --mask_model (its raw arm is that model's runs). Finished runs
in --runs_dir are reused. Prints the table and writes report.md into --results_dir. At the
study's sizes this is the whole study once per seed: about half an hour per seed on 2 CPU cores.
"""


from absl import app, flags

from configs import study
from experiments import seeded
from svhn_jax import cli, multiseed, report, stats
from svhn_jax import config as config_lib
from svhn_jax.errors import ConfigError

FLAGS = flags.FLAGS
seeded.define_flags("configs/calibrate.py", "results/calibrate", "model")
FLAGS.set_default("seeds", 2)
flags.DEFINE_string("mask_model", "cnn1",
                    "The model of the mask ablation: SVHN's numbers are CNN1's.")

# Test accuracy on SVHN's test split (the study's 18,000 crops) that the Keras study's notebook
# reported for each model, and for CNN1 on masked inputs (its mask ablation).
SVHN = {"ann1": 0.6357, "ann2": 0.7733, "cnn1": 0.8730, "cnn2": 0.9222}
SVHN_MASKED = {"cnn1": 0.8711}
# How far, in accuracy, a model's proxy score may be from its SVHN score and still count as
# calibrated.
TOLERANCE = 0.03

HEADERS = ("model", "seeds", "proxy test accuracy (mean ± 95% CI)", "SVHN (Keras study)",
           "difference", f"within {100 * TOLERANCE:g} points")


def accuracy_cell(summary: stats.Summary) -> str:
  """The mean test accuracy, ± the half width of its 95% t interval when there are 2+ seeds."""
  if summary.n < 2:
    return report.percent(summary.mean)
  return f"{report.percent(summary.mean)} ± {100 * (summary.ci_high - summary.mean):.2f}"


def calibration_rows(groups: dict[str, list[report.Run]]) -> list[list[str]]:
  """One row per model: seeds, proxy accuracy, SVHN's, their difference, within TOLERANCE."""
  rows = []
  for name, runs in groups.items():
    test = stats.summary([r.test_accuracy for r in runs])
    target = SVHN.get(name)
    if target is None:
      rows.append([name.upper(), str(test.n), accuracy_cell(test), "n/a", "n/a", "n/a"])
      continue
    difference = test.mean - target
    rows.append([name.upper(), str(test.n), accuracy_cell(test), report.percent(target),
                 report.points(difference), "yes" if abs(difference) <= TOLERANCE else "no"])
  return rows


def mask_line(model: str, raw: list[report.Run], masked: list[report.Run]) -> str:
  """The mask ablation in one line: both arms' mean test accuracy, the direction, SVHN's."""
  raw_mean = stats.summary([r.test_accuracy for r in raw]).mean
  masked_mean = stats.summary([r.test_accuracy for r in masked]).mean
  direction = "masked below raw" if masked_mean < raw_mean else "masked not below raw"
  line = (f"Mask ablation ({model.upper()}, {len(raw)} seed{'s' * (len(raw) != 1)}): raw "
          f"{report.percent(raw_mean)}, masked {report.percent(masked_mean)} "
          f"({report.points(masked_mean - raw_mean)}): {direction}")
  if model in SVHN_MASKED:
    svhn_below = SVHN_MASKED[model] < SVHN[model]
    same = (masked_mean < raw_mean) == svhn_below
    line += (f"; SVHN: raw {report.percent(SVHN[model])}, masked "
             f"{report.percent(SVHN_MASKED[model])}, so "
             f"{'the same direction as' if same else 'the opposite direction to'} SVHN")
  return line + "."


def timing_rows(groups: dict[str, list[report.Run]]) -> list[list[str]]:
  """Per group that trained in this runs folder: how its seeds trained and in how many seconds."""
  rows = []
  for name, runs in groups.items():
    timing = multiseed.read_timing(runs[0].workdir.parent)
    if timing:
      rows.append([name, timing["mode"], ", ".join(map(str, timing["seeds"])),
                   f"{timing['seconds']:.1f}"])
  return rows


def markdown(groups: dict[str, list[report.Run]], mask_model: str,
             masked: list[report.Run], seeds: list[int]) -> str:
  table = report.table(HEADERS, calibration_rows(groups))
  named = {**{n.upper(): runs for n, runs in groups.items()},
           f"{mask_model.upper()} mask": masked}
  return "\n\n".join([
      "# Calibration of the proxy against SVHN",
      report.settings_text(named, seeds),
      "## Test accuracy against SVHN's",
      f"Mean over seeds; ± is the half width of the 95% t interval of the mean (2+ seeds). SVHN: "
      f"the test accuracy the Keras study reported. Calibrated: within "
      f"{100 * TOLERANCE:g} points of it.",
      table,
      mask_line(mask_model, groups[mask_model], masked),
      "## Every seed",
      report.table(report.PER_SEED_HEADERS, report.per_seed_rows(named)),
      "## Training time",
      report.table(("runs", "how the seeds trained", "seeds", "seconds"),
                   timing_rows({**{n.upper(): r for n, r in groups.items()},
                                f"{mask_model.upper()} mask": masked})),
  ])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  config, out, runs_dir, seeds = seeded.settings()
  names = study.model_names(config)
  # The models first: a run config this experiment cannot train says so before --mask_model.
  seeded.check_runs(config, [(name, None) for name in names], seeds, runs_dir)
  if FLAGS.mask_model not in names:
    raise ConfigError(f"--mask_model={FLAGS.mask_model}: expected one of the models trained, "
                      f"{', '.join(names)}")
  seeded.check_runs(config, [(FLAGS.mask_model, "mask")], seeds, runs_dir)
  groups = {name: seeded.trained_runs(config, name, seeds, runs_dir, FLAGS.multiseed)
            for name in names}
  masked = seeded.trained_runs(config, FLAGS.mask_model, seeds, runs_dir, FLAGS.multiseed,
                               preprocess="mask")
  text = markdown(groups, FLAGS.mask_model, masked, seeds)
  path = report.write(out / "report.md", text)
  print(report.table(HEADERS, calibration_rows(groups)))
  print(mask_line(FLAGS.mask_model, groups[FLAGS.mask_model], masked))
  print(path)


if __name__ == "__main__":
  cli.run(main, schema=config_lib.STUDY_SCHEMA)
