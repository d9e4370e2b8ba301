"""DINO, self-distillation with no labels (Caron et al. 2021).

A student matches a momentum teacher's output distribution over K prototypes across views:
the teacher sees the two global crops, the student every crop (global and local), and each
student view is trained towards the teacher's distribution of every *other* view. The
teacher's output is centred (minus an EMA of its batch mean) and sharpened (a low
temperature); centring alone would flatten it, sharpening alone collapse it to one prototype.
"""
import jax
import jax.numpy as jnp

from ssl_jax.objectives import global_batch


def teacher_probs(teacher_BxGxK, center_K, temperature):
  """Centred, sharpened teacher distributions (no gradient reaches the teacher)."""
  t = jax.lax.stop_gradient(teacher_BxGxK.astype(jnp.float32))
  return jax.nn.softmax((t - center_K) / temperature, axis=-1)


def dino_loss(student_BxVxK, teacher_BxGxK, center_K, student_temp: float, teacher_temp):
  """Cross entropy H(teacher_i, student_j) averaged over the pairs i != j and the batch.

  The first G student views are the same crops as the teacher's G views (the global ones).
  """
  G, V = teacher_BxGxK.shape[1], student_BxVxK.shape[1]
  probs_BxGxK = teacher_probs(teacher_BxGxK, center_K, teacher_temp)
  logp_BxVxK = jax.nn.log_softmax(student_BxVxK.astype(jnp.float32) / student_temp, axis=-1)
  ce_BxGxV = -jnp.einsum("bgk,bvk->bgv", probs_BxGxK, logp_BxVxK)
  pairs_GxV = 1.0 - jnp.eye(G, V)  # a view is not its own target
  return jnp.mean(jnp.sum(ce_BxGxV * pairs_GxV, (1, 2)) / jnp.sum(pairs_GxV))


def update_center(center_K, teacher_BxGxK, momentum: float, axis_name=None):
  """center <- m * center + (1 - m) * the teacher's mean output over the global batch."""
  batch_mean_K = global_batch.mean(
      jnp.mean(jax.lax.stop_gradient(teacher_BxGxK).astype(jnp.float32), (0, 1)), axis_name)
  return momentum * center_K + (1.0 - momentum) * batch_mean_K


def teacher_temperature(step, warmup_temp: float, temp: float, warmup_steps: int):
  """Linear warmup of the teacher temperature from `warmup_temp` to `temp`, then constant."""
  if warmup_steps <= 0:
    return jnp.float32(temp)
  progress = jnp.clip(step / warmup_steps, 0.0, 1.0)
  return jnp.float32(warmup_temp + (temp - warmup_temp) * progress)
