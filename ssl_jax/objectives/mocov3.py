"""MoCo v3 (Chen, Xie and He 2021): a query network with a predictor against a momentum
key network, scored by InfoNCE over the global batch, symmetrised over the two views.

For queries q (this device's rows) and keys k (the global batch), row i's positive is key i
of the other view; every other key is a negative. The loss is scaled by 2 * temperature,
as in the paper.
"""
import jax
import jax.numpy as jnp
import optax

from ssl_jax.objectives import global_batch


def _normalise(x_BxD):
  x_BxD = x_BxD.astype(jnp.float32)
  return x_BxD * jax.lax.rsqrt(jnp.maximum(jnp.sum(x_BxD ** 2, -1, keepdims=True), 1e-12))


def infonce_terms(q_BxD, k_BxD, temperature: float, axis_name=None):
  """Per-row (loss, correct) of this device's queries against the global batch's keys
  (the keys carry no gradient: they come from the momentum network)."""
  q = _normalise(q_BxD)
  k_NxD = global_batch.gather(_normalise(jax.lax.stop_gradient(k_BxD)), axis_name)
  B = q.shape[0]
  offset = 0 if axis_name is None else jax.lax.axis_index(axis_name) * B
  logits_BxN = q @ k_NxD.T / temperature
  labels_B = offset + jnp.arange(B)
  loss_B = optax.softmax_cross_entropy_with_integer_labels(logits_BxN, labels_B)
  correct_B = (jnp.argmax(logits_BxN, -1) == labels_B).astype(jnp.float32)
  return 2.0 * temperature * loss_B, correct_B


def mocov3_loss(q1_BxD, q2_BxD, k1_BxD, k2_BxD, temperature: float, axis_name=None):
  """(loss, contrastive accuracy): ctr(q1, k2) + ctr(q2, k1), each a mean over the rows."""
  loss_a, correct_a = infonce_terms(q1_BxD, k2_BxD, temperature, axis_name)
  loss_b, correct_b = infonce_terms(q2_BxD, k1_BxD, temperature, axis_name)
  return jnp.mean(loss_a) + jnp.mean(loss_b), (jnp.mean(correct_a) + jnp.mean(correct_b)) / 2
