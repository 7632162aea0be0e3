"""The config schema: every field's type, allowed values and range, checked in one place.

`validate(config)` runs before anything is written and before JAX starts, so a bad value is one
line on stderr within a second. The schema also says which fields may differ when a workdir is
resumed (`Field.resumable`): those change how a run computes (chunk sizes, devices, fused or
plain layers, checkpointing, how many epochs), never what it computes. And it says when a field
is read at all (`Field.applies_to`): a new run that sets a field away from configs/default.py
where its model, optimizer, schedule, source or task does not read it is refused in one line
naming the field and the setting it needs, rather than training as if it were not set. Saved
configs (`from_dict`) are not held to this, so older runs still resume and predict.

Three kinds of field have a command-line spelling that ml-collections cannot parse by itself,
kept as documented: an optional boolean (`auto|true|false`, None meaning auto), an optional
whole number (`none` or a number) and a list of names (`ann1,cnn2`). `split_overrides` takes
those out of argv before absl parses the flags and `apply_overrides` sets them after;
`normalize` reads the same spellings from a saved config.json. Fields since renamed (`RENAMED`:
config.model's flat options, now config.model.wrn.* and config.model.reader.*) keep their old
spelling on the command line, in a config file (`move_renamed`) and in a saved config.json,
which compares equal to its new form. No JAX here: `validate` asks the run's task for its own
rules (`svhn_jax.tasks`, `Task.check_config`), importing that task's module on first use.

A run's length, as big_vision's `total_epochs`/`total_steps`: exactly one of `train.epochs` and
`train.total_steps`, the other None (`--config.train.epochs=none --config.train.total_steps=3000`).
Epochs suit a fixed dataset and Keras's semantics: the study's configs, whose early stopping and
plateau controller act once an epoch, and whose every epoch sees every sample (the last batch is
the remainder). Steps suit a recipe meant to hold across data sizes (a schedule, its warm-up and
the regularization are tuned per optimizer step, and 3,000 or 96,000 crops then get the same
number of updates): each epoch's samples are walked in the same seeded order, full batches only
(the last partial batch of an epoch is dropped, as big_vision and tf.data's drop_remainder do:
every step the same shape, one compiled step), across epoch boundaries. Its warm-up may be
`train.warmup_steps` instead of `train.warmup_epochs` (one of them), and it validates and saves
a checkpoint every `train.eval_every_steps` steps (None: once an epoch, n // batch_size steps)
and after its last step. Early stopping's and the plateau controller's patience count
validations (epochs, in an epoch-counted run).
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from svhn_jax import datasets, models, tasks
from svhn_jax.errors import ConfigError
from svhn_jax.models import reader_sizes

# The models `svhn_jax.models` registers (a config may also name a 'module:attribute' spec).
MODEL_NAMES = models.REGISTRY.names()
# The sizes of the number reader (`svhn_jax.models.number_reader`).
NUMBER_MODEL_SIZES = tuple(reader_sizes.SIZES)
# The registered data sources (`svhn_jax.datasets.REGISTRY`); a config may also name one by its
# 'module:attribute' spec.
DATA_SOURCES = datasets.REGISTRY.names()
COLORS = ("grey", "rgb")
PREPROCESS_MODES = ("raw", "mask")
# auto: fused layers (svhn_jax/fast_layers.py) on the CPU, plain Flax layers elsewhere.
IMPLS = ("auto", "fast", "flax")
# muon: Muon on the convolution filters, SGD with Nesterov momentum on the rest (`recipes`).
OPTIMIZERS = ("adam", "adamw", "sgd", "muon")
# plateau: Keras's ReduceLROnPlateau on val_loss, per epoch (the study's) | cosine: linear
# warm-up then cosine decay to 0, per step | onecycle: linear warm-up then linear decay to 0.
SCHEDULES = ("plateau", "cosine", "onecycle")
# auto: bfloat16 on GPU and TPU, float32 on the CPU (`recipes.compute_dtype`), resolved when a run
# starts and saved in its config.json.
COMPUTE_DTYPES = ("auto", "float32", "bfloat16")
# The generator versions `svhn_jax.datasets.synthetic` keeps: 1, the first (easy); 2, harder;
# 3, version 2 with more fonts, calibrated to SVHN; 4, version 3 with fewer unreadable crops;
# 5, version 4 with more blur, calibrated to SVHN (the default).
SYNTHETIC_VERSIONS = (1, 2, 3, 4, 5)
# The generated whole photos' styles (`svhn_jax.datasets.synthetic_photos.STYLES`): number, the
# number task's (the number fills much of the photo); scene, the locator's (a smaller number
# anywhere in a larger photo, more clutter).
PHOTO_STYLES = ("number", "scene")
# RandAugment's operations in `svhn_jax.augment` (a test holds the two lists equal).
AUGMENT_OPS = ("identity", "autocontrast", "equalize", "invert", "rotate", "posterize",
               "solarize", "color", "contrast", "brightness", "sharpness", "shear_x", "shear_y",
               "translate_x", "translate_y")


@dataclasses.dataclass(frozen=True)
class Not:
  """In a `Field.applies_to` condition: any value but `values`."""

  values: tuple[Any, ...]

  def __contains__(self, value: Any) -> bool:
    return value not in self.values


# `Field.default` of a field that a config.json written before it existed holds as None.
NONE_BY_DEFAULT = type("NoneByDefault", (), {"__repr__": lambda self: "NONE_BY_DEFAULT"})()


@dataclasses.dataclass(frozen=True)
class Declares:
  """In a `Field.applies_to` condition on a field naming an extension (config.task,
  config.data.source): the entries of `registry`, registered or named by spec, whose
  `attribute` is `value` (or, for a tuple, holds it), so that a new task or source declares what
  it reads instead of config.py listing names; the registered ones are `values`, for messages.
  Looking one up imports its module."""

  registry: Any
  attribute: str
  value: Any

  def __contains__(self, name: Any) -> bool:
    try:
      declared = getattr(self.registry.get(name), self.attribute, None)
    except ConfigError:
      return False
    return self.value in declared if isinstance(declared, tuple) else declared == self.value

  @property
  def values(self) -> tuple[str, ...]:
    return tuple(name for name in self.registry.names() if name in self)

  def __iter__(self):
    return iter(self.values)


@dataclasses.dataclass(frozen=True)
class Field:
  """One config field. `kind` is int, float, bool, str, 'optional_bool', 'optional_int' (a
  whole number or None, `none` on the command line) or 'names' (a list of strings); `low`/`high` bound numbers (inclusive unless `open_high`); `choices` bound strings
  (and each name of a 'names' field); `also` lists extra allowed values outside the range.

  `applies_to`: when a run reads the field, as alternatives ({dotted field: allowed values}, the
  values a tuple or `Not`); the field is read when every field of one alternative holds one of
  its values, and always when there are none. `ignored_unread`: a value the run does not read is
  documented as ignored rather than refused (the generator's sizes, which a config file sets for
  its own data and a user may point elsewhere with --config.data.source or data.path).
  `registry`: for a str field naming an extension, the `svhn_jax.registry.Registry` of them."""

  kind: Any
  low: float | None = None
  high: float | None = None
  open_low: bool = False
  open_high: bool = False
  choices: tuple[str, ...] | None = None
  also: tuple[Any, ...] = ()
  resumable: bool = False
  expected: str = ""
  # The value a config.json written before the field existed is read with (None: there is
  # none; NONE_BY_DEFAULT: None).
  default: Any = None
  applies_to: tuple[Mapping[str, Any], ...] = ()
  ignored_unread: bool = False
  # A `svhn_jax.registry.Registry` whose names (or a 'module:attribute' spec) a str field takes.
  registry: Any = None

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
    if self.kind == "optional_int":
      if value is None:
        return None
      if isinstance(value, bool) or not isinstance(value, int):
        return f"expected none or {self._range('a whole number')}"
      problem = self._range_problem(value, "a whole number")
      return problem and f"expected none or {problem.removeprefix('expected ')}"
    if self.kind is str:
      if not isinstance(value, str):
        return "expected text"
      if self.registry is not None:
        return None if self.registry.accepts(value) else f"expected {self.registry.expected()}"
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


# When fields are read (`Field.applies_to`), by what reads them: svhn_jax/models/ (each model
# its own block), recipes.py, steps.py, train.py and svhn_jax/datasets/.
# A model reads its own block (`svhn_jax.models.ModelSpec.block`); one without a block reads the
# shared config.model.impl.
_WRN = ({"model.name": Declares(models.REGISTRY, "block", "wrn")},)
_READER = ({"model.name": Declares(models.REGISTRY, "block", "reader")},)
_AIRBENCH = ({"model.name": Declares(models.REGISTRY, "block", "airbench")},)
_MUON = ({"train.optimizer": ("muon",)},)
_STUDY_MODELS = ({"model.name": Declares(models.REGISTRY, "block", None)},)
# A task reads the config.data fields of its `data_kind` (`svhn_jax.tasks.base.Task`), a source
# those it declares (`svhn_jax.datasets.base.Source`: its colours, SVHN's own splits).
# The number task's crops read config.data.numbers; it and the locator (whole photos) read the
# photos' colour and how validation photos are carved.
_NUMBERS = ({"task": Declares(tasks.REGISTRY, "data_kind", "number photos")},)
_WHOLE_PHOTOS = ({"task": Declares(tasks.REGISTRY, "data_kind", "whole photos")},)
_PHOTOS = (*_NUMBERS, *_WHOLE_PHOTOS)
_COLOUR = ({"data.source": Declares(datasets.REGISTRY, "colors", "rgb")}, *_PHOTOS)
_OFFICIAL_OR_NUMBERS = ({"data.source": Declares(datasets.REGISTRY, "official_splits", True)},
                        *_PHOTOS)
_CARVED = (*_OFFICIAL_OR_NUMBERS, {"data.train_on_val": (True,)})
_GENERATED = ({"data.source": ("synthetic",), "data.path": ("",)},)
_GENERATED_CROPS = ({"task": Declares(tasks.REGISTRY, "data_kind", "digit crops"),
                     "data.source": ("synthetic",),
                     "data.path": ("",)},)
_GENERATED_PHOTOS = tuple({**alternative, "data.source": ("synthetic",), "data.path": ("",)}
                          for alternative in _PHOTOS)
_RAND_AUGMENT = ({"train.augment.num_ops": Not((0,))},)
_EARLY_STOPPING = ({"train.early_stopping.enabled": (True,)},)
_PLATEAU = ({"train.schedule": ("plateau",)},)

# Every field of a run config (configs/default.py).
RUN_SCHEMA: dict[str, Field] = {
    "seed": Field(int, low=0),
    # What the run learns: a name of `svhn_jax.tasks.REGISTRY` (digit: one centred digit per
    # crop, the study's; number: whole house numbers) or a 'module:attribute' spec. Config files
    # written before the task existed trained digits.
    "task": Field(str, registry=tasks.REGISTRY, default=tasks.DEFAULT),
    "model.name": Field(str, registry=models.REGISTRY),
    # The study's layers only: the WRN's and the number reader's are plain Flax.
    "model.impl": Field(str, choices=IMPLS, resumable=True, applies_to=_STUDY_MODELS),
    # Wide ResNets (model.name=wrn) only; WRN-depth-width, Zagoruyko & Komodakis 2016. Flat
    # (model.depth, ...) before the models package: `RENAMED` reads those spellings.
    "model.wrn.depth": Field(int, low=10, default=28, applies_to=_WRN),
    "model.wrn.width": Field(int, low=1, default=2, applies_to=_WRN),
    "model.wrn.dropout": Field(float, low=0, high=1, open_high=True, default=0.0,
                               applies_to=_WRN),
    # Per-image standardization of the WRN's input (models.wrn.PerImageStandardization).
    "model.wrn.standardize": Field(bool, default=False, applies_to=_WRN),
    # The number reader (model.name=multidigit) only: small (CPU), Goodfellow et al.'s (paper),
    # residual ones (residual for a CPU, residual_paper for a GPU), or column readers read with
    # CTC (ctc for a CPU, ctc_paper for a GPU; models/reader_sizes.py).
    "model.reader.size": Field(str, choices=NUMBER_MODEL_SIZES, default="small",
                               applies_to=_READER),
    "model.reader.dropout": Field(float, low=0, high=1, open_high=True, default=0.0,
                                  applies_to=_READER),
    # airbench's net (model.name=airbench) only: the widths of its three blocks, its BatchNorm
    # momentum (flax's: the old running value's weight; airbench's BatchNorm(momentum=0.6) is
    # Torch's 0.4, flax's 0.6), and the patch-whitening first layer's kernel side and eps.
    "model.airbench.block1": Field(int, low=1, default=64, applies_to=_AIRBENCH),
    "model.airbench.block2": Field(int, low=1, default=256, applies_to=_AIRBENCH),
    "model.airbench.block3": Field(int, low=1, default=256, applies_to=_AIRBENCH),
    "model.airbench.bn_momentum": Field(float, low=0, high=1, open_high=True, default=0.6,
                                        applies_to=_AIRBENCH),
    "model.airbench.whiten_kernel": Field(int, low=1, high=9, default=2, applies_to=_AIRBENCH),
    "model.airbench.whiten_eps": Field(float, low=0, open_low=True, default=5e-4,
                                       applies_to=_AIRBENCH),
    "data.source": Field(str, registry=datasets.REGISTRY),
    # Where the data lives may change on resume; its fingerprint must not (see `data`).
    "data.path": Field(str, resumable=True),
    "data.cache_dir": Field(str, resumable=True),
    "data.preprocess": Field(str, choices=PREPROCESS_MODES),
    # The study's file and the generated crops are grey; SVHN's own files and photos in colour.
    "data.color": Field(str, choices=COLORS, default="grey", applies_to=_COLOUR),
    "data.use_extra": Field(bool, default=False, applies_to=_OFFICIAL_OR_NUMBERS),
    # The validation crops carved from the training ones: by SVHN's own sources and the number
    # task always, by the others with train_on_val.
    "data.val_size": Field(int, low=1, default=6_000, applies_to=_CARVED),
    "data.split_seed": Field(int, low=0, default=0, applies_to=_CARVED),
    # The generated data's, made only when no data.path is given; the number task's photos
    # come in train and test splits of the generator's own version. The sizes and seed are
    # ignored, not refused, elsewhere: configs/demo.py and numbers.py set them for their own
    # data, which --config.data.source or data.path may replace.
    "data.synthetic.train": Field(int, low=1, applies_to=_GENERATED, ignored_unread=True),
    "data.synthetic.val": Field(int, low=1, applies_to=_GENERATED_CROPS,
                                 ignored_unread=True),
    "data.synthetic.test": Field(int, low=1, applies_to=_GENERATED, ignored_unread=True),
    "data.synthetic.seed": Field(int, low=0, applies_to=_GENERATED, ignored_unread=True),
    # The generated whole photos' style (tasks on photos; PHOTO_STYLES); ignored, not refused,
    # elsewhere, as the sizes. Config files written before it existed made "number" photos.
    "data.synthetic.photo_style": Field(str, choices=PHOTO_STYLES, default="number",
                                        applies_to=_GENERATED_PHOTOS, ignored_unread=True),
    # Config files written before version 2 existed used version 1.
    "data.synthetic.version": Field(int, low=1, high=max(SYNTHETIC_VERSIONS), default=1,
                                    applies_to=_GENERATED_CROPS),
    # Always read: SVHN's own sources and the number task already train on all but the carved
    # validation crops, which is what true asks for.
    "data.train_on_val": Field(bool, default=False),
    # task=number: each number's box widened by a margin per side, as a share of its width and
    # height; training photos draw theirs uniformly in [margin_low, margin_high], evaluation
    # uses eval_margin (Goodfellow's 0.15); jitter: random 54x54 windows of the 64x64 crops in
    # training rather than the centre one.
    "data.numbers.margin_low": Field(float, low=0, default=0.15, applies_to=_NUMBERS),
    "data.numbers.margin_high": Field(float, low=0, default=1.0, applies_to=_NUMBERS),
    "data.numbers.eval_margin": Field(float, low=0, default=0.15, applies_to=_NUMBERS),
    "data.numbers.jitter": Field(bool, default=True, applies_to=_NUMBERS),
    # task=number: a crop narrower than min_aspect x its height is widened to it about its centre
    # (house_numbers.number_box; 0: never), training, validation, test and --box alike.
    "data.numbers.min_aspect": Field(float, low=0, default=0.0, applies_to=_NUMBERS),
    # task=locate: zoomed views of each training photo's number besides the whole photo
    # (datasets/located.py; 0: none).
    "data.locate.zoom_views": Field(int, low=0, high=8, default=0, applies_to=_WHOLE_PHOTOS),
    # The run's length: exactly one of epochs and total_steps (the other None; `none` on the
    # command line). A step-counted run drops each epoch's last partial batch (big_vision's
    # way): every step has train.batch_size samples. More epochs or steps may be asked on resume
    # (only with the plateau schedule: a per-step schedule spans the run's length).
    "train.epochs": Field("optional_int", low=1, resumable=True),
    "train.total_steps": Field("optional_int", low=1, resumable=True, default=NONE_BY_DEFAULT),
    # Step-counted runs: validate (and checkpoint) every eval_every_steps steps and after the
    # last; None: once an epoch (train-set size // batch_size steps).
    "train.eval_every_steps": Field("optional_int", low=1, default=NONE_BY_DEFAULT,
                                    applies_to=({"train.total_steps": Not((None,))},)),
    "train.batch_size": Field(int, low=1),
    "train.learning_rate": Field(float, low=0, open_low=True),
    "train.adam_eps": Field(float, low=0, open_low=True,
                            applies_to=({"train.optimizer": ("adam", "adamw")},)),
    "train.eval_batch_size": Field(int, low=1, resumable=True),
    "train.scan_epoch": Field("optional_bool", resumable=True),
    "train.optimizer": Field(str, choices=OPTIMIZERS, default="adam"),
    # SGD's; with muon, that of the SGD on the parameters other than convolution filters.
    "train.momentum": Field(float, low=0, high=1, open_high=True, default=0.9,
                            applies_to=({"train.optimizer": ("sgd", "muon")},)),
    # optimizer=muon only: Muon's peak rate on the convolution filters (the schedule's shape as
    # train.learning_rate's), its Nesterov momentum, Newton-Schulz steps, and whether each step
    # rescales a filter bank to norm sqrt(filters) first (airbench's Muon does).
    "train.muon.learning_rate": Field(float, low=0, open_low=True, default=0.24,
                                      applies_to=_MUON),
    "train.muon.momentum": Field(float, low=0, high=1, open_high=True, default=0.6,
                                 applies_to=_MUON),
    "train.muon.ns_steps": Field(int, low=1, high=10, default=3, applies_to=_MUON),
    "train.muon.normalize": Field(bool, default=True, applies_to=_MUON),
    # optimizer=muon only: the biases' (BatchNorm's, the whitening layer's) rate over
    # train.learning_rate, their L2 weight decay divided by it (the same decay per step).
    "train.bias_lr_multiplier": Field(float, low=0, open_low=True, default=1.0,
                                      applies_to=_MUON),
    # Every optimizer's: an L2 gradient for adam and sgd, decoupled for adamw.
    "train.weight_decay": Field(float, low=0, default=0.0),
    "train.schedule": Field(str, choices=SCHEDULES, default="plateau"),
    "train.warmup_epochs": Field(float, low=0, default=0.0,
                                 applies_to=({"train.schedule": ("cosine", "onecycle")},)),
    # The warm-up in steps instead (None: warmup_epochs'); at most one of the two set.
    "train.warmup_steps": Field("optional_int", low=0, default=NONE_BY_DEFAULT,
                                applies_to=({"train.schedule": ("cosine", "onecycle")},)),
    "train.label_smoothing": Field(float, low=0, high=1, open_high=True, default=0.0),
    "train.ema_decay": Field(float, low=0, high=1, open_high=True, default=0.0),
    # The study's models keep Keras's float32 layers; the number reader computes in float32.
    # auto is resolved when a run starts (`recipes.compute_dtype`); config.json holds the result,
    # and a resumed run keeps it. Runs saved before auto existed computed in float32.
    "train.compute_dtype": Field(str, choices=COMPUTE_DTYPES, default="float32",
                                 applies_to=(*_WRN, *_AIRBENCH)),
    # Lookahead (Zhang et al. 2019; airbench94's schedule): every `every` steps (0: off) the slow
    # weights move to decay * slow + (1 - decay) * fast, decay ramped as decay * (t / T)^3, and
    # the fast weights restart from them; the last step ends on the slow weights.
    "train.lookahead.every": Field(int, low=0, default=0),
    "train.lookahead.decay": Field(float, low=0, high=1, open_high=True, default=0.7737809375,
                                   applies_to=({"train.lookahead.every": Not((0,))},)),
    # Validation on the first val_examples crops of the validation split (0: all of it).
    "train.val_examples": Field(int, low=0, resumable=True, default=0),
    # Test-time augmentation: average the softmax over shifts of up to tta pixels (0: off).
    "train.tta": Field(int, low=0, high=8, resumable=True, default=0),
    "train.augment.translate": Field(int, low=0, high=16, default=0),
    "train.augment.cutout": Field(int, low=0, high=32, default=0),
    "train.augment.num_ops": Field(int, low=0, high=10, default=0),
    # RandAugment's, read only when it draws operations.
    "train.augment.magnitude": Field(float, low=0, high=10, default=0.0, applies_to=_RAND_AUGMENT),
    "train.augment.ops": Field("names", choices=AUGMENT_OPS, default=list(AUGMENT_OPS),
                               applies_to=_RAND_AUGMENT),
    # augment.distort's ranges (0: off).
    "train.augment.distort.scale": Field(float, low=0, high=1, default=0.0),
    "train.augment.distort.aspect": Field(float, low=0, high=1, default=0.0),
    "train.augment.distort.rotation": Field(float, low=0, high=45, default=0.0),
    "train.augment.distort.shear": Field(float, low=0, high=1, default=0.0),
    "train.augment.distort.contrast": Field(float, low=0, high=1, open_high=True, default=0.0),
    "train.augment.distort.blur": Field(float, low=0, high=2, default=0.0),
    "train.augment.distort.color": Field(float, low=0, high=1, open_high=True, default=0.0),
    "train.early_stopping.enabled": Field(bool, default=True),
    # Keras's EarlyStopping and ReduceLROnPlateau take these ranges; ReduceLROnPlateau refuses
    # factor >= 1 (a factor of 2 would double the rate at every plateau).
    "train.early_stopping.patience": Field(int, low=0, applies_to=_EARLY_STOPPING),
    "train.early_stopping.min_delta": Field(float, low=0, applies_to=_EARLY_STOPPING),
    "train.plateau.factor": Field(float, low=0, high=1, open_high=True, applies_to=_PLATEAU),
    "train.plateau.patience": Field(int, low=0, applies_to=_PLATEAU),
    "train.plateau.min_delta": Field(float, low=0, applies_to=_PLATEAU),
    "train.plateau.min_lr": Field(float, low=0, applies_to=_PLATEAU),
    "train.plateau.cooldown": Field(int, low=0, applies_to=_PLATEAU),
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
    "train.total_steps": Field(int, low=1, also=(None,)),
    "train.batch_size": Field(int, low=1, also=(None,)),
    "train.learning_rate": Field(float, low=0, open_low=True, also=(None,)),
    "train.eval_batch_size": Field(int, low=1, also=(None,)),
}

_SPELLINGS = {"auto": None, "none": None, "true": True, "false": False, "1": True, "0": False}

# Fields renamed since runs were saved, old dotted name -> new: config.model's flat options went
# into per-model blocks with the models package. A saved config.json (`normalize`), a config file
# (`move_renamed`) and the command line (`split_overrides`) may still spell them the old way.
RENAMED: dict[str, str] = {
    "model.depth": "model.wrn.depth",
    "model.width": "model.wrn.width",
    "model.standardize": "model.wrn.standardize",
    "model.size": "model.reader.size",
    # model.reader.dropout where config.model.name is the reader (`renamed`).
    "model.dropout": "model.wrn.dropout",
}
# The old names whose new one depends on config.model.name: (old, model name) -> new.
_RENAMED_FOR_MODEL = {("model.dropout", "multidigit"): "model.reader.dropout"}


def renamed(dotted: str, model_name: Any) -> str:
  """The field an old spelling `dotted` of `RENAMED` now is, for a run of model `model_name`."""
  key = (dotted, model_name.lower() if isinstance(model_name, str) else model_name)
  return _RENAMED_FOR_MODEL.get(key, RENAMED[dotted])


def _move_renamed_tree(tree: dict) -> dict:
  """`tree` (a config dict, changed in place) with each old spelling of `RENAMED` moved to its
  new field, over the value there (a config file's flat setting over default.py's block)."""
  model = tree.get("model")
  if not isinstance(model, dict):
    return tree
  for dotted in RENAMED:
    name = dotted.split(".", 1)[1]
    if name in model and not isinstance(model[name], dict):
      value = model.pop(name)
      *parents, leaf = renamed(dotted, model.get("name")).split(".")
      node = tree
      for parent in parents:
        node = node.setdefault(parent, {})
      node[leaf] = value
  return tree


def move_renamed(config: ml_collections.ConfigDict) -> None:
  """Moves a config file's old spellings of `RENAMED` (`config.model.depth = 16`) to their new
  fields, in place."""
  model = config.get("model")
  if not isinstance(model, ml_collections.ConfigDict):
    return
  with config.unlocked():
    for dotted in RENAMED:
      name = dotted.split(".", 1)[1]
      if name in model and not isinstance(model[name], ml_collections.ConfigDict):
        value = model[name]
        del model[name]
        *parents, leaf = renamed(dotted, model.get("name")).split(".")
        node = config
        for parent in parents:
          if parent not in node:
            node[parent] = ml_collections.ConfigDict()
          node = node[parent]
        node[leaf] = value


def _refuse_renamed(config: Mapping) -> None:
  model = config.get("model")
  for dotted in RENAMED:
    name = dotted.split(".", 1)[1]
    if isinstance(model, Mapping) and name in model and not isinstance(model[name], Mapping):
      new = renamed(dotted, model.get("name"))
      raise ConfigError(f"config.{dotted}: now config.{new}; set that (`config.move_renamed` "
                        "reads a config file's old spelling)")


def get(config: Mapping, dotted: str) -> Any:
  """The value at `dotted` ('train.plateau.factor'); ConfigError if the config lacks it."""
  node = config
  for name in dotted.split("."):
    if not isinstance(node, Mapping) or name not in node:
      raise ConfigError(f"the config has no field {dotted}: configs/default.py lists them all")
    node = node[name]
  return node


def validate(config: Mapping, schema: Mapping[str, Field] = RUN_SCHEMA, *,
             new_run: bool = True) -> None:
  """Raises ConfigError naming the first field whose value `schema` does not allow, e.g.
  `config.train.plateau.factor=2.0: expected a number of at least 0 below 1`; for a run config
  also a rule between fields broken and, for a `new_run`, a field set where the run does not
  read it (`refuse_unread`). False for a saved config.json: an older run may hold such a value,
  and still resumes and predicts."""
  if isinstance(config, ml_collections.ConfigDict):
    config = config.to_dict()
  if schema is RUN_SCHEMA:
    _refuse_renamed(config)
  for dotted, field in schema.items():
    value = get(config, dotted)
    problem = field.problem(value)
    if problem:
      raise ConfigError(f"config.{dotted}={_show(value)}: {problem}")
  if schema is RUN_SCHEMA:
    _check_combinations(config)
    if new_run:
      refuse_unread(config)


def applies(field: Field, values: Mapping[str, Any]) -> bool:
  """Whether a run of the flat config `values` ({'train.optimizer': 'sgd', ...}) reads `field`
  (`Field.applies_to`)."""
  return not field.applies_to or any(
      all(values.get(dotted) in allowed for dotted, allowed in when.items())
      for when in field.applies_to)


def unread(values: Mapping[str, Any], schema: Mapping[str, Field] = RUN_SCHEMA) -> set[str]:
  """The fields of `schema` a run of the flat config `values` does not read, whatever their
  value."""
  return {dotted for dotted, field in schema.items() if not applies(field, values)}


def default_values() -> dict[str, Any]:
  """configs/default.py's values, flat by dotted name: what a field left unset holds."""
  from configs import default  # it imports this module
  return flat(default.get_config().to_dict())


def refuse_unread(config: Mapping, baseline: Mapping[str, Any] | None = None) -> None:
  """Raises ConfigError for the first field of run `config` set away from `baseline` (flat;
  default: `default_values`) that the run does not read, unless `Field.ignored_unread`, e.g.
  `config.train.momentum=0.95: only read with config.train.optimizer=sgd (this run has
  config.train.optimizer=adam); remove it or set config.train.optimizer=sgd`."""
  if isinstance(config, ml_collections.ConfigDict):
    config = config.to_dict()
  values = flat(config)
  baseline = default_values() if baseline is None else baseline
  for dotted in sorted(unread(values), key=list(RUN_SCHEMA).index):
    if (dotted in baseline and values[dotted] != baseline[dotted]
        and not RUN_SCHEMA[dotted].ignored_unread):
      raise ConfigError(unread_message(dotted, values))


def unread_message(dotted: str, values: Mapping[str, Any]) -> str:
  """The line that refuses `dotted`, set in the flat config `values` of a run that does not
  read it: the settings it is read with, and this run's."""
  clauses = [" and ".join(f"config.{name}{_condition(allowed)}" for name, allowed in when.items())
             for when in RUN_SCHEMA[dotted].applies_to]
  named = dict.fromkeys(name for when in RUN_SCHEMA[dotted].applies_to for name in when)
  has = ", ".join(f"config.{name}={_spelling(values.get(name))}" for name in named)
  return (f"config.{dotted}={_show(values[dotted])}: only read with {', or with '.join(clauses)} "
          f"(this run has {has}); remove it or set {clauses[0]}")


def _condition(allowed: Any) -> str:
  if isinstance(allowed, Not):
    return f" other than {' or '.join(map(_spelling, allowed.values))}"
  return f"={' or '.join(map(_spelling, allowed))}"


def _spelling(value: Any) -> str:
  """A value as the command line spells it ('' for an empty text)."""
  return "''" if value == "" else _show(value).strip("'")


def _check_combinations(config: Mapping) -> None:
  """The rules between fields of a run config, as one-line ConfigErrors."""
  train, model = config["train"], config["model"]
  # The task's own rules (its models, sources, inputs): `svhn_jax.tasks.base.Task.check_config`.
  tasks.check_config(config)
  _check_length(train)
  if model["name"] == "wrn" and (model["wrn"]["depth"] - 4) % 6:
    raise ConfigError(f"config.model.wrn.depth={model['wrn']['depth']}: a Wide ResNet's depth "
                      "is 6n+4 (10, 16, 22, 28, 34, 40, ...)")


def _check_length(train: Mapping) -> None:
  """The run's length and warm-up: each given in epochs or in steps, one of the two."""
  epochs, total = train["epochs"], train["total_steps"]
  if (epochs is None) == (total is None):
    raise ConfigError(f"config.train.epochs={_spelling(epochs)} and config.train.total_steps="
                      f"{_spelling(total)}: expected exactly one of them (the run's length in "
                      "epochs or in steps), the other none")
  if train["schedule"] == "plateau":
    return
  warmup_steps = train["warmup_steps"]
  if warmup_steps is not None and train["warmup_epochs"]:
    raise ConfigError(f"config.train.warmup_steps={warmup_steps} and config.train.warmup_epochs="
                      f"{train['warmup_epochs']!r}: expected the warm-up in one of them, the "
                      "other none (steps) or 0 (epochs)")
  if epochs is not None and train["warmup_epochs"] >= epochs:
    raise ConfigError(f"config.train.warmup_epochs={train['warmup_epochs']!r}: expected fewer "
                      f"warm-up epochs than config.train.epochs={epochs}")
  if total is not None and warmup_steps is not None and warmup_steps >= total:
    raise ConfigError(f"config.train.warmup_steps={warmup_steps}: expected fewer warm-up steps "
                      f"than config.train.total_steps={total}")


def _show(value: Any) -> str:
  if isinstance(value, (list, tuple)):
    return ",".join(map(str, value))
  return repr(value)


def parse_override(field: Field, dotted: str, text: str) -> Any:
  """The value a command-line text means for an 'optional_bool', 'optional_int' or 'names'
  field."""
  if field.kind == "optional_int":
    key = text.strip().lower()
    if key == "none":
      return None
    try:
      return int(key)
    except ValueError:
      raise ConfigError(f"config.{dotted}={text!r}: expected none or a whole number") from None
  if field.kind == "optional_bool":
    key = text.strip().lower()
    if key not in _SPELLINGS:
      raise ConfigError(f"config.{dotted}={text!r}: expected auto, true or false")
    return _SPELLINGS[key]
  # 'ann1,cnn2' as documented, and a Python list's or tuple's spelling "['ann1', 'cnn2']".
  stripped = text.strip()
  if stripped.startswith(("[", "(")):
    try:
      value = ast.literal_eval(stripped)
    except (ValueError, SyntaxError):
      value = None
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
      raise ConfigError(f"config.{dotted}={text!r}: expected names separated by commas, or a "
                        "Python list of quoted names such as ['a','b']")
    parts = [v.strip() for v in value]
  else:
    parts = [part.strip().strip("'\"").strip() for part in stripped.split(",")]
  if any(not part or any(c in part for c in "[](){},'\" ") for part in parts):
    raise ConfigError(f"config.{dotted}={text!r}: expected names separated by commas, with no "
                      "empty name or stray bracket")
  return [part.lower() for part in parts]


def _special(schema: Mapping[str, Field]) -> dict[str, Field]:
  return {k: f for k, f in schema.items() if f.kind in ("optional_bool", "optional_int", "names")}


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
    if match and match.group(1) in RENAMED and schema is RUN_SCHEMA:
      # An old spelling (`--config.model.depth=16`): its value parsed as the new field's, set
      # by `apply_overrides` where config.model.name says which field that is.
      dotted, text = match.group(1), match.group(2)
      field = RUN_SCHEMA[RENAMED[dotted]]
      if text is None and field.kind is not bool and i + 1 < len(args):
        i += 1
        text = args[i]
      values[dotted] = _parse_scalar(field, dotted, "true" if text is None else text)
    elif match and match.group(1) in special:
      dotted, text = match.group(1), match.group(2)
      if text is None and i + 1 < len(args):
        i += 1
        text = args[i]
      values[dotted] = parse_override(special[dotted], dotted, text or "")
    else:
      rest.append(arg)
    i += 1
  _refuse_both_spellings(values, rest)
  return rest, values


def _refuse_both_spellings(values: Mapping[str, Any], rest: Sequence[str]) -> None:
  """ConfigError when an old spelling of `RENAMED` and its new field are both overridden: one
  of them would silently win."""
  for old in values:
    if old not in RENAMED:
      continue
    new = {RENAMED[old], *(v for (k, _), v in _RENAMED_FOR_MODEL.items() if k == old)}
    both = [arg for arg in rest
            if re.match(r"^--?config\.([\w.]+)", arg) and re.match(
                r"^--?config\.([\w.]+)", arg).group(1) in new]
    if both:
      given = both[0].split("=", 1)[0].lstrip("-")
      raise ConfigError(f"--config.{old} and --{given}: the same field twice, under its old "
                        f"and its new name; give only --{given}")


def _parse_scalar(field: Field, dotted: str, text: str) -> Any:
  """A command-line text as a value of an int, float, bool or str `field`."""
  try:
    if field.kind is bool:
      value = _SPELLINGS.get(text.strip().lower())
      if value is None:
        raise ValueError(text)
      return value
    return field.kind(text)
  except ValueError:
    kind = {bool: "true or false", int: "a whole number", float: "a number"}[field.kind]
    raise ConfigError(f"config.{dotted}={text!r}: expected {kind}") from None


def apply_overrides(config: ml_collections.ConfigDict, values: Mapping[str, Any]) -> None:
  """Sets the values `split_overrides` took out of argv on the parsed config (an old spelling of
  `RENAMED` on its new field, config.model.name's). Raises ConfigError for a field the config
  lacks (a config file of another kind)."""
  for dotted, value in values.items():
    if dotted in RENAMED and "model" in config:
      dotted = renamed(dotted, config.model.get("name"))
    *parents, name = dotted.split(".")
    node = config
    for parent in parents:
      node = node.get(parent) if isinstance(node, ml_collections.ConfigDict) else None
    if not isinstance(node, ml_collections.ConfigDict) or name not in node:
      raise ConfigError(f"--config.{dotted}: the config has no such field")
    node[name] = value


def normalize(tree: dict, schema: Mapping[str, Field] = RUN_SCHEMA) -> dict:
  """A config dict (e.g. a saved config.json) with the documented text spellings of optional
  booleans ('auto', 'true', 'false') and name lists ('ann1,cnn2') turned into their types, the
  old spellings of `RENAMED` fields moved to their new names, and the fields added since it was
  written set to their `Field.default`. Other values are left as they are, for `validate` to
  judge. An old flat config.json and its nested form normalize to the same dict."""
  tree = _move_renamed_tree(_copy(tree))
  for dotted, field in schema.items():
    *parents, name = dotted.split(".")
    node = tree
    for parent in parents:
      node = node.setdefault(parent, {}) if isinstance(node, dict) else {}
    if field.default is not None and isinstance(node, dict) and name not in node:
      node[name] = None if field.default is NONE_BY_DEFAULT else copy.deepcopy(field.default)
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
  so are fields the saved config predates, when `new` holds their default, and fields that
  neither config's run reads (`Field.applies_to`)."""
  saved, new = flat(normalize(dict(saved), schema)), flat(normalize(dict(new), schema))
  # A field neither run reads changes nothing: an older run that set one resumes without it.
  neither = unread(saved, schema) & unread(new, schema)
  conflicts = []
  for dotted, field in schema.items():
    if dotted in neither:
      continue
    # A per-step schedule spans the run's length: more or fewer epochs or steps change its
    # every rate.
    fixed_length = (dotted in ("train.epochs", "train.total_steps")
                    and saved.get("train.schedule", "plateau") != "plateau")
    # Counted in epochs or in steps: a switch changes the batches (the last partial one).
    switched = (dotted == "train.total_steps"
                and (saved.get(dotted) is None) != (new.get(dotted) is None))
    if field.resumable and not fixed_length and not switched:
      continue
    # auto keeps the dtype the run started with (its config.json holds the resolved one).
    if dotted == "train.compute_dtype" and new.get(dotted) == "auto":
      continue
    if dotted in saved and saved[dotted] != new.get(dotted):
      conflicts.append(f"{dotted}: {_show(saved[dotted])} -> {_show(new.get(dotted))}")
  # A model's options outside the schema (a block config.model.<block> that a config file of a
  # model added outside the package brings): every change is one.
  for dotted in sorted((saved.keys() | new.keys()) - schema.keys()):
    if dotted.startswith("model.") and saved.get(dotted) != new.get(dotted):
      conflicts.append(f"{dotted}: {_show(saved.get(dotted))} -> {_show(new.get(dotted))}")
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
  """A ConfigDict from a saved config.json, its legacy spellings normalized and validated (as
  a saved run's: it may set fields its run does not read)."""
  config = ml_collections.ConfigDict(normalize(dict(tree), schema))
  validate(config, schema, new_run=False)
  return config
