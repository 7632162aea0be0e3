"""Peak memory and time to the first step of CNN2 on all of SVHN format 2 (604,388 crops).

  python benchmarks/scale.py --dir=/tmp/svhn_full                   # official sizes, colour
  python benchmarks/scale.py --dir=/tmp/svhn_small --train=2000 --extra=8000 --test=1000

With --to-first-step the run is stopped when its first step starts. Writes format-2 stand-ins
of the official shapes into --dir once (benchmarks/official_data.py's
drawn digits: 73,257 train, 531,131 extra, 26,032 test by default), then runs, in a fresh
process, `svhn_jax.main` with configs/cnn2.py on them with extra and colour for --epochs epochs
(the .mat conversion into the cache included on the first run, cached afterwards) and prints:
the peak RSS of that process (from the command's start through training), the seconds from the
command's start to the first training step's start, and the seconds of the first epoch.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.official_data import write_cropped  # noqa: E402
from svhn_jax import cli  # noqa: E402
from svhn_jax import config as config_lib  # noqa: E402


def log_time(line: str) -> float:
  """Seconds since midnight of an absl log line (I1201 02:19:33.211533 ...)."""
  stamp = datetime.strptime(line.split()[1], "%H:%M:%S.%f")
  return stamp.hour * 3600 + stamp.minute * 60 + stamp.second + stamp.microsecond / 1e6


def main() -> None:
  parser = cli.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dir", required=True, type=Path)
  parser.add_argument("--train", type=int, default=73_257)
  parser.add_argument("--extra", type=int, default=531_131)
  parser.add_argument("--test", type=int, default=26_032)
  parser.add_argument("--epochs", type=int, default=1)
  parser.add_argument("--color", default="rgb", choices=config_lib.COLORS)
  parser.add_argument("--to-first-step", action="store_true",
                      help="stop the run at its first step: time to it, and peak RSS until then")
  args = parser.parse_args()
  # Checked before the files are written, rather than by the run after.
  if min(args.train, args.test) < 1 or args.extra < 0 or args.epochs < 1:
    parser.error("expected --train, --test and --epochs of at least 1 and --extra of at least 0")
  args.dir.mkdir(parents=True, exist_ok=True)
  for name, count in (("train", args.train), ("extra", args.extra), ("test", args.test)):
    path = args.dir / f"{name}_32x32.mat"
    if not path.exists():
      print(f"writing {path} ({count:,} crops)", flush=True)
      write_cropped(path, count, compress=True)
  workdir = args.dir / "run"
  command = [sys.executable, "-m", "svhn_jax.main", "--config=configs/cnn2.py",
             f"--workdir={workdir}", "--restart", "--config.data.source=svhn_cropped",
             f"--config.data.path={args.dir}", "--config.data.use_extra=true",
             f"--config.data.color={args.color}", f"--config.train.epochs={args.epochs}",
             f"--config.data.cache_dir={args.dir / 'cache'}"]
  started = time.time()
  midnight = datetime.fromtimestamp(started).replace(hour=0, minute=0, second=0, microsecond=0)
  run = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
  lines = []
  for line in run.stderr:
    lines.append(line)
    if args.to_first_step and re.search(r"Training \d+ run", line):
      run.kill()
      break
  if run.wait() and not args.to_first_step:
    sys.exit("".join(lines[-40:]))
  start_s = started - midnight.timestamp()
  first_step = next(log_time(l) for l in lines if re.search(r"Training \d+ run", l))
  epoch = next((l for l in lines if re.search(r"epoch 1/\d+ ", l)), "(not run) -")
  peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
  print(f"crops: train+extra {args.train + args.extra:,}, test {args.test:,}; colour {args.color}")
  print(f"peak RSS of the run: {peak:.2f} GiB")
  print(f"command start to the first step: {first_step - start_s:.1f} s")
  print(f"first epoch: {epoch.split()[-1]}")


if __name__ == "__main__":
  main()
