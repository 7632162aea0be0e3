"""Keys and bounds of the data caches: the contents of the files a cache entry is made from.

A cache entry (format 2's .npy pair, format 1's extracted archive, the number crops) is named
`<stem>.<key>...`, `key` being derived from the SHA-256 of its source files' bytes
(`file_digests`), so two files of the same name, size and modification time but other bytes (copies
made with `cp -p`, `rsync -a` or unpacked archives) never share an entry. Hashing reads every byte
(SHA-256: 470 MB/s measured on a busy 2-core AMD EPYC Zen 3, a few seconds for SVHN's 1.3 GB
extra_32x32.mat), so each digest is remembered in `<cache>/digests.sqlite3` under the file's
(device, inode) with its size, modification and change times in nanoseconds: a file whose stat is
unchanged is not read again, while a copy (a new inode and change time) or a file rewritten in
place (a new change time) always is. A file changed in the last SETTLE_NS is hashed but not
remembered: a filesystem's coarse clock (a few milliseconds on Linux, a second or two on some
network filesystems and FAT) could hide a second change made within the same tick. The memo keeps
the MEMO_ROWS most recently hashed files; it is safe to delete, and a memo that cannot be opened or
written (read-only, locked too long) only costs the rehashing.

Entries of other contents under the same stem are kept, up to KEEP_PER_NAME per stem in a
folder: `evict` deletes those beyond the KEEP_PER_NAME most recently used (`touch` marks an
entry used by setting its modification time).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from svhn_jax import fileio

ALGORITHM = "sha256"
MEMO_FILE = "digests.sqlite3"
MEMO_ROWS = 500_000  # about 150 bytes each: SVHN's 248,823 photos and its 6 files fit twice
SETTLE_NS = 2_000_000_000
KEEP_PER_NAME = 3
_BUSY_TIMEOUT_S = 60
_QUERY_SIZE = 500  # inodes looked up per query: under SQLite's limit of 32,766 parameters


def file_digests(paths: Sequence[str | os.PathLike], memo_folder: str | os.PathLike) -> list[str]:
  """Returns the SHA-256 hex digest (64 characters) of each file's bytes, in order.

  Files whose (device, inode, size, mtime_ns, ctime_ns) the memo in `memo_folder` holds are
  only stat'ed; the others are read and hashed, and remembered unless they changed while being
  hashed or in the last SETTLE_NS. Raises OSError (FileNotFoundError, PermissionError) for a
  file that cannot be stat'ed or read.
  """
  stats = [_stat_key(os.stat(path)) for path in paths]
  memo = _Memo(Path(memo_folder) / MEMO_FILE)
  try:
    known = memo.lookup(stats)
    digests, fresh = [], []
    for path, (inode, stat) in zip(paths, stats):
      digest = known.get((inode, stat))
      if digest is None:
        digest = known[inode, stat] = _hash(path)  # hard links and repeats are read once
        after = os.stat(path)
        if _stat_key(after) == (inode, stat) and not _recent(after):
          fresh.append((inode, stat, digest))
      digests.append(digest)
    memo.remember(fresh)
  finally:
    memo.close()
  return digests


def file_digest(path: str | os.PathLike, memo_folder: str | os.PathLike) -> str:
  """`file_digests` of one file."""
  return file_digests([path], memo_folder)[0]


def _hash(path: str | os.PathLike) -> str:
  with open(path, "rb") as f:
    return hashlib.file_digest(f, ALGORITHM).hexdigest()


def _stat_key(stat: os.stat_result) -> tuple[str, str]:
  """(device:inode, size:mtime_ns:ctime_ns) as text: inode numbers may exceed SQLite's
  signed 64-bit integers."""
  return (f"{stat.st_dev}:{stat.st_ino}",
          f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}")


def _recent(stat: os.stat_result) -> bool:
  return time.time_ns() - max(stat.st_mtime_ns, stat.st_ctime_ns) < SETTLE_NS


class _Memo:
  """The table (inode TEXT PRIMARY KEY, stat TEXT, digest TEXT) in an SQLite file; any SQLite
  error leaves it unused (logged), since it only saves time."""

  def __init__(self, path: Path):
    self.path, self.db = path, None
    try:
      path.parent.mkdir(parents=True, exist_ok=True)
      self.db = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S)
      with self.db:
        self.db.execute("CREATE TABLE IF NOT EXISTS digests "
                        "(inode TEXT PRIMARY KEY, stat TEXT NOT NULL, digest TEXT NOT NULL)")
    except (OSError, sqlite3.Error) as e:
      self._give_up(e)

  def _give_up(self, error: BaseException) -> None:
    logging.info("Not using the digest memo %s (%s): files are hashed again (delete it if it "
                 "is corrupt)", self.path, error)
    self.close()

  def lookup(self, stats: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """{(inode, stat): digest} of the inodes of `stats` that the memo holds, with the stat it
    holds for them."""
    found = {}
    if self.db is None:
      return found
    inodes = [inode for inode, _ in stats]
    try:
      for start in range(0, len(inodes), _QUERY_SIZE):
        chunk = inodes[start:start + _QUERY_SIZE]
        rows = self.db.execute("SELECT inode, stat, digest FROM digests WHERE inode IN "
                               f"({','.join('?' * len(chunk))})", chunk)
        found.update(((inode, stat), digest) for inode, stat, digest in rows)
    except sqlite3.Error as e:
      self._give_up(e)
    return found

  def remember(self, rows: Sequence[tuple[str, str, str]]) -> None:
    """Stores (inode, stat, digest) rows, then drops all but the MEMO_ROWS newest."""
    if self.db is None or not rows:
      return
    try:
      with self.db:
        # REPLACE gives a replaced row a new, highest rowid: rowids order rows by last hashing.
        self.db.executemany("INSERT OR REPLACE INTO digests VALUES (?, ?, ?)", rows)
        self.db.execute("DELETE FROM digests WHERE rowid <= "
                        "(SELECT max(rowid) FROM digests) - ?", (MEMO_ROWS,))
    except sqlite3.Error as e:
      self._give_up(e)

  def close(self) -> None:
    if self.db is not None:
      self.db.close()
      self.db = None


def key(digests: Iterable[str], *extra: object) -> str:
  """A cache key: 16 hex digits of the SHA-256 of `digests` and `extra` (a layout version,
  settings), each as text."""
  text = "\n".join([*digests, *(str(value) for value in extra)])
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def touch(*entries: Path) -> None:
  """Marks cache entries (files or folders) as used now; one that cannot be touched (a shared,
  read-only cache) keeps its old time."""
  for entry in entries:
    try:
      os.utime(entry)
    except OSError as e:
      logging.debug("Cannot mark %s as used: %s", entry, e)


def evict(folder: Path, stem: str, keep: int = KEEP_PER_NAME) -> None:
  """Deletes the entries `<stem>.<key>[.anything]` of `folder` beyond the `keep` most recently
  used keys (a key's files and folders count as one entry, used when the newest of them was).

  Hidden names (temporary files, extractions in progress) never match. An entry another process
  still reads is safe when it is a memory-mapped file (POSIX keeps it until unmapped); an
  extracted folder is only deleted once `keep` other contents of its name were used after it.
  """
  pattern = re.compile(rf"{re.escape(stem)}\.([0-9a-f]{{12,16}})(\..+)?")
  groups: dict[str, list[Path]] = {}
  for entry in folder.iterdir() if folder.is_dir() else ():
    match = pattern.fullmatch(entry.name)
    if match:
      groups.setdefault(match.group(1), []).append(entry)
  used = {}
  for name, entries in groups.items():
    try:
      used[name] = max(entry.stat().st_mtime_ns for entry in entries)
    except FileNotFoundError:  # another process evicted it first
      used[name] = -1
  for name in sorted(used, key=used.get, reverse=True)[keep:]:
    for entry in groups[name]:
      logging.info("Removing the cache %s (%d newer entries of %s are kept)", entry, keep, stem)
      if entry.is_dir():
        shutil.rmtree(entry, ignore_errors=True)
      else:
        entry.unlink(missing_ok=True)


def source_key(path: Path, cache_dir: str | os.PathLike | None, version: int) -> str:
  """The key of a cache entry made from the one file `path` by a layout of `version`: changes
  whenever the file's bytes do, or the layout (its digest memo lives in `cache_dir`, else the
  user cache)."""
  return key([file_digest(path, fileio.cache_dir(cache_dir))], version)


def folders(path: Path, cache_dir: str | os.PathLike | None) -> Iterator[Path]:
  """Yields where a cache entry made from `path` may live, in order: `cache_dir`, else beside
  `path`, else the user cache."""
  if cache_dir:
    yield Path(cache_dir).expanduser()
    return
  yield path.parent
  yield fileio.cache_dir()


def stem(path: Path) -> str:
  """The name entries made from `path` share: train_32x32.mat -> train_32x32, train.tar.gz ->
  train."""
  return re.sub(r"(\.tar\.gz|\.tgz|\.tar|\.mat)$", "", path.name)
