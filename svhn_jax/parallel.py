"""Data parallelism on JAX's own runtime: one mesh axis, 'data', over the devices of every process.

A run stays one global-view program. Parameters, optimizer state and the dataset are replicated
on every device; each train step gathers its global batch from a row of sample indices that is
itself split over 'data', so every device gathers and computes only its share, and XLA adds the
all-reduces the math needs (gradients, BatchNorm's batch mean and variance). A run on N devices
thus computes what it computes on one, up to the order of floating-point sums: the same
permutation, the same global batch, BatchNorm over the global batch, and the same dropout bits
(jax_threefry_partitionable, on by default, makes random bits independent of sharding).

Several processes (hosts) join with `initialize`; each holds the whole dataset and fills only its
own devices, and only process 0 writes the run's files (`is_primary`).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from svhn_jax.errors import ConfigError

DATA = "data"


def initialize(*, distributed: bool = False, coordinator_address: str | None = None,
               num_processes: int | None = None, process_id: int | None = None) -> bool:
  """Joins JAX's distributed runtime if this run is one of several processes; True if it did.

  Any explicit argument, or `distributed`, starts it; what is not given JAX detects itself
  (Cloud TPU, SLURM, Open MPI, $JAX_COORDINATOR_ADDRESS). Must run before JAX touches a device.
  """
  explicit = (coordinator_address, num_processes, process_id)
  if not distributed and all(arg is None for arg in explicit):
    return False
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)
  return True


def make_mesh(devices: int = -1) -> Mesh:
  """The one-axis 'data' mesh over `devices` devices, as many from each process; -1: all."""
  total, processes = jax.device_count(), jax.process_count()
  count = total if devices == -1 else devices
  if not 1 <= count <= total or count % processes:
    raise ConfigError(
        f"config.mesh.devices={devices}: expected -1 (all {total} devices) or a number of "
        f"devices from 1 to {total}" + (f" divisible by the {processes} processes"
                                        if processes > 1 else ""))
  per_process = count // processes
  chosen = [d for p in range(processes) for d in _process_devices(p)[:per_process]]
  if len(chosen) != count:
    raise ConfigError(f"config.mesh.devices={devices}: some process has fewer than "
                      f"{per_process} devices")
  # Auto axes keep the model and optimizer code sharding-agnostic: XLA propagates the batch
  # split from the step's index input, where Explicit axes would need every gather annotated.
  return jax.make_mesh((count,), (DATA,), (AxisType.Auto,), devices=chosen)


def _process_devices(process: int) -> list[jax.Device]:
  return [d for d in jax.devices() if d.process_index == process]


def describe(mesh: Mesh) -> str:
  """One line for the run's log: devices, processes and the mesh shape."""
  local = sum(d.process_index == jax.process_index() for d in mesh.devices.flat)
  platform = mesh.devices.flat[0].platform
  return (f"data parallel over {mesh.size} {platform} device(s) in {jax.process_count()} "
          f"process(es), {local} in process {jax.process_index()}; mesh {dict(mesh.shape)}")


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
  """Raises ConfigError unless every device gets an equal share of each training batch."""
  if batch_size % mesh.size:
    raise ConfigError(
        f"config.train.batch_size={batch_size} (the global batch) does not split evenly over "
        f"{mesh.size} devices: use a multiple of {mesh.size}, or set config.mesh.devices")


def rounded_to_devices(n: int, mesh: Mesh) -> int:
  """`n` rounded up to a multiple of the mesh's devices: an evaluation chunk that splits evenly.
  Inference is per sample, so the chunk size changes no result."""
  return -(-n // mesh.size) * mesh.size


def is_primary() -> bool:
  """Whether this process writes the run's files (metrics, figures, reports): process 0."""
  return jax.process_index() == 0


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def rows(mesh: Mesh, n: int) -> NamedSharding:
  """Arrays of `n` rows split over 'data'; whole on every device if `n` does not divide evenly."""
  return NamedSharding(mesh, PartitionSpec(DATA) if n % mesh.size == 0 else PartitionSpec())


def batch_indices(batches: np.ndarray, mesh: Mesh) -> jax.Array:
  """(steps, batch) sample indices as a global array, each batch split over 'data'.

  A batch that does not divide evenly (an epoch's last, partial one) is replicated instead: each
  device computes it whole, exactly as a single device would, once per epoch.
  """
  spec = PartitionSpec(None, DATA) if batches.shape[1] % mesh.size == 0 else PartitionSpec()
  return global_array(batches, NamedSharding(mesh, spec))


def replicate(tree, mesh: Mesh):
  """`tree`'s arrays, the same in every process, replicated on every device of the mesh."""
  return jax.tree.map(lambda x: global_array(np.asarray(x), replicated(mesh)), tree)


def global_array(host: np.ndarray, sharding: NamedSharding) -> jax.Array:
  """`host`, the same in every process, as one global array; each process fills its own devices.

  Unlike jax.device_put, no cross-process check that the copies agree: the dataset is large.
  """
  return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
