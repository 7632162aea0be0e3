"""config.task=locate: find the house number in a whole photo (issue 31), so that a reader run can
read photos that are not cropped to their number.

Input: the whole photo letterboxed to 54x54 (`boxes.letterbox`: aspect ratio kept, centred,
padded with its mean; `datasets.located`, where the choice of 54 is argued). Labels float32
(N, 4): the corners (x0, y0, x1, y1) of the box around all of the number's digits (the union of
format 1's digit boxes, cut to the photo) as shares of the letterbox's side, in [0, 1]. Logits
float32 (N, 5) (`OUTPUTS`): the box as its centre and size, (cx, cy, w, h) = 0.5 + logits[:, :4]
(so an untrained model starts near the letterbox's middle half), corners cx -/+ w / 2 and
cy -/+ h / 2 (`predicted_boxes`; DETR's centre-and-size parametrization, Carion et al. 2020,
arXiv 2005.12872, section 3.1, without its sigmoid: sigmoid outputs saturated within a few
steps of Adam at 2e-3 and stopped learning, loss stuck, in a 120-step trial), and a confidence,
sigmoid(logits[:, 4]), that predicts the box's IoU with the true one (IoU-Net's localization
confidence, Jiang et al. 2018, arXiv 1807.11590).

Loss per photo (`box_losses`): L1_WEIGHT x the smooth-L1 distance (Girshick 2015, Fast R-CNN,
arXiv 1504.08083, eq. 3, with its quadratic part shrunk to `BETA`, about a pixel of the 54x54
input) summed over the four corner coordinates, + GIOU_WEIGHT x (1 - GIoU) (Rezatofighi et al.
2019, arXiv 1902.09630: a gradient even for boxes that do not overlap), with DETR's weights 5
and 2 (arXiv 2005.12872, section 4); + the binary cross-entropy of the confidence against the
box's IoU, held fixed (no gradient into the box). The batch's loss is their mean.
'accuracy' (and `correct`) is the share of boxes with IoU >= 0.5 against the true one, so early
stopping and the plateau schedule work unchanged; the test report adds mean IoU and the share
at IoU >= 0.7 (`box_scores`). IoU is measured in the letterbox, which equals IoU in the photo's
pixels: letterboxing maps each axis by x -> a x + b (a > 0), which scales every area alike.

`python -m svhn_jax.predict --workdir=LOCATOR photo.png` prints per photo the box found in the
file's pixels (left, top, width, height, as format 1's) and its confidence; --json gives
{'file', 'box', 'confidence'}. With --locator=LOCATOR and --workdir=READER (a numbers run) the
predict CLI reads the number in the box found (`svhn_jax.predict`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from svhn_jax import boxes, house_numbers, models
from svhn_jax.errors import ConfigError
from svhn_jax.tasks import number
from svhn_jax.tasks.base import Predict

OUTPUTS = 5  # (cx, cy, w, h) logits of the box, then the confidence's
L1_WEIGHT = 5.0  # DETR's lambda_L1 (arXiv 2005.12872, section 4)
GIOU_WEIGHT = 2.0  # DETR's lambda_iou
BETA = 0.02  # smooth-L1's quadratic zone, shares of the letterbox: about one of its 54 pixels
# 'accuracy' counts a box as found at this IoU (PASCAL VOC's criterion); the report also at 0.7.
FOUND_IOU = 0.5
STRICT_IOU = 0.7
# The models whose trunk a locator reuses, with OUTPUTS logits: the number reader's (its dense
# layer sees every position of the last map) and the Wide ResNet (global average pooling).
MODELS = ("multidigit", "wrn")
PHOTO_SOURCES = number.PHOTO_SOURCES
# Geometric augmentations move the number but not its label: refused (photometric ones are fine).
_GEOMETRIC = ("translate", "distort.scale", "distort.aspect", "distort.rotation",
              "distort.shear")
_GRID = 36  # test photos drawn in figures/located.png


def raw_boxes(logits):
  """float32 (N, 4) corners (x0, y0, x1, y1), shares of the letterbox, of logits (N, 5): the
  centre (0.5 + logits[:, 0], 0.5 + logits[:, 1]) and size (0.5 + logits[:, 2], 0.5 +
  logits[:, 3]), unbounded (a negative size gives a box inside out: the loss's smooth-L1 pulls
  it back, its GIoU counts it empty). numpy or JAX."""
  xp = jnp if isinstance(logits, jax.Array) else np
  centre, size = 0.5 + logits[..., :2], 0.5 + logits[..., 2:4]
  return xp.concatenate([centre - size / 2, centre + size / 2], -1)


def predicted_boxes(logits):
  """float32 (N, 4): the boxes found, `raw_boxes` with sizes below 0 made 0 (never inside
  out). numpy or JAX."""
  xp = jnp if isinstance(logits, jax.Array) else np
  centre, size = 0.5 + logits[..., :2], xp.maximum(0.5 + logits[..., 2:4], 0)
  return xp.concatenate([centre - size / 2, centre + size / 2], -1)


def confidences(logits):
  """(N,) the predicted IoU of each box found, sigmoid(logits[:, 4]); numpy or JAX."""
  return _sigmoid(logits[..., 4])


def _sigmoid(x):
  """The logistic function, without overflow for large |x|: jax.nn.sigmoid on JAX arrays,
  0.5 (1 + tanh(x / 2)) on numpy ones."""
  if isinstance(x, jax.Array):
    return jax.nn.sigmoid(x)
  return 0.5 * (1 + np.tanh(np.asarray(x) / 2))


def smooth_l1(x, beta: float = BETA):
  """Girshick 2015's smooth L1 with quadratic zone `beta`: 0.5 x^2 / beta where |x| < beta,
  else |x| - 0.5 beta (elementwise; value and slope continuous at beta)."""
  ax = jnp.abs(x)
  return jnp.where(ax < beta, 0.5 * x * x / beta, ax - 0.5 * beta)


@jax.jit
def box_losses(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """float32 (N,): each photo's loss (see the module's docstring) of logits (N, 5) against
  labels (N, 4) corners."""
  logits = jnp.asarray(logits, jnp.float32)
  labels = jnp.asarray(labels, jnp.float32)
  found = raw_boxes(logits)
  l1 = jnp.sum(smooth_l1(found - labels), -1)
  overlap = jax.lax.stop_gradient(boxes.iou(found, labels))
  # Binary cross-entropy of sigmoid(logit) against a soft target t: softplus(z) - t z.
  confidence = jax.nn.softplus(logits[:, 4]) - overlap * logits[:, 4]
  return L1_WEIGHT * l1 + GIOU_WEIGHT * (1 - boxes.giou(found, labels)) + confidence


@jax.jit
def box_iou(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """float32 (N,): IoU of each box found (`predicted_boxes` of logits (N, 5)) with labels (N, 4)."""
  return boxes.iou(predicted_boxes(jnp.asarray(logits, jnp.float32)),
                   jnp.asarray(labels, jnp.float32))


def box_scores(logits: np.ndarray, labels: np.ndarray) -> dict:
  """JSON-ready scores of logits (N, 5) against labels (N, 4): 'accuracy' (the share with IoU
  >= 0.5, every run's headline name) and 'iou_at_least_0.5' (the same), 'iou_at_least_0.7',
  'mean_iou', 'median_iou', 'mean_confidence', 'loss' (mean of `box_losses`) and
  'num_examples'."""
  overlap = np.asarray(box_iou(logits, labels), np.float64)
  found = float(np.mean(overlap >= FOUND_IOU)) if len(overlap) else 0.0
  return {
      "accuracy": found,
      "iou_at_least_0.5": found,
      "iou_at_least_0.7": float(np.mean(overlap >= STRICT_IOU)) if len(overlap) else 0.0,
      "mean_iou": float(overlap.mean()) if len(overlap) else 0.0,
      "median_iou": float(np.median(overlap)) if len(overlap) else 0.0,
      "mean_confidence": float(np.mean(confidences(np.asarray(logits, np.float64))))
                         if len(overlap) else 0.0,
      "loss": float(np.mean(np.asarray(box_losses(logits, labels)))) if len(overlap) else 0.0,
      "num_examples": int(len(overlap)),
  }


def report_text(scores: dict) -> str:
  """The printed report of `box_scores`."""
  return "\n".join([f"{'mean IoU':>22} {scores['mean_iou']:.4f}",
                    f"{'median IoU':>22} {scores['median_iou']:.4f}",
                    f"{'IoU >= 0.5':>22} {scores['iou_at_least_0.5']:.4f}",
                    f"{'IoU >= 0.7':>22} {scores['iou_at_least_0.7']:.4f}",
                    f"{'mean confidence':>22} {scores['mean_confidence']:.4f}",
                    f"{'test photos':>22} {scores['num_examples']}"])


@dataclasses.dataclass(frozen=True)
class LocateTask:
  """The number's box in a whole photo: 54x54 letterboxed photos in, labels float32 (N, 4)
  corners, logits (N, 5)."""

  name: str = "locate"
  # Format 1's photos, read whole: the config fields of the number task's data that are not
  # about its crops (config.data.color, use_extra, val_size, split_seed; `config.Declares`).
  data_kind: str = "whole photos"
  # Its `read_files` answers hold a 'box' per file that a numbers run can read
  # (`svhn_jax.predict --locator`).
  finds_boxes: bool = True

  def from_config(self, config) -> "LocateTask":
    """The locate task has no options."""
    del config
    return self

  # Device side ---------------------------------------------------------------------------

  def build_model(self, model_cfg: Mapping, *, seed, channels: int, dtype=jnp.float32,
                  sample=None):
    """`models.build` of config.model with OUTPUTS (5) outputs: the number reader's trunk and
    dense layers (multidigit, its own sizes) or a Wide ResNet, then one linear layer."""
    return models.build(model_cfg, seed=seed, channels=channels, dtype=dtype, outputs=OUTPUTS,
                        sample=sample)

  def train_images(self, images: jax.Array, key: jax.Array) -> jax.Array:
    """The letterboxed photos themselves: a window or shift would move the box."""
    del key
    return images

  def eval_images(self, images):
    """The letterboxed photos themselves."""
    return images

  def loss(self, logits: jax.Array, labels: jax.Array, smoothing: float = 0.0) -> jax.Array:
    """The batch's mean of `box_losses` (`smoothing` is refused by check_config)."""
    del smoothing
    return jnp.mean(box_losses(logits, labels))

  def correct(self, logits: jax.Array, labels: jax.Array) -> jax.Array:
    """How many boxes of the batch have IoU >= 0.5 with the true one (int32 scalar)."""
    return jnp.sum(box_iou(logits, labels) >= FOUND_IOU).astype(jnp.int32)

  def metrics(self, logits: jax.Array, labels: jax.Array) -> dict:
    """'loss' (mean of `box_losses`) and 'accuracy' (the share with IoU >= 0.5)."""
    return {"loss": jnp.mean(box_losses(logits, labels)),
            "accuracy": jnp.mean(box_iou(logits, labels) >= FOUND_IOU)}

  # Host side -----------------------------------------------------------------------------

  def check_config(self, config: Mapping) -> None:
    """A model of MODELS, a source with photos, raw inputs, no test-time shifts, no label
    smoothing, no geometric augmentation (it would move the number, not its box)."""
    model, data, train = config["model"]["name"], config["data"], config["train"]
    if model not in MODELS:
      raise ConfigError(f"config.model.name={model!r}: a locator reuses the trunk of "
                        f"{' or '.join(MODELS)}; expected one of them with config.task=locate")
    number.check_photo_data(data, "locate")
    if train["tta"]:
      raise ConfigError(f"config.train.tta={train['tta']!r}: test-time shifts would move the "
                        "box; expected 0 with config.task=locate")
    if train["label_smoothing"]:
      raise ConfigError(f"config.train.label_smoothing={train['label_smoothing']!r}: boxes have "
                        "no classes to smooth; expected 0 with config.task=locate")
    augment = train["augment"]
    for field in _GEOMETRIC:
      group, _, name = field.rpartition(".")
      value = (augment[group] if group else augment)[name]
      if value:
        raise ConfigError(f"config.train.augment.{field}={value!r}: it moves the number but not "
                          "its box; expected 0 with config.task=locate (photometric ones, "
                          "distort.contrast, blur and color, and cutout, are fine)")
    if augment["num_ops"]:
      raise ConfigError(f"config.train.augment.num_ops={augment['num_ops']!r}: RandAugment's "
                        "rotations, shears and shifts move the number but not its box; expected "
                        "0 with config.task=locate")

  def load(self, config):
    """`sources.load_located`: 54x54 letterboxed photos of config.data, labels (N, 4)."""
    from svhn_jax.datasets import sources
    return sources.load_located(config.data)

  def extra_tests(self, config) -> dict:
    del config
    return {}

  def test_report(self, predict: Predict, test, extra: Mapping[str, Callable] | None = None
                  ) -> tuple[dict, np.ndarray]:
    """(`box_scores` of the test split, the logits)."""
    del extra
    logits = np.asarray(predict(test.images))
    return box_scores(logits, np.asarray(test.labels)), logits

  def report_text(self, report: dict) -> str:
    return report_text(report)

  def write_figures(self, folder: Path, report: dict, logits: np.ndarray, test) -> None:
    """figures/located.png: test photos with the true box (green) and the box found (red),
    titled with its IoU and confidence."""
    del report
    located_figure(folder / "located.png", test.images, test.labels, logits,
                   "Test photos: true box (green), box found (red); IoU, confidence")

  def data_text(self, data: Mapping) -> str:
    """Which photos a locate run config's `data` field names, in words."""
    if data["path"]:
      where = f"`{data['path']}` ({data['source']})"
    elif data["source"] == "synthetic":
      sizes = data["synthetic"]
      where = (f"generated photos, {sizes['train']:,} training ({data['val_size']:,} of them "
               f"carved for validation) and {sizes['test']:,} test (seed {sizes['seed']})")
    else:
      where = "SVHN's format 1 photos"
    return f"{where}, whole, letterboxed to 54x54, {data['color']}"

  def read_files(self, workdir: Path, config, paths: Sequence[str],
                 options: Mapping[str, Any]) -> list[dict]:
    """`locate_files`: {'box': [left, top, width, height] in the file's pixels, cut to the photo,
    'confidence': the predicted IoU} per file. Raises ConfigError for a --box (a locator finds
    the box) or a locator's boxes (options['boxes']), DataError for a file it cannot read
    (before the weights), CheckpointError for a workdir without usable weights."""
    if options.get("box") is not None:
      raise ConfigError(f"--box: --workdir={workdir} holds a locator run (config.task=locate), "
                        "which finds the box itself; give --box to a numbers run")
    if options.get("boxes") is not None:
      raise ConfigError(f"--locator: --workdir={workdir} holds a locator run (config.task="
                        "locate), not a reader; give --workdir a numbers run")
    return locate_files(workdir, config, paths)

  def answer_line(self, path: str, answer: dict) -> str:
    """'file: box left,top,width,height (confidence c%)'."""
    box = ",".join(f"{v:.1f}" for v in answer["box"])
    return f"{path}: box {box} (confidence {answer['confidence']:.1%})"

  def analysis(self, run, loaded, out: Path, grid: int, threshold: float) -> str:
    """The run's test scores and its worst-located test photos (figures under out/figures)."""
    from svhn_jax import inference, report
    del threshold
    test = self.load(loaded.config)[0].test
    logits = inference.run_logits(loaded, test.images)
    scores = box_scores(logits, np.asarray(test.labels))
    worst = np.argsort(np.asarray(box_iou(logits, test.labels)), kind="stable")[:grid]
    figure = located_figure(out / "figures" / "worst_located.png", test.images[worst],
                            np.asarray(test.labels)[worst], logits[worst],
                            "The worst-located test photos: true (green), found (red)")
    return "\n\n".join([
        f"# Error analysis: locator ({run.config['model']['name']})",
        f"Run: `{run.workdir}`. Data: {self.data_text(run.config['data'])}.",
        "```\n" + report_text(scores) + "\n```",
        report.image(figure, out, "worst-located test photos")])


LOCATE = LocateTask()


def locate_files(workdir: Path, config, paths: Sequence[str]) -> list[dict]:
  """The box the locator run in `workdir` (its saved `config`) finds in each image file of
  `paths`: [{'box': [left, top, width, height] in the file's pixels, cut to the photo and at
  least a pixel wide and high (`house_numbers.clip_box`), 'confidence'}]. Each file is read in
  colour (`images.read_photo`: any format, mode, size) and letterboxed as the run's data was
  (`boxes.letterbox`, in config.data.color); all are read before the weights (DataError naming
  a file it cannot read)."""
  from svhn_jax import images, inference
  from svhn_jax.datasets.located import SIZE
  pictures, geometries, sizes = [], [], []
  for path in paths:
    pixels = images.read_photo(path)
    picture, geometry = boxes.letterbox(pixels, SIZE, config.data.color)
    pictures.append(picture)
    geometries.append(geometry)
    sizes.append((pixels.shape[1], pixels.shape[0]))
  logits = inference.run_logits(inference.load_run(workdir), np.stack(pictures))
  found = predicted_boxes(np.asarray(logits, np.float64))
  answers = []
  for box, geometry, size, confidence in zip(found, geometries, sizes, confidences(
      np.asarray(logits, np.float64))):
    photo_box = house_numbers.clip_box(boxes.ltwh(boxes.from_letterbox(box, geometry)), size)
    answers.append({"box": [round(float(v), 2) for v in photo_box],
                    "confidence": float(confidence)})
  return answers


def located_figure(path: Path, images, labels, logits, title: str) -> Path:
  """The first `_GRID` of `images` (N, S, S[, 3]) with the true boxes `labels` (N, 4) and those
  found from `logits` (N, 5) drawn (`plots.boxes_grid`), titled with IoU and confidence."""
  from svhn_jax import plots
  shown = min(_GRID, len(images))
  logits = np.asarray(logits, np.float64)[:shown]
  labels = np.asarray(labels, np.float64)[:shown]
  overlap = np.asarray(box_iou(logits, labels))
  found = predicted_boxes(logits)
  titles = [f"IoU {overlap[i]:.2f}, {confidences(logits[i]):.0%}" for i in range(shown)]
  return plots.boxes_grid(np.asarray(images[:shown]), labels, found, titles, path, cols=9,
                          title=title)
