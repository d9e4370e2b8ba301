"""BYOL: an online network predicts a slowly moving target network's projection of
another view of the same image; no negatives. The target is an EMA of the online weights
(objectives/teacher.py, shared with MoCo v3 and DINO).
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
