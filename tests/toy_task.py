"""A toy task, "parity" (is the digit even?), added as one module with no edit elsewhere: a run
names it by spec, `--config.task=tests.toy_task:PARITY`, which `svhn_jax.tasks.REGISTRY` imports.

It trains on the digit task's data (labels digit % 2: 0 even, 1 odd), with the configured model
built with 2 outputs (`models.build(..., outputs=2)`), and reads image files as the digit task
does. It shows what a task provides (`svhn_jax.tasks.base.Task`), reusing the digit task where
it can.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from svhn_jax import data, models, recipes
from svhn_jax.tasks import digit

NAMES = ("even", "odd")


@dataclasses.dataclass(frozen=True)
class ParityTask(digit.DigitTask):
  """Labels int32 (N,) 0 (even) or 1 (odd), logits float32 (N, 2)."""

  name: str = "parity"

  def build_model(self, model_cfg: Mapping, *, seed, channels: int, dtype=jnp.float32,
                  sample=None):
    """The model of config.model with 2 logits, even and odd."""
    return models.build(model_cfg, seed=seed, channels=channels, dtype=dtype, sample=sample,
                        outputs=len(NAMES))

  def load(self, config):
    dataset, path = super().load(config)
    return data.Dataset(*(data.Split(s.images, (np.asarray(s.labels) % 2).astype(np.int32))
                          for s in dataset)), path

  def test_report(self, predict, test, extra=None) -> tuple[dict, Any]:
    logits = np.asarray(predict(test.images))
    labels = jnp.asarray(test.labels)
    return {"accuracy": float(np.mean(logits.argmax(-1) == np.asarray(test.labels))),
            "loss": float(recipes.cross_entropy(jnp.asarray(logits), labels)),
            "num_examples": int(len(test.labels))}, logits

  def report_text(self, report: dict) -> str:
    return f"parity accuracy {report['accuracy']:.4f} on {report['num_examples']} images"

  def write_figures(self, folder: Path, report: dict, logits, test) -> None:
    del folder, report, logits, test

  def read_files(self, workdir: Path, config, paths: Sequence[str],
                 options: Mapping[str, Any]) -> list[dict]:
    """{'parity': 'even' or 'odd', 'probability'} per image file, read as the digit task reads."""
    from svhn_jax import images, inference
    del options
    crops = np.stack([images.load_crop(path, color=config.data.color) for path in paths])
    probs = inference.predict_probs(inference.load_run(workdir), crops)
    return [{"parity": NAMES[int(p.argmax())], "probability": float(p.max())} for p in probs]

  def answer_line(self, path: str, answer: dict) -> str:
    return f"{path}: {answer['parity']} ({answer['probability']:.1%})"

  def analysis(self, run, loaded, out: Path, grid: int, threshold: float) -> str:
    return f"# Parity\n\nTest accuracy {run.test['accuracy']:.4f}."


PARITY = ParityTask()
