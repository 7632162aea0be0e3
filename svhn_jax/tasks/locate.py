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

Reading a photo is coarse to fine (`locate_photos`): a first pass on the whole photo's letterbox,
where a number 8% of a photo's width is 4 pixels wide, then REFINE_PASSES (2) more of the same
model on a window around the box found, REFINE_CONTEXT (2.5) times its size, letterboxed to
54x54 in turn (the zoomed views of `datasets.located` train the model for it). The test report
(test_metrics.json) scores the first pass on the whole photos only.

`python -m svhn_jax.predict --workdir=LOCATOR photo.png` prints per photo the box found in the
file's pixels (left, top, width, height, as format 1's) and its confidence (the last pass's);
--json gives {'file', 'box', 'confidence'}; --refine_passes=0 gives the first pass's. With
--locator=LOCATOR and --workdir=READER (a numbers run) the predict CLI reads the number in the
box found (`svhn_jax.predict`).
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
# Coarse to fine (`locate_photos`): passes after the first, each on the window around the last
# box with REFINE_CONTEXT times its width and height (inside the zoomed training views' 1.5-5,
# `datasets.located.ZOOM_FACTORS`), at least REFINE_MIN_PIXELS a side.
REFINE_PASSES = 2  # on the real whole-photo set: 1 pass read 29.8%, 2 56.2%, 3 65.4%, 4 65.2%
REFINE_CONTEXT = 2.5
REFINE_MIN_PIXELS = 16
_FILES_AT_ONCE = 256  # photo files held in memory at once by `locate_files`


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
    views = data.get("locate", {}).get("zoom_views", 0)
    zoom = (f", each training photo with {views} zoomed view{'s' * (views > 1)} of its number"
            if views else "")
    return f"{where}, whole, letterboxed to 54x54{zoom}, {data['color']}"

  def read_files(self, workdir: Path, config, paths: Sequence[str],
                 options: Mapping[str, Any]) -> list[dict]:
    """`locate_files`: {'box': [left, top, width, height] in the file's pixels, cut to the photo,
    'confidence': the predicted IoU} per file, in 1 + options['refine_passes'] passes (None:
    REFINE_PASSES). Raises ConfigError for a --box (a locator finds the box), a locator's boxes
    (options['boxes']) or a bad --refine_passes, DataError for a file it cannot read
    (before the weights), CheckpointError for a workdir without usable weights."""
    if options.get("box") is not None:
      raise ConfigError(f"--box: --workdir={workdir} holds a locator run (config.task=locate), "
                        "which finds the box itself; give --box to a numbers run")
    if options.get("boxes") is not None:
      raise ConfigError(f"--locator: --workdir={workdir} holds a locator run (config.task="
                        "locate), not a reader; give --workdir a numbers run")
    return locate_files(workdir, config, paths, options.get("refine_passes"))

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


def locate_photos(logits_of: Callable[[np.ndarray], np.ndarray], photos: Sequence[np.ndarray],
                  color: str, refine: int = REFINE_PASSES) -> tuple[np.ndarray, np.ndarray]:
  """(corners float64 (N, 4) in each photo's pixels, not cut to the photo; confidences float64
  (N,)): the number's box in each of `photos` (uint8 (H, W, 3) or (H, W), any sizes), found in
  1 + `refine` passes of the same locator, coarse to fine (the cascade of Viola & Jones 2001,
  here one model at every scale: `datasets.located`'s zoomed training views).

  Pass 1 looks at the whole photo, `boxes.letterbox`ed to 54x54 in `color`; each further pass at
  the window around the previous pass's box (cut to the photo) with REFINE_CONTEXT times its
  width and height, at least REFINE_MIN_PIXELS a side, centred (`boxes.context_window`),
  letterboxed the same way. Each pass's box (`predicted_boxes`) is mapped back from its
  letterbox (`boxes.from_letterbox`) and window (`boxes.from_window`) to the photo's pixels; the
  boxes and confidences returned are the last pass's. `logits_of` maps uint8 (N, 54, 54[, 3])
  letterboxes to their logits (N, 5), the run's weights bound (one call per pass); refine=0 is
  the one-pass locator. Raises ValueError for a negative `refine`."""
  from svhn_jax.datasets.located import SIZE
  if int(refine) != refine or refine < 0:
    raise ValueError(f"locate_photos: refine must be a whole number >= 0, got {refine}")
  sizes = [(photo.shape[1], photo.shape[0]) for photo in photos]
  windows = [np.array([0, 0, width, height], np.int64) for width, height in sizes]
  found = np.zeros((len(photos), 4))
  confidence = np.zeros(len(photos))
  for step in range(1 + int(refine)):
    if step:
      windows = [refine_window(box, size) for box, size in zip(found, sizes)]
    views = [boxes.letterbox(boxes.window_pixels(photo, window), SIZE, color)
             for photo, window in zip(photos, windows)]
    if not views:
      break
    logits = np.asarray(logits_of(np.stack([image for image, _ in views])), np.float64)
    in_views = predicted_boxes(logits)
    found = np.stack([boxes.from_window(boxes.from_letterbox(box, geometry), window)
                      for box, (_, geometry), window in zip(in_views, views, windows)])
    confidence = confidences(logits)
  return found, np.asarray(confidence, np.float64)


def refine_window(box: np.ndarray, photo_size: tuple[int, int]) -> np.ndarray:
  """int64 (4,) whole-pixel corners of the window a refining pass looks at around corners `box`
  (photo pixels) in a photo of `photo_size` = (width, height): the box cut to the photo, then
  REFINE_CONTEXT times its width and height, at least REFINE_MIN_PIXELS, centred on it and cut to
  the photo (`boxes.context_window`)."""
  return boxes.context_window(boxes.clip_corners(box, photo_size), photo_size, REFINE_CONTEXT,
                              min_size=REFINE_MIN_PIXELS)


def check_refine(refine: Any) -> int:
  """`refine` (--refine_passes) as an int, or REFINE_PASSES for None. Raises ConfigError, one line
  naming --refine_passes, for anything but a whole number >= 0."""
  if refine is None:
    return REFINE_PASSES
  if isinstance(refine, bool) or not isinstance(refine, (int, np.integer)) or refine < 0:
    raise ConfigError(f"--refine_passes={refine}: expected a whole number of at least 0 (the "
                      "locator's passes after the first, on a window around its box)")
  return int(refine)


def locate_files(workdir: Path, config, paths: Sequence[str],
                 refine: int | None = None) -> list[dict]:
  """The box the locator run in `workdir` (its saved `config`) finds in each image file of
  `paths` in 1 + `refine` passes (`locate_photos`; None: REFINE_PASSES): [{'box': [left, top,
  width, height] in the file's pixels, cut to the photo and at least a pixel wide and high
  (`house_numbers.clip_box`), 'confidence': the last pass's}]. Each file is read in colour
  (`images.read_photo`: any format, mode, size) and letterboxed as the run's data was (in
  config.data.color). Files are read _FILES_AT_ONCE at a time (a refining pass looks at the photo
  again; memory stays bounded), the first of them before the weights (DataError naming a file it
  cannot read; CheckpointError for a workdir without usable weights; ConfigError for a bad
  `refine`)."""
  from svhn_jax import images, inference
  refine = check_refine(refine)
  run = []

  def logits_of(pictures: np.ndarray) -> np.ndarray:
    if not run:
      run.append(inference.load_run(workdir))
    return inference.run_logits(run[0], pictures)

  answers = []
  for start in range(0, len(paths), _FILES_AT_ONCE):
    chunk = [images.read_photo(path) for path in paths[start:start + _FILES_AT_ONCE]]
    found, confidence = locate_photos(logits_of, chunk, config.data.color, refine)
    for box, photo, sure in zip(found, chunk, confidence):
      size = (photo.shape[1], photo.shape[0])
      photo_box = house_numbers.clip_box(boxes.ltwh(box), size)
      answers.append({"box": [round(float(v), 2) for v in photo_box], "confidence": float(sure)})
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
