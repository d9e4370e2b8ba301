"""Linear probe: L2-regularised multinomial logistic regression on frozen, standardised
features, solved to convergence with L-BFGS. The L2 strength is picked on a held-out
fifth of the training set, then the probe is refit on all of it."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu

from ssl_jax.evaluate.transfer import run_feature_protocol, standardise
from ssl_jax.evaluate.uncertainty import Estimate

L2_GRID = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


@functools.partial(jax.jit, static_argnames=("num_classes", "max_iter"))
def fit(features_NxD, labels_N, l2, num_classes: int, weights_N=None, max_iter: int = 1000,
        tol: float = 1e-5):
  """(weights DxK, bias K, iterations) minimising mean cross entropy + l2/2 |W|^2.

  `weights_N` (0 or 1) selects examples without changing shapes, so model selection and
  the final fit share one compilation.
  """
  if weights_N is None:
    weights_N = jnp.ones(labels_N.shape, jnp.float32)

  def objective(wb):
    w, b = wb
    logits = features_NxD @ w + b
    ce_N = optax.softmax_cross_entropy_with_integer_labels(logits, labels_N)
    return jnp.sum(ce_N * weights_N) / jnp.sum(weights_N) + 0.5 * l2 * jnp.sum(w ** 2)

  solver = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(objective)

  def step(carry):
    wb, state = carry
    value, grad = value_and_grad(wb, state=state)
    updates, state = solver.update(grad, state, wb, value=value, grad=grad, value_fn=objective)
    return optax.apply_updates(wb, updates), state

  def not_converged(carry):
    _, state = carry
    count = otu.tree_get(state, "count")
    grad_norm = otu.tree_norm(otu.tree_get(state, "grad"))
    return (count == 0) | ((count < max_iter) & (grad_norm >= tol))

  D = features_NxD.shape[1]
  wb = (jnp.zeros((D, num_classes)), jnp.zeros((num_classes,)))
  (w, b), state = jax.lax.while_loop(not_converged, step, (wb, solver.init(wb)))
  return w, b, otu.tree_get(state, "count")


def accuracy(w, b, features_NxD, labels_N) -> Estimate:
  return Estimate(np.argmax(features_NxD @ np.asarray(w) + np.asarray(b), -1) == labels_N)


def probe(train_NxD, train_labels, test_MxD, test_labels, num_classes: int, seed: int = 0):
  """{"top1", "l2"}: test accuracy of the probe whose L2 strength validated best."""
  train_NxD, test_MxD = standardise(train_NxD, test_MxD)
  val = np.random.default_rng(seed).permutation(len(train_labels))[:len(train_labels) // 5]
  fit_weights = np.ones(len(train_labels), np.float32)
  fit_weights[val] = 0.0
  scores = []
  for l2 in L2_GRID:
    w, b, _ = fit(train_NxD, train_labels, l2, num_classes, fit_weights)
    scores.append(accuracy(w, b, train_NxD[val], train_labels[val]))
  # Ties go to the strongest regularisation.
  best = max(range(len(L2_GRID)), key=lambda i: (scores[i], i))
  w, b, _ = fit(train_NxD, train_labels, L2_GRID[best], num_classes,
                np.ones(len(train_labels), np.float32))
  return {"top1": accuracy(w, b, test_MxD, test_labels), "l2": L2_GRID[best]}


def _score(train_NxD, test_MxD, transfer, options) -> dict:
  return probe(train_NxD, transfer.train.labels, test_MxD, transfer.test.labels,
               transfer.num_classes, options.seed)


def run(run, options) -> dict:
  return run_feature_protocol(run, options, _score)
