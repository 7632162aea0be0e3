"""Downloads into the cache, verified before they reach their final name, through one fetcher
(`fetch`): SVHN's official files over HTTP (pooch, checked by size and MD5) and the study's HDF5
file from Google Drive (gdown, checked by its loader's `problem`). Either way a cut-off, corrupt or HTML download is discarded
and raises one DataError saying how to work offline; the cache never holds a partial file.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import ml_collections

import gdown
import pooch
import requests

from svhn_jax import fileio
from svhn_jax.errors import DataError, one_line

BASE_URL = "http://ufldl.stanford.edu/housenumbers/"
CROPPED_FILES = ("train_32x32.mat", "test_32x32.mat", "extra_32x32.mat")  # format 2
FULL_FILES = ("train.tar.gz", "test.tar.gz", "extra.tar.gz")  # format 1


class OfficialFile(NamedTuple):
  size: int  # bytes
  md5: str


REGISTRY: dict[str, OfficialFile] = {
    "train_32x32.mat": OfficialFile(182_040_794, "e26dedcc434d2e4c54c9b2d4a06d8373"),
    "test_32x32.mat": OfficialFile(64_275_384, "eb5a983be6a315427106f1b164d9cef3"),
    "extra_32x32.mat": OfficialFile(1_329_278_602, "a93ce644f1a588dc4d68dda5feec44a7"),
    "train.tar.gz": OfficialFile(404_141_560, "a649f4cb15c35520e8a8c342d4c0005a"),
    "test.tar.gz": OfficialFile(276_555_967, "790d9c8d42f1fcbd219b59956c853a81"),
    "extra.tar.gz": OfficialFile(1_955_489_752, "606f41243d71ca4d5fe66dbaf1f02bee"),
}

_OFFLINE_ADVICE = ("To work offline, copy the official files from a machine that has internet "
                   "access and pass the folder that holds them with --config.data.path=FOLDER.")


class _SizeCheckedDownload:
  """pooch's HTTP downloader, refusing a file of the wrong size before pooch checks its hash.

  pooch downloads into a temporary file and renames it only after the hash matches; raising here
  makes pooch delete the temporary file, so a cut-off download never reaches the final name.
  """

  def __init__(self, filename: str, expected: OfficialFile, http: Callable):
    self.filename, self.expected, self.http = filename, expected, http

  def __call__(self, url: str, output_file: str, pooch, check_only: bool = False):
    self.http(url, output_file, pooch, check_only=check_only)
    size = os.path.getsize(output_file)
    if size != self.expected.size:
      raise DataError(f"{self.filename} downloaded from {url} is {size:,} bytes, expected "
                      f"{self.expected.size:,} (a cut-off or wrong download); it was discarded. "
                      + _OFFLINE_ADVICE)


class DriveFile(NamedTuple):
  """A file on Google Drive (the study's HDF5 file), checked by its loader."""
  file_id: str
  problem: Callable[[Path], str | None]  # why a file is not a whole copy; None when it is
  advice: str  # how to go on without the download, ending each failure's message
  # gdown.download's call shape; tests pass a stand-in.
  download: Callable[..., str | None] | None = None


def fetch(filename: str, cache_dir: str | os.PathLike | None = None, *,
          drive: DriveFile | None = None, base_url: str = BASE_URL,
          registry: Mapping[str, OfficialFile] = REGISTRY) -> Path:
  """Returns the path of `filename` in the cache (`fileio.cache_dir(cache_dir)`), downloading it
  first if it is absent or broken: from Google Drive for a `drive` file (gdown, `_from_drive`),
  else as an official SVHN file from `base_url` (pooch, `_official`). Either way the download
  reaches its final name only when verified, and every failure is a DataError saying how to
  work offline."""
  if drive is not None:
    return _from_drive(filename, cache_dir, drive)
  return _official(filename, cache_dir, base_url, registry)


def _official(filename: str, cache_dir: str | os.PathLike | None, base_url: str,
              registry: Mapping[str, OfficialFile]) -> Path:
  """Returns the path of the official file `filename` in `cache_dir`, downloading it if needed.

  The download shows a progress bar and lands under a temporary name; it is renamed to
  `cache_dir/filename` only when its size and MD5 match `registry`. A file already there with
  the right MD5 is reused without a download; one with the wrong MD5 is downloaded again.
  `cache_dir` defaults to $SVHN_JAX_CACHE, else ~/.cache/svhn_jax.

  Raises DataError for a name not in `registry`, a download of the wrong size or MD5 (nothing
  is left at the final name), and a network failure (saying how to work offline).
  """
  if filename not in registry:
    raise DataError(f"{filename}: not an official SVHN file; expected one of {sorted(registry)}")
  expected = registry[filename]
  folder = fileio.cache_dir(cache_dir)
  url = base_url.rstrip("/") + "/" + filename
  # 1 MiB chunks: pooch's default of 1 KiB costs a Python call per KiB of a 2 GB file.
  http = pooch.HTTPDownloader(progressbar=True, chunk_size=1 << 20, timeout=60)
  try:
    return Path(pooch.retrieve(url, known_hash=f"md5:{expected.md5}", fname=filename, path=folder,
                               downloader=_SizeCheckedDownload(filename, expected, http)))
  except requests.exceptions.RequestException as e:
    raise DataError(f"Could not download {filename} from {url}: {one_line(e)}. "
                    + _OFFLINE_ADVICE) from e
  except ValueError as e:  # pooch's hash mismatch
    raise DataError(f"{filename} downloaded from {url} does not have the MD5 {expected.md5} "
                    f"(a corrupted download); it was discarded. {_OFFLINE_ADVICE}") from e
  except OSError as e:
    raise DataError(f"Could not save {filename} into {folder}: {one_line(e)}") from e




def _from_drive(filename: str, cache_dir: str | os.PathLike | None, drive: DriveFile) -> Path:
  """Returns `filename` in the cache, downloading it first from the Google Drive file
  `drive.file_id` if it is absent or `drive.problem` finds it broken. The file reaches its final
  name only once whole and valid. Raises DataError, ending with `drive.advice`, for a failed,
  refused or broken download."""
  folder = fileio.cache_dir(cache_dir)
  path = folder / filename
  if path.exists():
    found = drive.problem(path)
    if found is None:
      return path
    logging.warning("The cached %s %s; downloading it again.", path, found)
  folder.mkdir(parents=True, exist_ok=True)
  # A private folder next to the target: os.replace stays on one filesystem, and gdown's own
  # leftovers (it keeps `.part` files for resuming) go when the folder goes, on any failure.
  with tempfile.TemporaryDirectory(dir=folder, prefix=f".{filename}.") as tmp_dir:
    tmp = Path(tmp_dir) / filename
    _drive_download_to(tmp, drive.file_id, drive.download or gdown.download, drive.advice)
    found = drive.problem(tmp)
    if found:
      raise DataError(f"The file Google Drive sent for id {drive.file_id} {found}. It was "
                      "discarded. " + drive.advice)
    os.replace(tmp, path)
  logging.info("Saved %s to %s", filename, path)
  return path


def _drive_download_to(tmp: Path, file_id: str, download: Callable[..., str | None],
                       advice: str) -> None:
  logging.info("Downloading %s (Google Drive id %s)", tmp.name, file_id)
  try:
    result = download(id=file_id, output=str(tmp), quiet=False)
  except Exception as e:  # gdown raises requests' and its own errors when offline or refused
    raise DataError(f"Could not download the SVHN file (Google Drive id {file_id}): {e}. "
                    + advice) from e
  if result is None or not tmp.is_file():
    raise DataError(f"Could not download the SVHN file (Google Drive id {file_id}): "
                    "the download returned nothing. " + advice)


def official_file(data_cfg: ml_collections.ConfigDict, name: str, files: Sequence[str]) -> Path:
  """One official file `name` of the set `files` (CROPPED_FILES or FULL_FILES): from the folder
  `config.data.path` (for format 1, `train.tar.gz` or the extracted `train/`), else downloaded
  (verified) into the cache. Raises DataError for a missing folder or file."""
  if not data_cfg.path:
    return fetch(name, data_cfg.cache_dir)
  folder = Path(data_cfg.path).expanduser()
  if not folder.is_dir():
    raise DataError(f"config.data.path={data_cfg.path!r}: no such folder; expected a folder "
                    f"holding {', '.join(files)} (SVHN format "
                    f"{2 if tuple(files) == CROPPED_FILES else 1})")
  path = folder / name
  extracted = folder / name.removesuffix(".tar.gz")
  if not path.is_file() and name.endswith(".tar.gz") and extracted.is_dir():
    return extracted
  if not path.is_file():
    raise DataError(f"{path}: no such file; the folder config.data.path must hold {name}")
  return path
