"""CLIP's contrastive loss (Radford et al. 2021): softmax InfoNCE between two towers, both ways.

Pair i is (x[i], y[i]), e.g. an image and its caption. Each x row is scored against every y
row of the *global* batch by scale * cosine similarity and classified to its own pair (x -> y),
and each y row likewise against every x row (y -> x); the loss is the mean of the two
directions. The scale (the inverse temperature) is learned as log_scale, a scalar parameter
of the caller's model.

Under jax.jit over a mesh the arrays are global and axis_name is None. Inside pmap/shard_map
each device holds its own pairs: pass axis_name and the other side is all-gathered, so every
local row still meets the whole batch's negatives.
"""
import math

import jax
import jax.numpy as jnp
import optax

from ssl_jax.objectives import global_batch

INIT_LOG_SCALE = math.log(1 / 0.07)  # temperature 0.07, as in the paper
MAX_SCALE = 100.0  # the paper's cap: larger scales destabilised its training


def normalise(z_BxD, eps: float = 1e-12):
  """Rows scaled to unit L2 norm, in float32 whatever the input dtype."""
  z_BxD = z_BxD.astype(jnp.float32)
  return z_BxD * jax.lax.rsqrt(jnp.maximum(jnp.sum(z_BxD ** 2, -1, keepdims=True), eps))


def clamped_scale(log_scale, max_scale: float):
  """exp(log_scale) with log_scale clipped to [0, log max_scale]: a scale in [1, max_scale].

  Clipping in the forward pass keeps the value used inside the range whatever the
  parameter holds; the parameter's gradient is zero outside it, so one pushed past the
  range stays there under plain gradient steps. The log is clipped before exp so a runaway
  parameter cannot overflow (inf * 0 would make the gradient NaN), and the result is capped
  once more because float32 exp(log 100) rounds to just above 100.
  """
  log_scale = jnp.clip(jnp.asarray(log_scale, jnp.float32), 0.0, math.log(max_scale))
  return jnp.minimum(jnp.exp(log_scale), max_scale)


def logit_scale(log_scale):
  """The scale the loss uses, in [1, MAX_SCALE]; zero gradient to log_scale outside it."""
  return clamped_scale(log_scale, MAX_SCALE)


def row_offset(B: int, axis_name=None):
  """Global index of this device's first row: device d's rows sit at [d*B, (d+1)*B)."""
  return 0 if axis_name is None else jax.lax.axis_index(axis_name) * B


def loss(x_BxD, y_BxD, log_scale, axis_name=None):
  """(loss, metrics) of the symmetric InfoNCE; x[i] and y[i] are pair i's raw embeddings.

  Without axis_name the loss is the mean over the global batch. With it (inside
  pmap/shard_map) it is this device's mean over its rows: differentiate it per device and
  average the gradients over the axis, as step.py does, and the result is the global
  loss's gradient. Metrics are the global values on every device.
  """
  x_BxD, y_BxD = normalise(x_BxD), normalise(y_BxD)
  x_NxD = global_batch.gather(x_BxD, axis_name)
  y_NxD = global_batch.gather(y_BxD, axis_name)
  scale = logit_scale(log_scale)
  B = x_BxD.shape[0]
  labels_B = row_offset(B, axis_name) + jnp.arange(B)  # each row's pair among the global rows
  logits_x2y_BxN = scale * (x_BxD @ y_NxD.T)
  logits_y2x_BxN = scale * (y_BxD @ x_NxD.T)
  ce_x2y_B = optax.softmax_cross_entropy_with_integer_labels(logits_x2y_BxN, labels_B)
  ce_y2x_B = optax.softmax_cross_entropy_with_integer_labels(logits_y2x_BxN, labels_B)
  value = (jnp.mean(ce_x2y_B) + jnp.mean(ce_y2x_B)) / 2
  metrics = {
      "loss": value,
      "x_to_y_accuracy": top1(logits_x2y_BxN, labels_B),
      "y_to_x_accuracy": top1(logits_y2x_BxN, labels_B),
      "logit_scale": scale,
      "temperature": 1.0 / scale,
  }
  return value, global_batch.mean(metrics, axis_name)


def top1(logits_BxN, labels_B):
  """Fraction of rows whose own pair scores highest (ties go to the lower index)."""
  return jnp.mean((jnp.argmax(logits_BxN, -1) == labels_B).astype(jnp.float32))
