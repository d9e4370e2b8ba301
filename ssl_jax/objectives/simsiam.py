"""SimSiam (Chen and He 2021): a predictor on one branch, stop-gradient on the other.

No negatives, no momentum encoder: the stop-gradient alone keeps the two-view Siamese
network from collapsing.
"""
import jax
import jax.numpy as jnp


def negative_cosine(p_BxD, z_BxD):
  """-cos(p, sg(z)) per example."""
  z = jax.lax.stop_gradient(z_BxD).astype(jnp.float32)
  p = p_BxD.astype(jnp.float32)
  return -jnp.sum(_unit(p) * _unit(z), -1)


def _unit(x_BxD):
  # rsqrt of the clipped squared norm: finite gradients even where x is exactly 0 (a row
  # whose ReLUs are all off), where the gradient of jnp.linalg.norm is NaN.
  return x_BxD * jax.lax.rsqrt(jnp.maximum(jnp.sum(x_BxD ** 2, -1, keepdims=True), 1e-24))


def simsiam_loss(p1_BxD, p2_BxD, z1_BxD, z2_BxD):
  """D(p1, z2) / 2 + D(p2, z1) / 2, averaged over the batch (minimum -1)."""
  return jnp.mean(negative_cosine(p1_BxD, z2_BxD) + negative_cosine(p2_BxD, z1_BxD)) / 2
