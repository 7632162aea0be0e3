"""XLA:CPU compiler options for the training step, where they measurably speed it up.

jaxlib 0.10.2 hands every convolution to YNNPACK by default. On AVX-512 CPUs YNNPACK runs the
kernel-gradient convolutions of a training step 2-3x slower than XLA's own (Eigen) ones
(CNN2, batch 128, the 16->32 layer: 56-63 ms vs 23-32 ms), while it is fast at reductions,
elementwise fusions and the forward convolutions of inference. So the jitted training steps, and
only they, are compiled with convolutions kept in XLA; everything else keeps jaxlib's defaults.
A user who sets the flag in XLA_FLAGS decides for every computation.
"""

from __future__ import annotations

import os

import jax

YNN_FLAG = "xla_cpu_experimental_ynn_fusion_type"
# jaxlib 0.10.2's default set of YNNPACK fusions, less INDIVIDUAL_CONVOLUTION.
YNN_WITHOUT_CONVOLUTIONS = ",".join(
    f"LIBRARY_FUSION_TYPE_{kind}" for kind in ("DOT", "ELTWISE", "REDUCE", "INDIVIDUAL_DOT"))


def training_options() -> dict[str, str] | None:
  """Compiler options for `jax.jit` of a training step; None off the CPU or if XLA_FLAGS
  already sets the flag."""
  if jax.default_backend() != "cpu" or f"--{YNN_FLAG}=" in os.environ.get("XLA_FLAGS", ""):
    return None
  return {YNN_FLAG: YNN_WITHOUT_CONVOLUTIONS}
