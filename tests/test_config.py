"""The config schema: each field's range refused in one line naming it, the command-line and
config.json spellings of optional booleans and name lists, and which fields a resume may change."""

import importlib
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
    "train.epochs": (0, "none or a whole number of at least 1"),
    "train.total_steps": (0, "none or a whole number of at least 1"),
    "train.eval_every_steps": (0, "none or a whole number of at least 1"),
    "train.warmup_steps": (-1, "none or a whole number of at least 0"),
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
    "model.wrn.depth": (4, "a whole number of at least 10"),
    "model.wrn.width": (0, "a whole number of at least 1"),
    "model.wrn.dropout": (1.0, "a number of at least 0 below 1"),
    "model.reader.dropout": (1.0, "a number of at least 0 below 1"),
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
    "train.augment.distort.scale": (1.5, "a number of at least 0 at most 1"),
    "train.augment.distort.aspect": (-0.1, "a number of at least 0 at most 1"),
    "train.augment.distort.rotation": (46.0, "a number of at least 0 at most 45"),
    "train.augment.distort.shear": (-0.1, "a number of at least 0 at most 1"),
    "train.augment.distort.contrast": (1.0, "a number of at least 0 below 1"),
    "train.augment.distort.blur": (2.5, "a number of at least 0 at most 2"),
    "train.augment.distort.color": (1.0, "a number of at least 0 below 1"),
    "data.numbers.margin_low": (-0.1, "a number of at least 0"),
    "data.numbers.margin_high": (-0.1, "a number of at least 0"),
    "data.numbers.eval_margin": (-0.1, "a number of at least 0"),
    "data.numbers.min_aspect": (-0.5, "a number of at least 0"),
    "data.locate.zoom_views": (-1, "a whole number of at least 0 at most 8"),
    "model.airbench.block1": (0, "a whole number of at least 1"),
    "model.airbench.block2": (0, "a whole number of at least 1"),
    "model.airbench.block3": (0, "a whole number of at least 1"),
    "model.airbench.bn_momentum": (1.0, "a number of at least 0 below 1"),
    "model.airbench.whiten_kernel": (10, "a whole number of at least 1 at most 9"),
    "model.airbench.whiten_eps": (0.0, "a number above 0"),
    "train.muon.learning_rate": (0.0, "a number above 0"),
    "train.muon.momentum": (1.0, "a number of at least 0 below 1"),
    "train.muon.ns_steps": (0, "a whole number of at least 1 at most 10"),
    "train.bias_lr_multiplier": (0.0, "a number above 0"),
    "train.lookahead.every": (-1, "a whole number of at least 0"),
    "train.lookahead.decay": (1.0, "a number of at least 0 below 1"),
}


def run_config(**fields):
  config = default.get_config()
  config.update_from_flattened_dict(fields)
  return config


def test_the_defaults_and_every_shipped_config_are_valid():
  import importlib
  for name in study.run_config_names() + ["default"]:
    config_lib.validate(importlib.import_module(f"configs.{name}").get_config())
  # As configs/numbers.py's docstring and README run it on SVHN's photos: the generated photos'
  # counts the file sets are ignored there.
  numbers = importlib.import_module("configs.numbers").get_config()
  numbers.data.source = "svhn_full"
  config_lib.validate(numbers)
  for module in (study, mask_ablation):
    config_lib.validate(module.get_config(), config_lib.STUDY_SCHEMA)


def test_every_numeric_field_has_its_range_checked():
  numeric = {k for k, f in config_lib.RUN_SCHEMA.items() if f.kind in (int, float, "optional_int")}
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
    ("train.epochs", True, "expected none or a whole number of at least 1"),
    ("train.epochs", 2.5, "expected none or a whole number of at least 1"),
    ("train.learning_rate", math.nan, "expected a finite number above 0"),
    ("train.learning_rate", math.inf, "expected a finite number above 0"),
    ("checkpoint.enabled", "yes", "expected True or False"),
    ("model.name", "resnet", "expected one of ann1, ann2, cnn1, cnn2, wrn, airbench, multidigit, "
     "or a 'module:attribute' spec"),
    ("task", "sentence", "expected one of digit, number, locate, or a 'module:attribute' spec"),
    ("model.reader.size", "huge", "expected one of small, paper, residual, residual_paper, ctc, ctc_paper"),
    ("data.numbers.jitter", "yes", "expected True or False"),
    ("train.optimizer", "lamb", "expected one of adam, adamw, sgd, muon"),
    ("train.schedule", "step", "expected one of plateau, cosine, onecycle"),
    ("train.compute_dtype", "float16", "expected one of auto, float32, bfloat16"),
    ("model.impl", "cuda", "expected one of auto, fast, flax"),
    ("data.preprocess", "masks", "expected one of raw, mask"),
    ("data.source", "mnist", "expected one of svhn, synthetic, svhn_cropped, svhn_full, or a "
     "'module:attribute' spec"),
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
       "--config.train.batch_size=3"], config_lib.RUN_SCHEMA)
  assert rest == ["prog", "--config=configs/ann1.py", "--config.train.batch_size=3"]
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
                       "from ann1, ann2, cnn1, cnn2, cnn2_b32, demo, "),
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
    ({"data.source": "svhn_cropped"}, "config.data.source='svhn_cropped': config.task=number "
                                      "reads whole photos; expected one of synthetic, svhn_full"),
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
  del saved["task"], saved["model"]["reader"], saved["data"]["numbers"]
  config = config_lib.from_dict(saved)
  assert config.task == "digit" and config.model.reader.size == "small"
  assert config.data.numbers.margin_high == 1.0 and config.data.numbers.jitter is True
  assert config_lib.resume_conflicts(saved, default.get_config().to_dict()) == []


# Settings a run does not read (`Field.applies_to`): refused for a new run, kept for a saved one.

def test_momentum_with_adam_is_refused_in_one_line():
  with pytest.raises(ConfigError) as e:
    config_lib.validate(run_config(**{"train.momentum": 0.95}))
  assert str(e.value) == ("config.train.momentum=0.95: only read with config.train.optimizer=sgd "
                          "or muon (this run has config.train.optimizer=adam); remove it or set "
                          "config.train.optimizer=sgd or muon")
  config_lib.validate(run_config(**{"train.momentum": 0.95, "train.optimizer": "sgd"}))


def shipped_and_varied():
  """Valid run configs between them reading and not reading every conditional field: the
  shipped ones, and the default with another source, optimizer or path."""
  from configs import locate, numbers, speedrun, wrn
  return [default.get_config(), wrn.get_config(), numbers.get_config(), speedrun.get_config(),
          locate.get_config(),
          run_config(**{"train.lookahead.every": 5}),
          run_config(**{"data.source": "synthetic", "data.path": "/elsewhere/synthetic.h5"}),
          run_config(**{"data.source": "svhn_cropped"}),
          run_config(**{"data.source": "synthetic"}),
          run_config(**{"train.optimizer": "adamw"}),
          run_config(**{"data.train_on_val": True}),
          run_config(**{"train.epochs": None, "train.total_steps": 100,
                        "train.schedule": "cosine"})]


# A value away from the default where the obvious one breaks another rule (depth 6n+4).
OTHER_VALUE = {"model.wrn.depth": 22}


def other_value(dotted, value):
  """A valid value of `dotted` other than `value`."""
  field = config_lib.RUN_SCHEMA[dotted]
  if dotted in OTHER_VALUE:
    return OTHER_VALUE[dotted]
  if field.kind is bool:
    return not value
  if field.kind is int:
    return value - 1 if field.high is not None and value + 1 > field.high else value + 1
  if field.kind is float:
    return value / 2 if value else 0.5
  if field.kind == "names":
    return [name for name in field.choices if name not in value][:1] or value[:1]
  if field.kind == "optional_int":
    return 1 if value is None else value + 1
  return next(choice for choice in field.choices if choice != value)


CONDITIONAL = [k for k, f in config_lib.RUN_SCHEMA.items() if f.applies_to]


def test_the_conditional_fields_are_the_documented_ones():
  assert "train.momentum" in CONDITIONAL and "train.weight_decay" not in CONDITIONAL
  assert {"model.wrn.depth", "model.wrn.width", "model.wrn.standardize", "train.compute_dtype",
          "data.synthetic.version", "train.warmup_epochs", "train.plateau.factor",
          "data.numbers.jitter", "train.augment.ops"} <= set(CONDITIONAL)


@pytest.mark.parametrize("dotted", CONDITIONAL)
def test_a_conditional_field_is_read_where_it_applies_and_refused_elsewhere(dotted):
  field = config_lib.RUN_SCHEMA[dotted]
  reading, refusing = 0, 0
  for config in shipped_and_varied():
    values = config_lib.flat(config.to_dict())
    config.update_from_flattened_dict({dotted: other_value(dotted, values[dotted])})
    if config_lib.applies(field, values):
      # Another rule may refuse the value here (use_extra with the generated photos), this one
      # never.
      try:
        config_lib.validate(config)
        reading += 1
      except ConfigError as e:
        assert ": only read with" not in str(e)
      continue
    if field.ignored_unread:
      config_lib.validate(config)
      refusing += 1  # documented as ignored, and accepted
      continue
    with pytest.raises(ConfigError) as e:
      config_lib.validate(config)
    line = str(e.value)
    assert line.startswith(f"config.{dotted}=") and "\n" not in line
    assert ": only read with config." in line
    for when in field.applies_to:
      for name in when:
        assert f"config.{name}" in line
    refusing += 1
  assert reading and refusing, (reading, refusing)


def test_a_setting_left_at_its_default_is_never_refused():
  config = run_config(**{"train.optimizer": "adam", "train.momentum": 0.9,
                         "train.schedule": "plateau", "train.warmup_epochs": 0.0})
  config_lib.validate(config)


def test_a_saved_config_with_a_setting_its_run_ignored_still_resumes_and_predicts():
  """An older run may have been trained with --config.train.momentum=0.95 under Adam: its
  config.json loads (predict, read, the experiments' reports), and the same run resumes without
  the setting, which changed nothing."""
  saved = run_config(**{"train.momentum": 0.95, "data.synthetic.version": 2}).to_dict()
  assert config_lib.from_dict(saved).train.momentum == 0.95
  with pytest.raises(ConfigError, match=r": only read with"):
    config_lib.validate(saved)
  assert config_lib.resume_conflicts(saved, default.get_config().to_dict()) == []
  sgd = run_config(**{"train.optimizer": "sgd"}).to_dict()
  assert config_lib.resume_conflicts(saved, sgd) == ["train.optimizer: 'adam' -> 'sgd'",
                                                     "train.momentum: 0.95 -> 0.9"]


def test_the_experiments_ignore_a_shared_field_a_run_does_not_read():
  """The shared data goes to every run: a field one run reads and another does not is left at
  its default in the other (here the carved validation size, read by wrn_cpu with train_on_val,
  and the demo's generated sizes beside a data file, read by none), and every run validates."""
  config = study.get_config()
  config.models = ["cnn2", "wrn_cpu", "numbers"]
  config.data.val_size = 3_000
  assert study.model_names(config) == ["cnn2", "wrn_cpu", "numbers"]
  runs = {name: study.run_config(config, name) for name in config.models}
  assert (runs["cnn2"].data.val_size, runs["wrn_cpu"].data.val_size) == (6_000, 3_000)
  config.data.path = "/d.h5"
  for name in config.models:
    run = study.run_config(config, name)
    config_lib.validate(run)
    assert run.data.synthetic == default.get_config().data.synthetic or name == "numbers"
  for module in (study, mask_ablation):
    for name in study.model_names(module.get_config()):
      config_lib.validate(study.run_config(module.get_config(), name))


def test_the_experiments_refuse_a_shared_field_no_run_reads():
  config = study.get_config()
  config.models = ["ann1", "cnn2"]
  config.data.path = "/d.h5"
  config.data.synthetic.train = 100  # the generator's sizes: ignored beside a data file
  study.model_names(config)
  config.data.synthetic.version = 3
  with pytest.raises(ConfigError) as e:
    study.model_names(config)
  assert str(e.value).startswith("config.data.synthetic.version=3: only read with config.task=digit "
                                 "and config.data.source=synthetic and config.data.path=''")


def test_a_config_files_generator_sizes_are_ignored_where_its_data_is_replaced():
  """configs/demo.py and numbers.py set the generator's sizes for their own data; pointing the
  run at other data (--config.data.source, --config.data.path) leaves them unread, not refused,
  while a setting the run ignores otherwise still is."""
  from configs import demo, numbers
  for config, source in ((demo.get_config(), "svhn_cropped"), (numbers.get_config(), "svhn_full")):
    config.data.source = source
    config_lib.validate(config)
  config = demo.get_config()
  config.data.path = "/d.h5"
  config_lib.validate(config)
  config.train.momentum = 0.95
  with pytest.raises(ConfigError, match=r"^config\.train\.momentum=0\.95: only read with"):
    config_lib.validate(config)


# config.model's flat options moved into per-model blocks (config.model.wrn, config.model.reader)
# with the models package; `config.RENAMED` reads the flat spellings.

# config.model of each shipped run config as main wrote it before the move (commit ebb8d3d),
# flat: default.py's, and each file's differences from it.
MAIN_MODEL = {"name": "cnn2", "impl": "auto", "depth": 28, "width": 2, "dropout": 0.0,
              "standardize": False, "size": "small"}
MAIN_MODEL_CHANGES = {
    "ann1": {"name": "ann1"}, "ann2": {"name": "ann2"}, "cnn1": {"name": "cnn1"}, "cnn2": {},
    "default": {}, "demo": {}, "numbers": {"name": "multidigit", "size": "ctc"},
    "wrn": {"name": "wrn", "depth": 16, "width": 4, "dropout": 0.3},
    "wrn_cpu": {"name": "wrn", "depth": 16, "width": 1},
    "wrn_fast": {"name": "wrn", "depth": 16},
    "wrn_gpu": {"name": "wrn", "depth": 16, "width": 4, "dropout": 0.4},
}


def main_flat_config(name: str) -> dict:
  """configs/<name>.py as main saved it in config.json: config.model flat."""
  tree = config_lib.to_dict(importlib.import_module(f"configs.{name}").get_config())
  tree["model"] = {**MAIN_MODEL, **MAIN_MODEL_CHANGES[name]}
  return tree


@pytest.mark.parametrize("name", list(MAIN_MODEL_CHANGES))
def test_each_run_config_resolves_as_on_main_and_an_old_config_json_compares_equal(name):
  new = config_lib.to_dict(importlib.import_module(f"configs.{name}").get_config())
  old = main_flat_config(name)
  assert config_lib.normalize(old) == config_lib.normalize(new) == new
  assert config_lib.resume_conflicts(old, new) == []
  assert config_lib.resume_conflicts(new, old) == []
  assert config_lib.from_dict(old).to_dict() == new
  model = new["model"]
  dropout = model["reader" if model["name"] == "multidigit" else "wrn"]["dropout"]
  assert {"name": model["name"], "impl": model["impl"], **model["wrn"], "dropout": dropout,
          "size": model["reader"]["size"]} == old["model"]


def test_an_old_flat_config_json_still_conflicts_where_a_value_differs():
  old = main_flat_config("wrn")
  new = importlib.import_module("configs.wrn").get_config()
  new.model.wrn.width = 2
  assert config_lib.resume_conflicts(old, config_lib.to_dict(new)) == ["model.wrn.width: 4 -> 2"]
  reader = main_flat_config("numbers")
  reader["model"]["dropout"] = 0.5
  assert config_lib.from_dict(reader).model.reader.dropout == 0.5


def test_flat_spellings_on_the_command_line_set_the_nested_fields():
  argv = ["prog", "--config.model.depth=10", "--config.model.dropout", "0.25",
          "--config.model.standardize", "--config.model.size=paper", "--config.seed=1"]
  rest, values = config_lib.split_overrides(argv, config_lib.RUN_SCHEMA)
  assert rest == ["prog", "--config.seed=1"]
  assert values == {"model.depth": 10, "model.dropout": 0.25, "model.standardize": True,
                    "model.size": "paper"}
  from configs import numbers, wrn
  config = wrn.get_config()
  config_lib.apply_overrides(config, values)
  assert (config.model.wrn.depth, config.model.wrn.dropout, config.model.wrn.standardize,
          config.model.reader.size, config.model.reader.dropout) == (10, 0.25, True, "paper", 0.0)
  config = numbers.get_config()
  config_lib.apply_overrides(config, values)
  assert (config.model.reader.dropout, config.model.wrn.dropout) == (0.25, 0.0)
  with pytest.raises(ConfigError, match=r"^config\.model\.depth='ten': expected a whole number$"):
    config_lib.split_overrides(["prog", "--config.model.depth=ten"], config_lib.RUN_SCHEMA)


@pytest.mark.parametrize("argv, old, new", [
    (["--config.model.depth=10", "--config.model.wrn.depth=16"], "model.depth", "model.wrn.depth"),
    (["--config.model.reader.size=paper", "--config.model.size", "small"], "model.size",
     "model.reader.size"),
])
def test_an_old_and_a_new_spelling_of_one_field_together_are_refused(argv, old, new):
  """Either would silently win: one line naming both."""
  with pytest.raises(ConfigError) as e:
    config_lib.split_overrides(["prog", *argv], config_lib.RUN_SCHEMA)
  assert str(e.value) == (f"--config.{old} and --config.{new}: the same field twice, under its "
                          f"old and its new name; give only --config.{new}")


def test_flat_spellings_in_a_config_file_move_to_the_nested_fields():
  config = default.get_config()  # as a config file written before the move would set it
  config.model.name, config.model.depth, config.model.dropout = "wrn", 16, 0.3
  with pytest.raises(ConfigError, match=r"^config\.model\.depth: now config\.model\.wrn\.depth"):
    config_lib.validate(config)
  config.lock()
  config_lib.move_renamed(config)
  assert config.is_locked and "depth" not in config.model
  assert (config.model.wrn.depth, config.model.wrn.dropout) == (16, 0.3)
  config_lib.validate(config)


# Every shipped Wide ResNet recipe as it resolves: its fields away from configs/default.py. README's
# measured tables are those of wrn_cpu, wrn_gpu and wrn_fast as pinned here (counted in epochs, as
# measured); wrn and wrn_small count steps (issue 29).
NO_COLOUR = [op for op in config_lib.AUGMENT_OPS if op != "color"]
PINNED_RECIPES = {
    "wrn": {
        "data.train_on_val": True,
        "model.name": "wrn",
        "model.wrn.depth": 16,
        "model.wrn.dropout": 0.3,
        "model.wrn.width": 4,
        "train.augment.cutout": 16,
        "train.augment.magnitude": 5.0,
        "train.augment.num_ops": 2,
        "train.augment.ops": NO_COLOUR,
        "train.augment.translate": 2,
        "train.early_stopping.enabled": False,
        "train.ema_decay": 0.999,
        "train.epochs": None,
        "train.eval_every_steps": 750,
        "train.label_smoothing": 0.1,
        "train.learning_rate": 0.05,
        "train.optimizer": "sgd",
        "train.schedule": "cosine",
        "train.total_steps": 30000,
        "train.tta": 2,
        "train.warmup_steps": 750,
        "train.weight_decay": 0.0005,
    },
    "wrn_cpu": {
        "data.train_on_val": True,
        "model.name": "wrn",
        "model.wrn.depth": 16,
        "model.wrn.width": 1,
        "train.augment.translate": 2,
        "train.compute_dtype": 'float32',
        "train.early_stopping.enabled": False,
        "train.ema_decay": 0.999,
        "train.epochs": 20,
        "train.label_smoothing": 0.1,
        "train.learning_rate": 0.05,
        "train.optimizer": "sgd",
        "train.schedule": "cosine",
        "train.tta": 1,
        "train.warmup_epochs": 0.5,
        "train.weight_decay": 0.0005,
    },
    "wrn_gpu": {
        "data.train_on_val": True,
        "model.name": "wrn",
        "model.wrn.depth": 16,
        "model.wrn.dropout": 0.4,
        "model.wrn.width": 4,
        "train.augment.translate": 2,
        "train.batch_size": 256,
        "train.compute_dtype": 'bfloat16',
        "train.early_stopping.enabled": False,
        "train.ema_decay": 0.999,
        "train.epochs": 25,
        "train.eval_batch_size": 4096,
        "train.label_smoothing": 0.1,
        "train.learning_rate": 0.1,
        "train.optimizer": "sgd",
        "train.schedule": "cosine",
        "train.tta": 1,
        "train.warmup_epochs": 1.0,
        "train.weight_decay": 0.0005,
    },
    "wrn_fast": {
        "data.train_on_val": True,
        "model.name": "wrn",
        "model.wrn.depth": 16,
        "train.augment.translate": 2,
        "train.batch_size": 512,
        "train.compute_dtype": 'bfloat16',
        "train.early_stopping.enabled": False,
        "train.epochs": 12,
        "train.eval_batch_size": 4096,
        "train.label_smoothing": 0.1,
        "train.learning_rate": 0.2,
        "train.optimizer": "sgd",
        "train.schedule": "onecycle",
        "train.tta": 1,
        "train.warmup_epochs": 2.0,
        "train.weight_decay": 0.0005,
    },
    "wrn_small": {
        "data.train_on_val": True,
        "data.val_size": 500,
        "model.name": "wrn",
        "model.wrn.depth": 16,
        "model.wrn.width": 1,
        "train.augment.magnitude": 4.0,
        "train.augment.num_ops": 1,
        "train.augment.ops": ["identity", "rotate", "shear_x", "shear_y"],
        "train.augment.translate": 2,
        "train.batch_size": 64,
        "train.early_stopping.enabled": False,
        "train.ema_decay": 0.995,
        "train.epochs": None,
        "train.eval_every_steps": 250,
        "train.learning_rate": 0.05,
        "train.optimizer": "sgd",
        "train.schedule": "cosine",
        "train.total_steps": 2000,
        "train.tta": 1,
        "train.warmup_steps": 100,
        "train.weight_decay": 0.0005,
    },
}


@pytest.mark.parametrize("name", PINNED_RECIPES)
def test_each_shipped_wrn_recipe_resolves_to_its_pinned_values(name):
  config = importlib.import_module(f"configs.{name}").get_config()
  config_lib.validate(config)
  flat = config_lib.flat(config.to_dict())
  defaults = config_lib.flat(default.get_config().to_dict())
  assert set(flat) == set(defaults)
  assert {k: v for k, v in flat.items() if v != defaults[k]} == PINNED_RECIPES[name]
