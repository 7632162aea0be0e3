"""The one inference path: logits in fixed-size chunks, a trained run's weights, its answers.

Training (validation and test), `predict`, the multi-seed experiments and the error analysis all
go through here, so a run's test accuracy and what `predict` says about the same images agree.
"""

from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from svhn_jax import (augment, checkpoint, evaluate, input_pipeline, models, parallel, recipes,
                      steps, tasks, xla_flags)
from svhn_jax import config as config_lib
from svhn_jax.errors import CheckpointError

# On XLA:CPU a CNN's activations for 128 images stay in the last-level cache: larger chunks ran
# 1.4-1.7x slower (CNN2 5,551 vs 7,934 images/s, CNN1 8,617 vs 14,589 on 2 Zen 4 cores). The
# ANNs, and accelerators, are fastest in large chunks.
CPU_CNN_INFERENCE_CHUNK = 128


def inference_chunk(requested: int, model_name: str) -> int:
  """The chunk size to run inference in: `requested` (config.train.eval_batch_size), at most
  CPU_CNN_INFERENCE_CHUNK for a convolutional model on the CPU. Inference is per sample, so no
  result changes."""
  if jax.default_backend() == "cpu" and models.spec(model_name).convolutional:
    return min(requested, CPU_CNN_INFERENCE_CHUNK)
  return requested


def tta_shifts(pixels: int) -> tuple[tuple[int, int], ...]:
  """The (dy, dx) translations test-time augmentation averages over: every combination of
  -pixels, 0 and +pixels in each axis, 9 views with the original first; just (0, 0) for 0."""
  if pixels == 0:
    return ((0, 0),)
  steps_ = (0, -pixels, pixels)
  return tuple((dy, dx) for dy in steps_ for dx in steps_)


def predict_logits(graphdef, params, batch_stats, images, *, batch_size: int,
                   mesh: jax.sharding.Mesh | None = None, seed_axis: bool = False,
                   tta: int = 0) -> jax.Array:
  """Inference-mode logits for all `images` (N, H, W[, C], see `steps.model_input`), in chunks of
  `batch_size` (one compile, any N): (N, classes), or (seeds, N, classes) with `seed_axis`, where
  `params` and `batch_stats` carry a leading axis of seeds that all see the same chunks.

  With `tta` > 0 (pixels), test-time augmentation: the result is the log of the mean softmax
  over the views `tta_shifts(tta)` (edge-padded shifts, `augment.shift`), valid logits of that
  mean. On a `mesh`, each chunk is split over its devices and its logits gathered on all of them.
  """
  n = images.shape[0]
  chunks = max(1, math.ceil(n / batch_size))
  padded = _pad_to(images, chunks * batch_size)
  logits_chunk = _compiled_logits_chunk()
  logits = [
      logits_chunk(graphdef, params, batch_stats, padded, jnp.int32(c * batch_size), batch_size,
                   mesh, seed_axis, tta_shifts(tta))
      for c in range(chunks)
  ]
  axis = 1 if seed_axis else 0
  return jax.lax.slice_in_dim(jnp.concatenate(logits, axis), 0, n, axis=axis)


@functools.cache
def _compiled_logits_chunk():
  # Built on first use, not at import: the options depend on the backend, which must not start
  # before jax.distributed.initialize.
  return jax.jit(_logits_chunk, static_argnums=(0, 5, 6, 7, 8),
                 compiler_options=xla_flags.model_options())


def _logits_chunk(graphdef, params, batch_stats, images, start, size, mesh, seed_axis, shifts):
  x = jax.lax.dynamic_slice_in_dim(images, start, size)
  forward = functools.partial(steps.logits, graphdef)
  if len(shifts) > 1:
    forward = functools.partial(_averaged_views, forward, shifts)
  if seed_axis:
    forward = jax.vmap(forward, in_axes=(0, 0, None))
  if mesh is None:
    return forward(params, batch_stats, x)
  x = jax.lax.with_sharding_constraint(x, parallel.rows(mesh, size))
  return jax.lax.with_sharding_constraint(forward(params, batch_stats, x),
                                          parallel.replicated(mesh))


def _averaged_views(forward, shifts, params, batch_stats, images):
  """log of the mean softmax of `forward` over shifted views of `images`."""
  x = steps.model_input(images)
  probs = [jax.nn.softmax(forward(params, batch_stats, augment.shift(x, dy, dx)).astype(
      jnp.float32)) for dy, dx in shifts]
  return jnp.log(sum(probs) / len(probs))


def _pad_to(x: jax.Array, n: int) -> jax.Array:
  if x.shape[0] == n:
    return x
  return jnp.concatenate([x, jnp.zeros((n - x.shape[0], *x.shape[1:]), x.dtype)])


class LoadedRun(NamedTuple):
  """A trained run, ready to predict: its config, model structure and best weights (with the
  moving average, 'ema', where the recipe kept one), and the mask its inputs need (None unless
  config.data.preprocess is 'mask')."""

  config: ml_collections.ConfigDict
  graphdef: Any
  weights: dict
  mask: np.ndarray | None


def saved_config(workdir: str | os.PathLike) -> ml_collections.ConfigDict:
  """The config that trained `workdir`, read without JAX; CheckpointError unless the workdir
  holds a run (config.json and checkpoints/) whose config is valid."""
  workdir = Path(workdir)
  path = workdir / "config.json"
  if not workdir.is_dir():
    raise CheckpointError(f"--workdir={workdir}: no such folder; expected the workdir of a run "
                          "trained with python -m svhn_jax.main")
  if not path.is_file() or not (workdir / "checkpoints").is_dir():
    raise CheckpointError(f"{workdir} holds no trained run (config.json and checkpoints/); "
                          "expected the workdir of a run trained with python -m svhn_jax.main")
  try:
    tree = json.loads(path.read_text())
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise CheckpointError(f"{path} is not the JSON config a run writes: {e}") from e
  checkpoint.refuse_legacy(workdir)
  return config_lib.from_dict(tree)


def load_run(workdir: str | os.PathLike) -> LoadedRun:
  """The best weights of the run in `workdir` (else its latest; without early stopping, the
  latest, the run's result), restored without the optimizer's state. Raises CheckpointError
  for a workdir that holds no usable run."""
  workdir = Path(workdir)
  config = saved_config(workdir)
  channels = 3 if config.data.color == "rgb" else 1
  model = tasks.get(config).build_model(config.model, seed=config.seed, channels=channels,
                                        dtype=jnp.dtype(recipes.compute_dtype(config.train)))
  graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
  like = {"params": params, "batch_stats": batch_stats}
  if config.train.ema_decay:
    like["ema"] = params
  ckpts = checkpoint.Checkpoints(workdir)
  try:
    weights = ckpts.restore_weights(like, best=config.train.early_stopping.enabled)
  finally:
    ckpts.close()
  if weights is None:
    raise CheckpointError(f"{workdir / 'checkpoints'} is empty: the run saved no epoch yet")
  mask = None
  if config.data.preprocess == "mask":
    mask_path = workdir / "mask.npy"
    if not mask_path.is_file():
      raise CheckpointError(f"{mask_path}: no such file; a masked run keeps its mask there")
    mask = np.load(mask_path)
  return LoadedRun(config, graphdef, weights, mask)


def run_logits(run: LoadedRun, images: np.ndarray) -> np.ndarray:
  """(N, outputs) logits of pixel images (N, H, W[, C], 0..255) under the run's weights, after
  the run's own preprocessing: its task's evaluation input (`tasks.base.Task.eval_images`: for a
  numbers run, the centre 54x54 of 64x64 crops) and its mask, if any."""
  images = tasks.get(run.config).eval_images(np.asarray(images))
  inputs = input_pipeline.prepare_images(images, run.mask)
  chunk = inference_chunk(run.config.train.eval_batch_size, run.config.model.name)
  weights = checkpoint.evaluated(run.weights)
  return np.asarray(predict_logits(run.graphdef, weights["params"], weights["batch_stats"],
                                   inputs, batch_size=chunk, tta=run.config.train.tta))


def predict_probs(run: LoadedRun, images: np.ndarray) -> np.ndarray:
  """(N, classes) float64 class probabilities of pixel images (N, H, W[, C], 0..255), for a
  digit run (a numbers run's logits are six softmaxes: `tasks.number.decode` reads them)."""
  return evaluate.softmax(run_logits(run, images).astype(np.float64))
