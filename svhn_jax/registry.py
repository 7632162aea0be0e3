"""Named extension points: the tasks, models and data sources a config may name.

A `Registry` maps short names (`config.task='digit'`, `config.model.name='cnn2'`,
`config.data.source='synthetic'`) to `'module:attribute'` specs, imported on first use so that
reading the list of names (config validation, `--help`) imports nothing heavy. A config may also
name an entry by its spec directly (`--config.task=my_project.parity:TASK`): an extension outside
this package is then one new module and no edit here. Each package's `__init__` holds its
registry and says what an entry must provide.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from svhn_jax.errors import ConfigError


def is_spec(value: Any) -> bool:
  """True for text of the form 'package.module:attribute'."""
  if not isinstance(value, str) or value.count(":") != 1:
    return False
  module, attribute = value.split(":")
  return bool(module) and bool(attribute) and all(
      part.isidentifier() for part in (*module.split("."), *attribute.split(".")))


class Registry:
  """Names of one kind of extension (`field`, the config field that names them) and the
  'module:attribute' spec of each. Names are matched case-insensitively. `kind`, a spec too:
  the class (or runtime-checkable Protocol) every entry must be an instance of, checked on
  import, so that a spec naming the wrong object is one line, not a traceback mid-run."""

  def __init__(self, field: str, entries: Mapping[str, str], kind: str | None = None):
    bad = [spec for spec in (*entries.values(), *([kind] if kind else [])) if not is_spec(spec)]
    if bad:
      raise ValueError(f"{field}: specs {bad} are not 'module:attribute'")
    self.field = field
    self.kind = kind
    self._entries = {name.lower(): spec for name, spec in entries.items()}
    self._loaded: dict[str, Any] = {}

  def names(self) -> tuple[str, ...]:
    """The registered names, in registration order."""
    return tuple(self._entries)

  def accepts(self, value: Any) -> bool:
    """True for a registered name or a 'module:attribute' spec (not imported here)."""
    return (isinstance(value, str) and value.lower() in self._entries) or is_spec(value)

  def expected(self) -> str:
    """What a config may give, for one-line errors."""
    return f"one of {', '.join(self._entries)}, or a 'module:attribute' spec"

  def get(self, value: str) -> Any:
    """The entry `value` names (a registered name or a spec), imported on first use.

    Raises ConfigError, naming `field`, for an unknown name, a module that does not import or an
    attribute it lacks."""
    if not self.accepts(value):
      raise ConfigError(f"config.{self.field}={value!r}: expected {self.expected()}")
    spec = self._entries.get(value.lower(), value) if isinstance(value, str) else value
    if spec not in self._loaded:
      entry = _import(self.field, value, spec)
      if self.kind is not None:
        kind = _import(self.field, value, self.kind)
        if isinstance(entry, type) or not isinstance(entry, kind):
          what = (f"the class {entry.__name__}" if isinstance(entry, type)
                  else f"of type {type(entry).__name__}")
          raise ConfigError(f"config.{self.field}={value!r}: {spec} is {what}; expected an "
                            f"instance of {self.kind.replace(':', '.')}")
      self._loaded[spec] = entry
    return self._loaded[spec]


def _import(field: str, value: str, spec: str) -> Any:
  module_name, attribute = spec.split(":")
  try:
    target: Any = importlib.import_module(module_name)
  except ImportError as e:
    raise ConfigError(f"config.{field}={value!r}: cannot import {module_name!r} ({e})") from e
  for part in attribute.split("."):
    if not hasattr(target, part):
      raise ConfigError(f"config.{field}={value!r}: module {module_name!r} has no {attribute!r}")
    target = getattr(target, part)
  return target
