"""Barlow Twins (Zbontar et al. 2021): the cross-correlation matrix of the two views'
embeddings, each standardised over the global batch, is driven towards the identity.
The diagonal makes the views agree; the off-diagonal terms decorrelate the features.
"""
import jax.numpy as jnp

from ssl_jax.objectives import global_batch


def standardise(z_NxD, eps: float = 1e-5):
  """Zero mean, unit variance per feature over the batch (batch norm without affine)."""
  z_NxD = z_NxD.astype(jnp.float32)
  mean = jnp.mean(z_NxD, 0)
  return (z_NxD - mean) / jnp.sqrt(jnp.var(z_NxD, 0) + eps)


def cross_correlation(z1_BxD, z2_BxD, axis_name=None):
  """C[i, j] = mean over the global batch of z1n[:, i] * z2n[:, j]."""
  a = standardise(global_batch.gather(z1_BxD, axis_name))
  b = standardise(global_batch.gather(z2_BxD, axis_name))
  return a.T @ b / a.shape[0]


def barlow_twins_loss(z1_BxD, z2_BxD, off_diagonal_weight: float = 0.0051, axis_name=None):
  """sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2 on the global batch."""
  c_DxD = cross_correlation(z1_BxD, z2_BxD, axis_name)
  on_diag = jnp.sum((1.0 - jnp.diagonal(c_DxD)) ** 2)
  off_diag = jnp.sum(c_DxD ** 2) - jnp.sum(jnp.diagonal(c_DxD) ** 2)
  return on_diag + off_diagonal_weight * off_diag
