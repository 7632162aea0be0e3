"""Ctrl-C and SIGTERM in-process: deferred to the end of an epoch, the shell's handlers restored."""

import signal

import pytest

from svhn_jax import interrupts, train
from svhn_jax.errors import Interrupted

from test_train import tiny_config


def deliver(signum: int) -> None:
  # raise_signal runs the Python handler before it returns, however loaded the machine is;
  # os.kill plus a short sleep missed it under load.
  signal.raise_signal(signum)


def test_first_signal_is_a_request_second_stops_at_once():
  before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
  with interrupts.deferred():
    assert interrupts.requested() is None
    deliver(signal.SIGTERM)
    assert interrupts.requested() == signal.SIGTERM
    with pytest.raises(KeyboardInterrupt):
      deliver(signal.SIGINT)
  assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
  assert interrupts.requested() is None


def test_an_ignored_signal_stays_ignored():
  previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
  try:
    with interrupts.deferred():
      deliver(signal.SIGTERM)
      assert interrupts.requested() is None
  finally:
    signal.signal(signal.SIGTERM, previous)


def test_sigterm_before_the_first_epoch_stops_with_its_exit_status(tiny_h5, tmp_path):
  with interrupts.deferred(), pytest.raises(Interrupted, match="SIGTERM stopped the run. No epoch "
                                            "had finished, so there was nothing to save.") as e:
    deliver(signal.SIGTERM)
    train.train_and_evaluate(tiny_config("ann1", tiny_h5), tmp_path)
  assert e.value.exit_code == 128 + signal.SIGTERM
  assert not (tmp_path / "metrics.jsonl").read_text()
