"""SigLIP's pairwise sigmoid loss (Zhai et al. 2023) between two towers.

Every (x_i, y_j) of the *global* batch is a binary problem on its own: logit
scale * cos(x_i, y_j) + bias, label +1 for the matching pair (j == i) and -1 otherwise.
The loss is -(1/N) sum_i sum_j log sigmoid(label_ij * logit_ij): a sum over the N columns
of each row, then a mean over the rows (the paper's normalisation by the batch size), so
its value grows with N. The scale and bias are learned scalars of the caller's model.

Under jax.jit the arrays are global and axis_name is None. Inside pmap/shard_map pass
axis_name: each device scores its x rows against the all-gathered y of the whole batch.
"""
import math

import jax
import jax.numpy as jnp

from ssl_jax.objectives import clip, global_batch

INIT_LOG_SCALE = math.log(10.0)  # the paper's initial scale 10 ...
INIT_BIAS = -10.0  # ... and bias -10: every logit starts near -10, as most pairs are negatives
MAX_SCALE = 100.0
# With unit vectors |scale * cos| <= MAX_SCALE, so the decision threshold cos = -bias / scale
# stays inside [-1, 1] at some allowed scale only while |bias| <= MAX_SCALE. Past that every
# pair gets the same sign at every allowed scale: no useful bias lies outside the clamp.
MAX_ABS_BIAS = MAX_SCALE


def logit_scale(log_scale):
  """The scale the loss uses, in [1, MAX_SCALE]; zero gradient to log_scale outside it."""
  return clip.clamped_scale(log_scale, MAX_SCALE)


def logit_bias(bias):
  """The bias the loss uses, clipped to [-MAX_ABS_BIAS, MAX_ABS_BIAS] in the forward pass;
  the parameter's gradient is zero outside the clamp."""
  return jnp.clip(jnp.asarray(bias, jnp.float32), -MAX_ABS_BIAS, MAX_ABS_BIAS)


def loss(x_BxD, y_BxD, log_scale, bias, axis_name=None):
  """(loss, metrics); x[i] and y[i] are pair i's raw embeddings.

  Without axis_name the loss is the global one. With it, it is this device's mean over its
  rows of each row's sum over all N global columns; the global loss is the mean over
  devices of these (equal rows per device), so averaging the per-device gradients over the
  axis, as step.py does, gives the global loss's gradient. Metrics are the global values
  on every device.
  """
  x_BxD, y_BxD = clip.normalise(x_BxD), clip.normalise(y_BxD)
  y_NxD = global_batch.gather(y_BxD, axis_name)
  scale, b = logit_scale(log_scale), logit_bias(bias)
  B, N = x_BxD.shape[0], y_NxD.shape[0]
  pair_B = clip.row_offset(B, axis_name) + jnp.arange(B)  # each row's pair among the columns
  is_pair_BxN = pair_B[:, None] == jnp.arange(N)[None]
  logits_BxN = scale * (x_BxD @ y_NxD.T) + b
  signs_BxN = jnp.where(is_pair_BxN, 1.0, -1.0)
  loss_B = -jnp.sum(jax.nn.log_sigmoid(signs_BxN * logits_BxN), -1)
  value = jnp.mean(loss_B)
  # The y -> x ranking needs the x rows of the whole batch; for the metric only.
  x_NxD = global_batch.gather(jax.lax.stop_gradient(x_BxD), axis_name)
  sims_y2x_BxN = jax.lax.stop_gradient(y_BxD) @ x_NxD.T  # scale and bias keep the order
  metrics = {
      "loss": value,
      "x_to_y_accuracy": clip.top1(logits_BxN, pair_B),
      "y_to_x_accuracy": clip.top1(sims_y2x_BxN, pair_B),
      "logit_scale": scale,
      "bias": b,
      "positive_logit": jnp.sum(jnp.where(is_pair_BxN, logits_BxN, 0.0)) / B,
      # Equal counts B * (N - 1) per device, so the pmean is the global mean; 0 if N == 1.
      "negative_logit": jnp.sum(jnp.where(is_pair_BxN, 0.0, logits_BxN)) / max(B * (N - 1), 1),
  }
  return value, global_batch.mean(metrics, axis_name)
