"""A NaN or infinite loss stops the run, naming the epoch and step, and keeps the last good epoch."""

import pytest

from support import metrics_rows, run_cli, tiny_config
from svhn_jax import checkpoint, steps, train
from svhn_jax.errors import TrainingDiverged

DIVERGED = ("the training loss became NaN or infinite at epoch {epoch}, step 2 of 6. That epoch "
            "was not saved: the workdir keeps the last good epoch's checkpoint, if any. Try a "
            "lower config.train.learning_rate in a new --workdir.")


def test_nan_in_the_second_epoch_keeps_the_first(tiny_h5, tmp_path, monkeypatch):
  rates = []

  def exploding_in_epoch_2(state, lr):
    rates.append(lr)
    return original(state, 1e30 if len(rates) == 2 else lr)

  original = steps.with_learning_rate
  monkeypatch.setattr(steps, "with_learning_rate", exploding_in_epoch_2)
  # The first step of epoch 2 takes the huge rate; the loss of the second is no longer finite.
  with pytest.raises(TrainingDiverged) as e:
    train.train_and_evaluate(tiny_config("ann1", tiny_h5, epochs=3), tmp_path)
  assert str(e.value) == DIVERGED.format(epoch=2)
  ckpts = checkpoint.Checkpoints(tmp_path)
  assert ckpts.latest_epoch() == 1
  ckpts.close()
  assert [row["epoch"] for row in metrics_rows(tmp_path)] == [1]
  assert not (tmp_path / "test_metrics.json").exists()


def test_cli_reports_divergence_in_one_line(tiny_h5, tmp_path):
  result = run_cli("svhn_jax.main", "--config=configs/ann1.py", f"--workdir={tmp_path}",
                   f"--config.data.path={tiny_h5}", "--config.train.batch_size=32",
                   "--config.train.learning_rate=1e30")
  assert result.returncode == 1
  assert "Traceback" not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == "error: " + DIVERGED.format(epoch=1)
