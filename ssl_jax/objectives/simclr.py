"""NT-Xent, the normalised temperature-scaled cross entropy of SimCLR (Chen et al. 2020).

For 2N projections of N examples (two views each), each row's positive is the other view
of its example and its negatives are the other 2N - 2 rows of the *global* batch.

Under jax.jit over a mesh the arrays are global, so calling `nt_xent` on the whole batch
already uses every device's negatives. Inside pmap/shard_map each device holds its own
rows; pass `axis_name` and the embeddings are all-gathered so each device scores its rows
against the global batch.
"""
import jax
import jax.numpy as jnp
import optax

NEG_INF = -1e9


def _normalise(z_BxD, eps: float = 1e-12):
  z_BxD = z_BxD.astype(jnp.float32)
  return z_BxD * jax.lax.rsqrt(jnp.maximum(jnp.sum(z_BxD ** 2, -1, keepdims=True), eps))


def nt_xent_terms(z1_BxD, z2_BxD, temperature: float, axis_name=None):
  """Per-row (loss, correct) for the 2B local rows [view 1; view 2].

  `correct` says whether the positive outscored every negative (contrastive top-1).
  """
  q1, q2 = _normalise(z1_BxD), _normalise(z2_BxD)
  B = q1.shape[0]
  if axis_name is None:
    k1, k2, offset = q1, q2, 0
  else:
    # Tiled gathers: rows of device d sit at [d*B, (d+1)*B) in k1 and k2.
    k1 = jax.lax.all_gather(q1, axis_name, tiled=True)
    k2 = jax.lax.all_gather(q2, axis_name, tiled=True)
    offset = jax.lax.axis_index(axis_name) * B
  N = k1.shape[0]
  queries_2BxD = jnp.concatenate([q1, q2])
  keys_2NxD = jnp.concatenate([k1, k2])
  logits_2Bx2N = queries_2BxD @ keys_2NxD.T / temperature
  rows_B = offset + jnp.arange(B)
  self_2B = jnp.concatenate([rows_B, N + rows_B])  # where each query sits among the keys
  positive_2B = jnp.concatenate([N + rows_B, rows_B])
  is_self = self_2B[:, None] == jnp.arange(2 * N)[None]
  logits_2Bx2N = jnp.where(is_self, NEG_INF, logits_2Bx2N)
  loss_2B = optax.softmax_cross_entropy_with_integer_labels(logits_2Bx2N, positive_2B)
  correct_2B = (jnp.argmax(logits_2Bx2N, -1) == positive_2B).astype(jnp.float32)
  return loss_2B, correct_2B


def nt_xent(z1_BxD, z2_BxD, temperature: float = 0.1, axis_name=None):
  """(loss, metrics); z1[i] and z2[i] are two views of example i.

  Without `axis_name` the loss is the mean over the global batch. With it (inside
  pmap/shard_map) the loss is this device's mean over its rows: differentiate it inside
  the mapped function and average gradients over the axis, as step.py does, and the
  gradient is the global loss's. metrics["loss"] is the global loss on every device.
  """
  loss_2B, correct_2B = nt_xent_terms(z1_BxD, z2_BxD, temperature, axis_name)
  loss = jnp.mean(loss_2B)
  metrics = {"loss": loss, "contrastive_accuracy": jnp.mean(correct_2B)}
  if axis_name is not None:
    metrics = jax.lax.pmean(metrics, axis_name)
  return loss, metrics
