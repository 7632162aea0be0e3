"""The interface every task provides: `Task`, a `typing.Protocol` (no base class to inherit).

A task is what a run learns: which data it loads, what the model outputs, how that is scored,
and how a trained run reads new files. The trainer (`steps`, `trainer.Trainer`, `train`), config
validation, the predict CLI, the report and `experiments/error_analysis.py` call these methods
and nothing else task-specific; a task is one object, resolved from `config.task` by
`svhn_jax.tasks.get`.

Device side: called inside compiled programs (`steps.train_step`, `trainer.Trainer`), on JAX
arrays, with the task object static (hashable: a frozen dataclass). N is the batch size;
`images` are uint8 pixels (N, H, W) grey or (N, H, W, C) colour as the data holds them, or the
float32 [0, 1] output of augmentation; `labels` are whatever the task's `load` gives per sample
(int32 (N,) digits; int32 (N, 6) numbers; float32 (N, 4) box corners); `logits` float32
(N, outputs).

  build_model(config, *, seed, channels, dtype, sample=None) -> nnx.Module
      The model of config.model, with as many outputs as the task needs (10 digits, 57 for a
      number's seven length and 5 x 10 digit classes, 2 for a parity bit), `channels` 1 or 3
      input channels, `dtype` its compute dtype (jnp.float32 or jnp.bfloat16). `seed` an int or
      a key; the same seed builds the same weights. `sample`: float32 (n, H, W, channels) model
      input of training images, for a model that initializes from the data's statistics
      (`svhn_jax.models.build`); it may change initial values only, never the parameter tree,
      so a restored run builds without it (None).
  train_images(images, key) -> images
      The training input of a gathered batch (e.g. a random window), drawn with `key`; before the
      recipe's augmentation.
  eval_images(images) -> images
      The evaluation input (numpy or JAX: also applied on the host to validation, test and the
      files `read_files` reads).
  loss(logits, labels, smoothing=0.0) -> float32 scalar
      The batch's mean training loss, targets smoothed by config.train.label_smoothing.
  correct(logits, labels) -> int32 scalar
      How many answers of the batch are right: the per-step training 'accuracy' numerator.
  metrics(logits, labels) -> {'loss': float32 scalar, 'accuracy': float32 scalar}
      Validation metrics, unsmoothed: early stopping follows 'accuracy', the plateau schedule
      'loss'.

Host side: plain Python and numpy, never inside a compiled step; modules that draw or read
files (plots, sources, images) are imported inside these methods, so that importing a task for
its device side stays cheap.

  name: str
      The task's registered name, as config.task holds it.
  data_kind: str
      What it reads from config.data: 'digit crops' (`sources.load`, the config.data.synthetic
      crop fields), 'number photos' (`sources.load_numbers`, config.data.numbers.*) or 'whole
      photos' (`sources.load_located`: format 1's photos whole, their colour and carving); the
      config fields a run of the task reads follow it (`config.Declares`), so a new task on
      either kind of data needs no edit of the config schema.
  from_config(config) -> Task
      The task with its options read from the run config (e.g. config.data.numbers.jitter);
      `tasks.get(config)` calls it on the registered object.
  check_config(config: Mapping) -> None
      The rules between config.task and the rest of a run config (as a nested dict): which
      models, sources, preprocessing and recipes the task can use. Raises ConfigError, one line
      naming the field. Called by `config.validate` before anything is written.
  load(config) -> (data.Dataset, Path)
      The validated train / validation / test splits and where they came from: uint8 images
      (N, H, W[, C]), labels as the device side reads them. Raises ConfigError / DataError.
  extra_tests(config) -> Mapping[str, Callable[[], data.Split]]
      Further test sets the report scores, by name, each loaded only when called (a numbers
      run's test photos cropped at other margins); {} for none.
  test_report(predict, test, extra) -> (report dict, logits)
      JSON-ready test scores (test_metrics.json; 'accuracy' is the headline every run has),
      from `predict` (pixel images -> logits, the run's weights bound) on the `test` split
      (evaluation inputs already) and on `extra` (as `extra_tests` gives them). Returns the test
      logits too, for `write_figures`.
  report_text(report) -> str
      The report as printed at the end of training.
  write_figures(folder, report, logits, test) -> None
      The task's figures under the run's figures/ folder.
  data_text(data: dict) -> str
      Which data a run config's `data` field names, in words (reports, error analysis).
  read_files(workdir, config, paths, options) -> list[dict]
      What the trained run in `workdir` (its saved `config`) reads in each image file of
      `paths`: one JSON-ready dict per file (`python -m svhn_jax.predict --json` prints
      {'file': path, **dict}). `options` holds the CLI's task options by name ('box': text or
      None); a task given an option it does not take raises ConfigError naming it. Files are
      read and checked before the weights (DataError naming the file).
  answer_line(path, answer) -> str
      One `read_files` answer as the CLI prints it without --json.
  analysis(run, loaded, out, grid, threshold) -> str
      The markdown error analysis of a finished run (`report.Run`, `inference.LoadedRun`) on its
      test split, figures written under out/figures (`experiments/error_analysis.py`).

Optional: `finds_boxes: bool`, True for a task whose `read_files` answers hold a 'box' (left,
top, width, height in the file's pixels) and a 'confidence' per file (the locator, locate.py).
`python -m svhn_jax.predict --workdir=READER --locator=LOCATOR photo.png` (svhn_jax/predict.py)
runs such a run's `read_files` first and hands the boxes to the reader's `read_files` as
`options['boxes']` (float64 (N, 4), one per path, beside the one 'box' for all of --box), so a
number task reads the located number as it reads a given --box; a task that takes no boxes
raises ConfigError naming --locator. A task that finds boxes also takes options['refine_passes']
(--refine_passes: its passes after the first, None for its default). Neither task knows the other: the CLI joins the answers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

# A function of pixel images (N, H, W[, C]) giving the model's logits, as
# `inference.predict_logits` with a run's weights bound.
Predict = Callable[[Any], Any]


@runtime_checkable
class Task(Protocol):
  """What a run learns; the module docstring gives each method's shapes and dtypes."""

  name: str
  data_kind: str

  def from_config(self, config: Any) -> "Task": ...

  # Device side.
  def build_model(self, model_cfg: Mapping, *, seed: Any, channels: int, dtype: Any,
                  sample: Any = None) -> Any: ...

  def train_images(self, images: Any, key: Any) -> Any: ...

  def eval_images(self, images: Any) -> Any: ...

  def loss(self, logits: Any, labels: Any, smoothing: float = 0.0) -> Any: ...

  def correct(self, logits: Any, labels: Any) -> Any: ...

  def metrics(self, logits: Any, labels: Any) -> dict: ...

  # Host side.
  def check_config(self, config: Mapping) -> None: ...

  def load(self, config: Any) -> tuple[Any, Path]: ...

  def extra_tests(self, config: Any) -> Mapping[str, Callable[[], Any]]: ...

  def test_report(self, predict: Predict, test: Any,
                  extra: Mapping[str, Callable[[], Any]]) -> tuple[dict, Any]: ...

  def report_text(self, report: dict) -> str: ...

  def write_figures(self, folder: Path, report: dict, logits: Any, test: Any) -> None: ...

  def data_text(self, data: Mapping) -> str: ...

  def read_files(self, workdir: Path, config: Any, paths: Sequence[str],
                 options: Mapping[str, Any]) -> list[dict]: ...

  def answer_line(self, path: str, answer: dict) -> str: ...

  def analysis(self, run: Any, loaded: Any, out: Path, grid: int, threshold: float) -> str: ...
