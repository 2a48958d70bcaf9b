"""Devices, meshes and multi-host start-up.

One program runs on every process of a multi-host job (a GPU cluster, a TPU pod): each calls
`initialize` before any computation, builds the same global mesh over `jax.devices()` and puts
the same host arrays on it (`put`: each process fills only its own devices' shards). Batches are
gathered on the devices from the resident scene under a sharding constraint, so each process
computes exactly its local share of the global batch. Arrays read back on the host are made fully
replicated first (`replicated`); files are written by process 0 only (fileutil.is_writer).
"""

from __future__ import annotations

from typing import Optional

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P


def initialize(coordinator_address: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None) -> None:
  """jax.distributed.initialize; without arguments JAX detects the cluster (SLURM, Open MPI,
  Cloud TPU, ...). Must run before anything touches a device."""
  jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                             process_id=process_id)


def make_mesh(devices=None, seeds: int = 1) -> Mesh:
  """2-D mesh (seeds, data) over all devices of all processes; Auto axes. A single run uses
  seeds=1: its batch is sharded over every device on `data`."""
  devices = devices or jax.devices()
  if len(devices) % seeds:
    raise ValueError(f"The seeds mesh axis ({seeds}) must divide the device count ({len(devices)}).")
  return jax.make_mesh((seeds, len(devices) // seeds), ("seeds", "data"),
                       axis_types=(AxisType.Auto,) * 2, devices=devices)


def put(tree, sharding: NamedSharding):
  """Host arrays (identical on every process) -> global arrays with `sharding`; device arrays are
  resharded."""
  def one(x):
    if isinstance(x, jax.Array):
      return jax.device_put(x, sharding)
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
  return jax.tree.map(one, tree)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def replicate(tree, mesh: Mesh):
  """A full copy on every device of the mesh."""
  return put(tree, replicated(mesh))


def seeds_axis(num_seeds: int, num_devices: int, requested: int = 0) -> int:
  """Devices on the mesh's seeds axis for num_seeds runs: `requested` when given (it must divide
  num_devices), else the largest divisor of num_devices not above num_seeds."""
  if requested:
    if num_devices % requested:
      raise ValueError(f"mesh_seeds ({requested}) must divide the device count ({num_devices}).")
    return requested
  return max(d for d in range(1, num_devices + 1) if num_devices % d == 0 and d <= num_seeds)
