"""Training recipes as optax transformations and pure functions, composed from `config.train`.

The study's recipe is one of them: Adam (Keras's eps), no weight decay, the plateau controller
(`callbacks.plateau_update`, which sets the rate between epochs) and early stopping. The others
change the optimizer, the per-step schedule, the loss's targets or the weights that are
evaluated, never the train loop:

- `optimizer`: adam, adamw (decoupled weight decay, Loshchilov & Hutter 2019, arXiv 1711.05101)
  or SGD with Nesterov momentum (the Wide ResNet recipe, Zagoruyko & Komodakis 2016), each
  under `optax.inject_hyperparams`, so its rate is part of its state: set by the plateau
  controller between epochs, or computed from the step count by a schedule.
- `learning_rate_schedule`: a linear warm-up from 0, then cosine decay to 0 (Loshchilov &
  Hutter 2017, SGDR, arXiv 1608.03983) or linear decay to 0 (a triangular one-cycle, Smith &
  Topin 2017, arXiv 1708.07120), over the run's steps.
- `cross_entropy`: with label smoothing (Szegedy et al. 2016, arXiv 1512.00567, sec. 7).
- `ema_update`: an exponential moving average of the parameters, its decay warmed up as
  TensorFlow's `ExponentialMovingAverage(num_updates=...)` does: min(decay, (1 + t) / (10 + t)).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

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
  L2 gradient (Zagoruyko & Komodakis use 5e-4, on every parameter). The study's recipe (adam,
  no decay) is exactly `inject_hyperparams(optax.adam)`, so its runs and checkpoints are as
  before.
  """
  rate = learning_rate_schedule(train_cfg, steps_per_epoch)
  eps, decay, name = train_cfg.adam_eps, train_cfg.weight_decay, train_cfg.optimizer
  if name == "adam" and decay == 0:
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
  else:
    raise ConfigError(f"config.train.optimizer={name!r}: expected adam, adamw or sgd")
  return optax.inject_hyperparams(build)(learning_rate=rate)


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
