"""Sharding the trial axis over devices: a 1-D mesh over ``jax.devices()``, trials split evenly.

With one device nothing is sharded. With several (GPUs, TPU cores, or CPU devices forced with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``) every chunk of trials is padded to a multiple of the
device count and laid out with ``NamedSharding(mesh, PartitionSpec("trials"))``: each device trains its own
slice of trials, with no communication (the objective is per trial).

Multi-host: call ``jax.distributed.initialize()`` in every process first; ``jax.devices()`` then lists every
host's devices, every process samples the same configurations (same key), builds its shards from its own
copy with ``jax.make_array_from_callback``, and the scores are gathered back on every process
(``multihost_utils.process_allgather``). Every process must run the same search call.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "trials"


def trial_sharding() -> NamedSharding | None:
  """The sharding of the trial axis over every device, or ``None`` with one device."""
  devices = jax.devices()
  if len(devices) == 1:
    return None
  return NamedSharding(Mesh(np.asarray(devices), (AXIS,)), PartitionSpec(AXIS))


def num_shards(sharding: NamedSharding | None) -> int:
  return 1 if sharding is None else int(sharding.mesh.devices.size)


def shard(tree, sharding: NamedSharding | None):
  """Host arrays (leading trial axis, a multiple of the device count) placed with ``sharding``."""
  if sharding is None:
    return tree
  def put(x):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
  return jax.tree_util.tree_map(put, tree)


def gather(x: jax.Array) -> np.ndarray:
  """A (possibly multi-host) array as one NumPy array on every process."""
  if getattr(x, "is_fully_addressable", True):
    return np.asarray(x)
  from jax.experimental import multihost_utils
  return np.asarray(multihost_utils.process_allgather(x, tiled=True))
