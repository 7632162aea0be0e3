"""Where trained digit runs lose accuracy on the offline proxy: each run's accuracy on fresh crops
of one generator version, as generated and with one of its stages forced onto every crop.

  python -m experiments.stage_accuracy --workdirs=runs/cnn2,runs/wrn_cpu
  python -m experiments.stage_accuracy --workdirs=runs/cnn2 --version=4 --crops=6000

A stage whose crops every run reads poorly caps what any model can reach; one where the runs
differ is difficulty that a stronger model can learn. The rows:

  as generated       the version's own mix of stages
  readable           no hue-only and no off-centre crops (the version's other stages as they are)
  hue-only           readable crops, each digit differing from its background mostly in hue
  off-centre         readable crops, each digit 5-9 px off centre, cut by the crop's side
  clutter, low resolution, JPEG, blur from 2 px to the version's largest (at least 2.5 px)
                     readable crops with that stage on every crop

Each row's crops come from `svhn_jax.datasets.synthetic.generate` with the version's `Style`, fields
replaced (--crops crops, --seed; the study files' splits use other seeds), and are scored
through each run's own inference path (`svhn_jax.inference.run_logits`: its preprocessing, mask,
EMA weights and test-time shifts). Prints the table and writes report.md into --results_dir.
Raises ConfigError (one line) for an empty or repeated --workdirs, a workdir that holds no run or
a run that is not a digit run on grey crops, and a --results_dir that is a file.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
from absl import app, flags

from svhn_jax import cli, inference, report, tasks
from svhn_jax.datasets import synthetic
from svhn_jax.errors import CheckpointError, ConfigError

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
  """The share of the version's crops whose drawn blur sigma is at least `sigma` pixels: the sigma
  is drawn uniformly, or log-uniformly with `style.blur_log`, from `style.blur`. The generator
  blurs by the drawn sigma rounded to `synthetic.BLUR_STEP` (0.25 px), so a few more crops than
  this (those drawn within 0.125 px below `sigma`) are blurred by `sigma`."""
  low, high = style.blur
  if high <= sigma:
    return 0.0
  if style.blur_log:
    return float(np.log(high / max(sigma, low)) / np.log(high / low))
  return (high - max(sigma, low)) / (high - low)


def stages(style: synthetic.Style) -> list[tuple[str, str, synthetic.Style]]:
  """(name, share of the version's crops that get it, style) for each row of the table. The
  generator draws hue-only and off-centre crops independently, so the readable share is
  (1 - hue_only) (1 - off_centre); each stage row forces its stage onto readable crops, so that
  no row mixes in another row's crops."""
  readable = dataclasses.replace(style, **UNREADABLE)
  forced = lambda **knobs: dataclasses.replace(readable, **knobs)  # noqa: E731
  # The version's own blur tail (at least 2.5 px wide, for versions that never blur that much).
  tail = (2.0, max(2.5, style.blur[1]))
  return [
      ("as generated", "all", style),
      ("readable", report.percent((1 - style.hue_only) * (1 - style.off_centre)), readable),
      ("hue-only", report.percent(style.hue_only), forced(hue_only=1.0)),
      ("off-centre", report.percent(style.off_centre), forced(off_centre=1.0)),
      ("readable + clutter", report.percent(style.clutter), forced(clutter=1.0)),
      ("readable + low resolution", report.percent(style.lowres), forced(lowres=1.0)),
      ("readable + JPEG", report.percent(style.jpeg), forced(jpeg=1.0)),
      (f"readable + blur {tail[0]:g}-{tail[1]:g} px", report.percent(blur_share(style)),
       forced(blur=tail, blur_log=False)),
  ]


def checked_run(workdir: str) -> inference.LoadedRun:
  """The run in `workdir`, which must be a digit run on grey crops; ConfigError otherwise."""
  if not Path(workdir).is_dir():
    found = "is a file" if Path(workdir).exists() else "no such folder"
    raise ConfigError(f"--workdirs: {workdir}: {found}; expected the workdir of a run "
                      "trained with python -m svhn_jax.main")
  try:
    run = inference.load_run(workdir)
  except CheckpointError as e:
    raise ConfigError(f"--workdirs: {e}") from e
  # Its crops are 32x32 grey digits, labels 0..9: what the digit task reads, and no other.
  if not tasks.same(run.config, "digit") or run.config.data.color != "grey":
    raise ConfigError(f"--workdirs: {workdir} is a task={run.config.task}, "
                      f"data.color={run.config.data.color} run; expected a digit run on grey "
                      "crops (config.task=digit, data.color=grey)")
  return run


def column_names(workdirs: list[str]) -> list[str]:
  """Each workdir's last path part; its last two (`cnn2/seed_0`) where a last part is a seed
  folder or repeats; else the path as given."""
  last = [Path(w).name for w in workdirs]
  if len(set(last)) == len(last) and not any(re.fullmatch(r"seed_\d+", n) for n in last):
    return last
  two = ["/".join(Path(w).parts[-2:]) for w in workdirs]
  return two if len(set(two)) == len(two) else list(workdirs)


def accuracy(run: inference.LoadedRun, images: np.ndarray, labels: np.ndarray) -> float:
  return float(np.mean(inference.run_logits(run, images).argmax(-1) == labels))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  if not FLAGS.workdirs:
    raise ConfigError("--workdirs is empty; expected one or more run workdirs, comma-separated")
  if len({Path(w).resolve() for w in FLAGS.workdirs}) != len(FLAGS.workdirs):
    raise ConfigError(f"--workdirs={','.join(FLAGS.workdirs)}: a workdir is named twice")
  out = Path(FLAGS.results_dir)
  if out.exists() and not out.is_dir():
    raise ConfigError(f"--results_dir={out} is a file; expected a folder for report.md")
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
      "shifts). Readable: no hue-only and no off-centre crops; each row below it forces its "
      "stage onto every readable crop.",
      table])
  path = report.write(out / "report.md", text)
  print(table)
  print(path)


if __name__ == "__main__":
  cli.run(main)
