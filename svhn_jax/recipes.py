"""Training recipes as optax transformations and pure functions, composed from `config.train`.

The study's recipe is one of them: Adam (Keras's eps), no weight decay, the plateau controller
(`callbacks.plateau_update`, which sets the rate between epochs) and early stopping. The others
change the optimizer, the per-step schedule, the loss's targets or the weights that are
evaluated, never the train loop:

- `optimizer`: adam, adamw (decoupled weight decay, Loshchilov & Hutter 2019, arXiv 1711.05101),
  SGD with Nesterov momentum (the Wide ResNet recipe, Zagoruyko & Komodakis 2016) or `muon_sgd`
  (Muon on the convolution filters, SGD on the rest, as Keller Jordan's airbench94_muon), each
  under `optax.inject_hyperparams`, so its rate is part of its state: set by the plateau
  controller between epochs, or computed from the step count by a schedule; optionally inside
  `lookahead` (Zhang et al. 2019, arXiv 1907.08610).
- `learning_rate_schedule`: a linear warm-up from 0, then cosine decay to 0 (Loshchilov &
  Hutter 2017, SGDR, arXiv 1608.03983) or linear decay to 0 (a triangular one-cycle, Smith &
  Topin 2017, arXiv 1708.07120), over the run's steps.
- `cross_entropy`: with label smoothing (Szegedy et al. 2016, arXiv 1512.00567, sec. 7).
- `ema_update`: an exponential moving average of the parameters, its decay warmed up as
  TensorFlow's `ExponentialMovingAverage(num_updates=...)` does: min(decay, (1 + t) / (10 + t)).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax
from optax.contrib import MuonDimensionNumbers, scale_by_muon

from svhn_jax.errors import ConfigError


def scheduled(train_cfg: ml_collections.ConfigDict) -> bool:
  """Whether the rate follows a per-step schedule (not the plateau controller)."""
  return train_cfg.schedule != "plateau"


def counts_steps(train_cfg: ml_collections.ConfigDict) -> bool:
  """Whether the run's length is given in steps (`train.total_steps`), not in epochs."""
  return train_cfg.get("total_steps") is not None


def steps_per_epoch(train_cfg: ml_collections.ConfigDict, num_examples: int) -> int:
  """Optimizer steps in one epoch of `num_examples` training samples: every batch, the last one
  partial, in an epoch-counted run (Keras's); full batches only in a step-counted one (the
  remainder dropped). Raises ConfigError where a step-counted run has no full batch."""
  batch = train_cfg.batch_size
  if not counts_steps(train_cfg):
    return -(-num_examples // batch)
  if num_examples < batch:
    raise ConfigError(f"config.train.batch_size={batch}: a step-counted run takes full batches "
                      f"only, and the training split has {num_examples} samples; expected a "
                      "batch size of at most that")
  return num_examples // batch


def total_steps(train_cfg: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
  """The run's optimizer steps: `train.total_steps`, or `train.epochs` epochs of
  `steps_per_epoch`."""
  if counts_steps(train_cfg):
    return train_cfg.total_steps
  return train_cfg.epochs * steps_per_epoch


def warmup_steps(train_cfg: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
  """The warm-up's steps: `train.warmup_steps`, or `train.warmup_epochs` epochs (rounded)."""
  if train_cfg.get("warmup_steps") is not None:
    return train_cfg.warmup_steps
  return round(train_cfg.warmup_epochs * steps_per_epoch)


def eval_every(train_cfg: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
  """Steps between two validations (and checkpoints) of a step-counted run:
  `train.eval_every_steps`, or one epoch's. An epoch-counted run validates once an epoch."""
  every = train_cfg.get("eval_every_steps") if counts_steps(train_cfg) else None
  return steps_per_epoch if every is None else every


def compute_dtype(train_cfg: ml_collections.ConfigDict, backend: str | None = None) -> str:
  """`train.compute_dtype` with `auto` resolved for `backend` (default: JAX's): bfloat16 on
  GPU and TPU, float32 on the CPU, where XLA emulates bfloat16 (slower than float32,
  benchmarks/wrn_speed.py)."""
  if train_cfg.compute_dtype != "auto":
    return train_cfg.compute_dtype
  backend = jax.default_backend() if backend is None else backend
  return "float32" if backend == "cpu" else "bfloat16"


def learning_rate_schedule(train_cfg: ml_collections.ConfigDict,
                           steps_per_epoch: int) -> float | optax.Schedule:
  """The rate for `optax.inject_hyperparams`: `train.learning_rate` itself for 'plateau' (the
  controller changes it between validations), else a function of the step count: a linear
  warm-up from 0 over `warmup_steps` steps, then cosine or linear decay to 0 at the run's last
  step (`total_steps`). `steps_per_epoch` as the run counts them (`steps_per_epoch`). Raises
  ConfigError if the warm-up is not shorter than the run."""
  peak = train_cfg.learning_rate
  if not scheduled(train_cfg):
    return peak
  total = total_steps(train_cfg, steps_per_epoch)
  warmup = warmup_steps(train_cfg, steps_per_epoch)
  if warmup >= total:
    given = ("config.train.warmup_steps" if train_cfg.get("warmup_steps") is not None
             else "config.train.warmup_epochs")
    length = ("config.train.total_steps" if counts_steps(train_cfg) else "config.train.epochs")
    raise ConfigError(f"{given}={train_cfg.get(given.split('.')[-1])}: a warm-up of {warmup} "
                      f"steps; expected fewer than the run's {total} "
                      f"({length}={train_cfg.get(length.split('.')[-1])})")
  if train_cfg.schedule == "cosine":
    return optax.warmup_cosine_decay_schedule(0.0, peak, warmup, total, end_value=0.0)
  if train_cfg.schedule == "onecycle":
    return optax.join_schedules(
        [optax.linear_schedule(0.0, peak, warmup), optax.linear_schedule(peak, 0.0, total - warmup)],
        [warmup])
  raise ConfigError(f"config.train.schedule={train_cfg.schedule!r}: expected plateau, cosine "
                    "or onecycle")


def adam(learning_rate, eps: float) -> optax.GradientTransformation:
  """The study's Adam, `learning_rate` (a float or an optax schedule) a hyperparameter in its
  state (`optax.inject_hyperparams`), so the plateau controller changes it between epochs
  without recompiling the step. `optimizer` builds it for adam without weight decay."""
  return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate, eps=eps)


def optimizer(train_cfg: ml_collections.ConfigDict,
              steps_per_epoch: int = 1) -> optax.GradientTransformation:
  """The configured optimizer, its rate (and nothing else) injected as a hyperparameter.

  adam: `optax.adam` with `train.adam_eps` (Keras's 1e-7); with weight decay, its L2 gradient
  `weight_decay * w` is added first (`optax.add_decayed_weights`), as Keras's kernel
  regularizers and PyTorch's Adam(weight_decay=...) do. adamw: `optax.adamw`, whose decay is
  scaled by the rate. sgd: `optax.sgd` with Nesterov momentum `train.momentum`, after the same
  L2 gradient (Zagoruyko & Komodakis use 5e-4, on every parameter). muon: `muon_sgd` with
  train.muon's options, train.momentum, weight_decay and bias_lr_multiplier. With
  train.lookahead.every > 0, the whole optimizer inside `lookahead` (the run's steps from
  `steps_per_epoch`). The study's recipe (adam, no decay, no lookahead) is exactly
  `inject_hyperparams(optax.adam)`, so its runs and checkpoints are as before.
  """
  rate = learning_rate_schedule(train_cfg, steps_per_epoch)
  eps, decay, name = train_cfg.adam_eps, train_cfg.weight_decay, train_cfg.optimizer
  every = train_cfg.get("lookahead", {}).get("every", 0)
  if every:
    wrap = lambda tx: lookahead(tx, every, train_cfg.lookahead.decay,
                                total_steps(train_cfg, steps_per_epoch))
  else:
    wrap = lambda tx: tx
  if name == "adam" and decay == 0 and not every:
    return adam(rate, eps)
  if name == "adam":
    build = lambda learning_rate: optax.chain(optax.add_decayed_weights(decay),
                                              optax.adam(learning_rate, eps=eps))
  elif name == "adamw":
    build = lambda learning_rate: optax.adamw(learning_rate, eps=eps, weight_decay=decay)
  elif name == "sgd":
    momentum = train_cfg.momentum
    build = lambda learning_rate: optax.chain(
        optax.add_decayed_weights(decay),
        optax.sgd(learning_rate, momentum=momentum, nesterov=True))
  elif name == "muon":
    m = train_cfg.muon
    # Muon's rate follows the schedule's shape, at its own peak.
    ratio = m.learning_rate / train_cfg.learning_rate
    build = lambda learning_rate: muon_sgd(
        learning_rate, muon_learning_rate=learning_rate * ratio, momentum=train_cfg.momentum,
        muon_momentum=m.momentum, ns_steps=m.ns_steps, normalize=m.normalize,
        weight_decay=decay, bias_lr_multiplier=train_cfg.bias_lr_multiplier)
  else:
    raise ConfigError(f"config.train.optimizer={name!r}: expected adam, adamw, sgd or muon")
  if every:
    inner = build
    build = lambda learning_rate: wrap(inner(learning_rate))
  return optax.inject_hyperparams(build)(learning_rate=rate)


# A convolution kernel (kh, kw, in, out) as Muon's matrix: (kh * kw * in) x out, the reshape
# airbench makes (its Torch (out, in, kh, kw) as out x (in * kh * kw), the same matrix
# transposed, whose Newton-Schulz iterate is the transpose: the polynomial is odd).
CONV_DIMENSIONS = MuonDimensionNumbers(reduction_axis=(0, 1, 2), output_axis=3)


def param_labels(params) -> Any:
  """Each parameter's group in `muon_sgd`, a tree like `params` of 'filters' (a 4-D leaf: a
  convolution kernel), 'bias' (a 1-D leaf named bias: BatchNorm's, a conv's) or 'other'."""
  def label(path, leaf) -> str:
    names = [k.key for k in path if isinstance(k, jax.tree_util.DictKey)]
    if leaf.ndim == 4:
      return "filters"
    return "bias" if leaf.ndim == 1 and names and names[-1] == "bias" else "other"

  return jax.tree_util.tree_map_with_path(label, params)


def normalize_filters() -> optax.GradientTransformation:
  """Adds p * (sqrt(out) / ||p|| - 1) to each update of a kernel p (..., out): applied after the
  step's own update u, the new kernel is p * sqrt(out) / ||p|| + u, the filter bank rescaled to
  norm sqrt(out) before the step, as airbench's Muon does (`p.data.mul_(len(p.data)**0.5 /
  p.data.norm())`). A BatchNorm after the conv makes its output blind to that scale, and a
  fixed scale keeps Muon's fixed-size steps the same size relative to the weights. Needs the
  params; stateless."""
  def update(updates, state, params=None):
    if params is None:
      raise ValueError("normalize_filters needs the params")
    scaled = jax.tree.map(
        lambda u, p: u + p * (jnp.sqrt(jnp.float32(p.shape[-1])) / jnp.linalg.norm(p) - 1),
        updates, params)
    return scaled, state

  return optax.GradientTransformation(optax.init_empty_state, update)


def muon_sgd(learning_rate, *, muon_learning_rate, momentum: float, muon_momentum: float,
             ns_steps: int, normalize: bool, weight_decay: float,
             bias_lr_multiplier: float) -> optax.GradientTransformation:
  """airbench94_muon's optimizer (KellerJordan/cifar10-airbench): Muon on the convolution
  filters, SGD with Nesterov momentum on the rest, by `param_labels` (`optax.partition`).

  filters: `optax.contrib.scale_by_muon` (Nesterov momentum `muon_momentum`, `ns_steps`
  Newton-Schulz steps of the quintic 3.4445 x - 4.7750 x^3 + 2.0315 x^5 after scaling the
  momentum to unit Frobenius norm), each kernel as its (kh * kw * in) x out matrix
  (`CONV_DIMENSIONS`: optax 0.2.8's Muon takes a 4-D kernel given its dimension numbers;
  without them `optax.contrib.muon` hands it to Adam), times -`muon_learning_rate`, no weight
  decay; with `normalize`, `normalize_filters` first. bias: `optax.sgd` at `learning_rate *
  bias_lr_multiplier`, after an L2 gradient `weight_decay / bias_lr_multiplier * w`. other:
  `optax.sgd` at `learning_rate` after `weight_decay * w`. Both SGDs with Nesterov `momentum`;
  each group's decay per step is then learning_rate * weight_decay, as airbench's per-group
  `weight_decay=wd/lr`. Rates may be optax schedules or scalars (under inject_hyperparams)."""
  filters = [scale_by_muon(ns_steps=ns_steps, beta=muon_momentum, nesterov=True,
                           weight_dimension_numbers=lambda tree: jax.tree.map(
                               lambda _: CONV_DIMENSIONS, tree)),
             optax.scale_by_learning_rate(muon_learning_rate)]
  if normalize:
    filters.append(normalize_filters())
  sgd = lambda rate, decay: optax.chain(optax.add_decayed_weights(decay),
                                        optax.sgd(rate, momentum=momentum, nesterov=True))
  return optax.partition(
      {"filters": optax.chain(*filters),
       "bias": sgd(learning_rate * bias_lr_multiplier, weight_decay / bias_lr_multiplier),
       "other": sgd(learning_rate, weight_decay)},
      param_labels)


class LookaheadState(NamedTuple):
  """`lookahead`'s state: the inner optimizer's, the slow weights, and the steps taken."""

  inner: Any
  slow: Any
  count: jax.Array


def lookahead_decay(decay: float, count: jax.Array, total: int) -> jax.Array:
  """The slow weights' decay at a sync after step `count` (1-based) of `total`: decay * (count /
  total)^3, airbench94's `alpha_schedule` (0.95**5 * (step / total)**3), so the slow weights
  follow the fast ones closely early and average more late; 1 at or after the last step (the
  slow weights kept, and the fast ones set to them)."""
  t = jnp.minimum(jnp.asarray(count, jnp.float32) / total, 1.0)
  return jnp.where(count >= total, 1.0, jnp.float32(decay) * t ** 3)


def lookahead(inner: optax.GradientTransformation, every: int, decay: float,
              total: int) -> optax.GradientTransformation:
  """Lookahead (Zhang et al. 2019, arXiv 1907.08610) as airbench94 schedules it, on the param
  tree as it is (`optax.lookahead` wants a tree of fast and slow params, which would change the
  model's checkpoint layout).

  Each step the `inner` optimizer moves the (fast) params to f = p + inner update. After every
  `every`-th step and after step `total` (the run's last), a sync: the slow weights s become
  d * s + (1 - d) * f with d = `lookahead_decay(decay, step, total)`, and the params are set to
  them (the returned update is s - p); otherwise the update is the inner one and s stays. The
  slow weights start at the initial params. Needs the params."""
  if every < 1 or total < 1:
    raise ValueError(f"lookahead: every={every} and total={total}; expected both at least 1")

  def init(params):
    return LookaheadState(inner.init(params), jax.tree.map(jnp.copy, params),
                          jnp.zeros([], jnp.int32))

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("lookahead needs the params")
    updates, inner_state = inner.update(updates, state.inner, params)
    fast = optax.apply_updates(params, updates)
    count = state.count + 1
    sync = (count % every == 0) | (count >= total)
    d = lookahead_decay(decay, count, total)
    slow = jax.tree.map(
        lambda s, f: jnp.where(sync, (d * s + (1 - d) * f).astype(s.dtype), s), state.slow, fast)
    # Between syncs the inner update as it is (no rounding added), at a sync s - p.
    updates = jax.tree.map(lambda u, s, p: jnp.where(sync, (s - p).astype(u.dtype), u),
                           updates, slow, params)
    return updates, LookaheadState(inner_state, slow, count)

  return optax.GradientTransformation(init, update)


def learning_rate(opt_state) -> jax.Array:
  """The rate of the last step (or, before any, the first) in an `optimizer`'s state; with a
  seed axis, one per seed."""
  return opt_state.hyperparams["learning_rate"]


def step_count(opt_state) -> jax.Array:
  """Steps taken so far, from an `optimizer`'s state (int32)."""
  return opt_state.count


def cross_entropies(logits: jax.Array, labels: jax.Array, smoothing: float = 0.0) -> jax.Array:
  """Each sample's cross-entropy, float32 (...,), of logits (..., classes) against int labels
  (...,), the targets smoothed to (1 - smoothing) one-hot + smoothing / classes
  (`optax.smooth_labels`)."""
  if not smoothing:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype),
                                smoothing)
  return optax.softmax_cross_entropy(logits, targets)


def cross_entropy(logits: jax.Array, labels: jax.Array, smoothing: float = 0.0) -> jax.Array:
  """The mean of `cross_entropies` over logits (N, classes) and int labels (N,): a float32
  scalar, the study's loss when `smoothing` is 0."""
  return cross_entropies(logits, labels, smoothing).mean()


def ema_decay(decay: float, count: jax.Array) -> jax.Array:
  """The decay at update `count` (0-based): min(decay, (1 + count) / (10 + count)), as
  `tf.train.ExponentialMovingAverage` with num_updates, so that the first updates, far from
  the random initialization, count for more."""
  count = jnp.asarray(count, jnp.float32)
  return jnp.minimum(jnp.float32(decay), (1 + count) / (10 + count))


def ema_update(ema, params, decay: float, count: jax.Array):
  """The moving average after one more step: ema * d + params * (1 - d), d = `ema_decay`."""
  d = ema_decay(decay, count)
  return jax.tree.map(lambda e, p: (e * d + p * (1 - d)).astype(e.dtype), ema, params)
