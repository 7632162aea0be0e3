"""Atomic file writes: a reader (or a resumed run) never sees half a file.

Every file the codebase writes goes through here: JSON, text, JSON lines, figures and data
files. Each is written to a temporary name in the same folder and renamed into place, so a run
killed mid-write, or a full disk, leaves the previous version (or nothing) behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def cache_dir(where: Any = None) -> Path:
  """Where downloads and generated data go: the folder `where` names (a `config.data` block's
  `cache_dir`, or a folder given as text or a path), else $SVHN_JAX_CACHE, else
  ~/.cache/svhn_jax. An empty `cache_dir` or None names no folder."""
  folder = getattr(where, "cache_dir", where)
  chosen = folder or os.environ.get("SVHN_JAX_CACHE") or Path.home() / ".cache" / "svhn_jax"
  return Path(chosen).expanduser()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
  """Yields a temporary path beside `path`; on a clean exit it is renamed to `path`.

  On an exception the temporary file is removed and `path` is left as it was. The file gets the
  permissions the umask gives a new file (not mkstemp's owner-only mode). Raises OSError for a
  folder that cannot be created or written.
  """
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
  os.close(fd)
  try:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    yield Path(tmp)
    os.replace(tmp, path)
  except BaseException:
    Path(tmp).unlink(missing_ok=True)
    raise


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, *, exist_ok: bool = False) -> Iterator[Path]:
  """Yields an empty temporary folder beside `path` (`.<name>.*.partial`); on a clean exit it is
  renamed to `path`, so that a reader sees the whole folder or none.

  On an exception the temporary folder is removed and `path` is left as it was. With `exist_ok`,
  a folder that reached `path` meanwhile (another process finished the same work first) is kept
  and this one dropped. Raises OSError for a parent that cannot be created or written, and for a
  `path` that already exists (unless `exist_ok` and it is a folder).
  """
  path = Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial"))
  try:
    yield tmp
    try:
      os.replace(tmp, path)
    except OSError:
      if not (exist_ok and path.is_dir()):
        raise
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> Path:
  """Writes `text` to `path` atomically; returns `path`."""
  with atomic_path(path) as tmp:
    tmp.write_text(text)
  return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
  """Writes `obj` as indented JSON, atomically."""
  return write_text(path, json.dumps(obj, indent=2) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> Path:
  """Writes one JSON object per line, atomically (replacing the file)."""
  return write_text(path, "".join(json.dumps(row) + "\n" for row in rows))


def append_jsonl(path: str | os.PathLike, row: dict) -> None:
  """Appends one JSON line. Not atomic by itself: a run rewrites the file whole from its
  checkpoint on resume (`write_jsonl`), which drops a line cut short by a crash."""
  with open(path, "a") as f:
    f.write(json.dumps(row) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[dict]:
  """The rows of a JSON-lines file; a missing file has none."""
  path = Path(path)
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
