"""Where trained digit runs lose accuracy on the offline proxy: each run's accuracy on fresh crops
of one generator version, as generated and with one of its stages forced onto every crop.

  python -m experiments.stage_accuracy --workdirs=runs/cnn2,runs/wrn_cpu
  python -m experiments.stage_accuracy --workdirs=runs/cnn2 --version=4 --crops=6000

A stage whose crops every run reads near chance (10%) caps what any model can reach; one where
the runs differ is difficulty that a stronger model can learn. The rows:

  as generated       the version's own mix of stages
  readable           no hue-only and no off-centre crops (the version's other stages as they are)
  hue-only           every crop's digit differs from its background mostly in hue
  off-centre         every crop's digit sits 5-9 px off centre, cut by the crop's side
  clutter, low resolution, JPEG, blur 2-3 px
                     the readable crops with that stage on every crop

Each row's crops come from `svhn_jax.synthetic.generate` with the version's `Style` and one
field replaced (--crops crops, --seed; the study files' splits use other seeds), and are scored
through each run's own inference path (`svhn_jax.inference.run_logits`: its preprocessing, mask,
EMA weights and test-time shifts). Prints the table and writes report.md into --results_dir.
Raises ConfigError for a run that is not a digit run on grey crops.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from absl import app, flags

from svhn_jax import cli, inference, report, synthetic
from svhn_jax.errors import ConfigError

FLAGS = flags.FLAGS
flags.DEFINE_list("workdirs", None, "Finished digit runs to score (python -m svhn_jax.main "
                  "workdirs), comma-separated.", required=True)
flags.DEFINE_integer("version", synthetic.VERSION, "The generator version whose stages to force.",
                     lower_bound=min(synthetic.STYLES), upper_bound=max(synthetic.STYLES))
flags.DEFINE_integer("crops", 3000, "Crops per row.", lower_bound=10)
flags.DEFINE_integer("seed", 99, "The crops' seed.", lower_bound=0)
flags.DEFINE_string("results_dir", "results/stage_accuracy", "Where report.md goes.")

# The stages that make a crop hard to read at any model size, switched off for "readable".
UNREADABLE = {"hue_only": 0.0, "off_centre": 0.0}


def blur_share(style: synthetic.Style, sigma: float = 2.0) -> float:
  """The share of the version's crops blurred by a sigma of at least `sigma` pixels: the sigma is
  drawn uniformly, or log-uniformly with `style.blur_log`, from `style.blur`."""
  low, high = style.blur
  if high <= sigma:
    return 0.0
  if style.blur_log:
    return float(np.log(high / max(sigma, low)) / np.log(high / low))
  return (high - max(sigma, low)) / (high - low)


def stages(style: synthetic.Style) -> list[tuple[str, str, synthetic.Style]]:
  """(name, share of the version's crops that get it, style) for each row of the table."""
  readable = dataclasses.replace(style, **UNREADABLE)
  forced = lambda **knobs: dataclasses.replace(readable, **knobs)  # noqa: E731
  return [
      ("as generated", "all", style),
      ("readable", report.percent(1 - style.hue_only - style.off_centre), readable),
      ("hue-only", report.percent(style.hue_only), dataclasses.replace(style, hue_only=1.0)),
      ("off-centre", report.percent(style.off_centre),
       dataclasses.replace(style, off_centre=1.0)),
      ("readable + clutter", report.percent(style.clutter), forced(clutter=1.0)),
      ("readable + low resolution", report.percent(style.lowres), forced(lowres=1.0)),
      ("readable + JPEG", report.percent(style.jpeg), forced(jpeg=1.0)),
      ("readable + blur 2-3 px", report.percent(blur_share(style)),
       forced(blur=(2.0, 3.0), blur_log=False)),
  ]


def checked_run(workdir: str) -> inference.LoadedRun:
  """The run in `workdir`, which must be a digit run on grey crops."""
  run = inference.load_run(workdir)
  if run.config.task != "digit" or run.config.data.color != "grey":
    raise ConfigError(f"--workdirs: {workdir} is a task={run.config.task}, "
                      f"data.color={run.config.data.color} run; expected a digit run on grey "
                      "crops (config.task=digit, data.color=grey)")
  return run


def column_names(workdirs: list[str]) -> list[str]:
  """Each workdir's last path part, or its last two (`cnn2/seed_0`) where the last parts repeat,
  else the path as given."""
  for depth in (1, 2):
    names = ["/".join(Path(w).parts[-depth:]) for w in workdirs]
    if len(set(names)) == len(names):
      return names
  return list(workdirs)


def accuracy(run: inference.LoadedRun, images: np.ndarray, labels: np.ndarray) -> float:
  return float(np.mean(inference.run_logits(run, images).argmax(-1) == labels))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  if len(set(FLAGS.workdirs)) != len(FLAGS.workdirs):
    raise ConfigError(f"--workdirs={','.join(FLAGS.workdirs)}: a workdir is named twice")
  runs = dict(zip(column_names(FLAGS.workdirs), map(checked_run, FLAGS.workdirs)))
  style = synthetic.style_of(FLAGS.version)
  headers = ("crops", f"share of version {FLAGS.version}'s", *runs)
  rows = []
  for name, share, row_style in stages(style):
    images, labels = synthetic.generate(FLAGS.crops, seed=FLAGS.seed, style=row_style)
    rows.append([name, share, *(report.percent(accuracy(r, images, labels))
                                for r in runs.values())])
  table = report.table(headers, rows)
  text = "\n\n".join([
      f"# Accuracy by generator stage (version {FLAGS.version})",
      f"{FLAGS.crops:,} fresh crops per row (seed {FLAGS.seed}), each scored by the runs "
      f"{', '.join(FLAGS.workdirs)} as they predict (their preprocessing, weights and test-time "
      "shifts). Readable: no hue-only and no off-centre crops; the stage rows below it force "
      "that stage onto every readable crop.",
      table])
  path = report.write(Path(FLAGS.results_dir) / "report.md", text)
  print(table)
  print(path)


if __name__ == "__main__":
  cli.run(main)
