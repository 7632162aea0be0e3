"""What kind a data file is, from its first bytes: the one check every loader makes before it
parses a file, so that a missing, empty or HTML file (a failed download saved under the file's
name) is one line naming it, whatever the loader.

HDF5 (the study's file, MATLAB v7.3's digitStruct.mat), MATLAB v5 (format 2's .mat) and HTML.
"""

from __future__ import annotations

from pathlib import Path

from svhn_jax.errors import DataError, one_line

HTML = "looks like an HTML page (an error or login page saved under the file's name)"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def require_file(path: Path, expected: str) -> int:
  """Returns the size of `path` in bytes, or raises DataError, saying `expected`, if it is
  missing, a folder or empty."""
  if not path.exists():
    raise DataError(f"{path}: no such file; expected {expected}")
  if not path.is_file():
    raise DataError(f"{path} is not a file; expected {expected}")
  size = path.stat().st_size
  if size == 0:
    raise DataError(f"{path} is empty (0 bytes); expected {expected}")
  return size


def head(path: Path, count: int = 1024) -> bytes:
  """The first `count` bytes of `path`; raises DataError for a file that cannot be read."""
  try:
    with open(path, "rb") as f:
      return f.read(count)
  except OSError as e:
    raise DataError(f"{path} cannot be read: {one_line(e)}") from e


def looks_like_html(head: bytes) -> bool:
  return head.lstrip(b"\xef\xbb\xbf \t\r\n").lower().startswith((b"<!doctype html", b"<html"))


def is_hdf5(head: bytes) -> bool:
  """True for HDF5 (MATLAB v7.3 writes its text header, then HDF5 at byte 512)."""
  return head.startswith(b"MATLAB 7.3 MAT-file") or _HDF5_SIGNATURE in (head[:8], head[512:520])


def is_mat_v5(head: bytes) -> bool:
  # The v5 header: 116 bytes of text, 8 of subsystem offset, version 0x0100, endian "IM" or "MI".
  return len(head) >= 128 and head[124:126] in (b"\x00\x01", b"\x01\x00") and \
      head[126:128] in (b"IM", b"MI")
