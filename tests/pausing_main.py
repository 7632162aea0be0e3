"""`python -m svhn_jax.main` that stops at one chosen point, for tests to kill or interrupt there.

The point comes from $SVHN_JAX_PAUSE_AT: "step:E:S" (after step S of epoch E, both from 1),
"global_step:S" (a step-counted run, after its global step S, from 1) or "save:latest:E" /
"save:best:E" (once that checkpoint's files are written, before orbax renames
its temporary folder into place). There the process prints PAUSED on stdout and waits for a
signal: SIGKILL, or Ctrl-C's SIGINT, which lets it go on. Run it from the repository root:
python -m tests.pausing_main --config=...

Ctrl-C reaches it whatever its parent ignores: a shell script's background job, such as pytest
started with `nohup ... &`, starts with SIGINT ignored, and main would keep it ignored.
"""

import os
import signal
import time

from absl import flags
from orbax.checkpoint._src.path import atomicity

from svhn_jax import cli, interrupts, main
from svhn_jax.trainer import Trainer


def pause() -> None:
  print("PAUSED", flush=True)
  # Polls rather than signal.pause(): a signal can land on another thread and leave pause()
  # waiting, while Python runs its handler in this thread between two sleeps.
  while not interrupts.requested():
    time.sleep(0.05)


def pause_after_step(epoch: int, step: int) -> None:
  original = Trainer.train_epoch

  def train_epoch(self, state, data, keys, e, progress=lambda _: None, active=None):
    done = 0

    def counted(n: int) -> None:
      nonlocal done
      progress(n)
      done += n
      if e + 1 == epoch and done == step:
        pause()

    return original(self, state, data, keys, e, counted, active)

  Trainer.train_epoch = train_epoch


def pause_after_global_step(step: int) -> None:
  original = Trainer.train_steps

  def train_steps(self, state, data, keys, start, stop, progress=lambda _: None, active=None):
    done = start

    def counted(n: int) -> None:
      nonlocal done
      progress(n)
      done += n
      if done == step:
        pause()

    return original(self, state, data, keys, start, stop, counted, active)

  Trainer.train_steps = train_steps


def pause_before_rename(which: str, epoch: int) -> None:
  original = atomicity.AtomicRenameTemporaryPath.finalize

  async def finalize(self):
    final = self.get_final()
    if final.name == str(epoch) and final.parent.name == which:
      pause()
    await original(self)

  atomicity.AtomicRenameTemporaryPath.finalize = finalize


if __name__ == "__main__":
  signal.signal(signal.SIGINT, signal.default_int_handler)
  kind, *where = os.environ["SVHN_JAX_PAUSE_AT"].split(":")
  if kind == "step":
    pause_after_step(*map(int, where))
  elif kind == "global_step":
    pause_after_global_step(int(where[0]))
  else:
    pause_before_rename(where[0], int(where[1]))
  flags.mark_flags_as_required(["config"])
  cli.run(main.main, on_interrupt=main._SECOND_SIGNAL)
