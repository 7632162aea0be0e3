"""The config schema: every field's type, allowed values and range, checked in one place.

`validate(config)` runs before anything is written and before JAX starts, so a bad value is one
line on stderr within a second. The schema also says which fields may differ when a workdir is
resumed (`Field.resumable`): those change how a run computes (chunk sizes, devices, fused or
plain layers, checkpointing, how many epochs), never what it computes.

Two kinds of field have a command-line spelling that ml-collections cannot parse by itself,
kept as documented: an optional boolean (`auto|true|false`, None meaning auto) and a list of
names (`ann1,cnn2`). `split_overrides` takes those out of argv before absl parses the flags and
`apply_overrides` sets them after; `normalize` reads the same spellings from a saved config.json.
No JAX here.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from svhn_jax.errors import ConfigError

# The models `svhn_jax.models` builds; a test holds the two lists equal.
MODEL_NAMES = ("ann1", "ann2", "cnn1", "cnn2", "wrn", "multidigit")
# digit: one centred digit per crop (the study's) | number: whole house numbers (svhn_jax.tasks).
TASKS = ("digit", "number")
# The sizes of the number reader, `svhn_jax.number_models.SIZES` (a test holds them equal).
NUMBER_MODEL_SIZES = ("small", "paper")
NUMBER_SOURCES = ("synthetic", "svhn_full")
DATA_SOURCES = ("svhn", "synthetic", "svhn_cropped", "svhn_full")
COLORS = ("grey", "rgb")
PREPROCESS_MODES = ("raw", "mask")
# auto: fused layers (svhn_jax/fast_layers.py) on the CPU, plain Flax layers elsewhere.
IMPLS = ("auto", "fast", "flax")
OPTIMIZERS = ("adam", "adamw", "sgd")
# plateau: Keras's ReduceLROnPlateau on val_loss, per epoch (the study's) | cosine: linear
# warm-up then cosine decay to 0, per step | onecycle: linear warm-up then linear decay to 0.
SCHEDULES = ("plateau", "cosine", "onecycle")
COMPUTE_DTYPES = ("float32", "bfloat16")
# The generator versions `svhn_jax.synthetic` keeps: 1, the first (easy); 2, harder; 3, version 2
# with more fonts, calibrated to SVHN; 4, version 3 with fewer unreadable crops; 5, version 4 with
# more blur, calibrated to SVHN (the default).
SYNTHETIC_VERSIONS = (1, 2, 3, 4, 5)
# RandAugment's operations in `svhn_jax.augment` (a test holds the two lists equal).
AUGMENT_OPS = ("identity", "autocontrast", "equalize", "invert", "rotate", "posterize",
               "solarize", "color", "contrast", "brightness", "sharpness", "shear_x", "shear_y",
               "translate_x", "translate_y")


@dataclasses.dataclass(frozen=True)
class Field:
  """One config field. `kind` is int, float, bool, str, 'optional_bool' or 'names' (a list of
  strings); `low`/`high` bound numbers (inclusive unless `open_high`); `choices` bound strings
  (and each name of a 'names' field); `also` lists extra allowed values outside the range."""

  kind: Any
  low: float | None = None
  high: float | None = None
  open_low: bool = False
  open_high: bool = False
  choices: tuple[str, ...] | None = None
  also: tuple[Any, ...] = ()
  resumable: bool = False
  expected: str = ""
  # The value a config.json written before the field existed is read with.
  default: Any = None

  def problem(self, value: Any) -> str | None:
    """What is wrong with `value`, as 'expected ...', or None."""
    if value in self.also and not isinstance(value, bool):
      return None
    if self.kind is int:
      if isinstance(value, bool) or not isinstance(value, int):
        return f"expected {self._range('a whole number')}"
      return self._range_problem(value, "a whole number")
    if self.kind is float:
      if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"expected {self._range('a finite number')}"
      return self._range_problem(value, "a number")
    if self.kind is bool:
      return None if isinstance(value, bool) else "expected True or False"
    if self.kind == "optional_bool":
      return None if value is None or isinstance(value, bool) else "expected auto, true or false"
    if self.kind is str:
      if not isinstance(value, str):
        return "expected text"
      if self.choices and value not in self.choices:
        return f"expected one of {', '.join(self.choices)}"
      return None
    if self.kind == "names":
      among = f" from {', '.join(self.choices)}" if self.choices else ""
      if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        return f"expected a comma-separated list of names{among}"
      unknown = [v for v in value if not isinstance(v, str) or (self.choices and v not in self.choices)]
      if unknown or len(set(value)) != len(value):
        what = f"unknown {unknown}" if unknown else "a name twice"
        return f"{what}; expected distinct names{among}"
      return None
    raise TypeError(f"unknown field kind {self.kind!r}")

  def _range(self, noun: str) -> str:
    if self.expected:
      return self.expected
    parts = [noun]
    if self.low is not None:
      parts.append(f"{'above' if self.open_low else 'of at least'} {self.low:g}")
    if self.high is not None:
      parts.append(f"{'below' if self.open_high else 'at most'} {self.high:g}")
    return " ".join(parts)

  def _range_problem(self, value: float, noun: str) -> str | None:
    low_ok = self.low is None or (value > self.low if self.open_low else value >= self.low)
    high_ok = self.high is None or (value < self.high if self.open_high else value <= self.high)
    return None if low_ok and high_ok else f"expected {self._range(noun)}"


# Every field of a run config (configs/default.py).
RUN_SCHEMA: dict[str, Field] = {
    "seed": Field(int, low=0),
    # Config files written before the task existed trained digits.
    "task": Field(str, choices=TASKS, default="digit"),
    "model.name": Field(str, choices=MODEL_NAMES),
    "model.impl": Field(str, choices=IMPLS, resumable=True),
    # Wide ResNets (model.name=wrn) only; WRN-depth-width, Zagoruyko & Komodakis 2016.
    "model.depth": Field(int, low=10, default=28),
    "model.width": Field(int, low=1, default=2),
    "model.dropout": Field(float, low=0, high=1, open_high=True, default=0.0),
    # Per-image standardization of the WRN's input (models.PerImageStandardization).
    "model.standardize": Field(bool, default=False),
    # The number reader (model.name=multidigit) only: small (CPU) or Goodfellow et al.'s.
    "model.size": Field(str, choices=NUMBER_MODEL_SIZES, default="small"),
    "data.source": Field(str, choices=DATA_SOURCES),
    # Where the data lives may change on resume; its fingerprint must not (see `data`).
    "data.path": Field(str, resumable=True),
    "data.cache_dir": Field(str, resumable=True),
    "data.preprocess": Field(str, choices=PREPROCESS_MODES),
    "data.color": Field(str, choices=COLORS, default="grey"),
    "data.use_extra": Field(bool, default=False),
    "data.val_size": Field(int, low=1, default=6_000),
    "data.split_seed": Field(int, low=0, default=0),
    "data.synthetic.train": Field(int, low=1),
    "data.synthetic.val": Field(int, low=1),
    "data.synthetic.test": Field(int, low=1),
    "data.synthetic.seed": Field(int, low=0),
    # Config files written before version 2 existed used version 1.
    "data.synthetic.version": Field(int, low=1, high=max(SYNTHETIC_VERSIONS), default=1),
    "data.train_on_val": Field(bool, default=False),
    # task=number: each number's box widened by a margin per side, as a share of its width and
    # height; training photos draw theirs uniformly in [margin_low, margin_high], evaluation
    # uses eval_margin (Goodfellow's 0.15); jitter: random 54x54 windows of the 64x64 crops in
    # training rather than the centre one.
    "data.numbers.margin_low": Field(float, low=0, default=0.15),
    "data.numbers.margin_high": Field(float, low=0, default=1.0),
    "data.numbers.eval_margin": Field(float, low=0, default=0.15),
    "data.numbers.jitter": Field(bool, default=True),
    "train.epochs": Field(int, low=1, resumable=True),
    "train.batch_size": Field(int, low=1),
    "train.learning_rate": Field(float, low=0, open_low=True),
    "train.adam_eps": Field(float, low=0, open_low=True),
    "train.eval_batch_size": Field(int, low=1, resumable=True),
    "train.scan_epoch": Field("optional_bool", resumable=True),
    "train.optimizer": Field(str, choices=OPTIMIZERS, default="adam"),
    "train.momentum": Field(float, low=0, high=1, open_high=True, default=0.9),
    "train.weight_decay": Field(float, low=0, default=0.0),
    "train.schedule": Field(str, choices=SCHEDULES, default="plateau"),
    "train.warmup_epochs": Field(float, low=0, default=0.0),
    "train.label_smoothing": Field(float, low=0, high=1, open_high=True, default=0.0),
    "train.ema_decay": Field(float, low=0, high=1, open_high=True, default=0.0),
    "train.compute_dtype": Field(str, choices=COMPUTE_DTYPES, default="float32"),
    # Validation on the first val_examples crops of the validation split (0: all of it).
    "train.val_examples": Field(int, low=0, resumable=True, default=0),
    # Test-time augmentation: average the softmax over shifts of up to tta pixels (0: off).
    "train.tta": Field(int, low=0, high=8, resumable=True, default=0),
    "train.augment.translate": Field(int, low=0, high=16, default=0),
    "train.augment.cutout": Field(int, low=0, high=32, default=0),
    "train.augment.num_ops": Field(int, low=0, high=10, default=0),
    "train.augment.magnitude": Field(float, low=0, high=10, default=0.0),
    "train.augment.ops": Field("names", choices=AUGMENT_OPS, default=list(AUGMENT_OPS)),
    "train.early_stopping.enabled": Field(bool, default=True),
    # Keras's EarlyStopping and ReduceLROnPlateau take these ranges; ReduceLROnPlateau refuses
    # factor >= 1 (a factor of 2 would double the rate at every plateau).
    "train.early_stopping.patience": Field(int, low=0),
    "train.early_stopping.min_delta": Field(float, low=0),
    "train.plateau.factor": Field(float, low=0, high=1, open_high=True),
    "train.plateau.patience": Field(int, low=0),
    "train.plateau.min_delta": Field(float, low=0),
    "train.plateau.min_lr": Field(float, low=0),
    "train.plateau.cooldown": Field(int, low=0),
    "checkpoint.enabled": Field(bool, resumable=True),
    "mesh.devices": Field(int, low=1, also=(-1,), resumable=True,
                          expected="-1 (every device) or a number of devices of at least 1"),
}

# The experiments' config (configs/study.py): runs named by config file, shared overrides.
STUDY_SCHEMA: dict[str, Field] = {
    "seed": Field(int, low=0),
    # Run configs by file name (configs/<name>.py); configs/study.py checks that each exists.
    "models": Field("names"),
    **{k: v for k, v in RUN_SCHEMA.items() if k.startswith("data.")},
    # None (auto): each run config's own.
    "data.train_on_val": Field("optional_bool"),
    "train.epochs": Field(int, low=1, also=(None,)),
    "train.batch_size": Field(int, low=1, also=(None,)),
    "train.learning_rate": Field(float, low=0, open_low=True, also=(None,)),
    "train.eval_batch_size": Field(int, low=1, also=(None,)),
}

_SPELLINGS = {"auto": None, "none": None, "true": True, "false": False, "1": True, "0": False}


def get(config: Mapping, dotted: str) -> Any:
  """The value at `dotted` ('train.plateau.factor'); ConfigError if the config lacks it."""
  node = config
  for name in dotted.split("."):
    if not isinstance(node, Mapping) or name not in node:
      raise ConfigError(f"the config has no field {dotted}: configs/default.py lists them all")
    node = node[name]
  return node


def validate(config: Mapping, schema: Mapping[str, Field] = RUN_SCHEMA) -> None:
  """Raises ConfigError naming the first field whose value `schema` does not allow, e.g.
  `config.train.plateau.factor=2.0: expected a number of at least 0 below 1`."""
  if isinstance(config, ml_collections.ConfigDict):
    config = config.to_dict()
  for dotted, field in schema.items():
    value = get(config, dotted)
    problem = field.problem(value)
    if problem:
      raise ConfigError(f"config.{dotted}={_show(value)}: {problem}")
  if schema is RUN_SCHEMA:
    _check_combinations(config)


def _check_combinations(config: Mapping) -> None:
  """The rules between fields of a run config, as one-line ConfigErrors."""
  train, model = config["train"], config["model"]
  _check_task(config)
  if train["compute_dtype"] != "float32" and model["name"] != "wrn":
    raise ConfigError(f"config.train.compute_dtype={train['compute_dtype']!r}: only "
                      "config.model.name=wrn computes in bfloat16; the study's models keep "
                      "Keras's float32 layers")
  if model["standardize"] and model["name"] != "wrn":
    raise ConfigError("config.model.standardize=True: only config.model.name=wrn standardizes "
                      "its input; the other models read [0, 1] pixels")
  if train["schedule"] != "plateau" and train["warmup_epochs"] >= train["epochs"]:
    raise ConfigError(f"config.train.warmup_epochs={train['warmup_epochs']!r}: expected fewer "
                      f"warm-up epochs than config.train.epochs={train['epochs']}")
  if model["name"] == "wrn" and (model["depth"] - 4) % 6:
    raise ConfigError(f"config.model.depth={model['depth']}: a Wide ResNet's depth is 6n+4 "
                      "(10, 16, 22, 28, 34, 40, ...)")


def _check_task(config: Mapping) -> None:
  """The rules of config.task=number: its model, sources, inputs; and no number model for digits."""
  task, model, data = config.get("task", "digit"), config["model"]["name"], config["data"]
  if task == "digit":
    if model == "multidigit":
      raise ConfigError("config.model.name='multidigit' reads whole house numbers: it needs "
                        "config.task=number")
    return
  if model != "multidigit":
    raise ConfigError(f"config.task='number': expected config.model.name=multidigit (the number "
                      f"reader), got {model!r}")
  if data["source"] not in NUMBER_SOURCES:
    raise ConfigError(f"config.data.source={data['source']!r}: whole house numbers come from "
                      f"photos; expected one of {', '.join(NUMBER_SOURCES)} with "
                      "config.task=number")
  if data["source"] == "synthetic" and data["use_extra"] and not data["path"]:
    raise ConfigError("config.data.use_extra=True: the synthetic photos have train and test "
                      "splits only; expected false with config.data.source=synthetic")
  if data["preprocess"] != "raw":
    raise ConfigError(f"config.data.preprocess={data['preprocess']!r}: the mask is made for 32x32 "
                      "digit crops; expected raw with config.task=number")
  if config["train"]["tta"]:
    raise ConfigError(f"config.train.tta={config['train']['tta']!r}: test-time shifts average one "
                      "softmax; expected 0 with config.task=number")
  numbers = data["numbers"]
  if numbers["margin_low"] > numbers["margin_high"]:
    raise ConfigError(f"config.data.numbers.margin_low={numbers['margin_low']!r}: expected at most "
                      f"config.data.numbers.margin_high={numbers['margin_high']!r}")


def _show(value: Any) -> str:
  if isinstance(value, (list, tuple)):
    return ",".join(map(str, value))
  return repr(value)


def parse_override(field: Field, dotted: str, text: str) -> Any:
  """The value a command-line text means for an 'optional_bool' or 'names' field."""
  if field.kind == "optional_bool":
    key = text.strip().lower()
    if key not in _SPELLINGS:
      raise ConfigError(f"config.{dotted}={text!r}: expected auto, true or false")
    return _SPELLINGS[key]
  # 'ann1,cnn2' as documented, and a Python list's spelling "['ann1', 'cnn2']" as well.
  parts = (part.strip().strip("'\"").strip() for part in text.strip("[]() ").split(","))
  return [part.lower() for part in parts if part]


def _special(schema: Mapping[str, Field]) -> dict[str, Field]:
  return {k: f for k, f in schema.items() if f.kind in ("optional_bool", "names")}


def split_overrides(argv: Sequence[str], schema: Mapping[str, Field]
                    ) -> tuple[list[str], dict[str, Any]]:
  """Takes the `--config.<field>=<text>` overrides of optional-boolean and list fields out of
  `argv` (ml-collections cannot parse 'auto' or 'ann1,cnn2'); returns the rest of argv and the
  parsed values by dotted field name. Raises ConfigError for a text the field cannot take."""
  special = _special(schema)
  rest, values = [], {}
  args = list(argv)
  i = 0
  while i < len(args):
    arg = args[i]
    match = re.match(r"^--?config\.([\w.]+)(?:=(.*))?$", arg)
    if match and match.group(1) in special:
      dotted, text = match.group(1), match.group(2)
      if text is None and i + 1 < len(args):
        i += 1
        text = args[i]
      values[dotted] = parse_override(special[dotted], dotted, text or "")
    else:
      rest.append(arg)
    i += 1
  return rest, values


def apply_overrides(config: ml_collections.ConfigDict, values: Mapping[str, Any]) -> None:
  """Sets the values `split_overrides` took out of argv on the parsed config. Raises
  ConfigError for a field the config lacks (a config file of another kind)."""
  for dotted, value in values.items():
    *parents, name = dotted.split(".")
    node = config
    for parent in parents:
      node = node.get(parent) if isinstance(node, ml_collections.ConfigDict) else None
    if not isinstance(node, ml_collections.ConfigDict) or name not in node:
      raise ConfigError(f"--config.{dotted}: the config has no such field")
    node[name] = value


def normalize(tree: dict, schema: Mapping[str, Field] = RUN_SCHEMA) -> dict:
  """A config dict (e.g. a saved config.json) with the documented text spellings of optional
  booleans ('auto', 'true', 'false') and name lists ('ann1,cnn2') turned into their types, and
  the fields added since it was written set to their `Field.default`. Other values are left as
  they are, for `validate` to judge."""
  tree = _copy(tree)
  for dotted, field in schema.items():
    *parents, name = dotted.split(".")
    node = tree
    for parent in parents:
      node = node.setdefault(parent, {}) if isinstance(node, dict) else {}
    if field.default is not None and isinstance(node, dict) and name not in node:
      node[name] = copy.deepcopy(field.default)
  for dotted, field in _special(schema).items():
    *parents, name = dotted.split(".")
    node = tree
    for parent in parents:
      node = node.get(parent, {}) if isinstance(node, dict) else {}
    if isinstance(node, dict) and isinstance(node.get(name), str):
      node[name] = parse_override(field, dotted, node[name])
  return tree


def _copy(tree: Any) -> Any:
  if isinstance(tree, Mapping):
    return {k: _copy(v) for k, v in tree.items()}
  return tree


def flat(tree: Mapping, prefix: str = "") -> dict[str, Any]:
  """{'train.plateau.factor': 0.5, ...}: every leaf of a nested config dict by dotted name."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      out.update(flat(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def resume_conflicts(saved: Mapping, new: Mapping,
                     schema: Mapping[str, Field] = RUN_SCHEMA) -> list[str]:
  """The fields that differ between a workdir's saved config and `new` and change what a run
  computes ('train.batch_size: 128 -> 64'). Resumable fields (`Field.resumable`) are left out;
  so are fields the saved config predates, when `new` holds their default."""
  saved, new = flat(normalize(dict(saved), schema)), flat(normalize(dict(new), schema))
  conflicts = []
  for dotted, field in schema.items():
    # A per-step schedule spans the run's epochs: more or fewer of them change its every rate.
    fixed_length = dotted == "train.epochs" and saved.get("train.schedule", "plateau") != "plateau"
    if field.resumable and not fixed_length:
      continue
    if dotted in saved and saved[dotted] != new.get(dotted):
      conflicts.append(f"{dotted}: {_show(saved[dotted])} -> {_show(new.get(dotted))}")
  return conflicts


def to_dict(config: ml_collections.ConfigDict) -> dict:
  """The config as plain JSON-ready data (what a workdir's config.json holds)."""
  return _json_ready(config.to_dict())


def _json_ready(value: Any) -> Any:
  if isinstance(value, Mapping):
    return {k: _json_ready(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_json_ready(v) for v in value]
  return value


def from_dict(tree: Mapping, schema: Mapping[str, Field] = RUN_SCHEMA) -> ml_collections.ConfigDict:
  """A ConfigDict from a saved config.json, its legacy spellings normalized and validated."""
  config = ml_collections.ConfigDict(normalize(dict(tree), schema))
  validate(config, schema)
  return config
