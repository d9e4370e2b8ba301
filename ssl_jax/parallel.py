"""Device mesh, shardings and global batches for the jitted train step.

The mesh has two named axes, `data` and `fsdp`. The batch is split over both; parameters
and optimizer state are replicated, or with fsdp > 1 each array is split along its largest
axis that the fsdp size divides (the usual FSDP / ZeRO-3 rule, no per-model annotations).
"""
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from ssl_jax.errors import ConfigError

BATCH_AXES = ("data", "fsdp")


def make_mesh(fsdp: int = 1, devices=None) -> Mesh:
  devices = np.asarray(jax.devices() if devices is None else devices)
  if fsdp < 1 or devices.size % fsdp:
    raise ConfigError(f"mesh.fsdp={fsdp} must divide the device count {devices.size}.")
  return Mesh(devices.reshape(devices.size // fsdp, fsdp), BATCH_AXES)


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def _fsdp_spec(shape, fsdp: int, min_size: int) -> P:
  if fsdp == 1 or np.prod(shape, dtype=np.int64) < min_size:
    return P()
  for axis in sorted(range(len(shape)), key=lambda a: -shape[a]):
    if shape[axis] % fsdp == 0:
      spec = [None] * len(shape)
      spec[axis] = "fsdp"
      return P(*spec)
  return P()


def state_shardings(abstract_state, mesh: Mesh, min_size: int = 2 ** 12):
  """NamedShardings for a pytree of ShapeDtypeStructs (replicated unless fsdp > 1)."""
  fsdp = mesh.shape["fsdp"]
  return jax.tree.map(
      lambda x: NamedSharding(mesh, _fsdp_spec(x.shape, fsdp, min_size)), abstract_state)


def with_shardings(abstract_state, shardings):
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                      abstract_state, shardings)


def global_batch(local_batch, sharding: NamedSharding):
  """Assembles each process's rows into global arrays sharded over the batch axes."""
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local_batch)
