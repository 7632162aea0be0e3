"""Time to data for the official SVHN files, on full-size stand-ins written locally.

  python benchmarks/official_data.py --dir=/tmp/svhn_bench                  # official sizes
  python benchmarks/official_data.py --dir=/tmp/svhn_bench --train=2000 --extra=8000 --photos=1000

Writes, into --dir, format-2 stand-ins of the official shapes (train_32x32.mat with --train crops,
extra_32x32.mat with --extra: 73,257 + 531,131 = 604,388 by default), zlib-compressed MATLAB v5
files like the official ones, made with scipy.io.savemat from drawn digits; and a digitStruct.mat
stand-in of --photos photos (33,402, train's count) with train's digits-per-photo histogram, in
MATLAB's v7.3 layout. Then, each in a fresh process so that peak RSS is its own, it measures: the
first conversion of each .mat (seconds, peak RSS), a cached reload (seconds to the memory-mapped
arrays, and to read every pixel once), and parsing digitStruct.mat (seconds; with --h5py-baseline
also the plain h5py reader's). Needs about 4 GB of disk at the default sizes and ~6 GB of memory
while writing extra_32x32.mat. --keep leaves the files in --dir.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# The builders live with the tests; running this file puts benchmarks/, not the repo, on the path.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from svhn_jax import cli  # noqa: E402

# Train's photos by number of digits (1 to 6): 33,402 photos, 73,257 digits.
TRAIN_LENGTHS = (5137, 18130, 8691, 1434, 9, 1)
_BLOCK = 1000  # distinct crops, repeated: far apart enough that zlib compresses each on its own


def write_cropped(path: Path, count: int, compress: bool) -> None:
  """Writes a format-2 stand-in of `count` crops without holding an NHWC copy."""
  import scipy.io
  from tests import official_files

  labels = np.arange(count) % 10
  block = np.transpose(official_files.drawn_crops(labels[:_BLOCK], seed=count), (1, 2, 3, 0))
  x = np.empty(block.shape[:3] + (count,), np.uint8, order="F")
  for start in range(0, count, _BLOCK):
    x[..., start:start + _BLOCK] = block[..., :count - start]
  y = np.where(labels == 0, 10, labels).astype(np.uint8).reshape(-1, 1)
  scipy.io.savemat(path, {"X": x, "y": y}, do_compression=compress)


def write_digit_struct(path: Path, photos: int) -> None:
  from svhn_jax.datasets.digit_struct import Photo
  from tests import official_files

  rng = np.random.default_rng(0)
  shares = np.array(TRAIN_LENGTHS) / sum(TRAIN_LENGTHS)
  lengths = rng.choice(np.arange(1, len(TRAIN_LENGTHS) + 1), photos, p=shares)
  records = [Photo(f"{i + 1}.png", rng.integers(0, 10, k).astype(np.int32),
                   rng.integers(-5, 300, (k, 4)).astype(np.float32))
             for i, k in enumerate(lengths)]
  official_files.write_digit_struct(path, records)


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def step(kind: str, path: str, *args: str) -> dict:
  """Runs one step in this process; returns its numbers."""
  from svhn_jax.datasets import cropped, digit_struct

  start = time.perf_counter()
  if kind == "write_cropped":
    write_cropped(Path(path), int(args[0]), compress=args[1] == "1")
    result = {"seconds": time.perf_counter() - start}
  elif kind == "write_digit_struct":
    write_digit_struct(Path(path), int(args[0]))
    result = {"seconds": time.perf_counter() - start}
  elif kind == "convert" or kind == "reload":
    images, labels = cropped.load_cropped(path)
    seconds = time.perf_counter() - start
    result = {"seconds": seconds, "images": len(images)}
    if kind == "reload":
      total = sum(int(images[i:i + 65536].sum(dtype=np.uint64))
                  for i in range(0, len(images), 65536))
      result["read_all_seconds"] = time.perf_counter() - start
      result["checksum"] = total
  elif kind == "digit_struct":
    photos = digit_struct.read_digit_struct(path)
    result = {"seconds": time.perf_counter() - start, "photos": len(photos)}
  elif kind == "digit_struct_h5py":
    import h5py

    with h5py.File(path, "r") as f:
      reader = digit_struct._H5pyReader(f, Path(path))
      photos = [(reader.name(i), reader.fields(i)) for i in range(len(reader.names))]
    result = {"seconds": time.perf_counter() - start, "photos": len(photos)}
  else:
    raise ValueError(f"unknown step {kind}")
  result["peak_rss_mb"] = peak_rss_mb()
  return result


def in_fresh_process(kind: str, path: Path, *args) -> dict:
  """Runs `step` in a child process. Writing happens in children too: Linux hands a parent's
  peak RSS down to the children it starts, so this process must stay small."""
  proc = subprocess.run([sys.executable, __file__, "--step", kind, str(path), *map(str, args)],
                        capture_output=True, text=True, check=True)
  return json.loads(proc.stdout.strip().splitlines()[-1])


def cpu_model() -> str:
  for line in Path("/proc/cpuinfo").read_text().splitlines():
    if line.startswith("model name"):
      return line.split(":", 1)[1].strip()
  return "unknown CPU"


def main(argv: list[str] | None = None) -> None:
  parser = cli.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dir", help="folder for the stand-in files")
  parser.add_argument("--train", type=int, default=73_257, help="crops in train_32x32.mat")
  parser.add_argument("--extra", type=int, default=531_131, help="crops in extra_32x32.mat")
  parser.add_argument("--photos", type=int, default=33_402, help="photos in digitStruct.mat")
  parser.add_argument("--no-compress", action="store_true",
                      help="write uncompressed .mat files (the official ones are compressed)")
  parser.add_argument("--h5py-baseline", action="store_true",
                      help="also time the plain h5py digitStruct reader (about 2 ms a photo)")
  parser.add_argument("--keep", action="store_true", help="keep the files in --dir")
  parser.add_argument("--step", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.step:
    print(json.dumps(step(*args.step)))
    return
  if not args.dir:
    parser.error("--dir is required")
  folder = Path(args.dir)
  folder.mkdir(parents=True, exist_ok=True)
  made = []
  try:
    rows = []
    for name, count in (("train_32x32.mat", args.train), ("extra_32x32.mat", args.extra)):
      path = folder / name
      made.append(path)
      wrote = in_fresh_process("write_cropped", path, count, int(not args.no_compress))
      print(f"wrote {name}: {count:,} crops, {path.stat().st_size / 1e6:,.0f} MB in "
            f"{wrote['seconds']:.0f} s", flush=True)
      first = in_fresh_process("convert", path)
      made += list(folder.glob(f"{path.stem}.*.npy"))
      again = in_fresh_process("reload", path)
      rows.append((name, count, first, again))
    digit_struct = folder / "digitStruct.mat"
    made.append(digit_struct)
    wrote = in_fresh_process("write_digit_struct", digit_struct, args.photos)
    print(f"wrote digitStruct.mat: {args.photos:,} photos, "
          f"{digit_struct.stat().st_size / 1e6:,.0f} MB in {wrote['seconds']:.0f} s", flush=True)
    parsed = in_fresh_process("digit_struct", digit_struct)
    baseline = in_fresh_process("digit_struct_h5py", digit_struct) if args.h5py_baseline else None
  finally:
    if not args.keep:
      for path in made:
        path.unlink(missing_ok=True)

  print(f"\nCPU: {cpu_model()}")
  print(f"{'file':<18} {'crops':>9} {'convert s':>10} {'peak RSS MB':>12} {'reload s':>9} "
        f"{'read all s':>11}")
  for name, count, first, again in rows:
    print(f"{name:<18} {count:>9,} {first['seconds']:>10.1f} {first['peak_rss_mb']:>12,.0f} "
          f"{again['seconds']:>9.3f} {again['read_all_seconds']:>11.2f}")
  print(f"digitStruct.mat: {args.photos:,} photos parsed in {parsed['seconds']:.2f} s "
        f"(peak RSS {parsed['peak_rss_mb']:,.0f} MB)")
  if baseline:
    print(f"  plain h5py reader: {baseline['seconds']:.1f} s")


if __name__ == "__main__":
  main()
