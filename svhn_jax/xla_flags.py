"""XLA:CPU compiler options for the model's computations, where they measurably speed them up.

jaxlib 0.10.2 hands convolutions and elementwise fusions to YNNPACK by default. On this
project's reference CPU (2 Zen 4 cores, AVX-512) both are slower there than in XLA's own
emitters, for every model, in training and in inference alike (interleaved in one process):

- convolutions: XLA's (Eigen) forward convolutions run at 115-250 GFLOP/s against YNNPACK's
  56-145, and its kernel-gradient convolutions take 23-32 ms against 56-63 (CNN2, batch 128,
  the 16->32 layer);
- elementwise fusions: dropping them from YNNPACK took CNN2 training from 1,262 to 1,371
  images/s and its inference from 3,839 to 6,752; CNN1 2,709 -> 2,978 and 5,581 -> 11,817;
  ANN1 training 122,083 -> 139,559 and ANN2 47,929 -> 58,844 (14% and 23%).

YNNPACK keeps the dots and reductions, where it is as fast or faster. Every jitted model
computation (train steps, inference chunks) is compiled with these options; the rest of the
program keeps jaxlib's defaults. A user who sets the flag in XLA_FLAGS decides for every
computation.
"""

from __future__ import annotations

import os

import jax

YNN_FLAG = "xla_cpu_experimental_ynn_fusion_type"
# jaxlib 0.10.2's default set of YNNPACK fusions, less ELTWISE and INDIVIDUAL_CONVOLUTION.
YNN_FUSIONS = ",".join(f"LIBRARY_FUSION_TYPE_{kind}" for kind in ("DOT", "REDUCE", "INDIVIDUAL_DOT"))


def model_options() -> dict[str, str] | None:
  """Compiler options for `jax.jit` of a model computation; None off the CPU or if XLA_FLAGS
  already sets the flag."""
  if jax.default_backend() != "cpu" or f"--{YNN_FLAG}=" in os.environ.get("XLA_FLAGS", ""):
    return None
  return {YNN_FLAG: YNN_FUSIONS}
