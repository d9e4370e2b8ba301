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


def host_tree(tree):
  """A pytree of global arrays as NumPy on every process (gathering shards across hosts)."""
  if all(getattr(x, "is_fully_addressable", True) for x in jax.tree.leaves(tree)):
    return jax.device_get(tree)
  from jax.experimental import multihost_utils
  return multihost_utils.process_allgather(tree, tiled=True)


class JitParallel:
  """jax.jit over the mesh: global arrays, the batch split over (data, fsdp), state sharded
  by the FSDP rule. Cross-device reductions (loss means, BN statistics, contrastive
  negatives) happen over the global batch by construction."""
  axis_name = None

  def __init__(self, mesh: Mesh):
    self.mesh = mesh
    self.batch_sharding = batch_sharding(mesh)

  def setup(self, abstract_state):
    self.shardings = state_shardings(abstract_state, self.mesh)
    self.restore_target = with_shardings(abstract_state, self.shardings)

  def init(self, init_fn, key):
    return jax.jit(init_fn, out_shardings=self.shardings)(key)

  def from_restored(self, state):
    return state

  def to_saveable(self, state):
    return state

  def step(self, step_fn):
    return jax.jit(step_fn, in_shardings=(self.shardings, self.batch_sharding),
                   out_shardings=(self.shardings, replicated(self.mesh)), donate_argnums=0)

  def eval(self, eval_sums_fn):
    return jax.jit(eval_sums_fn, out_shardings=replicated(self.mesh))

  def batch(self, local_batch):
    return global_batch(local_batch, self.batch_sharding)

  def host(self, tree):
    return host_tree(tree)


class PmapParallel:
  """Classic data parallelism with jax.pmap: state replicated on every local device, each
  device a slice of the batch, gradients and metrics averaged with pmean over `batch`."""
  axis_name = "batch"

  def __init__(self, mesh: Mesh):
    self.mesh = mesh
    self.n = jax.local_device_count()
    self._replicated = replicated(mesh)
    self._broadcast = jax.pmap(lambda x: x)

  def setup(self, abstract_state):
    self.restore_target = with_shardings(
        abstract_state, jax.tree.map(lambda _: self._replicated, abstract_state))

  def _replicate(self, host_tree_):
    return self._broadcast(jax.tree.map(
        lambda x: np.broadcast_to(np.asarray(x), (self.n,) + np.shape(x)), host_tree_))

  def init(self, init_fn, key):
    return self._replicate(jax.device_get(jax.jit(init_fn)(key)))

  def from_restored(self, state):
    return self._replicate(jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), state))

  def to_saveable(self, state):
    # Checkpoints hold global replicated arrays, the same format as the jit path's.
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(
        self._replicated, np.asarray(x[0])), state)

  def step(self, step_fn):
    return jax.pmap(step_fn, axis_name=self.axis_name, donate_argnums=0)

  def eval(self, eval_sums_fn):
    mapped = jax.pmap(lambda *a: jax.lax.psum(eval_sums_fn(*a), self.axis_name),
                      axis_name=self.axis_name)
    return lambda *a: jax.tree.map(lambda x: x[0], mapped(*a))

  def batch(self, local_batch):
    return jax.tree.map(lambda x: x.reshape(self.n, -1, *x.shape[1:]), local_batch)

  def host(self, tree):
    return jax.device_get(jax.tree.map(lambda x: x[0] if getattr(x, "ndim", 0) else x, tree))


def make(kind: str, fsdp: int = 1):
  """The parallel wrapper config.parallel names: "jit" (default) or "pmap"."""
  mesh = make_mesh(fsdp)
  if kind == "jit":
    return JitParallel(mesh)
  if kind == "pmap":
    if fsdp != 1:
      raise ConfigError("parallel='pmap' replicates the state; it cannot be combined with "
                        f"mesh.fsdp={fsdp}. Use parallel='jit' for FSDP.")
    return PmapParallel(mesh)
  raise ConfigError(f"parallel must be 'jit' or 'pmap', got {kind!r}.")
