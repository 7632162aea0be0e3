"""Atomic writes: a file is replaced whole or left as it was, readable by others."""

import os

import pytest

from svhn_jax import errors, fileio


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


def test_an_atomic_folder_appears_whole_or_not_at_all(tmp_path):
  target = tmp_path / "sub" / "split"
  with pytest.raises(RuntimeError):
    with fileio.atomic_folder(target) as tmp:
      (tmp / "1.png").write_bytes(b"half")
      raise RuntimeError("killed mid-write")
  assert not target.exists() and list((tmp_path / "sub").iterdir()) == []
  with fileio.atomic_folder(target) as tmp:
    (tmp / "1.png").write_bytes(b"whole")
  assert [p.name for p in target.iterdir()] == ["1.png"]
  assert [p.name for p in (tmp_path / "sub").iterdir()] == ["split"]
  (target / "1.png").unlink()
  (target / "other").write_text("x")  # a non-empty folder already there
  with pytest.raises(OSError):
    with fileio.atomic_folder(target) as tmp:
      (tmp / "2.png").write_bytes(b"mine")
  with fileio.atomic_folder(target, exist_ok=True) as tmp:  # another process finished first
    (tmp / "2.png").write_bytes(b"mine")
  assert [p.name for p in target.iterdir()] == ["other"]
  assert [p.name for p in (tmp_path / "sub").iterdir()] == ["split"]


def test_one_line_joins_a_message_and_names_an_empty_one():
  assert errors.one_line(ValueError("bad\n  file\tname ")) == "bad file name"
  assert errors.one_line(ValueError("first\nsecond"), first=True) == "first"
  assert errors.one_line(KeyError()) == "KeyError"
