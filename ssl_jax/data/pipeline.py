"""grain pipelines: seeded shuffle over example indices, global batches, per-process rows.

Batches are formed from indices *before* anything is read, and each process then loads
only its own rows of the global batch. So the global batch is the same whatever the
process count, and the iterator state (a position in the index stream) checkpoints exactly.
"""
from typing import Callable

import grain.python as grain
import jax
import numpy as np


def global_batches(num_examples: int, global_batch: int, load_rows: Callable, *, seed: int,
                   shuffle: bool = True, repeat: bool = True,
                   process_index: int | None = None, process_count: int | None = None):
  """A grain MapDataset whose items are this process's rows of each global batch.

  `load_rows(indices: int64[local_batch]) -> dict of arrays` reads the examples.
  """
  p = jax.process_index() if process_index is None else process_index
  n = jax.process_count() if process_count is None else process_count
  if global_batch % n:
    raise ValueError(f"global batch {global_batch} is not divisible by {n} processes")
  local = global_batch // n
  ds = grain.MapDataset.range(num_examples)
  if shuffle:
    ds = ds.seed(seed).shuffle()
  if repeat:
    ds = ds.repeat()
  ds = ds.batch(global_batch, drop_remainder=True)
  return ds.map(lambda idx_B: load_rows(np.asarray(idx_B)[p * local:(p + 1) * local]))


PREPARE_TIMEOUT_SECS = 6 * 3600  # preparing a large corpus may take hours; the others wait
_barriers = [0]  # a fresh barrier name per call (a sweep prepares once per run)


def process_0_first(prepare: Callable, tag: str):
  """prepare() on process 0, then on the others once it is done: datasets and caches are
  built once, never by two processes writing the same files at the same time."""
  if jax.process_count() == 1:
    return prepare()
  result = prepare() if jax.process_index() == 0 else None
  _wait_for_all(f"ssl_jax_prepared_{tag}")
  if jax.process_index() != 0:
    result = prepare()
  _wait_for_all(f"ssl_jax_read_{tag}")  # so nobody enters a collective minutes early
  return result


def _wait_for_all(name: str):
  """A barrier of the distributed runtime, not of the devices: a device collective (gloo on
  CPU) gives up after 30 s if one process is still preparing data."""
  from jax._src import distributed
  _barriers[0] += 1
  client = distributed.global_state.client
  if client is None:  # initialised some other way: fall back to a device barrier
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(f"{name}_{_barriers[0]}")
    return
  client.wait_at_barrier(f"{name}_{_barriers[0]}", int(PREPARE_TIMEOUT_SECS * 1000))


def to_iterator(ds, prefetch: int = 2):
  """A checkpointable iterator (get_state/set_state) with background prefetching."""
  options = grain.ReadOptions(num_threads=prefetch, prefetch_buffer_size=prefetch)
  return iter(ds.to_iter_dataset(read_options=options))
