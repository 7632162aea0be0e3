"""The config schema: each field's range refused in one line naming it, the command-line and
config.json spellings of optional booleans and name lists, and which fields a resume may change."""

import math
import subprocess
import sys

import ml_collections
import pytest

from configs import default, mask_ablation, study
from support import ROOT
from svhn_jax import config as config_lib
from svhn_jax.errors import ConfigError

# Per numeric field of a run config: a value just outside its range and what the line says.
OUT_OF_RANGE = {
    "seed": (-1, "a whole number of at least 0"),
    "data.val_size": (0, "a whole number of at least 1"),
    "data.split_seed": (-1, "a whole number of at least 0"),
    "data.synthetic.train": (0, "a whole number of at least 1"),
    "data.synthetic.val": (0, "a whole number of at least 1"),
    "data.synthetic.test": (0, "a whole number of at least 1"),
    "data.synthetic.seed": (-1, "a whole number of at least 0"),
    "train.epochs": (0, "a whole number of at least 1"),
    "train.batch_size": (0, "a whole number of at least 1"),
    "train.learning_rate": (0.0, "a number above 0"),
    "train.adam_eps": (0.0, "a number above 0"),
    "train.eval_batch_size": (0, "a whole number of at least 1"),
    "train.early_stopping.patience": (-1, "a whole number of at least 0"),
    "train.early_stopping.min_delta": (-0.5, "a number of at least 0"),
    "train.plateau.factor": (2.0, "a number of at least 0 below 1"),
    "train.plateau.patience": (-1, "a whole number of at least 0"),
    "train.plateau.min_delta": (-0.5, "a number of at least 0"),
    "train.plateau.min_lr": (-0.5, "a number of at least 0"),
    "train.plateau.cooldown": (-1, "a whole number of at least 0"),
    "mesh.devices": (0, "-1 (every device) or a number of devices of at least 1"),
    "model.depth": (4, "a whole number of at least 10"),
    "model.width": (0, "a whole number of at least 1"),
    "model.dropout": (1.0, "a number of at least 0 below 1"),
    "data.synthetic.version": (6, "a whole number of at least 1 at most 5"),
    "train.momentum": (1.0, "a number of at least 0 below 1"),
    "train.weight_decay": (-0.1, "a number of at least 0"),
    "train.warmup_epochs": (-1.0, "a number of at least 0"),
    "train.label_smoothing": (1.0, "a number of at least 0 below 1"),
    "train.ema_decay": (1.0, "a number of at least 0 below 1"),
    "train.val_examples": (-1, "a whole number of at least 0"),
    "train.tta": (9, "a whole number of at least 0 at most 8"),
    "train.augment.translate": (17, "a whole number of at least 0 at most 16"),
    "train.augment.cutout": (33, "a whole number of at least 0 at most 32"),
    "train.augment.num_ops": (11, "a whole number of at least 0 at most 10"),
    "train.augment.magnitude": (10.5, "a number of at least 0 at most 10"),
    "data.numbers.margin_low": (-0.1, "a number of at least 0"),
    "data.numbers.margin_high": (-0.1, "a number of at least 0"),
    "data.numbers.eval_margin": (-0.1, "a number of at least 0"),
}


def run_config(**fields):
  config = default.get_config()
  config.update_from_flattened_dict(fields)
  return config


def test_the_defaults_and_every_shipped_config_are_valid():
  import importlib
  for name in study.run_config_names() + ["default"]:
    config_lib.validate(importlib.import_module(f"configs.{name}").get_config())
  for module in (study, mask_ablation):
    config_lib.validate(module.get_config(), config_lib.STUDY_SCHEMA)


def test_every_numeric_field_has_its_range_checked():
  numeric = {k for k, f in config_lib.RUN_SCHEMA.items() if f.kind in (int, float)}
  assert numeric == set(OUT_OF_RANGE)


@pytest.mark.parametrize("field", OUT_OF_RANGE)
def test_a_value_out_of_range_is_one_line_naming_the_field(field):
  value, expected = OUT_OF_RANGE[field]
  with pytest.raises(ConfigError) as e:
    config_lib.validate(run_config(**{field: value}))
  assert str(e.value) == f"config.{field}={value!r}: expected {expected}"


def test_the_edges_of_each_range_are_allowed():
  config_lib.validate(run_config(**{"train.plateau.factor": 0.0, "train.early_stopping.patience": 0,
                                    "train.plateau.min_lr": 0.0, "mesh.devices": 1}))
  config_lib.validate(run_config(**{"train.plateau.factor": math.nextafter(1.0, 0.0)}))


@pytest.mark.parametrize("field, value, expected", [
    ("train.epochs", True, "expected a whole number of at least 1"),
    ("train.epochs", 2.5, "expected a whole number of at least 1"),
    ("train.learning_rate", math.nan, "expected a finite number above 0"),
    ("train.learning_rate", math.inf, "expected a finite number above 0"),
    ("checkpoint.enabled", "yes", "expected True or False"),
    ("model.name", "resnet", "expected one of ann1, ann2, cnn1, cnn2, wrn, multidigit"),
    ("task", "sentence", "expected one of digit, number"),
    ("model.size", "huge", "expected one of small, paper"),
    ("data.numbers.jitter", "yes", "expected True or False"),
    ("train.optimizer", "lamb", "expected one of adam, adamw, sgd"),
    ("train.schedule", "step", "expected one of plateau, cosine, onecycle"),
    ("train.compute_dtype", "float16", "expected one of float32, bfloat16"),
    ("model.impl", "cuda", "expected one of auto, fast, flax"),
    ("data.preprocess", "masks", "expected one of raw, mask"),
    ("data.source", "mnist", "expected one of svhn, synthetic, svhn_cropped, svhn_full"),
    ("data.color", "blue", "expected one of grey, rgb"),
    ("data.use_extra", 1, "expected True or False"),
    ("train.scan_epoch", "sometimes", "expected auto, true or false"),
])
def test_a_value_of_the_wrong_kind_is_refused(field, value, expected):
  tree = default.get_config().to_dict()
  *parents, name = field.split(".")
  node = tree
  for parent in parents:
    node = node[parent]
  node[name] = value
  with pytest.raises(ConfigError) as e:
    config_lib.validate(tree)
  assert str(e.value) == f"config.{field}={value!r}: {expected}"


def test_a_missing_field_is_named():
  tree = default.get_config().to_dict()
  del tree["train"]["plateau"]["cooldown"]
  with pytest.raises(ConfigError, match="no field train.plateau.cooldown"):
    config_lib.validate(tree)


@pytest.mark.parametrize("text, value", [("auto", None), ("AUTO", None), ("none", None),
                                         ("true", True), ("True", True), ("1", True),
                                         ("false", False), ("False", False), ("0", False)])
def test_scan_epoch_spellings_on_the_command_line(text, value):
  rest, values = config_lib.split_overrides(
      ["prog", "--config=configs/ann1.py", f"--config.train.scan_epoch={text}",
       "--config.train.epochs=3"], config_lib.RUN_SCHEMA)
  assert rest == ["prog", "--config=configs/ann1.py", "--config.train.epochs=3"]
  assert values == {"train.scan_epoch": value}
  config = default.get_config()
  config_lib.apply_overrides(config, values)
  assert config.train.scan_epoch is value
  config_lib.validate(config)


def test_an_override_may_give_its_value_as_the_next_argument():
  rest, values = config_lib.split_overrides(["prog", "--config.train.scan_epoch", "false", "x"],
                                            config_lib.RUN_SCHEMA)
  assert rest == ["prog", "x"] and values == {"train.scan_epoch": False}


def test_an_unknown_scan_epoch_spelling_names_the_field():
  with pytest.raises(ConfigError) as e:
    config_lib.split_overrides(["--config.train.scan_epoch=sometimes"], config_lib.RUN_SCHEMA)
  assert str(e.value) == "config.train.scan_epoch='sometimes': expected auto, true or false"


def test_an_old_config_json_holding_auto_reads_as_none():
  tree = default.get_config().to_dict()
  tree["train"]["scan_epoch"] = "auto"
  assert config_lib.from_dict(tree).train.scan_epoch is None
  assert tree["train"]["scan_epoch"] == "auto"  # normalize copies, never edits its argument
  tree["train"]["scan_epoch"] = "true"
  assert config_lib.from_dict(tree).train.scan_epoch is True


@pytest.mark.parametrize("text", ["ann1,cnn2", "ANN1, cnn2", "['ann1', 'cnn2']"])
def test_model_lists_on_the_command_line(text):
  rest, values = config_lib.split_overrides(["prog", f"--config.models={text}"],
                                            config_lib.STUDY_SCHEMA)
  assert rest == ["prog"] and values == {"models": ["ann1", "cnn2"]}
  config = study.get_config()
  config_lib.apply_overrides(config, values)
  assert study.model_names(config) == ["ann1", "cnn2"]


@pytest.mark.parametrize("models, expected", [
    (["ann1", "cnn9"], "config.models=ann1,cnn9: no run config configs/cnn9.py; expected names "
                       "from ann1, ann2, cnn1, cnn2, demo, "),
    (["ann1", "ann1"], "config.models=ann1,ann1: a name twice; expected distinct names"),
    ([], "config.models=: expected a comma-separated list of names"),
    ("ann1", "config.models='ann1': expected a comma-separated list of names"),
])
def test_a_bad_model_list_is_refused(models, expected):
  tree = study.get_config().to_dict()
  tree["models"] = models
  with pytest.raises(ConfigError) as e:
    study.model_names(ml_collections.ConfigDict(tree))
  assert str(e.value).startswith(expected)


def test_any_run_config_can_be_compared():
  config = study.get_config()
  config.models = ["cnn2", "demo"]
  assert study.model_names(config) == ["cnn2", "demo"]
  assert {"ann1", "ann2", "cnn1", "cnn2", "demo"} <= set(study.run_config_names())
  assert not {"default", "study", "mask_ablation"} & set(study.run_config_names())


def test_a_model_list_in_a_saved_config_is_read():
  tree = study.get_config().to_dict()
  tree["models"] = "cnn1,ann2"
  assert list(config_lib.from_dict(tree, config_lib.STUDY_SCHEMA).models) == ["cnn1", "ann2"]


def test_the_experiments_command_line_takes_a_model_list():
  """`--config.models=ann1,cnn2` through the experiments' flags (experiments/seeded.py) and
  `cli.parse_flags` with the experiments' schema, as every experiment script parses its command
  line (`cli.run(main, schema=config.STUDY_SCHEMA)`)."""
  script = ("import sys\n"
            "from absl import flags\n"
            "from configs import study\n"
            "from experiments import seeded\n"
            "from svhn_jax import cli, config\n"
            "seeded.define_flags('configs/study.py', 'results', 'model')\n"
            "cli.parse_flags(sys.argv, config.STUDY_SCHEMA)\n"
            "print(study.model_names(flags.FLAGS.config), flags.FLAGS.config.train.epochs)\n")
  done = subprocess.run([sys.executable, "-c", script, "--config.models=ann1,cnn2",
                         "--config.train.epochs=3"], cwd=ROOT, capture_output=True, text=True,
                        timeout=120)
  assert done.returncode == 0, done.stderr
  assert done.stdout == "['ann1', 'cnn2'] 3\n"


def test_study_run_config_keeps_each_models_settings_unless_overridden():
  config = study.get_config()
  config.seed = 7
  config.data.path = "/d.h5"
  assert (study.run_config(config, "cnn1").train.batch_size,
          study.run_config(config, "cnn2").train.batch_size) == (32, 128)
  config.train.batch_size = 64
  run = study.run_config(config, "cnn1", preprocess="mask")
  assert (run.model.name, run.seed, run.data.path, run.data.preprocess) == ("cnn1", 7, "/d.h5",
                                                                          "mask")
  assert (run.train.batch_size, run.train.epochs, run.train.learning_rate) == (64, 20, 1e-3)
  config_lib.validate(run)


def saved_and_new(**new_fields):
  saved = default.get_config().to_dict()
  return saved, run_config(**new_fields).to_dict()


def test_resume_conflicts_name_each_field_that_changes_what_is_computed():
  saved, new = saved_and_new(**{"train.batch_size": 64, "data.preprocess": "mask"})
  assert config_lib.resume_conflicts(saved, new) == ["data.preprocess: 'raw' -> 'mask'",
                                                    "train.batch_size: 128 -> 64"]


def test_resumable_fields_may_change():
  saved, new = saved_and_new(**{"train.epochs": 40, "train.eval_batch_size": 64,
                                "model.impl": "flax", "data.path": "/elsewhere.h5",
                                "train.scan_epoch": True, "checkpoint.enabled": False,
                                "mesh.devices": 1})
  assert config_lib.resume_conflicts(saved, new) == []


def test_a_field_the_saved_config_predates_reads_as_its_default():
  saved, new = saved_and_new(**{"data.source": "svhn_cropped"})
  saved["data"]["source"] = "svhn_cropped"
  del saved["data"]["color"], saved["data"]["use_extra"]
  saved["train"]["scan_epoch"] = "auto"
  assert config_lib.from_dict(saved).data.use_extra is False
  assert config_lib.resume_conflicts(saved, new) == []
  _, colour = saved_and_new(**{"data.source": "svhn_cropped", "data.color": "rgb"})
  assert config_lib.resume_conflicts(saved, colour) == ["data.color: 'grey' -> 'rgb'"]


def test_a_field_without_a_default_that_the_saved_config_lacks_is_no_conflict():
  saved, new = saved_and_new(**{"train.adam_eps": 1e-8})
  del saved["train"]["adam_eps"]
  assert config_lib.resume_conflicts(saved, new) == []


def numbers_config(**fields):
  from configs import numbers
  config = numbers.get_config()
  config.update_from_flattened_dict(fields)
  return config


@pytest.mark.parametrize("fields, expected", [
    ({"model.name": "cnn2"}, "config.task='number': expected config.model.name=multidigit"),
    ({"data.source": "svhn_cropped"}, "config.data.source='svhn_cropped': whole house numbers "
                                      "come from photos; expected one of synthetic, svhn_full"),
    ({"data.preprocess": "mask"}, "config.data.preprocess='mask': the mask is made for 32x32"),
    ({"train.tta": 2}, "config.train.tta=2: test-time shifts average one softmax"),
    ({"data.numbers.margin_low": 0.5, "data.numbers.margin_high": 0.2},
     "config.data.numbers.margin_low=0.5: expected at most config.data.numbers.margin_high=0.2"),
    ({"data.use_extra": True}, "config.data.use_extra=True: the synthetic photos have train and "
                               "test splits only"),
    ({"task": "digit"}, "config.model.name='multidigit' reads whole house numbers: it needs "
                        "config.task=number"),
])
def test_the_number_tasks_rules_are_one_line(fields, expected):
  config_lib.validate(numbers_config())
  with pytest.raises(ConfigError) as e:
    config_lib.validate(numbers_config(**fields))
  assert str(e.value).startswith(expected)


def test_a_config_json_without_a_task_trains_digits():
  saved = default.get_config().to_dict()
  del saved["task"], saved["model"]["size"], saved["data"]["numbers"]
  config = config_lib.from_dict(saved)
  assert config.task == "digit" and config.model.size == "small"
  assert config.data.numbers.margin_high == 1.0 and config.data.numbers.jitter is True
  assert config_lib.resume_conflicts(saved, default.get_config().to_dict()) == []
