"""Atomic writes: a file is replaced whole or left as it was, readable by others."""

import os

import pytest

from svhn_jax import fileio


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
  path = fileio.write_text(tmp_path / "a.txt", "old")
  with pytest.raises(RuntimeError):
    with fileio.atomic_path(path) as tmp:
      tmp.write_text("half")
      raise RuntimeError("disk full")
  assert path.read_text() == "old"
  assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_files_get_the_umasks_permissions(tmp_path):
  old = os.umask(0o022)
  try:
    path = fileio.write_json(tmp_path / "sub" / "a.json", {"x": 1})
  finally:
    os.umask(old)
  assert path.stat().st_mode & 0o777 == 0o644
  assert path.read_text() == '{\n  "x": 1\n}\n'


def test_json_lines_round_trip_and_append(tmp_path):
  path = fileio.write_jsonl(tmp_path / "m.jsonl", [{"epoch": 1}, {"epoch": 2}])
  fileio.append_jsonl(path, {"epoch": 3})
  assert fileio.read_jsonl(path) == [{"epoch": 1}, {"epoch": 2}, {"epoch": 3}]
  assert fileio.read_jsonl(tmp_path / "missing.jsonl") == []
