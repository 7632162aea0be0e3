"""Tests for svhn_jax.datasets.content_cache: content digests remembered by stat, and the bound on cache
entries per file name."""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from svhn_jax.datasets import content_cache


@pytest.fixture
def hashed(monkeypatch) -> list[str]:
  """The names of the files hashlib.file_digest reads, in order."""
  names = []
  file_digest = hashlib.file_digest

  def spy(f, digest):
    names.append(Path(f.name).name)
    return file_digest(f, digest)

  monkeypatch.setattr(hashlib, "file_digest", spy)
  return names


def test_an_unchanged_file_is_read_once_and_a_copy_again(tmp_path, hashed, monkeypatch):
  monkeypatch.setattr(content_cache, "SETTLE_NS", 0)
  path = tmp_path / "train_32x32.mat"
  path.write_bytes(b"crops" * 1000)
  memo = tmp_path / "cache"

  digest = content_cache.file_digest(path, memo)
  assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
  assert content_cache.file_digest(path, memo) == digest
  assert hashed == ["train_32x32.mat"]
  assert (memo / content_cache.MEMO_FILE).is_file()

  copy = shutil.copy2(path, tmp_path / "copy.mat")  # cp -p: same size and mtime, a new inode
  assert content_cache.file_digests([path, copy, copy], memo) == [digest] * 3
  assert hashed == ["train_32x32.mat", "copy.mat"]


def test_a_file_rewritten_with_its_size_and_mtime_gets_its_new_digest(tmp_path, hashed):
  path = tmp_path / "digitStruct.mat"
  path.write_bytes(b"a" * 100)
  was = path.stat()
  first = content_cache.file_digest(path, tmp_path / "cache")
  path.write_bytes(b"b" * 100)
  os.utime(path, ns=(was.st_atime_ns, was.st_mtime_ns))
  # Written within SETTLE_NS of each other: neither stat is trusted, even on a coarse clock.
  assert content_cache.file_digest(path, tmp_path / "cache") == hashlib.sha256(b"b" * 100
                                                                                ).hexdigest()
  assert first != hashlib.sha256(b"b" * 100).hexdigest() and len(hashed) == 2


def test_the_memo_keeps_its_newest_rows(tmp_path, hashed, monkeypatch):
  monkeypatch.setattr(content_cache, "SETTLE_NS", 0)
  monkeypatch.setattr(content_cache, "MEMO_ROWS", 2)
  paths = [tmp_path / f"{n}.png" for n in range(3)]
  for n, path in enumerate(paths):
    path.write_bytes(bytes([n]) * 10)
  content_cache.file_digests(paths, tmp_path)
  content_cache.file_digests(paths[1:], tmp_path)
  assert hashed == ["0.png", "1.png", "2.png"]
  with sqlite3.connect(tmp_path / content_cache.MEMO_FILE) as db:
    assert db.execute("SELECT count(*) FROM digests").fetchone() == (2,)
  content_cache.file_digest(paths[0], tmp_path)
  assert hashed[3:] == ["0.png"]


def test_an_unusable_memo_only_costs_rehashing(tmp_path, hashed, monkeypatch):
  monkeypatch.setattr(content_cache, "SETTLE_NS", 0)
  (tmp_path / content_cache.MEMO_FILE).write_bytes(b"not SQLite" * 100)
  path = tmp_path / "train.tar.gz"
  path.write_bytes(b"photos")
  for _ in range(2):
    assert content_cache.file_digest(path, tmp_path) == hashlib.sha256(b"photos").hexdigest()
  assert len(hashed) == 2


def test_evict_keeps_the_most_recently_used_entries_of_a_name(tmp_path):
  entries = {}
  for n, key in enumerate(["0123456789abcdef", "1123456789abcdef", "2123456789abcdef",
                           "3123456789ab", "4123456789abcdef"]):
    files = [tmp_path / f"train.{key}.images.npy", tmp_path / f"train.{key}.labels.npy"]
    for path in files:
      path.write_bytes(b"x")
      os.utime(path, ns=(n * 10**9, n * 10**9))
    entries[key] = files
  os.utime(entries["0123456789abcdef"][1], ns=(10**10, 10**10))  # used last, by its labels
  folder = tmp_path / "train.5123456789abcdef"
  (folder / "train").mkdir(parents=True)
  os.utime(folder, ns=(5 * 10**9, 5 * 10**9))
  others = [tmp_path / "train.tar.gz", tmp_path / ".train.6123456789abcdef.partial",
            tmp_path / "train_32x32.7123456789abcdef.images.npy", tmp_path / "train.mat"]
  for path in others:
    path.write_bytes(b"y")

  content_cache.evict(tmp_path, "train", keep=3)

  left = sorted(p.name for p in tmp_path.iterdir())
  assert left == sorted([*(p.name for p in others), folder.name,
                         *(p.name for p in entries["0123456789abcdef"]),
                         *(p.name for p in entries["4123456789abcdef"])])


def test_concurrent_callers_share_the_memo(tmp_path, monkeypatch):
  monkeypatch.setattr(content_cache, "SETTLE_NS", 0)
  paths = [tmp_path / f"{n}.png" for n in range(200)]
  for n, path in enumerate(paths):
    path.write_bytes(n.to_bytes(2, "little") * 50)
  want = [hashlib.sha256(path.read_bytes()).hexdigest() for path in paths]
  with concurrent.futures.ThreadPoolExecutor(4) as pool:  # one SQLite connection each
    results = list(pool.map(lambda _: content_cache.file_digests(paths, tmp_path), range(8)))
  assert results == [want] * 8
  with sqlite3.connect(tmp_path / content_cache.MEMO_FILE) as db:
    assert db.execute("SELECT count(*) FROM digests").fetchone() == (200,)
