"""Linear probe trained by SGD, as MoCo and solo-learn report it: one linear layer on frozen
features, SGD with momentum 0.9, batches of probe_batch_size, probe_epochs epochs, the
learning rate decayed from probe_lr to 0 by a cosine, no weight decay, mean cross entropy.
Top-1 (and top-5 with more than 5 classes) on the test split.

Features are standardised with the training split's mean and standard deviation: what a
BatchNorm without scale and shift in front of the layer does with its statistics fixed
(MAE's probe), so one learning rate suits every encoder and baseline. The statistics are
summed in chunks and each batch is read, standardised and sent to the device on its own:
features in a file-backed array (transfer.extract) are never loaded whole. The layer
starts at zero; the seed draws each epoch's order (the last partial batch is dropped).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ssl_jax.evaluate.transfer import run_feature_protocol
from ssl_jax.evaluate.uncertainty import Estimate

CHUNK = 1 << 16  # rows per pass of the statistics and of the test predictions
TOP5_ABOVE = 5  # classes needed for a top-5 accuracy to mean something


def moments(x_NxD, chunk: int = CHUNK):
  """(mean, std + 1e-6) per feature as float32, from float64 sums over chunks."""
  n = len(x_NxD)
  total_D = np.zeros(x_NxD.shape[1])
  for start in range(0, n, chunk):
    total_D += np.asarray(x_NxD[start:start + chunk], np.float64).sum(0)
  mean_D = total_D / n
  squares_D = np.zeros_like(mean_D)
  for start in range(0, n, chunk):
    squares_D += ((np.asarray(x_NxD[start:start + chunk], np.float64) - mean_D) ** 2).sum(0)
  return mean_D.astype(np.float32), (np.sqrt(squares_D / n) + 1e-6).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _optimizer(lr: float, steps: int):
  """Cached, so the same settings give the same (hashable, static) object."""
  return optax.sgd(optax.cosine_decay_schedule(lr, max(steps, 1)), momentum=0.9)


@functools.partial(jax.jit, static_argnums=0)
def _step(tx, params, opt_state, x_BxD, labels_B):
  def loss_fn(params):
    logits_BxK = x_BxD @ params["w"] + params["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits_BxK, labels_B).mean()

  loss, grads = jax.value_and_grad(loss_fn)(params)
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss


def train(train_NxD, labels_N, num_classes: int, epochs: int, lr: float, batch_size: int,
          seed: int = 0):
  """(params {"w": DxK, "b": K}, mean, std, mean loss of the last epoch)."""
  n, d = train_NxD.shape
  B = min(batch_size, n)
  steps_per_epoch = n // B
  tx = _optimizer(float(lr), int(epochs * steps_per_epoch))
  params = {"w": jnp.zeros((d, num_classes)), "b": jnp.zeros((num_classes,))}
  opt_state = tx.init(params)
  mean_D, std_D = moments(train_NxD)
  labels_N = np.asarray(labels_N, np.int32)
  rng = np.random.default_rng(seed)
  losses = []
  for _ in range(epochs):
    order = rng.permutation(n)
    losses = []
    for i in range(steps_per_epoch):
      idx_B = np.sort(order[i * B:(i + 1) * B])  # sorted: sequential reads from a file
      x_BxD = (np.asarray(train_NxD[idx_B], np.float32) - mean_D) / std_D
      params, opt_state, loss = _step(tx, params, opt_state, x_BxD, labels_N[idx_B])
      losses.append(loss)  # a device value: no wait for the step here
  return params, mean_D, std_D, float(np.mean(jax.device_get(losses)))


def accuracies(params, mean_D, std_D, test_MxD, labels_M, chunk: int = CHUNK) -> dict:
  """{"top1"} and, with more than TOP5_ABOVE classes, {"top5"}; predictions in chunks."""
  w_DxK, b_K = (np.asarray(v) for v in jax.device_get((params["w"], params["b"])))
  labels_M = np.asarray(labels_M)
  top1_M, top5_M = [], []
  for start in range(0, len(labels_M), chunk):
    x = (np.asarray(test_MxD[start:start + chunk], np.float32) - mean_D) / std_D
    logits_CxK = x @ w_DxK + b_K
    y = labels_M[start:start + chunk]
    top1_M.append(np.argmax(logits_CxK, -1) == y)
    best5 = np.argsort(-logits_CxK, axis=-1, kind="stable")[:, :5]
    top5_M.append(np.any(best5 == y[:, None], -1))
  out = {"top1": Estimate(np.concatenate(top1_M))}
  if w_DxK.shape[1] > TOP5_ABOVE:
    out["top5"] = Estimate(np.concatenate(top5_M))
  return out


def probe(train_NxD, train_labels, test_MxD, test_labels, num_classes: int, epochs: int = 90,
          lr: float = 0.1, batch_size: int = 256, seed: int = 0) -> dict:
  """{"top1", ["top5",] "train_loss"}: the probe trained on train, scored on test."""
  params, mean_D, std_D, loss = train(train_NxD, train_labels, num_classes, epochs, lr,
                                      batch_size, seed)
  return {**accuracies(params, mean_D, std_D, test_MxD, test_labels), "train_loss": loss}


def _score(train_NxD, test_MxD, transfer, options) -> dict:
  return probe(train_NxD, transfer.train.labels, test_MxD, transfer.test.labels,
               transfer.num_classes, options.probe_epochs, options.probe_lr,
               options.probe_batch_size, options.seed)


def run(run, options) -> dict:
  return run_feature_protocol(run, options, _score)
