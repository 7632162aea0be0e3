"""Recipes against training-set size: each config of `config.models` trained on the real-digit
development set (benchmarks/real_digits.py) at several training sizes, over several seeds; one
markdown table and one figure of test accuracy against training-set size, a line per recipe.

  python -m experiments.recipe_sweep                                   # 500, 1,000, 3,000 crops
  python -m experiments.recipe_sweep --sizes=500,1000,3000,10000 --seeds=3 \\
      --config.models=cnn2_b32,wrn_small,wrn

The sets are built once into --data_dir (default <results_dir>/data; the same arguments give the
same bytes): sizes differ only in their training split, the first n crops of the largest one, and
share their 1,000 validation and 1,000 test crops (--val, --test), split from the training ones by
source digit. Every run trains on the training crops only (configs/recipe_sweep.py sets
data.train_on_val false) and validates on the validation crops. A recipe counted in steps
(configs/wrn_small.py) makes as many updates at every size; one counted in epochs (wrn_cpu,
cnn2_b32) makes fewer on fewer crops. Runs live in <runs_dir>/n<size>/<config>/seed_<s>; finished
ones are reused, a killed one resumes from its last checkpoint (svhn_jax/multiseed.py), so the
command may be rerun after a stop, or with more sizes or seeds. Writes report.md and
figures/accuracy_by_size.png into --results_dir.
"""

from __future__ import annotations

from pathlib import Path

import ml_collections
from absl import app, flags

from benchmarks import real_digits
from configs import study
from experiments import seeded
from svhn_jax import cli, multiseed, plots, report, stats
from svhn_jax import config as config_lib
from svhn_jax.errors import ConfigError

FLAGS = flags.FLAGS


def define_flags() -> None:
  # Defined only when run as a program, so that tests and scripts can import the functions
  # beside other experiments, whose flags share names (results_dir, seeds).
  seeded.define_flags("configs/recipe_sweep.py", "results/recipe_sweep", "recipe")
  FLAGS.set_default("seeds", 2)  # 2 seeds x 3 sizes x 3 recipes fit an hour on 2 CPU cores
  flags.DEFINE_list("sizes", ["500", "1000", "3000"], "Training-set sizes, in crops.")
  flags.DEFINE_integer("val", 1000, "Validation crops of every size.", lower_bound=1)
  flags.DEFINE_integer("test", 1000, "Test crops of every size.", lower_bound=1)
  flags.DEFINE_integer("data_seed", 0, "The development set's seed (its source split and "
                       "degradations), the same for every size.", lower_bound=0)
  flags.DEFINE_string("data_dir", None, "Where the development sets go (default: "
                      "<results_dir>/data).")


def parse_sizes(values: list[str]) -> list[int]:
  """--sizes as distinct whole numbers of at least 1, ascending; ConfigError otherwise."""
  try:
    sizes = [int(v) for v in values]
  except ValueError:
    sizes = []
  if not sizes or min(sizes) < 1 or len(set(sizes)) != len(sizes):
    raise ConfigError(f"--sizes={','.join(values)}: expected distinct whole numbers of at "
                      "least 1, separated by commas")
  return sorted(sizes)


def dataset_paths(data_dir: Path, sizes: list[int], n_val: int, n_test: int, seed: int
                  ) -> dict[int, Path]:
  """Where the development set's HDF5 file of each training size goes in `data_dir`."""
  return {n: data_dir / f"{real_digits.stem(n, n_val, n_test, seed)}.h5" for n in sizes}


def build_missing(paths: dict[int, Path], n_val: int, n_test: int, seed: int) -> None:
  """Builds the files of `paths` that do not exist yet: the largest missing size once, the
  others its first crops (`real_digits.write_h5`, atomic)."""
  missing = [n for n, path in paths.items() if not path.exists()]
  if missing:
    crops = real_digits.build(max(missing), n_val, n_test, seed)
    for n in missing:
      real_digits.write_h5(paths[n], dict(crops, train=real_digits.first(crops["train"], n)))


def sized(config: ml_collections.ConfigDict, path: Path) -> ml_collections.ConfigDict:
  """The experiment's config with its data at `path`."""
  config = ml_collections.ConfigDict(config.to_dict())
  config.data.path = str(path)
  return config


def check_settings(config: ml_collections.ConfigDict) -> None:
  if config.data.path:
    raise ConfigError(f"config.data.path={config.data.path}: the sweep sets it per training "
                      "size (its own development sets); leave it empty")
  if config.data.source != "svhn":
    raise ConfigError(f"config.data.source={config.data.source}: the sweep trains on its "
                      "development sets in the study's HDF5 layout; expected svhn")


def check_sweep(config, sizes: list[int], paths: dict[int, Path], seeds: list[int],
                runs_dir: Path) -> None:
  """Checks every recipe's run at every size and seed (`seeded.check_runs`) before anything
  is written, the development sets included; ConfigError otherwise."""
  names = study.model_names(config)
  for n in sizes:
    seeded.check_runs(sized(config, paths[n]), [(name, None) for name in names], seeds,
                      runs_dir / f"n{n}")


def run_sweep(config, sizes: list[int], paths: dict[int, Path], seeds: list[int],
              runs_dir: Path, mode: str) -> dict[str, dict[int, list[report.Run]]]:
  """Trains (or reuses) every recipe's seeds at every size (`check_sweep` first); returns
  {recipe: {size: runs read from disk}}."""
  names = study.model_names(config)
  runs: dict[str, dict[int, list[report.Run]]] = {name: {} for name in names}
  # The largest size first: its comparison is the one a stopped sweep most needs.
  for n in reversed(sizes):
    for name in names:
      runs[name][n] = seeded.trained_runs(sized(config, paths[n]), name, seeds,
                                          runs_dir / f"n{n}", mode)
  return {name: {n: by_size[n] for n in sizes} for name, by_size in runs.items()}


def accuracy_cell(runs: list[report.Run]) -> str:
  test = stats.summary([r.test_accuracy for r in runs])
  ci = report.interval(test)
  return report.mean_std(test) + ("" if ci == "n/a" else f" {ci}")


def results_table(runs: dict[str, dict[int, list[report.Run]]], sizes: list[int]) -> str:
  """A row per recipe, a column per training size: test accuracy mean ± std [95% CI]."""
  return report.table(["recipe", *(f"{n:,} crops" for n in sizes)],
                      [[name, *(accuracy_cell(by_size[n]) for n in sizes)]
                       for name, by_size in runs.items()])


def timing_rows(runs_dir: Path, config, names: list[str], sizes: list[int],
                paths: dict[int, Path]) -> list[list[str]]:
  rows = []
  for name in names:
    for n in sizes:
      group = multiseed.group_dir(runs_dir / f"n{n}",
                                  study.run_config(sized(config, paths[n]), name), name)
      timing = multiseed.read_timing(group)
      if timing:
        rows.append([name, f"{n:,}", timing["mode"], ", ".join(map(str, timing["seeds"])),
                     f"{timing['seconds']:.1f}"])
  return rows


def markdown(config, runs: dict[str, dict[int, list[report.Run]]], sizes: list[int],
             seeds: list[int], paths: dict[int, Path], runs_dir: Path, out: Path) -> str:
  names = list(runs)
  figure = plots.accuracy_by_size(
      sizes, {name: [[r.test_accuracy for r in runs[name][n]] for n in sizes] for name in names},
      out / "figures" / "accuracy_by_size.png")
  largest = sizes[-1]
  return "\n\n".join([
      "# Recipes against training-set size",
      f"The real-digit development set (benchmarks/real_digits.py, seed {FLAGS.data_seed}): "
      f"{', '.join(f'{n:,}' for n in sizes)} training crops, {FLAGS.val:,} validation and "
      f"{FLAGS.test:,} test crops split from them by source digit. Each run trains on the "
      f"training crops only. Settings at {largest:,} crops: "
      + report.settings_text({name: runs[name][largest] for name in names}, seeds),
      "## Test accuracy",
      "Mean ± standard deviation over seeds, then the 95% confidence interval of the mean "
      "(Student's t; none with one seed).",
      results_table(runs, sizes),
      report.image(figure, out, "test accuracy against training-set size"),
      "## Every seed",
      report.table(report.PER_SEED_HEADERS, report.per_seed_rows(
          {f"{name} at {n:,}": runs[name][n] for name in names for n in sizes})),
      "## Training time",
      report.table(("recipe", "training crops", "how the seeds trained", "seeds", "seconds"),
                   timing_rows(runs_dir, config, names, sizes, paths)),
  ])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
  config, out, runs_dir, seeds = seeded.settings()
  check_settings(config)
  sizes = parse_sizes(FLAGS.sizes)
  data_dir = Path(FLAGS.data_dir or out / "data")
  paths = dataset_paths(data_dir, sizes, FLAGS.val, FLAGS.test, FLAGS.data_seed)
  check_sweep(config, sizes, paths, seeds, runs_dir)
  build_missing(paths, FLAGS.val, FLAGS.test, FLAGS.data_seed)
  runs = run_sweep(config, sizes, paths, seeds, runs_dir, FLAGS.multiseed)
  print(report.write(out / "report.md",
                     markdown(config, runs, sizes, seeds, paths, runs_dir, out)))


if __name__ == "__main__":
  define_flags()
  cli.run(main, schema=config_lib.STUDY_SCHEMA)
