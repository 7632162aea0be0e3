"""Atomic file writes: a reader (or a resumed run) never sees half a file.

Every file the codebase writes goes through here: JSON, text, JSON lines, figures and data
files. Each is written to a temporary name in the same folder and renamed into place, so a run
killed mid-write, or a full disk, leaves the previous version (or nothing) behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


def default_cache_dir(cache_dir: str | os.PathLike = "") -> Path:
  """Where downloads and generated data go: `cache_dir`, else $SVHN_JAX_CACHE, else
  ~/.cache/svhn_jax."""
  chosen = cache_dir or os.environ.get("SVHN_JAX_CACHE") or Path.home() / ".cache" / "svhn_jax"
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
