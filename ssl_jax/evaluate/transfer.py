"""The "encoder + labelled data" interface every transfer protocol works on.

A source (one per kind of checkpoint, registered in evaluate/__init__.py) turns a
checkpoint into a `Transfer`: the pretrained encoder, a way to build the same encoder
freshly initialised, a raw-input baseline, and labelled train/test data. Protocols
(linear, knn, fewshot, finetune) never know whether the inputs are images or tokens.
"""
import dataclasses
import functools
import time
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np


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


def extract(encoder: Encoder, inputs, batch_size: int = 256) -> np.ndarray:
  """Frozen features [N, D] (float32), in fixed-size batches: encoders sharing an `apply`
  (pretrained and random init) share one compilation."""
  n = len(inputs)
  batch_size = min(batch_size, n)
  out = []
  for start in range(0, n, batch_size):
    x = np.asarray(inputs[start:start + batch_size])
    real = len(x)
    if real < batch_size:  # pad the last batch to the compiled shape
      x = np.concatenate([x, np.repeat(x[-1:], batch_size - real, 0)])
    out.append(np.asarray(_features(encoder.apply, encoder.params, encoder.state, x))[:real])
  return np.concatenate(out)


def feature_sets(transfer: Transfer, options):
  """Yields (name, train features, test features, seconds spent extracting) per encoder."""
  for name, encoder in encoders(transfer, options.baselines, options.seed).items():
    start = time.time()
    train = extract(encoder, transfer.train.inputs, options.batch_size)
    test = extract(encoder, transfer.test.inputs, options.batch_size)
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
