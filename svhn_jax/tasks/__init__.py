"""The tasks a run can learn, behind one interface (`base.Task`) and one registry.

- `digit` (digit.py): the study's classification of one centred 32x32 digit crop, labels int32
  (N,) 0..9, logits (N, 10).
- `number` (number.py): whole house numbers read as Goodfellow et al. 2013 did, 64x64 number
  crops, labels int32 (N, 6), logits (N, 57); its error analysis in number_analysis.py.
- `locate` (locate.py): the box around the number in a whole photo letterboxed to 54x54 (issue
  31), labels float32 (N, 4) corners as shares of the letterbox, logits (N, 5): the box and a
  confidence.

`get(config)` gives the run's task: the registered object of config.task, with its options read
from the config by its `from_config`. Nothing outside this package compares config.task with a
name or refers to a task's class; they call the task's methods.

Adding a task is one module and, for a short name, one registry entry:

  # my_project/parity.py
  @dataclasses.dataclass(frozen=True)
  class ParityTask:            # every method of base.Task (see tests/toy_task.py)
    name: str = "parity"
    ...
  PARITY = ParityTask()

then `--config.task=my_project.parity:PARITY` (a 'module:attribute' spec the registry imports),
or an entry `"parity": "my_project.parity:PARITY"` below for `--config.task=parity`.

This module imports no JAX, model or plotting code (config.py imports it for the names); a task's
module is imported on first use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from svhn_jax import registry

REGISTRY = registry.Registry("task", kind="svhn_jax.tasks.base:Task", entries={
    "digit": "svhn_jax.tasks.digit:DIGIT",
    "number": "svhn_jax.tasks.number:NUMBER",
    "locate": "svhn_jax.tasks.locate:LOCATE",
})

# config.task of a config written before the field existed: runs then trained digits.
DEFAULT = "digit"


def name_of(config: Mapping) -> str:
  """config.task (a registered name or a 'module:attribute' spec), `DEFAULT` if unset."""
  return config.get("task", DEFAULT)


def get(config_or_name: Any):
  """The task (`base.Task`) a run config names, configured by its `from_config`; or, given a
  name or spec, the registered object with its default options. Raises ConfigError, one line
  naming config.task, for an unknown name or a spec that does not import."""
  if isinstance(config_or_name, str):
    return REGISTRY.get(config_or_name)
  return REGISTRY.get(name_of(config_or_name)).from_config(config_or_name)


def check_config(config: Mapping) -> None:
  """The run config's task checks it (`base.Task.check_config`); `config` a nested dict."""
  REGISTRY.get(name_of(config)).check_config(config)


def same(config: Mapping, name: str) -> bool:
  """Whether run `config`'s task is the registered task `name` (for a tool made for one
  task, e.g. experiments/stage_accuracy.py's digit runs)."""
  return REGISTRY.get(name_of(config)) is REGISTRY.get(name)
