"""The extension registries' lookup: names, 'module:attribute' specs and one-line errors."""

import pytest

from svhn_jax import config as config_lib
from svhn_jax.errors import ConfigError
from svhn_jax.registry import Registry, is_spec


def test_specs_are_module_colon_attribute():
  assert is_spec("a.b:C") and is_spec("tests.toys:Parity.TASK")
  assert not any(is_spec(v) for v in ("cnn2", "a:b:c", ":C", "a.b:", "a-b:C", 3, None))


def test_names_resolve_case_insensitively_and_specs_import_lazily():
  registry = Registry("thing", {"Join": "os.path:join"})
  assert registry.names() == ("join",)
  import os.path
  assert registry.get("JOIN") is os.path.join
  assert registry.get("os.path:split") is os.path.split
  assert registry.accepts("never.imported:X") and not registry.accepts("split")


@pytest.mark.parametrize("value, says", [
    ("nope", "config.thing='nope': expected one of join, or a 'module:attribute' spec"),
    ("no_such_module_x:Y", "config.thing='no_such_module_x:Y': cannot import 'no_such_module_x'"),
    ("os.path:no_such", "config.thing='os.path:no_such': module 'os.path' has no 'no_such'"),
])
def test_unknown_entries_are_one_line_config_errors(value, says):
  with pytest.raises(ConfigError) as e:
    Registry("thing", {"join": "os.path:join"}).get(value)
  assert str(e.value).startswith(says) and "\n" not in str(e.value)


def test_a_registry_field_takes_its_names_and_specs():
  field = config_lib.Field(str, registry=Registry("thing", {"join": "os.path:join"}))
  assert field.problem("join") is None and field.problem("pkg.mod:Attr") is None
  assert field.problem("other") == "expected one of join, or a 'module:attribute' spec"
  assert field.problem(3) == "expected text"


@pytest.mark.parametrize("value, says", [
    ("os.path:sep", "config.thing='os.path:sep': os.path:sep is of type str; expected an instance of "
     "collections.abc.Callable"),
    ("os.path:join", None),
    ("pathlib:Path", "config.thing='pathlib:Path': pathlib:Path is the class Path; expected an "
     "instance of collections.abc.Callable"),
])
def test_an_entry_of_the_wrong_kind_is_a_one_line_config_error(value, says):
  """A spec naming an object that is not of the registry's kind (a task that is not a
  `tasks.base.Task`, say) is refused when imported, before any training."""
  registry = Registry("thing", {}, kind="collections.abc:Callable")
  if says is None:
    assert callable(registry.get(value))
    return
  with pytest.raises(ConfigError) as e:
    registry.get(value)
  assert str(e.value) == says


def test_the_three_registries_refuse_each_others_entries():
  from svhn_jax import datasets, models, tasks
  for registry, other in ((tasks.REGISTRY, "tests.toy_source:SOURCE"),
                          (datasets.REGISTRY, "tests.toy_model:MODEL"),
                          (models.REGISTRY, "tests.toy_task:PARITY"),
                          (tasks.REGISTRY, "svhn_jax.tasks.digit:DigitTask")):
    with pytest.raises(ConfigError, match=r"; expected an instance of svhn_jax\."):
      registry.get(other)
