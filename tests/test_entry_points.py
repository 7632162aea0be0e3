"""Every entry point parses its flags the same way (`cli.run`): any field, list fields included,
can be set, a misspelt one is one line; and the experiments and benchmarks refuse a config or
value they cannot use before anything trains.

The commands run without a JAX backend (`support.without_jax_backend`), so each error must come
before training starts; they run a few at a time, once per session.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import ml_collections
import pytest

from configs import study
from experiments import seeded
from support import ROOT, without_jax_backend
from svhn_jax import config as config_lib
from svhn_jax import multiseed, train
from svhn_jax.errors import ConfigError

# What a list override sets, as each entry point's own flag parsing reads it.
PARSED = ("import sys\n"
          "from absl import flags\n"
          "from svhn_jax import cli\n"
          "import svhn_jax.main\n"
          "cli.parse_flags(sys.argv)\n"
          "print(flags.FLAGS.config.train.augment.ops, flags.FLAGS.config.train.epochs)\n")
TARGETS = ("import sys\n"
           "sys.argv = sys.argv[:1]\n"
           "sys.path.insert(0, 'benchmarks')\n"
           "import time_to_accuracy\n"
           "targets = time_to_accuracy.parse_targets(['92.22', '0.95', '95', '1'])\n"
           "print([f'{t:.4f}' for t in targets])\n")
# The speed-up table of --baseline on hand-made seeds: the fixed-length runs' mean final accuracy
# (92.5%) reaches 92% in a mean 12 s of training; the baseline's seeds first crossed it after 30
# and 42 s (mean 36: 3 times as long); 95% is reached by neither.
SPEEDUP = ("import sys\n"
           "sys.argv = sys.argv[:1]\n"
           "sys.path.insert(0, 'benchmarks')\n"
           "import time_to_accuracy as t\n"
           "ours = [{'train_s': 10.0, 'final_accuracy': 0.93}, "
           "{'train_s': 14.0, 'final_accuracy': 0.92}]\n"
           "base = [{'reached': {0.92: (30.0, 3), 0.95: None}}, "
           "{'reached': {0.92: (42.0, 4), 0.95: (60.0, 6)}}]\n"
           "print('\\n'.join(t.speedup_lines(ours, base, [0.92, 0.95], True)))\n")
MISSPELT = "--config.train.epoch=1"
NO_EPOCH = r"^error: --config\.train\.epoch: config\.train has no field 'epoch'; its fields are "
# name: (argv after the interpreter, the one error line expected, or None and the stdout).
COMMANDS = {
    "main_misspelt": (["-m", "svhn_jax.main", "--config=configs/ann1.py", MISSPELT], NO_EPOCH),
    "experiment_misspelt": (["-m", "experiments.compare_models", MISSPELT], NO_EPOCH),
    "benchmark_misspelt": (["benchmarks/time_to_accuracy.py", MISSPELT], NO_EPOCH),
    "benchmark_bad_target": (["benchmarks/time_to_accuracy.py", "--targets=92.22,9222"],
                             r"^error: --targets=92\.22,9222: '9222' is no accuracy; expected "
                             r"fractions in \(0, 1\] or percents in \(1, 100\]$"),
    "benchmark_no_target": (["benchmarks/time_to_accuracy.py", "--targets="],
                            r"^error: --targets=: no target; expected fractions"),
    "benchmark_numbers_config": (["benchmarks/time_to_accuracy.py", "--config=configs/numbers.py"],
                                 r"^error: config\.task='number': this benchmark times digit "),
    "list_override": (["-c", PARSED, "--config=configs/ann1.py",
                       "--config.train.augment.ops=['rotate', 'shear_x']",
                       "--config.train.epochs=2"], None, "['rotate', 'shear_x'] 2\n"),
    "list_override_in_a_flagfile": (["-c", PARSED, "--config=configs/ann1.py",
                                     "--flagfile={flagfile}"], None, "['rotate', 'contrast'] 3\n"),
    "targets_as_fractions_or_percents": (["-c", TARGETS], None,
                                         "['0.9222', '0.9500', '1.0000']\n"),
    "benchmark_no_such_baseline": (["benchmarks/time_to_accuracy.py", "--baseline=cnn9"],
                                   r"^error: --baseline=cnn9: no configs/cnn9\.py; expected "),
    "benchmark_numbers_baseline": (["benchmarks/time_to_accuracy.py", "--baseline=configs/numbers.py"],
                                   r"^error: --baseline=configs/numbers\.py: config\.task='number'; "
                                   r"expected a digit run config$"),
    "speedup_against_a_baseline": (["-c", SPEEDUP], None,
                                   "  target    config s  baseline s  baseline / config\n"
                                   "  92.00%       12.00       36.00               3.00\n"
                                   "  95.00%           -           -                  -\n"),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
  flagfile = tmp_path_factory.mktemp("flags") / "flags.txt"
  flagfile.write_text("--config.train.augment.ops=rotate,contrast\n--config.train.epochs=3\n")

  def run(argv):
    argv = [arg.replace("{flagfile}", str(flagfile)) for arg in argv]
    return subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=without_jax_backend())

  with ThreadPoolExecutor(max_workers=3) as pool:
    done = {name: pool.submit(run, command[0]) for name, command in COMMANDS.items()}
    return {name: future.result() for name, future in done.items()}


@pytest.mark.parametrize("name", COMMANDS)
def test_every_entry_point_parses_its_flags_alike(name, results):
  result, (_, error, *stdout) = results[name], COMMANDS[name]
  if error is None:
    assert result.returncode == 0, result.stderr
    assert result.stdout == stdout[0]
    return
  assert result.returncode == 1, result.stderr
  assert "Traceback" not in result.stderr and result.stdout == ""
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and re.search(error, lines[0]), result.stderr


@pytest.mark.parametrize("ops", ["rotate,contrast", "['rotate','contrast']",
                                 "[\"rotate\", \"contrast\"]"])
def test_a_list_field_override_takes_names_or_a_python_list(ops):
  """The spellings configs/default.py documents for train.augment.ops."""
  from configs import default

  rest, values = config_lib.split_overrides(["prog", "--config.train.augment.ops", ops],
                                            config_lib.RUN_SCHEMA)
  config = default.get_config()
  config_lib.apply_overrides(config, values)
  assert rest == ["prog"] and config.train.augment.ops == ["rotate", "contrast"]
  config.train.augment.num_ops = 1  # RandAugment on: the operations are read
  config_lib.validate(config)


def experiment(models: list[str], **train_fields) -> ml_collections.ConfigDict:
  config = study.get_config()
  config.models = models
  config.train.update(train_fields)
  return config


def test_an_experiment_checks_every_run_before_the_first_trains(tmp_path):
  """cnn2 would train first; wrn_fast's warm-up of 2 epochs cannot fit in 2 epochs."""
  with pytest.raises(ConfigError, match=r"^configs/wrn_fast\.py under the experiment's settings: "
                     r"config\.train\.warmup_epochs=2\.0: expected fewer warm-up epochs than "
                     r"config\.train\.epochs=2$"):
    seeded.check_runs(experiment(["cnn2", "wrn_fast"], epochs=2),
                      [("cnn2", None), ("wrn_fast", None)], [0, 1], tmp_path)
  assert not any(tmp_path.iterdir())
  seeded.check_runs(experiment(["cnn2", "wrn_fast"], epochs=3),
                    [("cnn2", None), ("wrn_fast", None)], [0, 1], tmp_path)


def test_an_experiment_refuses_a_numbers_config(tmp_path):
  with pytest.raises(ConfigError, match=r"^config\.models: configs/numbers\.py is not a digit run "
                     r"\(config\.task=number\)"):
    seeded.check_runs(experiment(["cnn2", "numbers"]), [("cnn2", None), ("numbers", None)], [0],
                      tmp_path)


def test_an_experiment_refuses_a_later_seeds_workdir_of_other_settings(tmp_path):
  """Seed 1's workdir, left by a run of other settings, is found before seed 0 trains."""
  config = experiment(["ann1"])
  run = study.run_config(config, "ann1", preprocess="mask")
  workdir = multiseed.seed_workdir(multiseed.group_dir(tmp_path, run, "ann1"), 1)
  workdir.mkdir(parents=True)
  other = train.seed_config(run, 1)
  other.train.learning_rate = 0.5
  (workdir / "config.json").write_text(json.dumps(config_lib.to_dict(other)))
  with pytest.raises(ConfigError, match=r"holds a run made with other settings "
                     r"\(train\.learning_rate\)"):
    seeded.check_runs(config, [("ann1", "raw"), ("ann1", "mask")], [0, 1], tmp_path)


def test_a_list_override_for_a_field_the_config_lacks_names_it():
  """A run config's list field given to a config file of another kind (the study's)."""
  with pytest.raises(ConfigError, match=r"^--config\.train\.augment\.ops: the config has no such "
                     r"field$"):
    config_lib.apply_overrides(study.get_config(), {"train.augment.ops": ["rotate"]})


@pytest.mark.parametrize("main, argv, says", [
    # `python -m svhn_jax.data`'s parser is `svhn_jax.datasets.describe.main`'s.
    ("svhn_jax.datasets.describe", [],
     "python -m svhn_jax.data: the following arguments are required: command"),
    ("svhn_jax.datasets.describe", ["inspect"], "python -m svhn_jax.data inspect: the following "
     "arguments are required: file"),
    ("svhn_jax.datasets.describe", ["look", "f.h5"],
     "python -m svhn_jax.data: argument command: invalid choice"),
    ("svhn_jax.datasets.synthetic", ["--out=s.h5", "--train=-1", "--val=1", "--test=1"],
     "python -m svhn_jax.datasets.synthetic: argument --train: expected a whole number of at "
     "least 0, got '-1'"),
    ("svhn_jax.datasets.synthetic_photos", ["--out=p", "--train=1"],
     "python -m svhn_jax.datasets.synthetic_photos: the following arguments are required: --test"),
])
def test_an_entry_point_without_config_says_a_bad_argument_in_one_line(main, argv, says, capsys):
  """The argparse entry points (data inspection, the generators, benchmarks) share
  `cli.ArgumentParser`: one line and exit status 2, not argparse's usage block."""
  module = __import__(main, fromlist=["main"])
  with pytest.raises(SystemExit) as info:
    module.main(argv)
  assert info.value.code == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and err.startswith(f"error: {says}"), err
  assert err.rstrip().endswith("--help")


@pytest.mark.parametrize("text", ["[rotate", "rotate]", "rotate,,contrast", "rotate,", "",
                                  "{'rotate': 1}", "[1, 2]", "rotate contrast"])
def test_a_malformed_list_override_is_refused_not_repaired(text):
  """An unclosed bracket, an empty name or a non-list is a typo to report, not to guess at."""
  with pytest.raises(ConfigError, match=r"^config\.train\.augment\.ops=.*: expected names "
                     r"separated by commas"):
    config_lib.split_overrides(["prog", f"--config.train.augment.ops={text}"],
                               config_lib.RUN_SCHEMA)
