"""BYOL: an online network predicts a slowly moving target network's projection of
another view of the same image; no negatives. The target is an EMA of the online weights.
"""
import jax
import jax.numpy as jnp


def regression_loss(p_BxD, z_BxD):
  """2 - 2 cos(p, z) per example: squared distance of the L2-normalised vectors."""
  p = p_BxD / jnp.linalg.norm(p_BxD, axis=-1, keepdims=True).clip(1e-6)
  z = z_BxD / jnp.linalg.norm(z_BxD, axis=-1, keepdims=True).clip(1e-6)
  return 2.0 - 2.0 * jnp.sum(p * z, axis=-1)


def byol_loss(pred1_BxD, pred2_BxD, target1_BxD, target2_BxD):
  """Symmetric loss: view 1's prediction regresses view 2's target, and vice versa.

  Targets are wrapped in stop_gradient: gradients flow into the online network only.
  """
  t1, t2 = jax.lax.stop_gradient(target1_BxD), jax.lax.stop_gradient(target2_BxD)
  return jnp.mean(regression_loss(pred1_BxD, t2) + regression_loss(pred2_BxD, t1))


def target_decay(step, total_steps: int, base: float = 0.996):
  """The cosine schedule of the EMA decay: base at step 0, rising to 1 at the end."""
  progress = jnp.clip(step / max(total_steps, 1), 0.0, 1.0)
  return 1.0 - (1.0 - base) * (jnp.cos(jnp.pi * progress) + 1.0) / 2.0


def ema(target, online, decay):
  """target <- decay * target + (1 - decay) * online, leaf by leaf."""
  return jax.tree.map(lambda t, o: decay * t + (1.0 - decay) * o, target, online)
