"""Weighted kNN (Wu et al. 2018, as in DINO): cosine similarity to the training features,
each of the k nearest votes for its label with weight exp(similarity / temperature)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ssl_jax.evaluate.transfer import run_feature_protocol
from ssl_jax.evaluate.uncertainty import Estimate

KS = (20, 200)
TEMPERATURE = 0.07


def _unit(x):
  return x / (np.linalg.norm(x, axis=-1, keepdims=True) + 1e-12)


@functools.partial(jax.jit, static_argnames=("ks", "num_classes"))
def _predict_chunk(train_NxD, train_labels_N, test_BxD, ks, num_classes, temperature):
  sims_BxN = test_BxD @ train_NxD.T
  top_sims_BxK, top_idx_BxK = jax.lax.top_k(sims_BxN, max(ks))
  votes_BxKxC = (jax.nn.one_hot(train_labels_N[top_idx_BxK], num_classes)
                 * jnp.exp(top_sims_BxK / temperature)[..., None])
  return tuple(jnp.argmax(jnp.sum(votes_BxKxC[:, :k], 1), -1) for k in ks)


def knn_predict(train_NxD, train_labels, test_MxD, num_classes: int, ks=KS,
                temperature: float = TEMPERATURE, chunk: int = 256) -> dict:
  """k -> predicted labels [M]; k larger than the training set uses all of it."""
  ks_used = tuple(min(k, len(train_labels)) for k in ks)
  train_NxD = jnp.asarray(_unit(train_NxD), jnp.float32)
  labels = jnp.asarray(train_labels, jnp.int32)
  test_MxD = _unit(np.asarray(test_MxD, np.float32))
  M = len(test_MxD)
  chunk = min(chunk, M)
  preds = [[] for _ in ks]
  for start in range(0, M, chunk):
    x = test_MxD[start:start + chunk]
    real = len(x)
    x = np.concatenate([x, np.zeros((chunk - real, x.shape[1]), x.dtype)]) if real < chunk else x
    for i, p in enumerate(_predict_chunk(train_NxD, labels, x, ks_used, num_classes,
                                         temperature)):
      preds[i].append(np.asarray(p)[:real])
  return {k: np.concatenate(p) for k, p in zip(ks, preds)}


def _score(train_NxD, test_MxD, transfer, options) -> dict:
  del options
  preds = knn_predict(train_NxD, transfer.train.labels, test_MxD, transfer.num_classes)
  return {f"top1_k{k}": Estimate(p == transfer.test.labels) for k, p in preds.items()}


def run(run, options) -> dict:
  return run_feature_protocol(run, options, _score)
