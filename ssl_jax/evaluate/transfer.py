"""The "encoder + labelled data" interface every transfer protocol works on.

A source (one per kind of checkpoint, registered in evaluate/__init__.py) turns a
checkpoint into a `Transfer`: the pretrained encoder, a way to build the same encoder
freshly initialised, a raw-input baseline, and labelled train/test data. Protocols
(linear, linear_sgd, knn, fewshot, finetune) never know whether the inputs are images or
tokens.

Frozen features are extracted on every device of every process (`extract`): each global
batch is split over the mesh, each process reads only the rows its devices hold, and the
features are gathered back to every process in input order. A split whose features exceed
`memory_mb` is written to a file-backed array instead of host memory.
"""
import dataclasses
import functools
import os
import tempfile
import time
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax import parallel


@dataclasses.dataclass
class Encoder:
  # (params, state, inputs_B..., train) -> (features_BxD, new_state); jittable. With
  # train=False it must not change state (batch-norm statistics stay frozen).
  apply: Callable
  params: Any
  state: Any = dataclasses.field(default_factory=dict)  # non-trained variables (BN stats)
  # (key, inputs_B...) -> inputs_B... : light augmentation for fine-tuning, or None
  augment: Optional[Callable] = None


@dataclasses.dataclass
class Labelled:
  inputs: np.ndarray  # indexable along axis 0 (uint8 images, int tokens, ...)
  labels: np.ndarray  # int [N]

  def __len__(self):
    return len(self.labels)


@dataclasses.dataclass
class Transfer:
  pretrained: Encoder
  train: Labelled
  test: Labelled
  num_classes: int
  # key -> Encoder of the same architecture, freshly initialised (the "what did
  # pretraining add" baseline); None if the source cannot build one.
  random_init: Optional[Callable] = None
  # The raw-input baseline (e.g. pixels): an Encoder with no parameters, or None.
  raw: Optional[Encoder] = None
  raw_name: str = "raw"


def encoders(transfer: Transfer, baselines: bool, seed: int = 0) -> dict:
  """name -> Encoder to evaluate: "" (the pretrained one) first, then the baselines."""
  out = {"": transfer.pretrained}
  if baselines and transfer.raw is not None:
    out[transfer.raw_name] = transfer.raw
  if baselines and transfer.random_init is not None:
    out["random_init"] = transfer.random_init(jax.random.key(seed))
  return out


def prefixed(name: str, metrics: dict) -> dict:
  """The pretrained encoder's metrics keep their names; a baseline's get "NAME_" in front."""
  return dict(metrics) if not name else {f"{name}_{k}": v for k, v in metrics.items()}


@functools.partial(jax.jit, static_argnums=0)
def _features(apply, params, state, x):
  return apply(params, state, x, False)[0].astype(jnp.float32)


def extract(encoder: Encoder, inputs, batch_size: int = 256, memory_mb: float = 2048.0,
            devices=None) -> np.ndarray:
  """Frozen features [N, D] (float32) in input order, over `devices` (default: all, of every
  process; every process gets all N rows).

  Batches have a fixed size (batch_size, rounded up to a multiple of the device count; the
  last one padded with copies of the final row): encoders sharing an `apply` (pretrained
  and random init) share one compilation. Each example's features depend on that example
  only; splitting a batch over devices changes only which matmul kernels XLA picks for the
  smaller per-device shapes, so features agree with one device's to float rounding.
  Above memory_mb the result is a file-backed array (disk_array), filled batch by batch.
  """
  mesh = parallel.make_mesh(devices=devices)
  n, per = len(inputs), mesh.devices.size
  B = -(-min(batch_size, n) // per) * per
  sharding = parallel.batch_sharding(mesh)
  params, state = _replicated((encoder.params, encoder.state), mesh)
  out = None

  def store(start, features):  # gathers one batch (from every process) into `out`
    nonlocal out
    features_BxD = parallel.host_tree(features)
    if out is None:
      shape = (n, features_BxD.shape[1])
      too_big = 4 * shape[0] * shape[1] > memory_mb * 2 ** 20
      out = disk_array(shape) if too_big else np.empty(shape, np.float32)
    real = min(B, n - start)
    out[start:start + real] = features_BxD[:real]

  pending = None
  for start in range(0, n, B):
    idx_B = np.minimum(np.arange(start, start + B), n - 1)
    x = jax.make_array_from_callback(  # each process reads only its own devices' rows
        (B, *np.shape(inputs[0])), sharding,
        lambda index, idx_B=idx_B: np.asarray(inputs[idx_B[index[0]]]))
    features = _features(encoder.apply, params, state, x)  # runs while the last is stored
    if pending is not None:
      store(*pending)
    pending = (start, features)
  store(*pending)
  return out


def _replicated(tree, mesh):
  """A copy of every leaf on every device of the mesh (all processes hold the same values)."""
  sharding = parallel.replicated(mesh)
  return jax.tree.map(lambda leaf: jax.make_array_from_callback(
      np.shape(leaf), sharding, lambda index: np.asarray(leaf)[index]), jax.device_get(tree))


def disk_array(shape) -> np.ndarray:
  """A float32 array backed by a file in the temporary directory ($TMPDIR, which should be
  a disk). The file is unlinked as soon as it is mapped: its space returns when the array
  is freed, and nothing is left behind if the process dies."""
  with tempfile.TemporaryDirectory(prefix="ssl_jax_features_") as folder:
    return np.lib.format.open_memmap(os.path.join(folder, "features.npy"), "w+", np.float32,
                                     tuple(shape))


def feature_sets(transfer: Transfer, options):
  """Yields (name, train features, test features, seconds spent extracting) per encoder."""
  for name, encoder in encoders(transfer, options.baselines, options.seed).items():
    start = time.time()
    train = extract(encoder, transfer.train.inputs, options.batch_size,
                    options.feature_memory_mb)
    test = extract(encoder, transfer.test.inputs, options.batch_size, options.feature_memory_mb)
    yield name, train, test, time.time() - start


def run_feature_protocol(run, options, score) -> dict:
  """A feature protocol (linear, knn, fewshot): `score` on the frozen features of the run."""
  from ssl_jax.evaluate import transfer_for  # the registry imports the protocols
  return score_features(transfer_for(run, options), options, score)


def score_features(transfer: Transfer, options, score) -> dict:
  """score(train_NxD, test_MxD, transfer, options) -> metrics, for every encoder.

  Each encoder's metrics get "seconds" (extraction + scoring) and, for a baseline, its
  name in front.
  """
  out = {}
  for name, train_NxD, test_MxD, seconds in feature_sets(transfer, options):
    start = time.time()
    metrics = score(train_NxD, test_MxD, transfer, options)
    metrics["seconds"] = seconds + time.time() - start
    out.update(prefixed(name, metrics))
  return out


def standardise(train_NxD, *others):
  """Zero mean, unit variance per feature, with statistics of the training features."""
  mean = train_NxD.mean(0)
  std = train_NxD.std(0) + 1e-6
  return tuple((x - mean) / std for x in (train_NxD, *others))
